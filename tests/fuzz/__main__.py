"""``python -m tests.fuzz --seconds 600 --seed 7``: a long fuzz run by hand, from the project root.

Prints each failure as it is found and a summary at the end; failing inputs are written to
``--out`` (default: a folder under /tmp, never the project). Exit status 1 when any failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .harness import run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to run")
    parser.add_argument("--seed", type=int, default=1, help="random seed (runs are repeatable)")
    parser.add_argument("--inputs", type=int, default=None, help="stop after this many inputs")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds allowed per input")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "capana-fuzz",
        help="where failing inputs are kept",
    )
    args = parser.parse_args()
    summary = run(
        seconds=args.seconds,
        seed=args.seed,
        max_inputs=args.inputs,
        timeout=args.timeout,
        out=args.out,
        log=True,
    )
    print(summary.line())
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
