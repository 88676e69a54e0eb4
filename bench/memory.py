"""Peak memory of ``capana scan`` on a small gzip that expands to thousands of large handshakes.

    python3 bench/memory.py                       # 3,000 connections, 160 kB Certificates each
    python3 bench/memory.py --connections 5000 --size 200000

The capture (``samplegen.flood``, built under bench/out/) holds every connection part-way
through its server Certificate at once: without a capture-wide budget each would buffer its
message (capana's TLS direction holds up to tls.MAX_CERTIFICATE_MESSAGE of it). Each row is
``capana scan`` under ``/usr/bin/time -v``, with the table (the default) and with JSON Lines:
wall time, peak RSS, and how many handshakes were reported and cut by a bound (the target:
peak RSS <= 300 MB on any input).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
sys.path.insert(0, str(PROJECT / "pcaps"))
sys.path.insert(0, str(PROJECT / "tests"))

TIME = "/usr/bin/time"


def build(out: Path, connections: int, size: int) -> Path:
    from samplegen import flood
    from test_tls import real_handshake, test_pki

    path = out / f"flood-{connections}x{size}.pcap.gz"
    if not path.exists():
        ca, server, _ = test_pki()
        chain = (server.der, ca.der)
        flood.concurrent_certificates(
            path, real_handshake(), chain, connections=connections, size=size
        )
    return path


def measure(path: Path, format: str) -> tuple[float, float, list[dict]]:
    """(wall seconds, peak RSS MB, the JSON Lines records) of ``capana scan`` on ``path``."""
    with tempfile.TemporaryDirectory() as scratch:
        report, result = Path(scratch) / "time", Path(scratch) / f"out.{format}"
        command = [TIME, "-v", "-o", str(report), sys.executable, "-m", "capana", "scan"]
        command += [str(path), "--format", format, "-o", str(result)]
        started = time.perf_counter()
        subprocess.run(command, cwd=PROJECT, check=False, capture_output=True)
        wall = time.perf_counter() - started
        rss = next(
            int(line.split(":")[1]) / 1024
            for line in report.read_text().splitlines()
            if "Maximum resident set size" in line
        )
        text = result.read_text()
    records = [json.loads(line) for line in text.splitlines()] if format == "jsonl" else []
    return wall, rss, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--size", type=int, default=160_000, help="Certificate message bytes")
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = build(args.out, args.connections, args.size)
    expanded = args.connections * (args.size + 2000)
    capture = f"{path.name} ({path.stat().st_size / 1e6:.1f} MB gzip, {expanded / 1e6:.0f} MB)"
    for format in ("table", "jsonl"):
        wall, rss, records = measure(path, format)
        found = ""
        if records:
            cut = sum("limit" in record["problem_codes"] for record in records)
            found = f"{len(records)} handshakes, {cut} cut by a bound"
        print(
            f"| capana scan --format {format} | {capture} | {found} | {wall:.2f} s | {rss:.0f} MB |"
        )


if __name__ == "__main__":
    main()
