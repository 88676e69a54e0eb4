"""capana.decode: every encapsulation round-trips against tshark, on real handshakes.

Real OpenSSL handshakes (``real_handshake``) and a real EAP-TLS exchange (the shipped EAPOL
capture) are laid on the wire and wrapped by scapy's layers (``samplegen.encaps``); tshark says
what each frame carries innermost and which certificates each endpoint sent, and the decoder
must agree frame by frame. The decoder's segments feed the existing TCP table unchanged.
"""

from __future__ import annotations

import struct
from datetime import timedelta
from pathlib import Path

import pytest
from decode_oracle import (
    capana_frames,
    tshark_frames,
    tshark_innermost_certificates,
)
from facts import sha256s
from hypothesis import given, settings
from hypothesis import strategies as st
from samplegen import wire
from samplegen.encaps import ENCAPSULATIONS, Encapsulation, Frame, write_frames
from test_scan import CUCM, CUCM_V6, PHONE, PHONE_V6, WHEN, tls_packets
from tshark_oracle import TSHARK

from capana.capture import CaptureReader
from capana.datagrams import DatagramTable
from capana.decode import (
    MAX_NESTING,
    Datagram,
    EapolFrame,
    FrameDecoder,
    Undecoded,
    decode_frame,
    worth_decoding,
)
from capana.packets import TcpSegment, endpoint_text
from capana.scan import scan_capture

PROJECT = Path(__file__).resolve().parent.parent
EAPOL_CAPTURE = PROJECT / "pcaps" / "eapol-eap-tls.pcap"
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


# --- real traffic, as Ethernet frames ----------------------------------------------------------


def _frames(packets: list[wire.Packet], client: str) -> list[Frame]:
    link = wire.Link()
    return [(packet.time_ns, link.frame(packet), packet.src == client) for packet in packets]


def _eapol_frames() -> list[Frame]:
    """The shipped 802.1X capture (a real EAP-TLS exchange), its supplicant as the client."""
    with CaptureReader(EAPOL_CAPTURE) as reader:
        records = list(reader)
    supplicant = records[0][2][6:12]
    return [
        (int(timestamp * 1e9), frame, frame[6:12] == supplicant)
        for timestamp, _, frame, _ in records
    ]


@pytest.fixture(scope="module")
def traffic() -> dict[str, list[Frame]]:
    """A real TLS handshake over IPv4 and over IPv6, DNS over UDP, and EAP-TLS over EAPOL."""
    later = WHEN + timedelta(seconds=2)
    dns = wire.dns_exchange(("10.1.1.20", 53001), ("10.1.1.53", 53), later, "cucm.example.com")
    return {
        "ipv4": _frames(tls_packets(), PHONE[0]) + _frames(dns, "10.1.1.20"),
        "ipv6": _frames(tls_packets(client=PHONE_V6, server=CUCM_V6), PHONE_V6[0]),
        "eapol": _eapol_frames(),
    }


def _capture(tmp_path: Path, encapsulation: Encapsulation, traffic, **options) -> Path:
    frames = sorted(traffic["ipv4"] + traffic["ipv6"] + traffic["eapol"])
    return write_frames(tmp_path / f"{encapsulation.name}.pcap", encapsulation, frames, **options)


def capana_certificates(capture: Path, transport: str = "tcp") -> set[tuple[str, str]]:
    """Every certificate by sender of the handshakes over ``transport``, through capana's whole
    pipeline (``scan_capture``: fast path, decoder, reassembly, readers)."""
    summary, handshakes = scan_capture(capture)
    assert summary.errors == (), summary.errors
    seen = set()
    for handshake in handshakes:
        if handshake.transport == transport:
            seen |= {(handshake.client, sha) for sha in sha256s(handshake.client_chain)}
            seen |= {(handshake.server, sha) for sha in sha256s(handshake.server_chain)}
    return seen


# --- every encapsulation against tshark --------------------------------------------------------


@needs_tshark
@pytest.mark.parametrize("name", sorted(ENCAPSULATIONS))
def test_encapsulation_agrees_with_tshark(tmp_path: Path, traffic, name: str):
    """Frame by frame (inner endpoints, payload lengths, EAPOL MACs), then certificate by
    certificate through capana's TCP table."""
    encapsulation = ENCAPSULATIONS[name]
    capture = _capture(tmp_path, encapsulation, traffic)
    expected = tshark_frames(capture, encapsulation.preferences)
    found, undecoded = capana_frames(capture)
    assert undecoded == {}
    assert found == expected
    kinds = {carried.kind for carried in found.values()}
    assert "tcp" in kinds
    if encapsulation.carries == "ethernet":
        assert "eapol" in kinds
    # Inner addresses: never the tunnel's, the access point's or the controller's.
    assert not any(c.source.startswith(("192.0.2.", "[2001:db8:")) for c in found.values())
    certificates = tshark_innermost_certificates(capture, encapsulation.preferences)
    assert certificates  # the phone's and the server's, as their inner endpoints
    assert capana_certificates(capture) == certificates
    if encapsulation.carries == "ethernet":  # the EAP-TLS exchange too, by the phone's MAC
        eapol = capana_certificates(capture, "eapol")
        assert {sender for sender, _ in eapol} >= {"2c:31:24:c9:f8:e1"}


@needs_tshark
@pytest.mark.parametrize("name", ["ethernet", "dot1q", "vxlan", "capwap-80211", "radiotap"])
def test_snaplen_cut_frames_report_missing_bytes_as_tshark_does(tmp_path: Path, traffic, name: str):
    """CUCM's default capture keeps 128 bytes per packet: payload + missing = tcp.len. A frame
    cut inside its TCP header (deep tunnels) is named as truncated, not guessed."""
    encapsulation = ENCAPSULATIONS[name]
    capture = _capture(tmp_path, encapsulation, traffic, snaplen=128)
    found, undecoded = capana_frames(capture)
    expected = tshark_frames(capture, encapsulation.preferences)
    assert found == {number: expected[number] for number in found}
    assert sum(undecoded.values()) == len(set(expected) - set(found))
    assert all(name.endswith("(truncated)") for name in undecoded)
    decoder = FrameDecoder()
    with CaptureReader(capture) as reader:
        cut = [
            decoded
            for timestamp, linktype, frame, wire_length in reader
            if isinstance(
                decoded := decoder.decode(linktype, frame, wire_length, timestamp),
                TcpSegment | Datagram,
            )
            and decoded.missing
        ]
    assert len(cut) >= 4  # the big flights of both sides


@needs_tshark
def test_tso_and_big_tcp_lengths_of_zero_take_the_captured_length(tmp_path: Path):
    """IPv4 total length 0 and IPv6 payload length 0: the NIC filled them in after capture."""
    packets = tls_packets() + tls_packets(client=PHONE_V6, server=CUCM_V6)
    zeroed = []
    for packet in packets:
        ip = bytearray(packet.ip)
        if packet.version == 4:
            ip[2:4] = b"\0\0"
        else:
            ip[4:6] = b"\0\0"
        zeroed.append(wire.Packet(packet.time_ns, packet.src, packet.dst, bytes(ip)))
    capture = wire.write_pcap(tmp_path / "tso.pcap", zeroed)
    found, undecoded = capana_frames(capture)
    assert undecoded == {}
    assert found == tshark_frames(capture, ("-o", "ipv6.tso_support:TRUE"))
    assert sum(carried.length for carried in found.values()) == sum(
        len(conversation_bytes) for conversation_bytes in _tcp_payloads(packets)
    )


def _tcp_payloads(packets: list[wire.Packet]) -> list[bytes]:
    payloads = []
    for packet in packets:
        decoded = decode_frame(wire.LINKTYPE_RAW, packet.ip, len(packet.ip))
        assert isinstance(decoded, TcpSegment)
        payloads.append(decoded.payload)
    return payloads


# --- public and shipped captures ---------------------------------------------------------------


def _captures(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix in (".pcap", ".pcapng"))


@needs_tshark
def test_every_frame_of_the_real_captures_agrees_with_tshark(shared_data: Path):
    """Public captures (SSL 3.0 on BSD loopback, IPv6 on loopback, DTLS with fragmented
    certificates, the SGT capture when present) and the shipped ones (QinQ, IPv6 options)."""
    captures = _captures(shared_data / "pcaps") + _captures(PROJECT / "pcaps")
    assert any(p.name == "arkime_ssl-selfsign.pcap" for p in captures)
    for capture in captures:
        found, undecoded = capana_frames(capture)
        assert undecoded == {}, capture.name
        assert found == tshark_frames(capture), capture.name
        assert capana_certificates(capture) == tshark_innermost_certificates(capture), capture.name
        dtls = tshark_innermost_certificates(capture, dtls=True)
        assert capana_certificates(capture, "udp") == dtls, capture.name


@needs_tshark
def test_sgt_capture_gives_tsharks_certificates(shared_data: Path):
    capture = shared_data / "pcaps" / "mercury_tls_sgt_tetration_client_cert.pcap"
    if not capture.exists():
        pytest.skip(f"{capture.name} is not in {shared_data / 'pcaps'}")
    expected = tshark_innermost_certificates(capture)
    assert expected
    assert capana_certificates(capture) == expected


def test_the_fast_path_drops_only_what_cannot_matter(shared_data: Path, tmp_path: Path, traffic):
    """Every frame worth_decoding drops decodes to a TCP segment with no payload and no SYN,
    FIN or RST, a datagram of no reader's port that is not DTLS, or a frame carrying no IP."""
    table = DatagramTable("test")
    ethernet = _capture(tmp_path, ENCAPSULATIONS["ethernet"], traffic)
    captures = _captures(PROJECT / "pcaps") + _captures(shared_data / "pcaps") + [ethernet]
    dropped = 0
    for capture in captures:
        with CaptureReader(capture) as reader:
            records = list(reader)
        kept = {number for number, _ in worth_decoding(records, {}, table.ports)}
        for number, (_, linktype, frame, wire_length) in enumerate(records, 1):
            if number in kept:
                continue
            dropped += 1
            decoded = decode_frame(linktype, frame, wire_length)
            if isinstance(decoded, TcpSegment):
                assert not decoded.payload and not decoded.flags & 0x07, capture.name
            elif isinstance(decoded, Datagram):
                assert not {decoded.source_port, decoded.destination_port} & table.ports
                assert decoded.payload[1:2] != b"\xfe", capture.name
            else:
                assert decoded is None, capture.name
    assert dropped > 500


# --- what is not decoded is named ---------------------------------------------------------------


ETHERNET_HEADER = bytes.fromhex("00000c9ff0012c3124c9f8e1")


def _ethernet(ethertype: int, payload: bytes) -> bytes:
    return ETHERNET_HEADER + struct.pack("!H", ethertype) + payload


def _ipv4(protocol: int, payload: bytes, flags_offset: int = 0) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        flags_offset,
        64,
        protocol,
        0,
        bytes([10, 1, 1, 20]),
        bytes([10, 1, 1, 5]),
    )
    return header + payload


@pytest.mark.parametrize(
    ("linktype", "frame", "expected"),
    [
        (147, b"\x00" * 40, Undecoded("link type 147", "unsupported")),
        (1, _ethernet(0x8137, b"\x00" * 30), Undecoded("ethertype 0x8137", "unsupported")),
        (1, _ethernet(0x88E5, b"\x00" * 30), Undecoded("macsec", "encrypted")),
        (1, _ethernet(0x0800, _ipv4(50, b"\x00" * 30)), Undecoded("ipsec esp", "encrypted")),
        (
            1,
            _ethernet(0x0800, _ipv4(132, b"\x00" * 30)),
            Undecoded("ip protocol 132", "unsupported"),
        ),
        (1, _ethernet(0x0800, _ipv4(6, b"\x00" * 10)), Undecoded("tcp", "truncated")),
        (1, _ethernet(0x0800, b"\x45\x00"), Undecoded("ipv4", "truncated")),
        (1, _ethernet(0x0800, b"\x55" + b"\x00" * 30), Undecoded("ipv4", "malformed")),
        (1, _ethernet(0x8100, b"\x00\x01"), Undecoded("vlan", "truncated")),
        (1, _ethernet(0x0806, b"\x00" * 28), None),  # ARP
        (1, _ethernet(0x88CC, b"\x00" * 28), None),  # LLDP
        (1, _ethernet(0x0800, _ipv4(1, b"\x08\x00" + b"\x00" * 30)), None),  # ICMP
        (1, _ethernet(40, b"\x42\x42\x03" + b"\x00" * 37), None),  # 802.3 + LLC: STP
        (105, bytes([0x80, 0]) + b"\x00" * 30, None),  # beacon
        (105, bytes([0x08, 0x41]) + b"\x00" * 30, Undecoded("802.11 protected", "encrypted")),
    ],
)
def test_what_cannot_be_read_is_named(linktype: int, frame: bytes, expected):
    assert decode_frame(linktype, frame, len(frame)) == expected


def test_nesting_deeper_than_the_bound_is_named():
    tags = b"".join(struct.pack("!HH", 0x8100, 100) for _ in range(MAX_NESTING + 1))
    frame = ETHERNET_HEADER + tags + struct.pack("!H", 0x0800) + _ipv4(17, b"\x00" * 8)
    assert decode_frame(1, frame, len(frame)) == Undecoded("ethertype 0x8100", "too_deep")
    shallow = ETHERNET_HEADER + tags[: 4 * 4] + struct.pack("!H", 0x0800) + _ipv4(17, bytes(8))
    assert isinstance(decode_frame(1, shallow, len(shallow)), Datagram)


def test_eapol_frame_keeps_its_macs():
    body = bytes.fromhex("010000050101000501")
    frame = bytes.fromhex("0180c20000032c3124c9f8e1") + b"\x88\x8e" + body
    decoded = decode_frame(1, frame, len(frame))
    assert decoded == EapolFrame(
        bytes.fromhex("0180c2000003"), bytes.fromhex("2c3124c9f8e1"), 0, body[4:], 0
    )


def test_reassembled_fragments_decode_and_partial_ones_stay_pending():
    segment = bytes.fromhex("c80e098b") + bytes(8) + bytes([0x50, 0x18]) + bytes(6) + b"x" * 100
    whole = _ipv4(6, segment)
    first = _ipv4(6, segment[:64], 0x2000)  # more fragments, offset 0
    second = _ipv4(6, segment[64:], 64 // 8)
    decoder = FrameDecoder()
    assert decoder.decode(101, first, len(first), 1.0) is None
    decoded = decoder.decode(101, second, len(second), 1.1)
    assert decoded == decode_frame(101, whole, len(whole))
    assert decoder.fragments.completed == 1
    assert decoder.decode(101, first, len(first), 2.0) is None  # sent again: never completes
    other = bytearray(first)
    other[4:6] = b"\x00\x02"  # another identification: another datagram, never completed
    assert decoder.decode(101, bytes(other), len(other), 2.0) is None
    decoder.finish()
    assert decoder.fragments.repeated == 1
    assert decoder.fragments.dropped == {"unfinished": 1}


LINKTYPES = [0, 1, 12, 14, 101, 105, 108, 113, 127, 192, 228, 229, 276]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(LINKTYPES), st.binary(max_size=200))
def test_random_bytes_never_raise(linktype: int, frame: bytes):
    FrameDecoder().decode(linktype, frame, len(frame), 0.0)


@pytest.fixture(scope="module")
def wrapped_frames(tmp_path_factory, traffic) -> list[tuple[int, bytes]]:
    """One real frame of each encapsulation (the phone's Certificate flight)."""
    folder = tmp_path_factory.mktemp("wrapped")
    frames = []
    for encapsulation in ENCAPSULATIONS.values():
        capture = _capture(folder, encapsulation, traffic)
        with CaptureReader(capture) as reader:
            records = list(reader)
        frames.append(max(((r[1], r[2]) for r in records), key=lambda r: len(r[1])))
    return frames


def test_every_cut_of_every_encapsulation_is_named_not_raised(wrapped_frames):
    """Truncated at every length (a snaplen inside any header): a result, never an exception."""
    for linktype, frame in wrapped_frames:
        for size in range(len(frame)):
            decode_frame(linktype, frame[:size], len(frame))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_real_frames_never_raise(wrapped_frames, data):
    linktype, frame = data.draw(st.sampled_from(wrapped_frames))
    position = data.draw(st.integers(0, len(frame) - 1))
    value = data.draw(st.integers(0, 255))
    damaged = frame[:position] + bytes([value]) + frame[position + 1 :]
    FrameDecoder().decode(linktype, damaged, len(damaged), 0.0)


def test_inner_endpoints_are_reported(traffic, tmp_path: Path):
    capture = _capture(tmp_path, ENCAPSULATIONS["gre-over-ipv6"], traffic)
    found, _ = capana_frames(capture)
    client = endpoint_text(*PHONE)
    assert any(carried.source == client for carried in found.values())
    server = endpoint_text(*CUCM)
    assert any(carried.destination == server for carried in found.values())


def test_ip_lengths_beyond_the_frame_on_the_wire_are_malformed():
    """A length no wire carried is not a snaplen cut: e.g. MPLS's guess of IPv4 was wrong."""
    ipv4 = bytearray(_ipv4(17, struct.pack("!HHHH", 5060, 5060, 8, 0)))
    ipv4[2:4] = (1000).to_bytes(2, "big")
    frame = _ethernet(0x0800, bytes(ipv4))
    assert decode_frame(1, frame, len(frame)) == Undecoded("ipv4", "malformed")
    assert isinstance(decode_frame(1, frame[:40], 1014), Undecoded)  # cut: truncated udp
    assert decode_frame(1, frame, 1014) == Datagram(
        bytes([10, 1, 1, 20]), 5060, bytes([10, 1, 1, 5]), 5060, b"", 0
    )
