"""The shipped captures of what happens inside the sessions (``pcaps/make_session_captures.py``:
real daemons and a real SIP exchange), read end to end by ``capana.analyze`` with their key logs
(the NULL-cipher SIP one without any), held to what the programs logged and to tshark."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest
from conftest import SAMPLE_PCAPS
from session_capture import tshark_tls_streams
from tshark_oracle import TSHARK

from capana import analyze
from capana.capf import CapfDecoder
from capana.model import Report
from capana.notebook import frames
from capana.tvs import TvsDecoder
from capana.views.csv import render_csv
from capana.views.html import render_html
from capana.views.records import device_record, handshake_record, handshake_row
from capana.views.table import render_table

CAPF_PCAP, CAPF_KEYS, CAPF_TRUST = (
    SAMPLE_PCAPS / "capf-lsc-install.pcap",
    SAMPLE_PCAPS / "capf-lsc-install.keys",
    SAMPLE_PCAPS / "capf-lsc-install-trust",
)
TVS_PCAP, TVS_KEYS = SAMPLE_PCAPS / "tvs-query.pcap", SAMPLE_PCAPS / "tvs-query.keys"
SIP_PCAP = SAMPLE_PCAPS / "sip-tls-null-register.pcap"
PHONE = "SEP2C3124C9F8E1"
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


@pytest.fixture(scope="module")
def capf() -> Report:
    return analyze(CAPF_PCAP, trust={"capf": CAPF_TRUST}, keylog=CAPF_KEYS)


@pytest.fixture(scope="module")
def tvs() -> Report:
    return analyze(TVS_PCAP, keylog=TVS_KEYS)


@pytest.fixture(scope="module")
def sip() -> Report:
    return analyze(SIP_PCAP)


def test_capf_lsc_install_as_capfd_logged_it(capf):
    """capfd logged: Device Name SEP2C3124C9F8E1, Authentication Mode Certificate (issuer Cisco
    Manufacturing CA SHA2), Scheduled Operation Install, Key Size 2048, Installed certificate."""
    (record,) = capf.handshakes
    data = handshake_record(record)
    assert (data["service"], data["tls_version"], data["decryption"]) == (
        "capf",
        "TLS 1.2",
        "decrypted",
    )
    facts = data["capf"]
    summary = tuple(facts[k] for k in ("device", "operation", "auth", "key", "result", "reason"))
    assert summary == (PHONE, "install", "mic", "RSA 2048", "installed", None)
    presented, issued = facts["presented_certificate"], facts["issued_certificate"]
    assert (presented["kind"], presented["device"], presented["model"]) == ("MIC", PHONE, "CP-8861")
    assert "CN=Cisco Manufacturing CA SHA2" in presented["issuer"]
    # The issued LSC is what the phone presents next: classified and validated like any other.
    assert (issued["kind"], issued["device"]) == ("LSC", PHONE)
    assert "CN=CAPF-0992727f" in issued["issuer"]
    assert facts["issued_validation"]["status"] == "trusted"
    assert record.capf.presented_validation.status == "trusted"
    assert [m["command"] for m in facts["messages"]][-1] == "end_session"
    assert data["findings"] == [] and data["problems"] == []
    (device,) = capf.devices
    assert (device.name, device.model) == (PHONE, "CP-8861")


def test_capf_without_the_key_log_says_nothing_inside(capf):
    (record,) = analyze(CAPF_PCAP).handshakes
    assert (record.handshake.decryption, record.capf, record.handshake.outcome) == (
        None,
        None,
        "established",
    )


def test_tvs_answers_as_tvsd_logged_them(tvs):
    answers = [
        (q["device"], q["certificate"]["subject"].split(",")[0], q["status"], q["roles"], q["ttl"])
        for record in tvs.handshakes
        for q in handshake_record(record)["tvs"]["queries"]
    ]
    assert answers == [
        ("CP-8861-SEP2C3124C9F8E1", "CN=cucm-pub.example.com", "trusted", ["CCM+TFTP"], 86400),
        ("CP-8861-SEP2C3124C9F8E1", "CN=web.example.com", "untrusted", [], None),
    ]
    (device,) = tvs.devices
    assert (device.name, device.model) == (PHONE, "CP-8861")


def test_sip_null_cipher_registration_is_read_without_keys(sip):
    (record,) = sip.handshakes
    data = handshake_record(record)
    assert (data["cipher_suite"], data["decryption"]) == ("TLS_RSA_WITH_NULL_SHA", "plaintext")
    assert data["registration"] == {
        "protocol": "sip",
        "result": "registered",
        "status": "200 OK",
        "line": "1001",
    }
    assert record.handshake.registration.attempts == 2  # the 401 challenge, then the answer
    (device,) = sip.devices
    shown = device_record(device)
    assert (shown["device"], shown["registered"]) == (PHONE, True)
    assert shown["registration"]["status"] == "200 OK"


@needs_tshark
@pytest.mark.parametrize(
    ("report", "path", "keys", "port", "decoder"),
    [
        ("capf", CAPF_PCAP, CAPF_KEYS, 3804, CapfDecoder),
        ("tvs", TVS_PCAP, TVS_KEYS, 2445, TvsDecoder),
    ],
)
def test_what_tshark_decrypts_decodes_to_what_capana_reported(
    request, report, path, keys, port, decoder
):
    """Each side whole, as tshark follows it: the same facts (the messages of the two sides are
    interleaved differently, each side's in the same order)."""
    streams = tshark_tls_streams(path, keys, tls_ports=(port,))
    for record in request.getfixturevalue(report).handshakes:
        client, server = streams[int(record.handshake.client.rsplit(":", 1)[1])]
        ours = record.capf.session if decoder is CapfDecoder else record.tvs.session
        theirs = decoder()
        theirs.feed("phone", client)
        theirs.feed(theirs.roles[1], server)
        read = theirs.session()
        assert dataclasses.replace(read, messages=()) == dataclasses.replace(ours, messages=())
        for sender in theirs.roles:
            assert [m for m in read.messages if m.sender == sender] == [
                m for m in ours.messages if m.sender == sender
            ]


@needs_tshark
def test_tshark_reads_the_same_null_cipher_registration(sip):
    """Without any key, tshark dissects the same REGISTERs and answers."""
    command = [TSHARK, "-r", str(SIP_PCAP), "-Y", "sip", "-T", "fields"]
    command += ["-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.to.user"]
    lines = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    assert lines == ["REGISTER", "1001", "401", "1001", "REGISTER", "1001", "200", "1001"]
    registration = sip.handshakes[0].handshake.registration
    assert (registration.status.split()[0], registration.line) == (lines[-2], lines[-1])


def test_the_readme_shows_what_capana_prints_for_the_samples(tmp_path, monkeypatch):
    """The README's "inside the sessions" example is this output, line for line."""
    from test_readme import README

    shown = README.read_text().split("<!-- session samples -->")[1].split("```")[1]
    command, *printed = shown.strip("\n").split("\n")
    assert command == (
        "$ capana scan pcaps/capf-lsc-install.pcap pcaps/tvs-query.pcap "
        "pcaps/sip-tls-null-register.pcap --trust capf=pcaps/capf-lsc-install-trust "
        "--keylog <(cat pcaps/capf-lsc-install.keys pcaps/tvs-query.keys)"
    )
    keylog = tmp_path / "sessions.keys"
    keylog.write_text(CAPF_KEYS.read_text() + TVS_KEYS.read_text())
    monkeypatch.chdir(SAMPLE_PCAPS.parent)
    captures = [path.relative_to(SAMPLE_PCAPS.parent) for path in (CAPF_PCAP, TVS_PCAP, SIP_PCAP)]
    report = analyze(captures, trust={"capf": CAPF_TRUST}, keylog=keylog)
    assert "\n".join(printed) == render_table(report).rstrip("\n")


def test_every_view_shows_the_capf_operation_the_tvs_answers_and_the_registration(tmp_path):
    keylog = tmp_path / "sessions.keys"
    keylog.write_text(CAPF_KEYS.read_text() + TVS_KEYS.read_text())
    report = analyze([CAPF_PCAP, TVS_PCAP, SIP_PCAP], trust={"capf": CAPF_TRUST}, keylog=keylog)
    page = render_html(report)
    for shown in (
        "Inside the sessions",
        "install, key RSA 2048",
        "capf auth_request → phone auth_response",
        "cucm-pub.example.com",
        "for CCM+TFTP, cache 86400 s",
        'SIP <b class="b ok">registered</b> 200 OK, line 1001',
        "<th>registered</th>",
    ):
        assert shown in page, shown
    rows = {row["service"]: row for row in map(handshake_row, report.handshakes)}
    assert (rows["capf"]["capf_operation"], rows["capf"]["capf_result"]) == ("install", "installed")
    assert rows["sip-tls"]["registration_status"] == "200 OK"
    tvs_rows = [row["tvs"] for row in map(handshake_row, report.handshakes) if row["tvs"]]
    assert tvs_rows == [
        "cucm-pub.example.com: trusted for CCM+TFTP, cache 86400 s",
        "web.example.com: untrusted",
    ]
    csv_header = render_csv(report).splitlines()[0].split(",")
    assert {"registration", "capf_operation", "tvs"} <= set(csv_header)
    pandas = pytest.importorskip("pandas")
    tables = frames(report)
    assert isinstance(tables.devices, pandas.DataFrame)
    (device,) = tables.devices.to_dict("records")
    assert device["registered"] is True
    assert device["capf"].startswith("install (auth mic, RSA 2048): installed")
    assert device["registration"] == "registered: 200 OK, line 1001"
