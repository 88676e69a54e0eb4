"""Sample-data generators for tests and shipped captures: synthetic PKI, captures built on it."""
