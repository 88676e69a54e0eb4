"""The ``capana`` command as a lab script runs it: a subprocess, its files, its exit code."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

import capana
from capana.cli import ProgressBar, main
from capana.views.json import render_json
from capana.views.records import HANDSHAKE_COLUMNS

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
REBOOT = PCAPS / "phone-reboot.pcapng"
TRUST = PCAPS / "phone-reboot-trust"


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "capana", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_version_and_help_with_examples_and_exit_codes() -> None:
    assert run("--version").stdout.strip() == f"capana {capana_version()}"
    help_text = run("scan", "--help").stdout
    for text in ("examples:", "--fail-on", "--jobs", "--export-certs", "exit status:", "  2  "):
        assert text in help_text


def capana_version() -> str:
    from importlib.metadata import version

    return version("capana")


def test_table_is_the_default_and_exit_is_0_despite_errors() -> None:
    result = run("scan", REBOOT, "--trust", TRUST)
    assert result.returncode == 0
    assert "SEP2C3124C9F80F" in result.stdout
    assert "ERROR lsc-from-other-cluster" in result.stdout
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_fail_on_error_csv_and_certificate_export(tmp_path: Path) -> None:
    out, certs = tmp_path / "handshakes.csv", tmp_path / "certs"
    result = run("scan", REBOOT, "--trust", TRUST, "--fail-on", "error", "-o", out,
                 "--export-certs", certs)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""

    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == list(HANDSHAKE_COLUMNS)  # the format came from the suffix
    assert len(rows) == 6
    rejected = [r for r in rows if r["outcome"] == "rejected"]
    assert {r["device"] for r in rejected} == {"SEP2C3124C9F80F"}
    assert {r["leaf_kind"] for r in rejected} == {"LSC"}
    assert "CN=CAPF-5b1e77a3" in rejected[0]["leaf_issuer"]
    assert rejected[0]["findings"].split() == ["lsc-from-other-cluster", "issuer-not-requested"]

    names = sorted(p.name for p in certs.iterdir())
    assert "SEP2C3124C9F80F_lsc_" + rejected[0]["leaf_sha256"][:12] + ".pem" in names
    assert any(name.startswith("cucm-pub.example.com_server_") for name in names)
    for path in certs.iterdir():
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        digest = hashlib.sha256(cert.public_bytes(Encoding.DER))
        assert path.stem.endswith(digest.hexdigest()[:12])


def test_fail_on_warning_passes_a_clean_capture(capsys: pytest.CaptureFixture[str]) -> None:
    # In-process from here on: the same main() the subprocesses above ran, for speed.
    args = ["scan", str(PCAPS / "reordered-cert.pcap"), "--trust", str(TRUST)]
    assert main([*args, "--fail-on", "warning"]) == 0
    assert "SEP" in capsys.readouterr().out


def test_jobs_give_the_serial_report_for_a_folder(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run("scan", PCAPS, "--trust", TRUST, "--jobs", "2", "--format", "json", "-o", out)
    assert result.returncode == 0, result.stderr
    serial = capana.analyze(PCAPS, trust=str(TRUST))
    assert out.read_text(encoding="utf-8") == render_json(serial)
    assert len(serial.captures) > 1


def test_html_page_is_self_contained(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert run("scan", REBOOT, "--trust", TRUST, "--format", "html", "-o", out).returncode == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page and "SEP2C3124C9F80F" in page and "lsc-from-other-cluster" in page
    assert page.count("<script>") == 1  # inline; nothing is fetched
    for outside in ("<link", "src=", "http://", "https://", "@import", "url("):
        assert outside not in page


def test_unreadable_and_missing_captures_exit_2_without_traceback(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    result = run("scan", junk, tmp_path / "missing.pcapng", REBOOT, "--format", "jsonl")
    assert result.returncode == 2
    assert "junk.pcap: not a pcap or pcapng file" in result.stderr
    assert "missing.pcapng: cannot open" in result.stderr
    assert len(result.stdout.splitlines()) == 6  # the readable capture is still reported
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("scan", "{empty}"), "no capture files in"),
        (("scan", "{reboot}", "--trust", "{empty}"), "no certificate files"),
        (("scan", "{reboot}", "--keylog", "{empty}/none.keys"), "cannot read key log"),
        (("scan", "{reboot}", "--fail-on", "sometimes"), "invalid choice"),
    ],
    ids=["empty-folder", "bad-trust-store", "bad-key-log", "usage"],
)
def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    filled = [a.format(empty=tmp_path, reboot=REBOOT) for a in args]
    try:
        code = main(filled)
    except SystemExit as exit:  # argparse's own usage errors
        code = exit.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_keylog_reveals_the_tls13_certificate(capsys: pytest.CaptureFixture[str]) -> None:
    capture, keys = PCAPS / "tls13-client-cert.pcap", PCAPS / "tls13-client-cert.keys"
    assert main(["scan", str(capture), "--format", "csv"]) == 0
    assert "encrypted" in capsys.readouterr().out
    assert main(["scan", str(capture), "--keylog", str(keys), "--format", "csv"]) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert (row["tls_version"], row["leaf_kind"], row["device"]) == (
        "TLS 1.3",
        "LSC",
        "SEP2C3124C9F807",
    )


def test_progress_bar_draws_only_for_large_files_and_erases_itself() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, minimum=1000)
    bar(10, 999)
    assert stream.getvalue() == ""
    bar(512 << 20, 1024 << 20)
    assert "[###############...............]  50%  512/1024 MiB" in stream.getvalue()
    bar.close()
    assert stream.getvalue().endswith("\r")


def test_crl_option_revokes_the_phones_mic_at_the_capture_time(tmp_path: Path) -> None:
    """``--crl`` adds a CRL to every store: the MIC it lists is revoked (exit 1 on errors), the
    same capture without it is trusted, and a CRL with no store to check is a usage error."""
    from datetime import timedelta

    from samplegen import scenarios
    from test_revocation import crl

    cluster = scenarios.build_cluster(scenarios.KeyRing())
    scene = scenarios.mic_accepted(tmp_path, cluster=cluster)
    revocations = tmp_path / "manufacturing-ca.crl"
    day = timedelta(days=1)
    listed = [(scene.issued["mic"], None)]
    at = scene.capture_time
    revocations.write_bytes(crl(cluster.mfg_ca, listed, this_update=at - day, next_update=at + day))
    trust = f"callmanager={scene.trust_dir}"
    base = ("scan", scene.capture, "--trust", trust, "--format", "json", "--fail-on", "error")

    def verdict(done: subprocess.CompletedProcess[str]) -> tuple[str, list[str]]:
        (record,) = json.loads(done.stdout)["handshakes"]
        return record["validation"]["status"], [f["code"] for f in record["findings"]]

    revoked = run(*base, "--crl", revocations)
    assert revoked.returncode == 1, revoked.stderr
    status, codes = verdict(revoked)
    assert status == "revoked" and "certificate-revoked" in codes
    clean = run(*base)
    assert clean.returncode == 0 and verdict(clean)[0] == "trusted"
    alone = run("scan", scene.capture, "--crl", revocations)
    assert alone.returncode == 2 and "without a trust store" in alone.stderr
    assert "Traceback" not in alone.stderr
