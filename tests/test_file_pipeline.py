"""The shipped phone boot (pcaps/phone-boot-files.pcap) through ``capana.analyze``: its file
transfers in the report, held to the readers' own test glue (itself held to tshark), the finding
for CallManager's regenerated certificate with no trust store at all, and the ``files`` contract
in every view (table, JSON, notebook frames, HTML in the browser).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from boot_files import capture_transfers
from browser import OVERFLOW_SCRIPT, chromium, require_browser
from conftest import SAMPLE_PCAPS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_boot_capture import BOOT, MAC, needs_tshark
from tshark_oracle import tshark_certificates

import capana
from capana.file_judging import judge_files
from capana.judging import judge
from capana.model import Report
from capana.scan import read_capture
from capana.views.html import render_html
from capana.views.json import render_json
from capana.views.pem import certificate_files
from capana.views.records import file_record
from capana.views.table import render_table

SAMPLE = SAMPLE_PCAPS / "phone-boot-files.pcap"
DEVICE = f"SEP{MAC}"
FILE_KEYS = {
    "capture",
    "transport",
    "client",
    "server",
    "name",
    "status",
    "size",
    "frames",
    "kind",
    "signer",
    "signature",
    "records",
    "config",
    "findings",
}
CONFIG_KEYS = {
    "device_security_mode",
    "transport",
    "tvs",
    "capf",
    "capf_auth_mode",
    "cert_hash",
    "encrypted",
}
CERT_KEYS = {
    "sha256",
    "subject",
    "issuer",
    "serial",
    "not_before",
    "not_after",
    "signature_algorithm",
    "public_key",
    "kind",
    "device",
    "model",
    "der_b64",
}


@pytest.fixture(scope="module")
def report() -> Report:
    return capana.analyze(SAMPLE)  # no trust store: the ITL in the capture is the reference


@pytest.fixture(scope="module")
def record(report: Report) -> dict[str, object]:
    return json.loads(render_json(report))


def test_every_transfer_of_the_boot_is_reported(report: Report) -> None:
    ours = [
        (f.transfer.transport, f.name, f.status, f.transfer.response_code) for f in report.files
    ]
    http = [row for row in BOOT if row[0] == "http"]
    assert [row for row in ours if row[0] == "http"] == http
    tftp = [row for row in ours if row[0] == "tftp"]
    assert tftp in ([], [row for row in BOOT if row[0] == "tftp"])
    # The same frames, sizes and bodies as the readers give alone (held to tshark there).
    alone = {(t.transport, t.name): t for t in capture_transfers(SAMPLE)}
    for file in report.files:
        expected = alone[file.transfer.transport, file.name]
        transfer = file.transfer
        assert (transfer.request_frame, transfer.last_frame) == (
            expected.request_frame,
            expected.last_frame,
        )
        assert (transfer.size, transfer.body) == (expected.size, expected.body)
        assert transfer.capture == str(SAMPLE)


def test_the_files_judged(report: Report) -> None:
    by_name = {f.name: f for f in report.files if f.transfer.transport == "http"}
    ctl, itl = by_name[f"CTLSEP{MAC}.tlv"], by_name[f"ITLSEP{MAC}.tlv"]
    config, refused = by_name[f"{DEVICE}.cnf.xml.sgn"], by_name["ITLFile.tlv"]
    assert (ctl.kind, ctl.file, ctl.findings) == ("ctl", None, ())
    assert (refused.kind, refused.transfer.problems) == ("itl", ("refused",))
    assert itl.signature is not None and itl.signature.status == "valid"
    assert [(r.role, r.certificate and r.certificate.kind) for r in itl.records] == [
        ("SAST", "CA"),
        ("CCM+TFTP", "other"),
        ("CAPF", "CAPF"),
        ("TVS", "other"),
    ]
    assert itl.signer is not None and itl.signer.sha256 == itl.records[0].certificate.sha256  # type: ignore[union-attr]
    assert config.signature is not None and config.signature.status == "valid"
    assert config.signer is not None and config.signer.sha256 == itl.records[1].certificate.sha256  # type: ignore[union-attr]
    assert config.config is not None and config.config.security_mode == "encrypted"
    assert {f.device for f in report.files} == {DEVICE}


@needs_tshark
def test_regenerated_callmanager_certificate_without_a_trust_store(report: Report) -> None:
    # On the trust list the phone holds last: ITLFile.tlv, fetched by TFTP after HTTP's 503.
    (holder,) = [file for file in report.files if file.findings]
    assert (holder.name, holder.transfer.transport) == ("ITLFile.tlv", "tftp")
    (finding,) = holder.findings
    assert finding.code == "server-certificate-not-in-trust-list"
    assert finding.evidence["phone_alert"] == "unknown_ca"
    presented = {sha for sender, sha in tshark_certificates(SAMPLE) if sender.endswith(":5061")}
    assert {finding.evidence["certificate"]} == presented
    (device,) = report.devices
    assert (device.name, device.worst, device.security_mode) == (DEVICE, finding, "encrypted")
    assert device.handshakes == report.handshakes  # joined by the phone's address
    assert report.has_finding("error") and finding in report.findings


def test_the_files_contract(record: dict[str, object]) -> None:
    files = record["files"]
    assert isinstance(files, list) and files
    for item in files:
        assert set(item) >= FILE_KEYS, item["name"]
        assert item["transport"] in ("http", "tftp")
        assert item["status"] in ("ok", "not_found", "incomplete")
        assert set(item["frames"]) == {"request", "last"}
        assert item["kind"] in (
            "ctl",
            "itl",
            "config",
            "config-signed",
            "config-encrypted",
            "other",
        )
        assert item["signature"] in ("valid", "invalid", "unknown", None)
        if item["signer"] is not None:
            assert set(item["signer"]) == {"subject", "serial", "sha256"}
        if item["config"] is not None:
            assert set(item["config"]) == CONFIG_KEYS
        for entry in item["records"]:
            assert entry["role"] in ("SAST", "CCM", "CCM+TFTP", "TFTP", "CAPF", "APP-SERVER", "TVS")
            assert set(entry["certificate"]) == CERT_KEYS
    itl = next(item for item in files if item["name"] == f"ITLSEP{MAC}.tlv")
    assert itl["signer"]["subject"] == "O=Example,OU=VTG,CN=ITLRECOVERY_cucm-pub"  # as written
    assert itl["signer"]["sha256"] == itl["records"][0]["certificate"]["sha256"]
    held = next(item for item in files if item["findings"])  # the list the phone holds last
    assert (held["name"], held["transport"]) == ("ITLFile.tlv", "tftp")
    assert [f["code"] for f in held["findings"]] == ["server-certificate-not-in-trust-list"]
    config = next(item for item in files if item["kind"] == "config-signed")["config"]
    assert config == {
        "device_security_mode": 3,
        "transport": "tls",
        "tvs": ["127.0.0.1:2445"],
        "capf": ["127.0.0.1:3804"],
        "capf_auth_mode": 0,
        "cert_hash": None,
        "encrypted": False,
    }
    (device,) = record["devices"]
    assert device["security_mode"] == "encrypted"
    present = {(item["transport"], item["name"]) for item in files}
    got = [
        name
        for transport, name, status, _ in BOOT
        if (transport, name) in present and status == "ok"
    ]
    assert device["files"] == got


def test_table_shows_files_and_mode(report: Report) -> None:
    text = render_table(report)
    assert "ERROR server-certificate-not-in-trust-list" in text
    device_line = next(line for line in text.splitlines() if line.startswith(f"  {DEVICE}"))
    assert "encrypted" in device_line and " 3/6 " in device_line  # mode; files got / asked
    assert f"ITLSEP{MAC}.tlv       ok (200)" in text
    assert "incomplete (503)" in text and "not found (404)" in text


def test_html_shows_every_transfer_and_what_the_files_hold(report: Report, tmp_path: Path) -> None:
    """The page's files table: a row per transfer, in order, with its status, the signature
    verdict, the trust list's roles and the configuration's mode; it fits 1,280 px."""
    require_browser()
    from selenium.webdriver.common.by import By

    page = tmp_path / "boot.html"
    page.write_text(render_html(report), encoding="utf-8")
    with chromium(tmp_path / "profile") as driver:
        driver.get(page.as_uri())
        driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        layout = driver.execute_script(OVERFLOW_SCRIPT)
        assert layout["late"] == [] and layout["scroll"] <= layout["width"], layout
        tables = driver.find_elements(By.CSS_SELECTOR, "table.files")
        assert len(tables) == 2  # the capture's, and the phone's in its drill-down
        rows = [
            [cell.text for cell in row.find_elements(By.XPATH, "./td")]
            for row in tables[-1].find_elements(By.XPATH, "./tbody/tr")
        ]
    expected = list(report.files)
    assert [row[2].splitlines()[0] for row in rows] == [f.name for f in expected]
    assert [row[3].splitlines()[0] for row in rows] == [
        f"{f.status.replace('_', ' ')} {f.transfer.response_code or ''}".strip() for f in expected
    ]
    signatures = [row[5].splitlines()[0] for row in rows]
    assert signatures == [f.signature.status if f.signature else "-" for f in expected]
    itl = rows[[f.name for f in expected].index(f"ITLSEP{MAC}.tlv")][6]
    assert "ITL: 4 records" in itl and all(role in itl for role in ("SAST", "CAPF", "TVS"))
    config = rows[[f.name for f in expected].index(f"{DEVICE}.cnf.xml.sgn")][6]
    assert "encrypted" in config
    assert "server-certificate-not-in-trust-list" in rows[4][6]


def test_notebook_frame_of_files(report: Report) -> None:
    pytest.importorskip("pandas")
    from capana.notebook import frames

    tables = frames(report)
    files = tables.files
    assert list(files["name"])[:3] == [f"CTLSEP{MAC}.tlv", f"CTLSEP{MAC}.tlv", f"ITLSEP{MAC}.tlv"]
    assert files.set_index("name").loc[f"ITLSEP{MAC}.tlv", "records"] == "SAST CCM+TFTP CAPF TVS"
    findings = tables.findings
    assert list(findings["code"]) == ["server-certificate-not-in-trust-list"]
    assert list(findings["file"]) == ["ITLFile.tlv"]
    assert tables.devices.loc[0, "security_mode"] == "encrypted"


def test_config_downloads_of_the_reboot_sample(tmp_path: Path) -> None:
    """phone-reboot.pcapng's phones ask TFTP for their ITL (the sample holds the request, no
    answer) and fetch their configuration over HTTP 6970 before TLS."""
    reboot = capana.analyze(SAMPLE_PCAPS / "phone-reboot.pcapng")
    assert [
        (f.device, f.transfer.transport, f.kind, f.status, f.findings) for f in reboot.files
    ] == [
        (f"SEP2C3124C9F80{n}", transport, kind, status, ())
        for n in "BCDEF"
        for transport, kind, status in (("tftp", "itl", "incomplete"), ("http", "config", "ok"))
    ]
    assert [d.file_names for d in reboot.devices] == [
        (f"SEP2C3124C9F80{n}.cnf.xml.sgn",) for n in "BCDEF"
    ]


def test_trust_list_certificates_are_exported(report: Report) -> None:
    """--export-certs writes the ITL's certificates too, named by the list and the role."""
    assert {name.rsplit("_", 1)[0] for name in certificate_files(report)} == {
        "ITLRECOVERY_cucm-pub_itl-sast",
        "cucm-pub.example.com_itl-ccm_tftp",
        "CAPF-0992727f_itl-capf",
        "cucm-pub.example.com-TVS_itl-tvs",
        "cucm-pub.example.com_server",  # the regenerated one CallManager presented
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_files_are_judged_without_a_crash(data: st.DataObject) -> None:
    """A damaged trust list or configuration: judged, never raised on, never 'valid'."""
    boot = read_capture(SAMPLE)
    transfer = data.draw(st.sampled_from([t for t in boot.transfers if t.status == "ok"]))
    body = bytearray(transfer.body)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    damaged = replace(transfer, body=bytes(body[:cut]), size=cut)
    others = [t for t in boot.transfers if t is not transfer]
    handshakes = tuple(judge(h, {}, None) for h in boot.handshakes)
    (report,) = [
        r for r in judge_files([*others, damaged], handshakes, {}, None) if r.transfer is damaged
    ]
    json.dumps(file_record(report))
    if report.signature is not None and report.signature.status == "valid":
        assert damaged.body == transfer.body  # the signature covers every byte but its own
