"""``python -m tests.fuzz --count 100000 --seed 7``: the long fuzz run, from the project root.

Input ``i`` of seed ``N`` is the same on every machine (given the same seed captures), so a run
is defined by its seed and count, and one failure replays alone with ``--first i --count 1``.
``--seconds`` stops earlier when time runs out. Prints each failure (seed, input index, mutation,
replay command) as it is found and a summary at the end; failing inputs are written to ``--out``
(default: a folder under /tmp, never the project). Exit status 1 when any input failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .harness import run


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fuzz",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=100_000, help="how many inputs to run")
    parser.add_argument("--seed", type=int, default=1, help="the run's seed")
    parser.add_argument("--first", type=int, default=0, help="index of the first input")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds allowed per input")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "capana-fuzz",
        help="where failing inputs are kept",
    )
    args = parser.parse_args()
    print(f"fuzz: seed {args.seed}, inputs from {args.first}, count {args.count}", flush=True)
    summary = run(
        seed=args.seed,
        count=args.count,
        seconds=args.seconds,
        first=args.first,
        timeout=args.timeout,
        out=args.out,
        log=True,
    )
    print(summary.line())
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
