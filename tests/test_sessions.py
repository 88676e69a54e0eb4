"""Reading inside a connection (``capana.sessions``, and the stream readers that use it): the
decoder of each service, when the flow table stops buffering, the bounds, and what is imported.

Real bytes: the shipped session samples (real daemons and a real SIP exchange, see
``pcaps/README.md``) fed packet by packet to the flow table, and SCCP laid out by ``wire``.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import PROJECT, SAMPLE_PCAPS
from decoded import tcp_segment
from samplegen import wire
from test_registration import ACK, LINE_STAT, REGISTER

from capana.capture import CaptureReader
from capana.connections import ConnectionTable
from capana.keylog import CaptureKeys, KeyLog
from capana.model import Handshake, ProblemCode
from capana.sessions import MAX_BYTES, session_reader

CAPF_PCAP, CAPF_KEYS = (
    SAMPLE_PCAPS / "capf-lsc-install.pcap",
    SAMPLE_PCAPS / "capf-lsc-install.keys",
)
SIP_PCAP = SAMPLE_PCAPS / "sip-tls-null-register.pcap"
NOW = datetime(2024, 3, 1, 9, tzinfo=timezone.utc)


def reported_at(path: Path, keylog: Path | None = None) -> list[tuple[int, int, Handshake]]:
    """(the frame at which the flow table reported each connection, the capture's frame
    count, the connection's facts): when did it stop buffering?"""
    keys = CaptureKeys([], KeyLog.read(keylog)) if keylog else None
    table = ConnectionTable(str(path), keys=keys)
    found = []
    with CaptureReader(path) as capture:
        number = 0
        for number, (timestamp, linktype, frame, wire_length) in enumerate(capture, 1):
            segment = tcp_segment(linktype, frame, wire_length)
            if segment is not None:
                table.add(segment, timestamp, number)
            found += [(number, fact) for fact in table.completed]
            table.completed.clear()
        table.finish()
        found += [(number + 1, fact) for fact in table.completed]  # +1: at the end of capture
    return [(at, number, fact) for at, fact in found]


def frame_of(path: Path, needle: bytes) -> int:
    """The frame whose bytes contain ``needle`` (in clear)."""
    with CaptureReader(path) as capture:
        for number, (_time, _linktype, frame, _length) in enumerate(capture, 1):
            if needle in frame:
                return number
    raise AssertionError(f"{needle!r} is not in {path}")


def test_a_capf_session_is_read_until_the_capf_ends_it():
    """With the key log the connection stays buffered past its handshake until the end session
    (the last record but the close_notify alerts), then is reported at once, before its FIN."""
    ((at, frames, handshake),) = reported_at(CAPF_PCAP, CAPF_KEYS)
    assert handshake.capf is not None and handshake.capf.result == "installed"
    assert handshake.capf.messages[-1].command == "end_session"
    assert at < frames  # before the connection's end
    ((plain_at, _frames, plain),) = reported_at(CAPF_PCAP)  # without keys: at the handshake's end
    assert plain.capf is None and plain_at < at


def test_a_null_cipher_registration_is_read_until_the_final_answer():
    ((at, frames, handshake),) = reported_at(SIP_PCAP)
    assert handshake.registration is not None and handshake.registration.status == "200 OK"
    assert at == frame_of(SIP_PCAP, b"SIP/2.0 200 OK") < frames


def sccp_connection(folder: Path, *, answer: bool) -> Path:
    conversation = wire.TcpConversation(("10.20.1.21", 50207), ("10.10.1.5", 2000), NOW)
    conversation.open()
    conversation.send("client", REGISTER, cuts=[20])
    if answer:
        conversation.send("server", ACK)
        conversation.send("server", LINE_STAT)
    conversation.send("client", b"\x10\x00\x00\x00" + bytes(16))  # a keep-alive, say
    conversation.close()
    return wire.write_pcap(folder / "sccp.pcap", conversation.packets())


def test_a_clear_sccp_session_is_read_until_acknowledged_with_its_line(tmp_path):
    path = sccp_connection(tmp_path, answer=True)
    ((at, frames, handshake),) = reported_at(path)
    assert (handshake.cleartext, handshake.registration.status) == (True, "RegisterAck")
    assert handshake.registration.line == "1001"
    assert at < frames
    unanswered = sccp_connection(tmp_path, answer=False)
    ((at, frames, handshake),) = reported_at(unanswered)
    assert handshake.registration.result == "unknown"
    assert at == frames - 1  # read to its end: reported at the second FIN (the last ACK follows)


def test_each_service_has_its_decoder_and_no_other():
    assert {s: session_reader(s) is not None for s in ("capf", "tvs", "sip-tls", "sip")} == {
        "capf": True,
        "tvs": True,
        "sip-tls": True,
        "sip": True,
    }
    assert session_reader("sccp-tls") and session_reader("sccp")
    assert session_reader("https") is None and session_reader("tls") is None


def test_each_side_is_read_up_to_the_bound_and_no_further():
    reader = session_reader("sip")
    assert reader is not None
    reader.feed("client", b"X" * (MAX_BYTES - 1))  # headers without an end: still waiting
    assert not reader.complete
    reader.feed("client", b"XY")
    assert reader.complete and reader.limited
    reader.feed("server", b"SIP/2.0 200 OK\r\n\r\n")  # nothing more is read
    handshake = reader.apply(_empty())
    assert handshake.registration is None
    assert [p.code for p in handshake.problems] == [ProblemCode.SESSION_MESSAGES, ProblemCode.LIMIT]
    assert str(MAX_BYTES) in handshake.problems[-1].text


def test_a_hole_ends_the_reading_of_its_side():
    reader = session_reader("sip")
    assert reader is not None
    reader.cut("server")
    reader.feed("server", b"SIP/2.0 200 OK\r\nCSeq: 1 REGISTER\r\n\r\n")
    reader.feed("client", b"REGISTER sip:x SIP/2.0\r\nt: <sip:1001@x>\r\nCSeq: 1 REGISTER\r\n\r\n")
    assert not reader.complete
    handshake = reader.apply(_empty())
    assert handshake.registration is not None and handshake.registration.result == "unknown"
    assert [p.text for p in handshake.problems] == [
        "server: a hole in the capture; its later messages not read"
    ]
    reader.cut("client")
    assert reader.complete


def _empty() -> Handshake:
    return Handshake(
        capture="x",
        transport="tcp",
        client="10.0.0.1:5000",
        server="10.0.0.2:5060",
        server_port=5060,
        service="sip",
        start=None,
        tls_version=None,
        cipher_suite=None,
        sni=None,
        client_cert_status="not_requested",
        client_chain=(),
        server_chain=(),
        requested_ca_names=None,
        alerts=(),
        outcome="established",
        gaps=0,
    )


@pytest.mark.parametrize(
    ("capture", "keylog", "loaded"),
    [
        ("phone-reboot.pcapng", None, False),
        ("sip-tls-null-register.pcap", None, False),
        ("capf-lsc-install.pcap", "capf-lsc-install.keys", True),
    ],
)
def test_scapy_is_loaded_only_for_a_capf_or_tvs_session_that_can_be_read(capture, keylog, loaded):
    """The CAPF and TVS decoders use scapy's layers (half a second to import): a scan that
    meets no readable CAPF or TVS bytes never loads them."""
    keys = str(SAMPLE_PCAPS / keylog) if keylog else None
    code = (
        "import sys; from capana import analyze; "
        f"analyze({str(SAMPLE_PCAPS / capture)!r}, keylog={keys!r}); "
        "print('scapy' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT, check=True
    )
    assert done.stdout.split() == [str(loaded)]
