"""``python -m capana``."""

import sys

from capana.cli import main

sys.exit(main())
