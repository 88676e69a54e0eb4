"""The ``capana`` command line: arguments in, a view of the report out, an exit code to gate on."""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, TextIO

from capana.analyzer import analyze
from capana.annotate import AnnotateError, write_annotated
from capana.certcheck import check_files
from capana.findings import DEFAULT_EXPIRY_DAYS
from capana.keylog import KeyLogError
from capana.model import Report, Severity
from capana.truststore import TrustStoreError
from capana.views.annotations import frame_comments
from capana.views.certcheck import render_check_json, render_check_table
from capana.views.pem import certificate_files
from capana.views.records import capana_version
from capana.views.table import render_table

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Each --format's renderer, imported when chosen (Jinja2 alone is a tenth of the start-up).
RENDERERS = {
    "table": "capana.views.table:render_table",
    "json": "capana.views.json:json_chunks",  # written a record at a time
    "jsonl": "capana.views.json:jsonl_chunks",
    "csv": "capana.views.csv:render_csv",
    "html": "capana.views.html:render_html",
}
# --format, when not given, from the --output file's suffix.
_SUFFIX_FORMATS = {".json": "json", ".jsonl": "jsonl", ".csv": "csv", ".html": "html"}
FAIL_ON = ("error", "warning", "never")
SEVERITIES = ("info", "warning", "error")

# A file at least this large gets a progress bar (when stderr is a terminal).
LARGE_FILE = 32 << 20

EXAMPLES = """\
examples:
  capana scan phone-reboot.pcapng
  capana scan reboot.pcap --trust CallManager-trust/
  capana scan reboot.pcap --trust callmanager=cm-trust.pem --trust capf=capf-trust.p7b
  capana scan captures/ --jobs 4 --format jsonl > handshakes.jsonl
  capana scan reboot.pcap --trust cm-trust/ --format html -o report.html
  capana scan reboot.pcap --format csv -o handshakes.csv --export-certs certs/
  capana scan reboot.pcap --trust cm-trust/ --fail-on error || echo "phones need attention"
  capana scan tls13.pcap --keylog sslkeys.log
  capana scan reboot.pcap --trust cm-trust/ --annotate reboot-annotated.pcapng
  capana scan ise.pcap --trust ise=ise-trust/ --crl issuing-ca.crl
  capana scan site.pcap --trust cm-trust/ --phones-only --min-severity info

exit status:
  0  analysed; no finding at or above --fail-on (always, with the default --fail-on never)
  1  a finding of the --fail-on severity or worse (error > warning > info)
  2  usage error, unreadable or damaged capture (the report still holds everything read
     before the damage), trust store or key log, no capture found, or internal error
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="capana",
        description="Which certificate did each Cisco phone present, LSC or MIC, "
        "and would the server trust it?",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="print the version")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    scan = commands.add_parser(
        "scan",
        help="analyse pcap/pcapng captures (files or folders, also .gz)",
        description="Analyse captures: every TLS handshake, the certificate each phone "
        "presented (LSC or MIC), the verdict against the trust stores, and findings.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="capture files, or folders searched for *.pcap, *.pcapng, *.cap (and .gz)",
    )
    scan.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="trust store: PEM/DER file, .p7b or folder (its .crl files too); NAME is "
        "callmanager, capf, ise, asa or a port (repeatable; without NAME: the default for every "
        "handshake)",
    )
    scan.add_argument(
        "--crl",
        action="append",
        default=[],
        metavar="FILE",
        help="a CRL (PEM or DER) to check revocation with at the capture's time, added to every "
        "store (repeatable)",
    )
    scan.add_argument(
        "--keylog",
        metavar="FILE",
        help="NSS key log (SSLKEYLOGFILE) to read TLS 1.3 certificates and inside TLS 1.0-1.3 "
        "CAPF, TVS, SIP and SCCP sessions; pcapng files' own decryption secrets are used too",
    )
    scan.add_argument(
        "--format",
        choices=list(RENDERERS),
        help="table (default), json, jsonl (one handshake per line), csv (one handshake "
        "per row, the phone's certificate flattened) or html (one self-contained page); "
        "guessed from the --output suffix when not given",
    )
    scan.add_argument("--output", "-o", metavar="FILE", help="write the report here, not stdout")
    scan.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="never",
        help="exit 1 when a finding of this severity or worse exists (default: never)",
    )
    scan.add_argument(
        "--jobs",
        "-j",
        type=_jobs,
        default=1,
        metavar="N",
        help="analyse up to N files in parallel processes (0: one per CPU; default 1); "
        "the report is the same as with one",
    )
    scan.add_argument(
        "--export-certs",
        metavar="DIR",
        help="write every distinct certificate as PEM to DIR, named "
        "<device-or-cn>_<role>_<sha256[:12]>.pem",
    )
    scan.add_argument(
        "--min-severity",
        choices=SEVERITIES,
        default="warning",
        help="table: show findings of this severity or worse (default: warning; the others "
        "are counted)",
    )
    scan.add_argument(
        "--phones-only",
        action="store_true",
        help="table: leave out hosts that are not phones (by certificate or service)",
    )
    scan.add_argument(
        "--expiry-days",
        type=_days,
        default=DEFAULT_EXPIRY_DAYS,
        metavar="N",
        help="warn of certificates that expire within N days of the capture (default: "
        f"{DEFAULT_EXPIRY_DAYS})",
    )
    scan.add_argument(
        "--annotate",
        metavar="OUT.pcapng",
        help="write a copy of the (one) capture as pcapng with a comment on each handshake's "
        "ClientHello, certificate and alert frames; in Wireshark: frame.comment contains "
        '"capana"',
    )
    scan.add_argument("--debug", action="store_true", help="show tracebacks on internal errors")
    _add_cert_command(commands)
    return parser


CERT_EXAMPLES = """\
examples:
  capana cert SEP2C3124C9F8E1.pem --trust callmanager=CallManager-trust/
  capana cert capf-trace.txt --trust CAPF-trust/ --at 2024-03-01T09:00:00Z
  capana cert phone.p7b --trust ise=ise-trust.pem --crl issuing-ca.crl --format json
  capana cert *.pem --trust cm-trust/ --fail-on error || echo "certificates need attention"

Each FILE is one chain: a PEM or DER certificate, a bundle, a .p7b, or any text with PEM
blocks (a CAPF trace). The first certificate is the leaf, unless the file is a .p7b or
written root first. CRLs in a trust store folder (.crl) are used too.

exit status: as for scan (2 also when a FILE holds no readable certificate)
"""


def _add_cert_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cert = commands.add_parser(
        "cert",
        help="judge certificate files without a capture (LSC/MIC, verdict, findings)",
        description="Classify a phone's certificate (LSC, MIC, CAPF, CA), judge its chain "
        "against the trust stores at a moment, and give the findings that need no capture.",
        epilog=CERT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cert.add_argument("files", nargs="+", metavar="FILE", help="certificate files, leaf first")
    cert.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="trust store: PEM/DER file, .p7b or folder (its .crl files too); NAME is "
        "callmanager, capf, ise, asa or a port (repeatable: a verdict per store)",
    )
    cert.add_argument(
        "--at",
        type=_moment,
        metavar="ISO-8601",
        help="judge at this moment (default: now); a time without a zone is UTC",
    )
    cert.add_argument(
        "--crl",
        action="append",
        default=[],
        metavar="FILE",
        help="a CRL (PEM or DER) to check revocation with, added to every store (repeatable)",
    )
    cert.add_argument("--format", choices=("table", "json"), default="table")
    cert.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="never",
        help="exit 1 when a finding of this severity or worse exists (default: never)",
    )
    cert.add_argument("--debug", action="store_true", help="show tracebacks on internal errors")


def _moment(text: str) -> datetime:
    """ISO-8601, with ``Z`` for UTC (Python 3.10's fromisoformat does not read it)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _cert(args) if args.command == "cert" else _scan(args)
    except KeyboardInterrupt:
        print("capana: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if args.debug:
            raise
        print(f"capana: internal error: {error!r} (run with --debug for details)", file=sys.stderr)
        return EXIT_USAGE


def _scan(args: argparse.Namespace) -> int:
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    try:
        report = analyze(
            args.paths,
            trust=args.trust or None,
            crls=args.crl,
            jobs=args.jobs,
            progress=bar,
            keylog=args.keylog,
            expiry_days=args.expiry_days,
        )
    except (TrustStoreError, KeyLogError) as error:
        print(f"capana: {error}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if bar is not None:
            bar.close()
    if not report.captures:
        print(f"capana: no capture files in {', '.join(args.paths)}", file=sys.stderr)
        return EXIT_USAGE
    if args.annotate and len(report.captures) != 1:
        print("capana: --annotate takes one capture file", file=sys.stderr)
        return EXIT_USAGE
    chosen = _format(args)
    render = (
        functools.partial(
            render_table, min_severity=args.min_severity, phones_only=args.phones_only
        )
        if chosen == "table"
        else _renderer(chosen)
    )
    try:
        _write(render(report), args.output)
        if args.export_certs:
            _export(report, Path(args.export_certs))
        if args.annotate:
            _annotate(report, Path(args.annotate))
    except AnnotateError as error:
        print(f"capana: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"capana: cannot write: {error}", file=sys.stderr)
        return EXIT_USAGE
    for warning in report.warnings:
        print(f"capana: warning: {warning}", file=sys.stderr)
    for problem in report.errors:
        print(f"capana: {problem}", file=sys.stderr)
    return exit_code(report, args.fail_on)


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked (importlib.metadata is
    a few ms of every start-up otherwise)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"capana {capana_version()}")
        parser.exit()


def _renderer(format_name: str) -> Callable[[Report], str | Iterable[str]]:
    module, _, function = RENDERERS[format_name].partition(":")
    render: Callable[[Report], str | Iterable[str]] = getattr(
        importlib.import_module(module), function
    )
    return render


def _cert(args: argparse.Namespace) -> int:
    try:
        checks = check_files(args.files, args.trust or None, at=args.at, crls=args.crl)
    except TrustStoreError as error:
        print(f"capana: {error}", file=sys.stderr)
        return EXIT_USAGE
    render = render_check_json if args.format == "json" else render_check_table
    _write(render(checks), None)
    for check in checks:
        for problem in check.errors:
            print(f"capana: {problem}", file=sys.stderr)
    if any(check.errors for check in checks):
        return EXIT_USAGE
    if args.fail_on != "never" and any(check.has_finding(args.fail_on) for check in checks):
        return EXIT_FINDINGS
    return EXIT_OK


def exit_code(report: Report, fail_on: Severity | Literal["never"]) -> int:
    """2 for an unreadable or damaged capture, else 1 when --fail-on is met, else 0.

    A capture read only up to damage is still reported, but a gate must not pass on it.
    """
    if any(not capture.readable or capture.errors for capture in report.captures):
        return EXIT_USAGE
    if fail_on != "never" and report.has_finding(fail_on):
        return EXIT_FINDINGS
    return EXIT_OK


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.output).suffix.lower() if args.output else ""
    return _SUFFIX_FORMATS.get(suffix, "table")


def _write(text: str | Iterable[str], output: str | None) -> None:
    """The view's text, or its pieces as they are made, to ``output`` or stdout."""
    pieces = [text] if isinstance(text, str) else text
    if output:
        with open(output, "w", encoding="utf-8") as out:
            out.writelines(pieces)
        return
    try:
        sys.stdout.writelines(pieces)
        sys.stdout.flush()
    except BrokenPipeError:  # `capana scan ... | head`: the reader had enough
        # Point stdout at /dev/null so the flush at interpreter exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _annotate(report: Report, out: Path) -> None:
    capture = report.captures[0].path
    written = write_annotated(capture, out, frame_comments(report, capture))
    print(f"capana: wrote {out} with {written} packet comment(s)", file=sys.stderr)


def _export(report: Report, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    files = certificate_files(report)
    for name, pem in files.items():
        (folder / name).write_text(pem, encoding="ascii")
    print(f"capana: wrote {len(files)} certificate(s) to {folder}", file=sys.stderr)


class ProgressBar:
    """``[#####.....]  42%  512/1210 MiB`` on a terminal, redrawn in place; files under
    ``minimum`` bytes draw nothing."""

    WIDTH = 30

    def __init__(self, stream: TextIO, minimum: int = LARGE_FILE) -> None:
        self.stream = stream
        self.minimum = minimum
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        if total < self.minimum or total <= 0:
            return
        share = min(done / total, 1.0)
        filled = int(share * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        mib = 1 << 20
        line = f"\rcapana [{bar}] {share:4.0%}  {done // mib}/{total // mib} MiB"
        self.stream.write(line)
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """Erase the bar so the report's own lines start clean."""
        if self.drawn:
            self.stream.write("\r" + " " * 72 + "\r")
            self.stream.flush()
            self.drawn = False


def _jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if jobs < 0:
        raise argparse.ArgumentTypeError("must be 0 (one per CPU) or more")
    return jobs


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if days < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return days
