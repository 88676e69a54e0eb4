"""CAPF sessions decoded from real daemons' bytes, held to what the daemons logged and wrote.

``capfd`` (the CAPF) and ``capfc`` (the phone) from ``../shared/oracles/usecallmanager-daemons``
run as separate processes on 127.0.0.1 (``samplegen.daemons``), captured by tcpdump with the
server's TLS key log; capana decrypts each connection (TLS 1.2) and decodes it. Every fact is
compared with the daemon's own log line for that connection, and the certificates with the files
the programs wrote.
"""

from __future__ import annotations

import os
import struct
from datetime import datetime, timedelta, timezone

import pytest
from conftest import PROJECT
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st
from samplegen import daemons, loopback, pki
from session_capture import CLIENT, read_sessions, tshark_tls_streams
from tshark_oracle import TSHARK

from capana.capf import CapfDecoder, CapfSession
from capana.dissectors.cisco_capf_tvs import (
    CAPF,
    CapfCertificate,
    CapfCertificateType,
    CapfReason,
    CapfString,
)

DAEMONS = PROJECT.parent / "shared" / "oracles" / "usecallmanager-daemons"
NOW = datetime.now(timezone.utc)
WINDOW = {"not_before": NOW - timedelta(days=1), "not_after": NOW + timedelta(days=365)}
PHONE, STRANGER, WRONG_PASSWORD, MIC_PHONE = (
    "SEP001122334455",
    "SEP0011223344FF",
    "SEP00112233AABB",
    "SEP00112233CCDD",
)
Step = daemons.CapfStep
# (what the step does, the capfc step)
STEPS = (
    ("install-password", Step(PHONE, ("-i", PHONE, "-p", "1234"), ("-p", "1234"))),
    (
        "upgrade-by-lsc-ec",
        Step(PHONE, ("-i", PHONE, "--certificate", "-E", "secp384r1"), ("-l", f"{PHONE}.pem")),
    ),
    ("fetch", Step(PHONE, ("-f", PHONE))),
    ("delete", Step(PHONE, ("-d", PHONE))),
    ("nothing-scheduled", Step(PHONE, ("-n", PHONE))),
    ("unknown-device", Step(STRANGER)),
    ("wrong-password", Step(WRONG_PASSWORD, ("-i", WRONG_PASSWORD, "-p", "9999"), ("-p", "1111"))),
    (
        "install-by-mic",
        Step(
            MIC_PHONE,
            ("-i", MIC_PHONE, "--certificate"),
            ("-l", "mic.pem", "-c", f"{MIC_PHONE}.pem"),
        ),
    ),
)


@pytest.fixture(scope="module")
def capf_capture(tmp_path_factory):
    """All the steps against one capfd, captured on lo; (run, decoded sessions, the MIC)."""
    if not DAEMONS.is_dir():
        pytest.skip(f"the CAPF/TVS daemons are not at {DAEMONS}")
    if not (loopback.TCPDUMP and os.geteuid() == 0):
        pytest.skip("needs root and tcpdump to capture on lo")
    folder = tmp_path_factory.mktemp("capf")
    python = daemons.oracle_python(tmp_path_factory.getbasetemp())
    if python is None:
        pytest.skip(f"no Python with {daemons.ORACLE_CRYPTOGRAPHY} for the daemons")
    capf = pki.capf("CAPF-1a2b3c4d", **WINDOW)
    _root, manufacturing = pki.cisco_manufacturing_pki()
    mic = pki.phone_mic(manufacturing, model="CP-8861", mac=MIC_PHONE[3:])
    (folder / "mic.pem").write_bytes(mic.pem + mic.key_pem)
    run = daemons.capf_run(
        folder, DAEMONS, python, capf=capf, steps=[s for _, s in STEPS], verify=[manufacturing]
    )
    sessions = read_sessions(run.capture, run.keylog)
    assert len(sessions) == len(STEPS) == len(run.sessions)
    return run, [decode(s) for s in sessions], sessions, mic


def decode(session) -> CapfSession:
    decoder = CapfDecoder()
    for sender, data in session.conversation:
        decoder.feed("phone" if sender == CLIENT else "capf", data)
    return decoder.session()


def logged(lines: tuple[str, ...]) -> dict[str, str]:
    """capfd's "Key: value" log lines of one connection."""
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def certificate_in(pem: bytes | None) -> bytes | None:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER) if pem else None


# --- each session against capfd's log ----------------------------------------------------------


@pytest.mark.parametrize("index", range(len(STEPS)), ids=[name for name, _ in STEPS])
def test_facts_agree_with_what_capfd_logged(capf_capture, index):
    run, facts, _sessions, _mic = capf_capture
    log = logged(run.sessions[index].log)
    session = facts[index]
    assert session.problems == ()
    assert session.device == log["Device Name"] == STEPS[index][1].device
    mode = log.get("Authentication Mode")
    if mode == "Certificate":
        issuer = log["Authentication Issuer Name"]
        assert session.auth == ("lsc" if "CN=CAPF-" in issuer else "mic")
    elif mode is not None and "Error" not in log:
        assert session.auth == {"Password": "password", "No Password": "none"}[mode]
    operation = log.get("Scheduled Operation")
    if operation is None:
        assert session.operation is None
    elif operation == "Install" and session.auth == "lsc":
        assert session.operation == "upgrade"  # a new LSC for a phone that had one
    else:
        assert session.operation == operation.lower()
    if log.get("Key Algorithm") == "RSA":
        assert session.key == f"RSA {log['Key Size']}"
    elif log.get("Key Algorithm") == "EC":
        assert session.key == {"secp256r1": "EC P-256", "secp384r1": "EC P-384"}[log["Curve"]]
    else:
        assert session.key is None
    expected = {
        "Installed certificate": "installed",
        "Fetched certificate": "fetched",
        "Deleted certificate": "deleted",
    }.get(log.get("Result", ""))
    if expected:
        assert session.result == expected
    elif operation == "None":
        assert (session.result, session.reason.code, session.reason.text) == (
            "no_operation",
            0,
            "no action",
        )
    else:  # refused: unknown device, wrong password
        assert session.result == "failed"
        assert session.reason is not None and session.reason.code in (7, 9)
        if "Unknown device" in log:
            assert session.reason.text == "unknown device"


def test_the_issued_lsc_is_the_one_capfc_wrote(capf_capture):
    run, facts, _sessions, _mic = capf_capture
    for index, (name, _step) in enumerate(STEPS):
        wrote = (
            certificate_in(run.sessions[index].wrote)
            if name.startswith(("install", "upgrade"))
            else None
        )
        if name in ("install-password", "upgrade-by-lsc-ec", "install-by-mic"):
            assert wrote is not None and facts[index].issued_certificate == wrote
            issued = x509.load_der_x509_certificate(facts[index].issued_certificate)
            assert "CAPF-1a2b3c4d" in issued.issuer.rfc4514_string()
        else:
            assert facts[index].issued_certificate is None


def test_presented_certificates(capf_capture):
    run, facts, _sessions, mic = capf_capture
    names = [name for name, _ in STEPS]
    first_lsc = certificate_in(run.sessions[names.index("install-password")].wrote)
    second_lsc = certificate_in(run.sessions[names.index("upgrade-by-lsc-ec")].wrote)
    # The upgrade authenticated with the LSC of the first install; the fetch sent the new one.
    assert facts[names.index("upgrade-by-lsc-ec")].presented_certificate == first_lsc
    assert facts[names.index("fetch")].fetched_certificates == (second_lsc,)
    assert facts[names.index("fetch")].presented_certificate == second_lsc
    assert facts[names.index("install-by-mic")].presented_certificate == mic.der
    assert facts[names.index("install-password")].presented_certificate is None


def test_message_lists_follow_the_protocol(capf_capture):
    _run, facts, _sessions, _mic = capf_capture
    install = [(m.sender, m.command) for m in facts[0].messages]
    assert install == [
        ("capf", "auth_request"),
        ("phone", "auth_response"),
        ("capf", "key_generate_request"),
        ("phone", "request_in_progress"),
        ("phone", "key_generate_response"),
        ("capf", "store_certificate_request"),
        ("phone", "store_certificate_response"),
        ("capf", "end_session"),
    ]
    assert facts[0].messages[1].elements == ("reason", "version", "password", "device_name")
    assert len({m.session_id for m in facts[0].messages}) == 1
    refused = [(m.sender, m.command) for m in facts[5].messages]
    assert refused == [
        ("capf", "auth_request"),
        ("phone", "auth_response"),
        ("capf", "end_session"),
    ]


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_capana_and_tshark_decrypt_the_same_capf_bytes(capf_capture):
    run, _facts, sessions, _mic = capf_capture
    tshark = tshark_tls_streams(run.capture, run.keylog)
    for session in sessions:
        assert session.keys.decryption.status == "decrypted"
        assert tshark[session.client_port] == (
            session.application_data("client"),
            session.application_data("server"),
        )


def test_any_split_of_the_bytes_gives_the_same_facts(capf_capture):
    _run, facts, sessions, _mic = capf_capture
    session = sessions[1]  # the upgrade: the longest exchange
    decoder = CapfDecoder()
    for sender, data in session.conversation:
        for byte in range(len(data)):
            decoder.feed("phone" if sender == CLIENT else "capf", data[byte : byte + 1])
    assert decoder.session() == facts[1]


def test_a_cut_session_keeps_what_was_read(capf_capture):
    _run, facts, sessions, _mic = capf_capture
    conversation = sessions[0].conversation
    decoder = CapfDecoder()
    for sender, data in conversation[:-1]:  # the end session never arrives...
        decoder.feed("phone" if sender == CLIENT else "capf", data)
    last_sender, last = conversation[-1]
    decoder.feed("phone" if last_sender == CLIENT else "capf", last[:5])  # ...only 5 bytes of it
    cut = decoder.session()
    assert (cut.device, cut.operation, cut.auth, cut.key) == (
        facts[0].device,
        facts[0].operation,
        facts[0].auth,
        facts[0].key,
    )
    assert cut.issued_certificate == facts[0].issued_certificate
    assert cut.result == "installed"  # the phone's store response said so already
    assert cut.problems == ("capf: 5 bytes of an unfinished message",)


# --- hand-made bad input -----------------------------------------------------------------------


def header(command: int, body: bytes, protocol: int = 85, session: int = 7) -> bytes:
    return struct.pack(">BBIH", protocol, command, session, len(body)) + body


def test_not_capf_is_refused_clearly():
    decoder = CapfDecoder()
    assert decoder.feed("capf", b"\x16\x03\x03\x00\x10" + bytes(20)) == []
    assert decoder.feed("capf", header(15, b"")) == []  # nothing more is read
    session = decoder.session()
    assert session.result == "unknown" and session.messages == ()
    assert session.problems == (
        "capf: not CAPF (protocol id 22, expected 85); the rest was not read",
    )


def test_an_element_that_overruns_its_message_is_reported():
    body = bytes([13]) + (200).to_bytes(2, "big") + b"SEP001122334455\x00"
    decoder = CapfDecoder()
    (message,) = decoder.feed("phone", header(2, body))
    assert message.command == "auth_response"
    session = decoder.session()
    assert session.device == "SEP001122334455"
    assert "overrun" in session.problems[0]


def test_an_unknown_command_and_element_keep_their_numbers():
    decoder = CapfDecoder()
    (message,) = decoder.feed("capf", header(99, bytes([42, 0, 1, 0])))
    assert (message.command, message.elements) == ("command_99", ("element_42",))


def test_a_refusal_with_reason_info():
    body = bytes(CapfReason(reason=7)) + bytes(CapfString(tag=2, text=b"invalid LSC\x00"))
    decoder = CapfDecoder()
    decoder.feed("capf", header(15, body))
    session = decoder.session()
    assert session.result == "failed" and session.operation is None
    assert (session.reason.code, session.reason.text, session.reason.info) == (
        7,
        "invalid element",
        "invalid LSC",
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=40))
def test_random_bodies_never_crash(body, command):
    decoder = CapfDecoder()
    decoder.feed("phone", header(command % 24, body))
    decoder.feed("capf", header(command, body[::-1]))
    assert isinstance(decoder.session(), CapfSession)


def test_the_layer_round_trips_a_certificate_element():
    der = bytes.fromhex("3003020101")
    message = CAPF(cmd=9, session_id=3, elements=[CapfCertificate(der=der)])
    raw = bytes(message)
    assert raw == header(9, bytes([4, 0, 10, 1, 0, 7, 0, 1]) + der, session=3)
    assert CAPF(raw)[CapfCertificate].der == der


def test_a_fetch_of_the_mic_is_a_troubleshoot():
    """No daemon here troubleshoots: the rule is held to hand-made messages instead."""
    decoder = CapfDecoder()
    decoder.feed("capf", bytes(CAPF(cmd=11, elements=[CapfCertificateType(certificate_type=1)])))
    decoder.feed("phone", bytes(CAPF(cmd=12, elements=[CapfReason(reason=1)])))
    decoder.feed("capf", bytes(CAPF(cmd=11, elements=[CapfCertificateType(certificate_type=2)])))
    decoder.feed("capf", bytes(CAPF(cmd=15, elements=[CapfReason(reason=0)])))
    session = decoder.session()
    assert (session.operation, session.result, session.auth) == ("troubleshoot", "fetched", None)
