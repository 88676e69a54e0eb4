"""The views and the notebook API: every rendering is a function of one Report."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest

import capana
from capana import notebook
from capana.model import Report
from capana.views import html
from capana.views.csv import render_csv
from capana.views.html import render_html
from capana.views.pem import certificate_files
from capana.views.records import HANDSHAKE_COLUMNS, handshake_row

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"


@pytest.fixture(scope="module")
def report() -> Report:
    return capana.analyze(PCAPS / "phone-reboot.pcapng", trust=PCAPS / "phone-reboot-trust")


def test_reprs_are_one_short_line(report: Report) -> None:
    assert repr(report) == (
        "<Report 1 capture, 6 handshakes, 10 file transfers, 5 devices, 2 errors, 2 warnings>"
    )
    moved = report.devices[-1]
    assert repr(moved) == (
        "<Device SEP2C3124C9F80F CP-8865 at 10.20.1.25: LSC, 2 handshake(s), "
        "worst error lsc-from-other-cluster>"
    )
    assert repr(moved.handshakes[0]) == (
        "<HandshakeReport 10.20.1.25:50355 -> 10.10.1.5:2443 sccp-tls: "
        "LSC SEP2C3124C9F80F, untrusted, rejected>"
    )
    leaf = moved.certificates[0]
    assert (
        repr(leaf)
        == f"<CertificateReport LSC SEP2C3124C9F80F from CAPF-5b1e77a3, sha256 {leaf.sha256[:12]}>"
    )
    for thing in (report, moved, moved.handshakes[0], leaf):
        assert "\n" not in repr(thing) and len(repr(thing)) < 120


def test_html_fragments_for_notebooks(report: Report) -> None:
    page = html.report_fragment(report)
    assert page.startswith("<style>") and 'class="devices"' in page and "<script" not in page
    assert page.count("<tr") > len(report.devices) + len(report.handshakes)
    moved = report.devices[-1]
    assert "lsc-from-other-cluster" in html.device_fragment(moved)
    assert "unknown_ca" in html.handshake_fragment(moved.handshakes[0])
    assert "CAPF-5b1e77a3" in html.certificate_fragment(moved.certificates[0])


def test_html_escapes_what_the_capture_says(report: Report) -> None:
    hostile = Report(captures=(), handshakes=(), devices=(), trust_stores=("<script>x</script>",))
    assert "<script>x" not in render_html(hostile)


def test_csv_row_per_handshake_with_the_leaf_flattened(report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert [row["device"] for row in rows] == [
        r.client_leaf.classification.device for r in report.handshakes if r.client_leaf
    ]
    assert {row["leaf_kind"] for row in rows} == {"LSC", "MIC"}
    assert list(handshake_row(report.handshakes[0])) == list(HANDSHAKE_COLUMNS)
    empty = Report(captures=(), handshakes=())
    assert render_csv(empty) == ",".join(HANDSHAKE_COLUMNS) + "\n"


def test_certificate_files_are_distinct_and_named_by_device_and_role(report: Report) -> None:
    files = certificate_files(report)
    assert len(files) == len(report.certificates)
    roles = {name.split("_")[-2] for name in files}
    assert roles == {"lsc", "mic", "server"}
    assert all(pem.startswith("-----BEGIN CERTIFICATE-----\n") for pem in files.values())


def test_parallel_run_is_the_serial_report() -> None:
    files = sorted(PCAPS.glob("*.pcap*"))
    trust = PCAPS / "phone-reboot-trust"
    serial = capana.analyze(files, trust=trust)
    assert capana.analyze(files, trust=trust, jobs=2) == serial


def test_dataframes(report: Report) -> None:
    pytest.importorskip("pandas", reason="pandas not installed: pip install -e '.[notebook]'")
    handshakes = notebook.handshake_frame(report)
    assert list(handshakes.columns) == list(HANDSHAKE_COLUMNS)
    assert str(handshakes["start"].dtype).startswith("datetime64")
    frames = notebook.frames(report)
    assert list(frames.devices["device"]) == [d.name for d in report.devices]
    assert len(frames.certificates) == len(report.certificates)
    assert set(frames.findings["code"]) == {f.code for f in report.findings}


def test_dataframes_without_pandas_say_how_to_install(
    report: Report, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'capana\[notebook\]'"):
        notebook.handshake_frame(report)


def test_unparseable_certificate_keeps_every_key_of_the_json_contract() -> None:
    """Lab scripts read cert["subject"] on every certificate; an unreadable one says null."""
    from capana.certificates import parse_certificate
    from capana.model import CertificateReport, Classification
    from capana.views.records import certificate_record

    unreadable = parse_certificate(b"\x30\x03\x02\x01\x00")
    record = certificate_record(CertificateReport(unreadable, Classification("other")))
    contract = {"sha256", "subject", "issuer", "serial", "not_before", "not_after"}
    contract |= {"signature_algorithm", "public_key", "der_b64"}
    assert contract <= set(record)
    assert record["subject"] is None and record["error"]


def test_site_table_fits_a_terminal(site: Report) -> None:
    """500 phones: a summary line first, phones before hosts, findings once per code with the
    devices capped, and no line over 120 columns."""
    from capana.views.table import WIDTH, render_table

    text = render_table(site)
    lines = text.splitlines()
    assert lines[0].startswith("490 phones: ") and lines[0].endswith("; 10 other hosts")
    assert max(len(line) for line in lines) <= WIDTH
    assert text.index("490 phones\n") < text.index("10 other hosts (not phones")
    assert "ERROR lsc-from-other-cluster: 20 devices, 30 connections" in text
    assert "+12 more" in text
    assert text.count("mic-without-eku-or-san") < 160  # info: in the device rows only
    assert "INFO mic-without-eku-or-san" not in text
    assert "INFO mic-without-eku-or-san" in render_table(site, min_severity="info")
    phones_only = render_table(site, phones_only=True)
    assert "other host" not in phones_only.split("\n\n", 1)[1] and ":443 " not in phones_only


def test_json_summary_version_and_connection_facts(report: Report) -> None:
    import json

    from capana.views.json import render_json

    data = json.loads(render_json(report))
    assert data["capana_version"] and data["warnings"] == []
    assert data["summary"]["phones"] == 5
    assert data["summary"]["verdicts"] == {"error": 1, "warning": 0, "unverified": 0, "ok": 4}
    assert data["summary"]["trusted"] == {"LSC": 2, "MIC": 2}
    assert [d["verdict"] for d in data["devices"]] == ["ok", "ok", "ok", "ok", "error"]
    moved = data["handshakes"][-1]
    assert moved["client_hello"]["cipher_suites"][:2] == [
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ]
    assert moved["client_hello"]["versions"] == ["TLS 1.2"]
    assert "rsa_pkcs1_sha256" in moved["client_hello"]["signature_algorithms"]
    assert moved["server_hello"] == {
        "version": "TLS 1.2",
        "cipher_suite": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "extended_master_secret": True,  # OpenSSL's ServerHello carries it
        "encrypt_then_mac": False,  # an AEAD suite: OpenSSL leaves it out
    }
    assert moved["frames"] == {
        "client_hello": 316,
        "client_certificate": 321,
        "alert": 323,
        "cleartext": None,
    }
    assert moved["wireshark_filter"].startswith("(ip.addr eq 10.20.1.25 and ip.addr eq 10.10.1.5)")
    assert moved["cleartext"] is False


def test_json_written_record_by_record_is_the_whole_document(report: Report) -> None:
    """The CLI writes JSON in pieces (one record's objects at a time): the text is exactly
    ``json.dumps`` of the whole report, for a full report, one with files, and an empty one."""
    import json

    from capana.views.json import json_chunks, jsonl_chunks, render_jsonl
    from capana.views.records import handshake_record, report_record

    boot = capana.analyze(Path(__file__).resolve().parent.parent / "pcaps/phone-boot-files.pcap")
    assert boot.files and report.handshakes
    for whole in (report, boot, Report(captures=(), handshakes=())):
        expected = json.dumps(report_record(whole), indent=2) + "\n"
        assert "".join(json_chunks(whole)) == expected
    lines = [json.dumps(handshake_record(record)) + "\n" for record in report.handshakes]
    assert list(jsonl_chunks(report)) == lines and render_jsonl(report) == "".join(lines)
