"""Registration: SIP REGISTER over TLS (NULL cipher, AES-GCM with a key log) and clear TCP, from
real sockets on lo; SCCP from a real public capture and from messages tshark reads back.
"""

from __future__ import annotations

import os
import struct
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st
from samplegen import loopback, pki, sip, wire
from session_capture import CLIENT, by_client_port, service_port, tcp_conversations
from tshark_oracle import TSHARK

from capana import analyze
from capana.model import Registration
from capana.registration import (
    MAX_SIP_HEADER,
    SCCP_LINE_STAT_RES,
    SCCP_REGISTER,
    SCCP_REGISTER_ACK,
    SCCP_REGISTER_REJECT,
    SccpRegistration,
    SipReader,
    SipRegistration,
)
from capana.views.records import device_record

needs_loopback = pytest.mark.skipif(
    not (loopback.TCPDUMP and os.geteuid() == 0) or TSHARK is None,
    reason="needs root, tcpdump and tshark to capture real sessions on lo",
)
NOW = datetime.now(timezone.utc)
WINDOW = {"not_before": NOW - timedelta(days=1), "not_after": NOW + timedelta(days=30)}
LINES = [
    sip.Line("1001", "secret", "2C3124C9F8E1"),  # known, right password: 401 then 200
    sip.Line("1002", "wrong", "2C3124C9F80C"),  # known, wrong password: 401 then 403
    sip.Line("2999", "any", "2C3124C9F80D"),  # unknown line: 403 at once
]
KNOWN = {"1001": "secret", "1002": "right"}
EXPECTED = [
    ("registered", "200 OK", "1001", "SEP2C3124C9F8E1", 2),
    ("rejected", "403 Forbidden", "1002", "SEP2C3124C9F80C", 2),
    ("rejected", "403 Forbidden", "2999", "SEP2C3124C9F80D", 1),
]


def sip_facts(conversation) -> Registration | None:
    registration = SipRegistration()
    for sender, data in conversation:
        registration.feed("phone" if sender in (CLIENT, "phone") else "server", data)
    return registration.registration()


def tshark_sip(path: Path, port: int, keylog: Path | None, tls: bool) -> dict[int, list[str]]:
    """``{phone port: ["REGISTER 1001", "401 1001", ...]}`` as tshark dissects SIP."""
    command = [TSHARK, "-r", str(path), "-o", "tcp.reassemble_out_of_order:TRUE"]
    if keylog is not None:
        command += ["-o", f"tls.keylog_file:{keylog}"]
    if tls:
        command += ["-d", f"tcp.port=={port},tls", "-d", f"tls.port=={port},sip"]
    else:
        command += ["-d", f"tcp.port=={port},sip"]
    command += ["-Y", "sip", "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport"]
    command += ["-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.to.user"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    seen: dict[int, list[str]] = {}
    for line in output.splitlines():
        source, destination, method, status, user = line.split("\t")
        phone = int(destination) if int(source) == port else int(source)
        seen.setdefault(phone, []).append(f"{method or status} {user}")
    return seen


@pytest.fixture(scope="module")
def registrar_certificate():
    return pki.server_cert(None, **WINDOW)


@pytest.fixture(scope="module")
def phone_pki():
    """A CAPF and the phone's LSC from it: the registrar requires and verifies the LSC."""
    both = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
    capf = pki.capf(**WINDOW, extended_key_usage=both)
    return capf, pki.phone_lsc(capf, **WINDOW)


def ordered(report, port: int) -> list:
    """The report's connections to ``port`` in the order they were opened."""
    records = by_client_port(report, port).values()
    return sorted(records, key=lambda record: record.handshake.start)


@needs_loopback
@pytest.mark.parametrize("ciphers", ["NULL-SHA", "ECDHE-RSA-AES128-GCM-SHA256"])
def test_sip_over_tls_end_to_end(tmp_path, registrar_certificate, phone_pki, ciphers):
    """Three phones' REGISTERs on 5061 through ``capana.analyze``: with the key log, and without
    (a NULL cipher is read anyway), held to what the phones received and to tshark."""
    port = service_port(5061)
    capf, lsc = phone_pki
    run = sip.sip_register(
        tmp_path,
        registrar_certificate,
        LINES,
        KNOWN,
        ciphers=ciphers,
        port=port,
        phone=lsc,
        phone_ca=capf,
    )
    trust = tmp_path / "callmanager-trust.pem"
    trust.write_bytes(capf.pem)
    null = ciphers.startswith("NULL")
    for keylog in (run.keylog, None):
        report = analyze(run.capture, trust={"callmanager": trust}, keylog=keylog)
        oracle = tshark_sip(run.capture, run.port, keylog, tls=True)
        records = ordered(report, port)
        assert len(records) == len(LINES)
        for record, expected, answers in zip(records, EXPECTED, run.answers, strict=True):
            handshake = record.handshake
            # The LSC was sent and verified either way: the TLS handshake is in clear.
            assert (record.validation.status, handshake.outcome) == ("trusted", "established")
            codes = [f.code for f in record.findings]
            if keylog is None and not null:  # encrypted, no keys: nothing to say inside
                assert handshake.registration is None and handshake.decryption is None
                assert "registration-rejected" not in codes
                continue
            assert handshake.decryption == ("plaintext" if null and keylog is None else "decrypted")
            registration = handshake.registration
            facts = (
                registration.result,
                registration.status,
                registration.line,
                registration.device,
                registration.attempts,
            )
            assert facts == expected
            assert registration.status == answers[-1].removeprefix("SIP/2.0 ")
            # tshark saw the same exchange, ending with the same answer for the same line.
            said = oracle[int(handshake.client.rsplit(":", 1)[1])]
            assert said[-1] == f"{registration.status.split()[0]} {registration.line}"
            assert said.count(f"REGISTER {registration.line}") == registration.attempts
            if registration.result == "rejected":
                (finding,) = [f for f in record.findings if f.code == "registration-rejected"]
                assert finding.severity == "error"
                assert "the certificate was not the problem: LSC trusted by CallManager-trust" in (
                    finding.message
                )
                assert "403 Forbidden" in finding.message
            else:
                assert "registration-rejected" not in codes
        # One phone by its LSC; its last answer (when read) is a refusal.
        (device,) = report.devices
        read = keylog is not None or null
        assert device_record(device)["registered"] is (False if read else None)


@needs_loopback
def test_clear_sip_over_tcp_end_to_end(tmp_path):
    port = service_port(5060)
    run = sip.sip_register(tmp_path, None, LINES, KNOWN, port=port)
    report = analyze(run.capture)
    oracle = tshark_sip(run.capture, run.port, None, tls=False)
    records = ordered(report, port)
    assert len(records) == len(LINES)
    for record, expected in zip(records, EXPECTED, strict=True):
        handshake = record.handshake
        assert (handshake.cleartext, handshake.service) == (True, "sip")
        registration = handshake.registration
        assert (registration.result, registration.status, registration.line) == expected[:3]
        phone_port = int(handshake.client.rsplit(":", 1)[1])
        assert oracle[phone_port][-1] == f"{registration.status.split()[0]} {registration.line}"
        codes = {f.code for f in record.findings}
        assert "registered-non-secure" in codes
        assert ("registration-rejected" in codes) == (registration.result == "rejected")
    # Each phone is named by the MAC in its Contact (no certificate in clear).
    names = {device.name: device_record(device)["registered"] for device in report.devices}
    assert names == {"SEP2C3124C9F8E1": True, "SEP2C3124C9F80C": False, "SEP2C3124C9F80D": False}


# --- SCCP --------------------------------------------------------------------------------------


def test_real_sccp_messages_are_framed_as_tshark_frames_them(shared_data):
    """The public nDPI capture: two phones mid-call on TCP 2000, no registration in it."""
    if TSHARK is None:
        pytest.skip("tshark is not installed")
    path = shared_data / "pcaps" / "ndpi_skinny_sccp_plaintext.pcap"
    conversations = tcp_conversations(path, 2000)
    command = [TSHARK, "-r", str(path), "-o", "tcp.reassemble_out_of_order:TRUE", "-Y", "skinny"]
    command += ["-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "skinny.messageId"]
    oracle: dict[tuple[int, str], list[int]] = {}
    for line in subprocess.run(command, capture_output=True, text=True, check=True).stdout.split(
        "\n"
    ):
        if not line:
            continue
        source, destination, ids = line.split("\t")
        phone, sender = (int(destination), "server") if source == "2000" else (int(source), "phone")
        oracle.setdefault((phone, sender), []).extend(int(i) for i in ids.split(","))
    assert len(conversations) == 2
    for (phone, _server), conversation in conversations.items():
        sccp = SccpRegistration()
        for sender, data in conversation:
            sccp.feed(sender, data)
        for sender in ("phone", "server"):
            ours = [message for who, message in sccp.message_ids if who == sender]
            assert ours == oracle[phone, sender]
        assert sccp.registration() is None  # the capture starts after the phones registered


def sccp(message_id: int, data: bytes) -> bytes:
    return struct.pack("<III", 4 + len(data), 0, message_id) + data


def name(text: str, size: int) -> bytes:
    return text.encode().ljust(size, b"\0")


# Field layouts as Wireshark's skinny dissector reads them (header version "Basic").
REGISTER = sccp(
    SCCP_REGISTER,
    name("SEP2C3124C9F80B", 16)
    + struct.pack("<IIIIII", 0, 1, 0x1501140A, 36213, 5, 0)  # ..., device type, streams
    + struct.pack("<BBHI", 22, 0, 0, 0),  # protocol version, features, max conferences
)
ACK = sccp(
    SCCP_REGISTER_ACK,
    struct.pack("<I", 30) + b"M/D/YA" + bytes(2) + struct.pack("<IBBH", 60, 22, 0, 0),
)
REJECT = sccp(SCCP_REGISTER_REJECT, name("Device not found", 33))
LINE_STAT = sccp(
    SCCP_LINE_STAT_RES,
    struct.pack("<I", 1) + name("1001", 24) + name("Lobby", 40) + name("1001", 40) + bytes(4),
)


def sccp_capture(folder: Path, answer: bytes) -> Path:
    conversation = wire.TcpConversation(("10.20.1.21", 50207), ("10.10.1.5", 2000), NOW)
    conversation.open()
    conversation.send("client", REGISTER, cuts=[20])
    conversation.send("server", answer + LINE_STAT)
    conversation.close()
    return wire.write_pcap(folder / "sccp.pcap", conversation.packets())


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (ACK, ("registered", "RegisterAck", None)),
        (REJECT, ("rejected", "RegisterReject", "Device not found")),
    ],
)
def test_sccp_register_and_its_answer(tmp_path, answer, expected):
    """Clear SCCP on 2000 through ``capana.analyze``: the phone's session carries its
    registration (the Register cut across two segments)."""
    path = sccp_capture(tmp_path, answer)
    (record,) = analyze(path).handshakes
    assert (record.handshake.cleartext, record.handshake.service) == (True, "sccp")
    facts = record.handshake.registration
    assert facts is not None
    assert (facts.result, facts.status, facts.reason) == expected
    assert (facts.device, facts.line, facts.attempts) == ("SEP2C3124C9F80B", "1001", 1)
    rejected = [f for f in record.findings if f.code == "registration-rejected"]
    if facts.result == "rejected":
        assert "RegisterReject: Device not found" in rejected[0].message
    else:
        assert rejected == []
    if TSHARK is not None:  # tshark reads the same names from these bytes
        command = [TSHARK, "-r", str(path), "-Y", "skinny", "-T", "fields", "-E", "occurrence=a"]
        command += ["-e", "skinny.messageId", "-e", "skinny.DeviceName", "-e", "skinny.text"]
        command += ["-e", "skinny.lineDirNumber"]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        assert "SEP2C3124C9F80B" in output and "\t1001" in output
        assert str(int.from_bytes(answer[8:12], "little")) in output
        if expected[2]:
            assert expected[2] in output


# --- bad and odd input -------------------------------------------------------------------------


def register(cseq: int, expires: str = "3600") -> bytes:
    return (
        f"REGISTER sip:cucm SIP/2.0\r\nt: <sip:1001@cucm>\r\nCSeq: {cseq} REGISTER\r\n"
        f"Expires: {expires}\r\nl: 0\r\n\r\n"
    ).encode()


def answer(cseq: int, status: str, body: bytes = b"") -> bytes:
    return (
        f"SIP/2.0 {status}\r\nCSeq: {cseq} REGISTER\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_sip_split_anywhere_with_keepalives_and_bodies():
    phone = b"\r\n\r\n" + register(1) + b"\r\n" + register(2, expires="0")
    server = answer(1, "100 Trying") + answer(1, "200 OK", b"v=0\r\n") + answer(2, "200 OK")
    registration = SipRegistration()
    for chunk in range(len(phone)):
        registration.feed("phone", phone[chunk : chunk + 1])
    for chunk in range(0, len(server), 3):
        registration.feed("server", server[chunk : chunk + 3])
    facts = registration.registration()
    # The second REGISTER removed the binding: its 200 OK is not a registration.
    assert facts == Registration("sip", "registered", "200 OK", "1001", attempts=2)


def test_sip_without_an_answer_and_without_a_register():
    registration = SipRegistration()
    registration.feed("phone", register(1))
    assert registration.registration() == Registration("sip", "unknown", None, "1001", attempts=1)
    assert SipRegistration().registration() is None


def test_sip_garbage_and_oversized_headers_stop_that_direction():
    registration = SipRegistration()
    registration.feed("server", b"\x16\x03\x03\x00\x10garbage\r\n\r\n")
    registration.feed("phone", b"REGISTER sip:x SIP/2.0\r\n" + b"X: y\r\n" * (MAX_SIP_HEADER // 6))
    registration.feed("phone", register(1))  # nothing more is read from the phone
    assert registration.registration() is None
    reader = SipReader()
    reader.feed(answer(1, "200 OK").replace(b"Content-Length: 0", b"Content-Length: 99999999"))
    assert reader.failed == "SIP body of 99999999 bytes is not read"


def test_sccp_bad_length_and_a_cut_message():
    registration = SccpRegistration()
    registration.feed("phone", struct.pack("<II", 2, 0) + bytes(8))
    registration.feed("server", ACK[:10])
    facts = registration.registration()
    assert facts is None
    assert [problem.text for problem in registration.problems] == [
        "phone: not SCCP (header 0200000000000000); the rest was not read"
    ]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.binary(max_size=400))
def test_random_bytes_never_crash(phone, server):
    for protocol in (SipRegistration, SccpRegistration):
        registration = protocol()
        registration.feed("phone", phone)
        registration.feed("server", server)
        facts = registration.registration()
        assert facts is None or isinstance(facts, Registration)
