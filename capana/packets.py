"""From a captured frame to its TCP segment: link layer, IPv4/IPv6, TCP. Nothing else.

This runs once per packet of a capture that is mostly not TLS, so a packet that is not TCP costs
a few byte comparisons and a segment costs one tuple; no per-packet objects beyond that.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator, Mapping
from enum import Enum
from typing import Final, Literal, NamedTuple

from capana.capture import Packet

# Link types (tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_OPENBSD = 12
LINKTYPE_RAW_OLD = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# The link types whose frames capana decodes; packets of any other are skipped.
DECODED_LINKTYPES = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW_OPENBSD,
        LINKTYPE_RAW_OLD,
        LINKTYPE_RAW,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
    }
)

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})
IPPROTO_TCP = 6
IPPROTO_UDP = 17
# Untagged Ethernet + IPv4 without options + TCP without options: the shortest TCP frame.
ETHERNET_IPV4_TCP_MIN = 14 + 20 + 20
# IPv6 extension headers that can stand before TCP: hop-by-hop, routing, destination options,
# fragment and authentication header.
_IPV6_EXTENSIONS = frozenset({0, 43, 60, 44, 51})
_MAX_VLAN_TAGS = 4

FLAG_FIN = 0x01
FLAG_SYN = 0x02
FLAG_RST = 0x04
FLAG_ACK = 0x10
_OPEN_OR_CLOSE = FLAG_SYN | FLAG_FIN | FLAG_RST


class _Flow(Enum):
    SKIPPED = 0


# What a flow table holds for a TCP flow it decided not to follow (its first bytes were not TLS).
SKIPPED_FLOW: Final = _Flow.SKIPPED
SkippedFlow = Literal[_Flow.SKIPPED]


def worth_decoding(
    records: Iterable[Packet], flows: Mapping[bytes, object], udp_port_high_bytes: bytes
) -> Iterator[Packet]:
    """The packets that can matter, dropping the others after a few byte comparisons.

    The fast path covers untagged Ethernet + IPv4 without options, where the TCP segment key
    (addresses + ports) is bytes 26..38: a packet that is neither TCP nor UDP with a port whose
    high byte is in ``udp_port_high_bytes``, and a segment without SYN, FIN or RST that belongs
    to a flow ``flows`` marks SKIPPED_FLOW (one dict lookup) or carries no payload. Every other
    packet is yielded for the full decode.
    """
    for record in records:
        frame = record[2]
        if (
            record[1] == LINKTYPE_ETHERNET
            and len(frame) >= ETHERNET_IPV4_TCP_MIN
            and frame[12] == 0x08
            and frame[13] == 0x00
            and frame[14] == 0x45
        ):
            if frame[23] != IPPROTO_TCP:
                if frame[23] == IPPROTO_UDP and (
                    frame[34] in udp_port_high_bytes or frame[36] in udp_port_high_bytes
                ):
                    yield record
                continue
            if not frame[47] & _OPEN_OR_CLOSE and (
                flows.get(frame[26:38]) is SKIPPED_FLOW
                or 0 < (frame[16] << 8 | frame[17]) <= 20 + (frame[46] >> 4) * 4
            ):
                continue
        yield record


class TcpSegment(NamedTuple):
    """One TCP segment. ``key`` is source address + destination address + ports, as bytes."""

    key: bytes
    reverse_key: bytes
    seq: int
    ack: int
    flags: int
    payload: bytes
    missing: int  # payload bytes the capture did not keep (snaplen)


def ethernet_payload(frame: bytes) -> tuple[int, int]:
    """(ethertype, offset of the payload) of an Ethernet frame behind any 802.1Q/QinQ tags.

    (-1, -1) for a frame too short or tagged more deeply than _MAX_VLAN_TAGS.
    """
    offset = 12
    for _ in range(_MAX_VLAN_TAGS + 1):
        if len(frame) < offset + 2:
            return -1, -1
        ethertype = (frame[offset] << 8) | frame[offset + 1]
        if ethertype not in _VLAN_ETHERTYPES:
            return ethertype, offset + 2
        offset += 4
    return -1, -1


def ip_offset(linktype: int, frame: bytes) -> int:
    """Where the IP header starts in ``frame``, or -1 when the frame carries no IP."""
    if linktype == LINKTYPE_ETHERNET:
        ethertype, offset = ethernet_payload(frame)
        return offset if ethertype in (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6) else -1
    if linktype in (
        LINKTYPE_RAW,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_RAW_OPENBSD,
        LINKTYPE_RAW_OLD,
    ):
        return 0
    if linktype == LINKTYPE_LINUX_SLL:
        return 16
    if linktype == LINKTYPE_LINUX_SLL2:
        return 20
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return 4
    return -1


def decode_tcp(linktype: int, frame: bytes, wire_length: int) -> TcpSegment | None:
    """The TCP segment in ``frame``, or None for anything else (ARP, UDP, fragments, junk)."""
    offset = ip_offset(linktype, frame)
    if offset < 0 or len(frame) < offset + 20:
        return None
    version = frame[offset] >> 4
    if version == 4:
        return _tcp_over_ipv4(frame, offset, wire_length)
    if version == 6:
        return _tcp_over_ipv6(frame, offset, wire_length)
    return None


def _tcp_over_ipv4(frame: bytes, ip: int, wire_length: int) -> TcpSegment | None:
    if frame[ip + 9] != IPPROTO_TCP:
        return None
    # A fragment (offset set, or more-fragments) is not a whole segment; TCP avoids them.
    if (frame[ip + 6] & 0x3F) or frame[ip + 7]:
        return None
    header = (frame[ip] & 0x0F) * 4
    total = (frame[ip + 2] << 8) | frame[ip + 3]
    if total == 0:  # TCP segmentation offload: the NIC fills it in after the capture
        total = wire_length - ip
    addresses = frame[ip + 12 : ip + 20]
    return _tcp(frame, ip + header, ip + total, addresses[:4], addresses[4:], wire_length)


def _tcp_over_ipv6(frame: bytes, ip: int, wire_length: int) -> TcpSegment | None:
    if len(frame) < ip + 40:
        return None
    next_header = frame[ip + 6]
    end = ip + 40 + ((frame[ip + 4] << 8) | frame[ip + 5])
    offset = ip + 40
    while next_header in _IPV6_EXTENSIONS:
        if len(frame) < offset + 8:
            return None
        if next_header == 44:
            if (frame[offset + 2] << 8 | frame[offset + 3]) & 0xFFF9:
                return None  # a fragment
            length = 8
        elif next_header == 51:
            length = (frame[offset + 1] + 2) * 4
        else:
            length = (frame[offset + 1] + 1) * 8
        next_header = frame[offset]
        offset += length
    if next_header != IPPROTO_TCP:
        return None
    return _tcp(frame, offset, end, frame[ip + 8 : ip + 24], frame[ip + 24 : ip + 40], wire_length)


def _tcp(
    frame: bytes, tcp: int, ip_end: int, source: bytes, destination: bytes, wire_length: int
) -> TcpSegment | None:
    if len(frame) < tcp + 20:
        return None
    data = tcp + (frame[tcp + 12] >> 4) * 4
    if data < tcp + 20:
        return None
    # The IP length says where the payload ends; Ethernet padding beyond it is not payload.
    captured_end = min(ip_end, len(frame))
    missing = max(0, ip_end - captured_end) if wire_length > len(frame) else 0
    ports = frame[tcp : tcp + 4]
    return TcpSegment(
        source + destination + ports,
        destination + source + ports[2:] + ports[:2],
        int.from_bytes(frame[tcp + 4 : tcp + 8], "big"),
        int.from_bytes(frame[tcp + 8 : tcp + 12], "big"),
        frame[tcp + 13],
        frame[data:captured_end] if data < captured_end else b"",
        missing,
    )


def reverse_key(key: bytes) -> bytes:
    """The key of the other direction of the same connection."""
    size = (len(key) - 4) // 2
    return key[size : 2 * size] + key[:size] + key[-2:] + key[-4:-2]


def endpoint(key: bytes, destination: bool = False) -> tuple[str, int]:
    """``(address text, port)`` of the source (or destination) of a segment key."""
    size = (len(key) - 4) // 2
    raw = key[size : 2 * size] if destination else key[:size]
    port_at = len(key) - (2 if destination else 4)
    port = int.from_bytes(key[port_at : port_at + 2], "big")
    family = socket.AF_INET if size == 4 else socket.AF_INET6
    return socket.inet_ntop(family, raw), port


def endpoint_text(address: str, port: int) -> str:
    """``10.1.1.5:2443`` or ``[fd00::1]:2443``."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class UdpDatagram(NamedTuple):
    """One UDP datagram (not a fragment): raw addresses (4 or 16 bytes), ports, payload."""

    source: bytes
    source_port: int
    destination: bytes
    destination_port: int
    payload: bytes


def decode_udp(linktype: int, frame: bytes, ports: frozenset[int]) -> UdpDatagram | None:
    """The UDP datagram in ``frame`` if either port is in ``ports`` (IPv4, or IPv6 without
    extension headers), else None. Costs a few comparisons for any other frame.
    """
    ip = ip_offset(linktype, frame)
    if ip < 0 or len(frame) < ip + 28:
        return None
    if frame[ip] >> 4 == 4:
        if frame[ip + 9] != IPPROTO_UDP or (frame[ip + 6] & 0x3F) or frame[ip + 7]:
            return None
        udp = ip + (frame[ip] & 0x0F) * 4
    elif frame[ip] >> 4 == 6 and frame[ip + 6] == IPPROTO_UDP:
        udp = ip + 40
    else:
        return None
    if len(frame) < udp + 8:
        return None
    source_port = (frame[udp] << 8) | frame[udp + 1]
    destination_port = (frame[udp + 2] << 8) | frame[udp + 3]
    if source_port not in ports and destination_port not in ports:
        return None
    if udp == ip + 40:
        source, destination = frame[ip + 8 : ip + 24], frame[ip + 24 : ip + 40]
    else:
        source, destination = frame[ip + 12 : ip + 16], frame[ip + 16 : ip + 20]
    end = min(len(frame), udp + ((frame[udp + 4] << 8) | frame[udp + 5]))
    return UdpDatagram(source, source_port, destination, destination_port, frame[udp + 8 : end])


def address_text(raw: bytes) -> str:
    """``10.1.1.5`` or ``fd00::1`` from 4 or 16 raw bytes."""
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
