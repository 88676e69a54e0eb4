"""CAPF sessions from real daemons, read end to end by ``capana.analyze`` with the key log, held
to what the daemons logged and wrote and to tshark's decryption of the same capture.

``capfd`` (the CAPF, on 127.0.0.1:3804) and ``capfc`` (the phone) from
``../shared/oracles/usecallmanager-daemons`` run as separate processes (``samplegen.daemons``),
captured by tcpdump with the server's TLS key log. Every fact capana reports for a connection is
compared with the daemon's own log lines for it, and the certificates with the files written.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from daemon_runs import DAEMONS, WINDOW, daemon_python
from samplegen import daemons, pki
from session_capture import (
    CLIENT,
    Session,
    by_client_port,
    read_sessions,
    service_port,
    tshark_tls_streams,
)
from tshark_oracle import TSHARK

from capana import analyze
from capana.capf import CapfDecoder
from capana.dissectors.cisco_capf_tvs import (
    CAPF,
    CapfCertificate,
    CapfCertificateType,
    CapfReason,
    CapfString,
)
from capana.model import HandshakeReport, Report
from capana.views.records import handshake_record

PHONE, STRANGER, WRONG_PASSWORD, MIC_PHONE, MOVED = (
    "SEP001122334455",
    "SEP0011223344FF",
    "SEP00112233AABB",
    "SEP00112233CCDD",
    "SEP00112233EEFF",
)
CAPF_NAME = "CAPF-1a2b3c4d"
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
    # An LSC from the CAPF before it was regenerated (same name, another key): "invalid LSC".
    ("upgrade-by-old-lsc", Step(MOVED, ("-i", MOVED, "--certificate"), ("-l", "old-lsc.pem"))),
)
NAMES = [name for name, _ in STEPS]
REFUSED = ("nothing-scheduled", "unknown-device", "wrong-password", "upgrade-by-old-lsc")


@dataclass(frozen=True)
class CapfRun:
    run: daemons.DaemonRun
    report: Report  # capana.analyze of the capture with the key log and the CAPF-trust
    records: tuple[HandshakeReport, ...]  # one per step, in order
    sessions: tuple[Session, ...]  # each connection's TLS as read by TlsDirection alone
    mic: pki.Issued
    old_lsc: pki.Issued


@pytest.fixture(scope="module")
def capf(tmp_path_factory) -> CapfRun:
    """All the steps against one capfd on 3804, captured on lo, analysed end to end."""
    python = daemon_python(tmp_path_factory)
    port = service_port(3804)
    folder = tmp_path_factory.mktemp("capf")
    capf = pki.capf(CAPF_NAME, **WINDOW)
    regenerated_from = pki.capf(CAPF_NAME, **WINDOW)  # the same name, another key
    root, manufacturing = pki.cisco_manufacturing_pki()
    mic = pki.phone_mic(manufacturing, model="CP-8861", mac=MIC_PHONE[3:])
    old_lsc = pki.phone_lsc(regenerated_from, model="CP-8851", mac=MOVED[3:], **WINDOW)
    (folder / "mic.pem").write_bytes(mic.pem + mic.key_pem)
    (folder / "old-lsc.pem").write_bytes(old_lsc.pem + old_lsc.key_pem)
    run = daemons.capf_run(
        folder,
        DAEMONS,
        python,
        capf=capf,
        steps=[s for _, s in STEPS],
        verify=[manufacturing],
        port=port,
    )
    trust = folder / "capf-trust"  # what capfd verified with: its CAPF, the manufacturing CA
    trust.mkdir()
    for number, issued in enumerate((capf, manufacturing, root)):
        (trust / f"{number}.pem").write_bytes(issued.pem)
    report = analyze(run.capture, trust={"capf": trust}, keylog=run.keylog)
    records = by_client_port(report, port)
    assert len(records) == len(STEPS) == len(run.sessions)
    ordered = tuple(records[session.client_port] for session in run.sessions)
    sessions = tuple(read_sessions(run.capture, run.keylog))
    return CapfRun(run, report, ordered, sessions, mic, old_lsc)


def logged(lines: tuple[str, ...]) -> dict[str, str]:
    """capfd's "Key: value" log lines of one connection."""
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def certificate_in(pem: bytes | None) -> bytes | None:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER) if pem else None


def der_of(cert: dict | None) -> bytes | None:
    return base64.b64decode(cert["der_b64"]) if cert else None


def decode(session: Session) -> CapfDecoder:
    decoder = CapfDecoder()
    for sender, data in session.conversation:
        decoder.feed("phone" if sender == CLIENT else "capf", data)
    return decoder


# --- end to end: each connection against capfd's log -------------------------------------------


@pytest.mark.parametrize("index", range(len(STEPS)), ids=NAMES)
def test_facts_agree_with_what_capfd_logged(capf, index):
    log = logged(capf.run.sessions[index].log)
    record = handshake_record(capf.records[index])
    facts = record["capf"]
    assert (record["service"], record["decryption"], record["outcome"]) == (
        "capf",
        "decrypted",
        "established",
    )
    assert record["problems"] == []
    assert facts["device"] == log["Device Name"] == STEPS[index][1].device
    mode = log.get("Authentication Mode")
    if mode == "Certificate":
        issuer = log["Authentication Issuer Name"]
        assert facts["auth"] == ("lsc" if "CN=CAPF-" in issuer else "mic")
    elif mode is not None and "Error" not in log:
        assert facts["auth"] == {"Password": "password", "No Password": "none"}[mode]
    operation = log.get("Scheduled Operation")
    if operation is None:
        assert facts["operation"] is None
    elif operation == "Install" and facts["auth"] == "lsc":
        assert facts["operation"] == "upgrade"  # a new LSC for a phone that had one
    else:
        assert facts["operation"] == operation.lower()
    if log.get("Key Algorithm") == "RSA":
        assert facts["key"] == f"RSA {log['Key Size']}"
    elif log.get("Key Algorithm") == "EC":
        assert facts["key"] == {"secp256r1": "EC P-256", "secp384r1": "EC P-384"}[log["Curve"]]
    else:
        assert facts["key"] is None
    expected = {
        "Installed certificate": "installed",
        "Fetched certificate": "fetched",
        "Deleted certificate": "deleted",
    }.get(log.get("Result", ""))
    if expected:
        assert (facts["result"], facts["reason"]) == (expected, None)
    elif operation == "None":
        assert (facts["operation"], facts["result"], facts["reason"]) == (
            "none",
            "no_operation",
            "no action",
        )
    else:  # refused: unknown device, wrong password, an LSC from another key
        assert facts["result"] == "failed"
        reason = "unknown device" if "Unknown device" in log else "invalid element"
        assert facts["reason"] == reason
        assert "Error" in log or "Unknown device" in log


def test_the_issued_lsc_is_the_one_capfc_wrote_and_it_is_trusted(capf):
    for index, name in enumerate(NAMES):
        facts = handshake_record(capf.records[index])["capf"]
        wrote = certificate_in(capf.run.sessions[index].wrote)
        if name in ("install-password", "upgrade-by-lsc-ec", "install-by-mic"):
            issued = facts["issued_certificate"]
            assert wrote is not None and der_of(issued) == wrote
            device = STEPS[index][1].device
            assert (issued["kind"], issued["device"], issued["issuer"]) == (
                "LSC",
                device,
                f"L=Mexico City,ST=Mexico City,CN={CAPF_NAME},OU=Voice,O=Cisco,C=MX",
            )
            # What the phone presents next verifies against the CAPF-trust given.
            assert facts["issued_validation"]["status"] == "trusted"
            assert facts["issued_validation"]["store"] == "capf"
        else:
            assert facts["issued_certificate"] is None
            assert facts["issued_validation"]["status"] == "not_checked"


def test_presented_certificates(capf):
    facts = {name: capf.records[i] for i, name in enumerate(NAMES)}
    first_lsc = certificate_in(capf.run.sessions[NAMES.index("install-password")].wrote)
    second_lsc = certificate_in(capf.run.sessions[NAMES.index("upgrade-by-lsc-ec")].wrote)
    # The upgrade authenticated with the LSC of the first install; the fetch sent the new one.
    upgrade = facts["upgrade-by-lsc-ec"].capf
    assert upgrade.session.presented_certificate == first_lsc
    assert upgrade.presented.kind == "LSC" and upgrade.presented_validation.status == "trusted"
    fetch = facts["fetch"].capf.session
    assert fetch.fetched_certificates == (second_lsc,) == (fetch.presented_certificate,)
    by_mic = facts["install-by-mic"].capf
    assert by_mic.session.presented_certificate == capf.mic.der
    assert by_mic.presented.kind == "MIC" and by_mic.presented_validation.status == "trusted"
    old = facts["upgrade-by-old-lsc"].capf
    assert old.session.presented_certificate == capf.old_lsc.der
    # Same CAPF name, another key: the CAPF-trust does not vouch for it (nor did capfd).
    assert old.presented_validation.status == "untrusted"
    assert facts["install-password"].capf.session.presented_certificate is None


def test_message_lists_follow_the_protocol(capf):
    install = handshake_record(capf.records[0])["capf"]["messages"]
    assert [(m["from"], m["command"]) for m in install] == [
        ("capf", "auth_request"),
        ("phone", "auth_response"),
        ("capf", "key_generate_request"),
        ("phone", "request_in_progress"),
        ("phone", "key_generate_response"),
        ("capf", "store_certificate_request"),
        ("phone", "store_certificate_response"),
        ("capf", "end_session"),
    ]
    session = capf.records[0].capf.session
    assert session.messages[1].elements == ("reason", "version", "password", "device_name")
    assert len({m.session_id for m in session.messages}) == 1
    refused = handshake_record(capf.records[NAMES.index("unknown-device")])["capf"]["messages"]
    assert [(m["from"], m["command"]) for m in refused] == [
        ("capf", "auth_request"),
        ("phone", "auth_response"),
        ("capf", "end_session"),
    ]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("nothing-scheduled", ("No certificate operation was pending", "Certificate Operation")),
        ("unknown-device", ("does not know 'SEP0011223344FF'",)),
        ("wrong-password", ("authentication string", "By Null String")),
        ("upgrade-by-old-lsc", ("invalid LSC", "regenerated", "CAPF-trust", CAPF_NAME)),
    ],
)
def test_a_refused_request_is_a_finding_with_the_cucm_fix(capf, name, words):
    record = capf.records[NAMES.index(name)]
    (finding,) = [f for f in record.findings if f.code == "capf-request-refused"]
    assert finding.severity == "error"
    assert finding.message.startswith(STEPS[NAMES.index(name)][1].device)
    assert all(word in finding.advice for word in words), finding.advice
    assert finding.evidence["result"] == record.capf.session.result


def test_only_refusals_are_findings_and_each_phone_is_a_device(capf):
    refused = {
        NAMES[i]
        for i, record in enumerate(capf.records)
        if any(f.code == "capf-request-refused" for f in record.findings)
    }
    assert refused == set(REFUSED)
    # Named by what each phone said inside (no TLS client certificate on CAPF), with the model
    # of the certificate it authenticated with.
    devices = {device.name: device for device in capf.report.devices}
    assert set(devices) == {step.device for _, step in STEPS}
    assert devices[MIC_PHONE].model == "CP-8861" and devices[MOVED].model == "CP-8851"


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_capana_reads_what_tshark_decrypts(capf):
    """tshark's decryption of each connection, decoded, gives the facts analyze reported."""
    tshark = tshark_tls_streams(capf.run.capture, capf.run.keylog, tls_ports=(3804,))
    for session, record in zip(capf.run.sessions, capf.records, strict=True):
        client, server = tshark[session.client_port]
        decoder = CapfDecoder()
        decoder.feed("phone", client)  # each side whole: the facts do not depend on the order
        decoder.feed("capf", server)
        assert decoder.session().issued_certificate == record.capf.session.issued_certificate
        facts = decoder.session()
        assert (facts.device, facts.operation, facts.auth, facts.key, facts.result) == (
            record.capf.session.device,
            record.capf.session.operation,
            record.capf.session.auth,
            record.capf.session.key,
            record.capf.session.result,
        )
    for session in capf.sessions:
        assert tshark[session.client_port] == (
            session.application_data("client"),
            session.application_data("server"),
        )


# --- the decoder alone ------------------------------------------------------------------------


def test_any_split_of_the_bytes_gives_the_same_facts(capf):
    session = capf.sessions[1]  # the upgrade: the longest exchange
    decoder = CapfDecoder()
    for sender, data in session.conversation:
        for byte in range(len(data)):
            decoder.feed("phone" if sender == CLIENT else "capf", data[byte : byte + 1])
    assert decoder.session() == capf.records[1].capf.session


def test_a_cut_session_keeps_what_was_read(capf):
    whole = capf.records[0].capf.session
    conversation = capf.sessions[0].conversation
    decoder = CapfDecoder()
    for sender, data in conversation[:-1]:  # the end session never arrives...
        decoder.feed("phone" if sender == CLIENT else "capf", data)
    last_sender, last = conversation[-1]
    decoder.feed("phone" if last_sender == CLIENT else "capf", last[:5])  # ...only 5 bytes of it
    cut = decoder.session()
    assert (cut.device, cut.operation, cut.auth, cut.key) == (
        whole.device,
        whole.operation,
        whole.auth,
        whole.key,
    )
    assert cut.issued_certificate == whole.issued_certificate
    assert cut.result == "installed"  # the phone's store response said so already
    assert [p.text for p in decoder.problems] == ["capf: 5 bytes of an unfinished message"]
    assert not decoder.complete and decode(capf.sessions[0]).complete


# --- hand-made messages -------------------------------------------------------------------------


def header(command: int, body: bytes, protocol: int = 85, session: int = 7) -> bytes:
    return struct.pack(">BBIH", protocol, command, session, len(body)) + body


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
