"""Mutation fuzzing of the whole analysis on real captures; see ``harness`` and ``__main__``."""
