"""The ``capana`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from capana.analyzer import analyze
from capana.report import Report
from capana.truststore import TrustStoreError
from capana.views.json import render_json, render_jsonl
from capana.views.table import render_table

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

RENDERERS: dict[str, Callable[[Report], str]] = {
    "table": render_table,
    "json": render_json,
    "jsonl": render_jsonl,
}

EXAMPLES = """\
examples:
  capana scan phone-reboot.pcapng
  capana scan reboot.pcap --trust CallManager-trust/
  capana scan reboot.pcap --trust callmanager=cm-trust.pem --trust capf=capf-trust.p7b
  capana scan big-lab-capture.pcap --format json > report.json
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="capana",
        description="Which certificate did each Cisco phone present, LSC or MIC, "
        "and would the server trust it?",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"capana {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    scan = commands.add_parser(
        "scan",
        help="analyse pcap/pcapng captures (files or folders, also .gz)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_argument("paths", nargs="+", metavar="PATH", help="capture files or folders")
    scan.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="trust store: PEM/DER file, .p7b or folder; NAME is callmanager, capf, ise, "
        "asa or a port (repeatable; without NAME: the default for every handshake)",
    )
    scan.add_argument("--format", choices=sorted(RENDERERS), default="table")
    scan.add_argument("--output", "-o", metavar="FILE", help="write the report here")
    scan.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = analyze(args.paths, trust=args.trust or None)
    except TrustStoreError as error:
        print(f"capana: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        if args.debug:
            raise
        print(f"capana: internal error: {error!r} (run with --debug for details)", file=sys.stderr)
        return EXIT_USAGE
    text = RENDERERS[args.format](report)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as output:
            output.write(text)
    else:
        sys.stdout.write(text)
    for error in report.errors:
        print(f"capana: {error}", file=sys.stderr)
    return EXIT_USAGE if any(not c.readable for c in report.captures) else EXIT_OK


def _version() -> str:
    try:
        return version("capana")
    except PackageNotFoundError:
        return "unknown"
