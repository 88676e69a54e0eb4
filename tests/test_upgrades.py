"""TLS wherever it starts: after clear text (STARTTLS and kin), and in a capture that starts
inside a connection, each side on its own; held to tshark's certificates."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from decode_oracle import tshark_innermost_certificates
from samplegen import wire
from samplegen.tlsrun import record_offsets
from samplegen.upgrades import UPGRADES, capture_upgrade
from test_scan import CUCM, PHONE, WHEN, client_and_server_chains, expected_chains
from test_tls import real_handshake
from tshark_oracle import TSHARK

from capana import analyze
from capana.connections import ConnectionTable
from capana.decode import decode_frame
from capana.model import ProblemCode
from capana.packets import SKIPPED_FLOW, TcpSegment
from capana.scan import scan_capture
from capana.tls_start import MAX_CLEAR_PREFIX

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
CAN_CAPTURE = shutil.which("tcpdump") is not None and os.geteuid() == 0
needs_capture = pytest.mark.skipif(
    not CAN_CAPTURE, reason="capturing on the loopback needs tcpdump and root"
)


def capana_certificates(capture: Path) -> set[tuple[str, str]]:
    seen = set()
    for record in analyze(capture).handshakes:
        handshake = record.handshake
        seen |= {(handshake.client, cert.sha256) for cert in record.client_chain}
        seen |= {(handshake.server, cert.sha256) for cert in record.server_chain}
    return seen


@needs_tshark
@needs_capture
@pytest.mark.parametrize("name", sorted(UPGRADES))
def test_tls_after_clear_text_gives_tsharks_certificates(tmp_path: Path, name: str):
    """Python's smtplib, imaplib, poplib, ftplib and http.client (CONNECT), and the protocol
    bytes of LDAP, XMPP, PostgreSQL, MySQL and SOCKS 5, then a real TLS 1.2 handshake."""
    capture = capture_upgrade(tmp_path, name)
    expected = tshark_innermost_certificates(capture.path, capture.preferences)
    assert {*capture.client_chain, *capture.server_chain} <= {sha for _, sha in expected}
    assert capana_certificates(capture.path) == expected
    (record,) = analyze(capture.path).handshakes
    handshake = record.handshake
    assert handshake.server.endswith(f":{capture.port}")
    assert handshake.client_cert_status == "present"
    assert handshake.outcome == "established"
    assert handshake.problems == ()


def test_clear_text_beyond_the_prefix_is_not_followed():
    """A connection with no TLS in its first MAX_CLEAR_PREFIX bytes is dropped (fast path)."""
    conv = wire.TcpConversation(PHONE, ("10.1.1.5", 25), WHEN, mss=1000)
    conv.open()
    conv.send("server", b"220 ready\r\n")
    conv.send("client", b"DATA " * (MAX_CLEAR_PREFIX // 5 + 400))
    table = ConnectionTable("test")
    states = []
    for packet in conv.packets():
        segment = decode_frame(101, packet.ip, len(packet.ip))
        assert isinstance(segment, TcpSegment)
        table.add(segment, packet.time_ns / 1e9)
        states.append(table.flows.get(segment.key))
    assert states[-1] is SKIPPED_FLOW
    assert states[len(states) // 2] is not SKIPPED_FLOW


def _mid_record_capture(tmp_path: Path, drop: int) -> Path:
    """A real handshake in 300-byte segments, the capture starting ``drop`` segments into the
    server's flight (inside its Certificate record), without the SYNs or the ClientHello."""
    conv = wire.TcpConversation(PHONE, CUCM, WHEN, mss=300)
    conv.open()
    for flight in real_handshake().flights:
        conv.send(flight.sender, flight.data, cuts=record_offsets(flight.data))
    conv.close()
    first_server_data = conv.data_indices("server")[drop]
    conv.segments[:] = conv.segments[first_server_data:]
    return wire.write_pcap(tmp_path / f"mid{drop}.pcap", conv.packets())


@needs_tshark
@pytest.mark.parametrize("drop", [1, 2, 4])
def test_capture_starting_inside_a_record_resynchronises_each_side(tmp_path: Path, drop: int):
    """The server's bytes start inside a record, the phone's at its next flight: tshark finds
    the phone's certificate, and so does capana, saying which side it resynchronised."""
    capture = _mid_record_capture(tmp_path, drop)
    expected = tshark_innermost_certificates(capture)
    phone_certificates = {sha for sender, sha in expected if sender == "10.1.1.20:51234"}
    assert phone_certificates == set(expected_chains()[0])
    assert capana_certificates(capture) == expected
    _, handshakes = scan_capture(capture)
    (handshake,) = handshakes
    assert handshake.client_cert_status == "present"
    resync = {
        p.text.split(":")[0]: p.text for p in handshake.problems if p.code == ProblemCode.RESYNC
    }
    assert set(resync) == {"client", "server"}  # both sides were joined in the middle
    assert (" 0 bytes" in resync["server"]) == (drop == 1)  # 1: the server's next record


def test_capture_from_the_start_needs_no_resynchronisation(tmp_path: Path):
    conv = wire.TcpConversation(PHONE, CUCM, WHEN, mss=300)
    conv.open()
    for flight in real_handshake().flights:
        conv.send(flight.sender, flight.data)
    conv.close()
    _, handshakes = scan_capture(wire.write_pcap(tmp_path / "whole.pcap", conv.packets()))
    (handshake,) = handshakes
    assert handshake.problems == ()
    assert client_and_server_chains(handshake) == expected_chains()
