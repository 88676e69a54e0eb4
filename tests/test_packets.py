"""A captured frame to its TCP segment (capana.decode), for every link type capana reads; the
endpoint helpers of capana.packets.

The frames are built by ``samplegen.wire`` around a real ClientHello; the few headers wire does
not make (IPv4 options, other IPv6 extension headers, fragments, ARP) are laid by hand here.
"""

from __future__ import annotations

import struct
from datetime import datetime, timezone

import pytest
from decoded import tcp_segment
from samplegen import wire
from test_tls import real_handshake

from capana import decode, packets
from capana.packets import FLAG_ACK, FLAG_SYN, endpoint, endpoint_text

CLIENT_V4, SERVER_V4 = ("10.1.1.20", 51234), ("10.1.1.5", 2443)
CLIENT_V6, SERVER_V6 = ("fd00:20::20", 51234), ("fd00:10::5", 2443)
WHEN = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)
SEQ, ACK = 0x1A2B3C4D, 0x6C000001


def client_hello() -> bytes:
    return real_handshake().flights[0].data


def tcp(client=CLIENT_V4, server=SERVER_V4, payload: bytes | None = None, flags="PA") -> bytes:
    payload = client_hello() if payload is None else payload
    return wire.tcp_header(client, server, SEQ, ACK, flags, payload)


def ip(
    client=CLIENT_V4, server=SERVER_V4, payload: bytes | None = None, flags="PA", **options
) -> bytes:
    segment = tcp(client, server, payload, flags)
    return wire.ip_packet(client[0], server[0], 6, segment, **options)


def packet(ip_bytes: bytes, client=CLIENT_V4, server=SERVER_V4) -> wire.Packet:
    return wire.Packet(wire.to_ns(WHEN), client[0], server[0], ip_bytes)


LINKS = {
    "ethernet": wire.Link(),
    "802.1q": wire.Link(vlans=(110,)),
    "qinq": wire.Link(vlans=(200, 110)),
    "sll": wire.Link("sll"),
    "sll2": wire.Link("sll2"),
    "raw": wire.Link("raw"),
    "bsd_loopback": wire.Link("null"),
}


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@pytest.mark.parametrize("link", LINKS)
def test_every_link_type_yields_the_segment(link, family):
    client, server = (CLIENT_V4, SERVER_V4) if family == "ipv4" else (CLIENT_V6, SERVER_V6)
    frame = LINKS[link].frame(packet(ip(client, server), client, server))
    segment = tcp_segment(LINKS[link].linktype, frame, len(frame))
    assert segment is not None
    assert segment.payload == client_hello()
    assert (segment.seq, segment.ack, segment.flags, segment.missing) == (SEQ, ACK, 0x18, 0)
    assert endpoint(segment.key) == client
    assert endpoint(segment.key, destination=True) == server
    assert segment.reverse_key == packets.reverse_key(segment.key)


@pytest.mark.parametrize(
    "linktype", [decode.LINKTYPE_RAW, decode.LINKTYPE_IPV4, decode.LINKTYPE_RAW_OLD]
)
def test_raw_ip_link_type_aliases(linktype):
    frame = ip()
    assert tcp_segment(linktype, frame, len(frame)).payload == client_hello()


def test_openbsd_loopback_header():
    frame = struct.pack(">I", 2) + ip()
    assert tcp_segment(decode.LINKTYPE_LOOP, frame, len(frame)).payload == client_hello()


def test_ethernet_padding_is_not_payload():
    """A bare ACK is padded to 60 bytes on Ethernet; the IP length says where data ends."""
    frame = wire.Link().frame(packet(ip(payload=b"", flags="A"))) + bytes(6)
    segment = tcp_segment(decode.LINKTYPE_ETHERNET, frame, len(frame))
    assert segment.payload == b""
    assert segment.flags == FLAG_ACK


def test_ipv4_options_are_skipped():
    """IHL 7: a Router Alert and padding before the TCP header."""
    options = bytes([148, 4, 0, 0]) + bytes([1, 1, 1, 0])  # Router Alert, NOP, NOP, NOP, EOL
    plain = ip()
    header = bytearray(plain[:20] + options)
    header[0] = 0x47
    header[2:4] = struct.pack(">H", len(plain) + len(options))
    frame = bytes(header) + plain[20:]
    assert tcp_segment(decode.LINKTYPE_RAW, frame, len(frame)).payload == client_hello()


def ipv6_with(extensions: list[tuple[int, bytes]], payload: bytes | None = None) -> bytes:
    """An IPv6 packet whose extension headers are (header type, body after the 2 fixed bytes)."""
    upper = tcp(CLIENT_V6, SERVER_V6, payload)
    chain = b""
    kinds = [kind for kind, _ in extensions] + [6]
    for (_, body), next_header in zip(extensions, kinds[1:], strict=True):
        chain += bytes([next_header]) + body
    base = wire.ip_packet(CLIENT_V6[0], SERVER_V6[0], 6, b"")
    header = bytearray(base[:40])
    header[4:6] = struct.pack(">H", len(chain) + len(upper))
    header[6] = kinds[0]
    return bytes(header) + chain + upper


def options_header(units: int) -> bytes:
    """Body of a hop-by-hop/destination/routing header of (units + 1) * 8 bytes (PadN)."""
    size = (units + 1) * 8
    return bytes([units, 1, size - 4]) + bytes(size - 4)


HOP_BY_HOP = (0, options_header(0))
DESTINATION = (60, options_header(1))
ROUTING = (43, bytes([0, 0, 0]) + bytes(4))  # type 0, segments left 0, 8 bytes
ATOMIC_FRAGMENT = (44, bytes([0, 0, 0]) + bytes(4))  # offset 0, M=0 (RFC 6946)
AUTHENTICATION = (51, bytes([4, 0, 0]) + bytes(4 + 4 + 12))  # (4 + 2) * 4 = 24 bytes


@pytest.mark.parametrize(
    "extensions",
    [
        [HOP_BY_HOP],
        [DESTINATION],
        [ROUTING],
        [ATOMIC_FRAGMENT],
        [AUTHENTICATION],
        [HOP_BY_HOP, ROUTING, ATOMIC_FRAGMENT, AUTHENTICATION, DESTINATION],
    ],
    ids=["hop_by_hop", "destination", "routing", "atomic_fragment", "ah", "all"],
)
def test_ipv6_extension_headers_are_walked(extensions):
    frame = ipv6_with(extensions)
    segment = tcp_segment(decode.LINKTYPE_RAW, frame, len(frame))
    assert segment is not None
    assert segment.payload == client_hello()
    assert endpoint(segment.key) == CLIENT_V6


def test_ipv6_destination_options_from_wire():
    frame = ip(CLIENT_V6, SERVER_V6, ipv6_ext=True)
    assert frame[6] == 60
    assert tcp_segment(decode.LINKTYPE_RAW, frame, len(frame)).payload == client_hello()


def test_ipv6_fragment_is_not_a_segment():
    fragment = (44, bytes([0]) + struct.pack(">HI", 0x0001, 7))  # offset 0, more fragments
    frame = ipv6_with([fragment])
    assert tcp_segment(decode.LINKTYPE_RAW, frame, len(frame)) is None


@pytest.mark.parametrize("flags_and_offset", [0x2000, 0x0010], ids=["first", "later"])
def test_ipv4_fragment_is_not_a_segment(flags_and_offset):
    frame = bytearray(ip())
    frame[6:8] = struct.pack(">H", flags_and_offset)
    assert tcp_segment(decode.LINKTYPE_RAW, bytes(frame), len(frame)) is None


def test_udp_arp_and_junk_are_not_segments():
    udp = wire.udp_packet(CLIENT_V4, ("10.1.1.5", 5060), b"OPTIONS sip:x SIP/2.0", 0)
    ethernet_udp = wire.Link().frame(udp)
    arp = bytes(6) * 2 + b"\x08\x06" + bytes.fromhex("0001080006040001") + bytes(20)
    for frame in (ethernet_udp, arp, b"\x00" * 10, b""):
        assert tcp_segment(decode.LINKTYPE_ETHERNET, frame, len(frame)) is None
    assert tcp_segment(147, ip(), len(ip())) is None  # a user link type capana does not read


def test_snaplen_cut_segment_says_how_many_bytes_are_missing():
    frame = wire.Link().frame(packet(ip()))
    kept = frame[:200]
    segment = tcp_segment(decode.LINKTYPE_ETHERNET, kept, len(frame))
    assert segment.payload == client_hello()[: 200 - 14 - 20 - 20]
    assert segment.missing == len(frame) - 200


def test_snaplen_cut_inside_the_tcp_header_is_not_a_segment():
    frame = wire.Link().frame(packet(ip()))
    assert tcp_segment(decode.LINKTYPE_ETHERNET, frame[:40], len(frame)) is None


def test_syn_flags():
    frame = ip(payload=b"", flags="S")
    segment = tcp_segment(decode.LINKTYPE_RAW, frame, len(frame))
    assert segment.flags == FLAG_SYN


@pytest.mark.parametrize(
    ("address", "port", "text"),
    [("10.1.1.5", 2443, "10.1.1.5:2443"), ("fd00::1", 5061, "[fd00::1]:5061")],
)
def test_endpoint_text(address, port, text):
    assert endpoint_text(address, port) == text


def test_ipv4_total_length_zero_is_tso_and_takes_the_captured_length():
    """TCP segmentation offload: the capture sees IPv4 total length 0; the payload is all there."""
    packet = bytearray(ip())
    packet[2:4] = b"\0\0"
    segment = tcp_segment(decode.LINKTYPE_RAW, bytes(packet), len(packet))
    assert segment is not None
    assert segment.payload == client_hello()
    assert segment.missing == 0
