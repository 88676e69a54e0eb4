"""Bytes on the wire: TCP conversations built segment by segment, framed and written to captures.

Three layers, each usable alone:

* :class:`TcpConversation` turns what each side sent (e.g. ``tlsrun`` flights) into TCP segments
  with correct sequence numbers, ACKs, SYN/FIN/RST, and knobs that damage the stream the way real
  captures are damaged (reordering, retransmission, overlap, a lost segment, no SYN, ...).
* :class:`Packet` is one IPv4/IPv6 packet with a nanosecond timestamp; :class:`Link` frames it
  for a link type (Ethernet with 802.1Q/QinQ tags, Linux SLL/SLL2, raw IP, BSD loopback).
* :func:`write_pcap` and :func:`write_pcapng` write packets (pcapng: several interfaces and an
  optional Decryption Secrets Block); a ``.gz`` suffix gzips the file.

Everything is plain ``struct``: building a million background packets for a benchmark must not
go through a per-packet dissector.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import ipaddress
import itertools
import struct
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Literal

Sender = Literal["client", "server"]
Endpoint = tuple[str, int]

# Link-layer header types (tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276

_PROTO_TCP = 6
_PROTO_UDP = 17
_IPV6_DEST_OPTS = 60
_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}
_NS = 1_000_000_000


# --- IP packets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """One IP packet (IPv4 or IPv6 header included) and when it was seen, in ns since 1970."""

    time_ns: int
    src: str
    dst: str
    ip: bytes

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ns / _NS, timezone.utc)

    @property
    def version(self) -> int:
        return self.ip[0] >> 4


def to_ns(moment: datetime) -> int:
    """A timezone-aware (or UTC naive) datetime as integer nanoseconds since the epoch."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``, as the 16-bit value to pack with "!H"."""
    if len(data) % 2:
        data += b"\0"
    total = sum(memoryview(data).cast("H"))  # native-order words; RFC 1071 allows either order
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    value = ~total & 0xFFFF
    return int.from_bytes(value.to_bytes(2, sys.byteorder), "big")


def ip_packet(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    ttl: int = 64,
    ident: int = 0,
    ipv6_ext: bool = False,
) -> bytes:
    """An IPv4 or IPv6 packet; ``ipv6_ext`` inserts a Destination Options header (PadN)."""
    src_addr, dst_addr = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if src_addr.version == 4:
        header = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(payload),
            ident & 0xFFFF,
            0x4000,
            ttl,
            proto,
            0,
            src_addr.packed,
            dst_addr.packed,
        )
        header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
        return header + payload
    next_header, body = proto, payload
    if ipv6_ext:
        # Destination Options: next header, length 0 (8 bytes), PadN option filling 6 bytes.
        body = struct.pack("!BBBB4x", proto, 0, 1, 4) + payload
        next_header = _IPV6_DEST_OPTS
    return (
        struct.pack("!IHBB", 0x60000000, len(body), next_header, ttl)
        + src_addr.packed
        + dst_addr.packed
        + body
    )


def _pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    src_addr, dst_addr = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if src_addr.version == 4:
        return src_addr.packed + dst_addr.packed + struct.pack("!xBH", proto, length)
    return src_addr.packed + dst_addr.packed + struct.pack("!I3xB", length, proto)


def tcp_header(
    src: Endpoint,
    dst: Endpoint,
    seq: int,
    ack: int,
    flags: str,
    payload: bytes,
    *,
    window: int = 64240,
    options: bytes = b"",
) -> bytes:
    """A TCP header plus payload with a correct checksum."""
    bits = sum(_FLAG_BITS[flag] for flag in flags)
    offset = (20 + len(options)) // 4
    header = (
        struct.pack(
            "!HHIIBBHHH",
            src[1],
            dst[1],
            seq % 2**32,
            ack % 2**32 if "A" in flags else 0,
            offset << 4,
            bits,
            window,
            0,
            0,
        )
        + options
    )
    segment = header + payload
    pseudo = _pseudo_header(src[0], dst[0], _PROTO_TCP, len(segment))
    value = checksum(pseudo + segment)
    return segment[:16] + struct.pack("!H", value) + segment[18:]


def udp_packet(src: Endpoint, dst: Endpoint, payload: bytes, time_ns: int) -> Packet:
    """One UDP datagram in an IP packet."""
    length = 8 + len(payload)
    datagram = struct.pack("!HHHH", src[1], dst[1], length, 0) + payload
    value = checksum(_pseudo_header(src[0], dst[0], _PROTO_UDP, length) + datagram) or 0xFFFF
    datagram = datagram[:6] + struct.pack("!H", value) + datagram[8:]
    return Packet(time_ns, src[0], dst[0], ip_packet(src[0], dst[0], _PROTO_UDP, datagram))


# --- TCP conversations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One TCP segment of a conversation; ``offset`` is its place in the sender's byte stream."""

    sender: Sender
    flags: str
    seq: int
    ack: int
    payload: bytes
    time_ns: int
    offset: int = 0


@dataclass
class TcpConversation:
    """A TCP connection between a client and a server, built up segment by segment.

    The ``segments`` list is the capture order; the damage knobs edit it in place and keep each
    position's timestamp, so the capture stays in time order.

        conv = TcpConversation(("10.1.1.20", 51234), ("10.1.1.5", 2443), start)
        conv.open()
        conv.send("client", client_hello)
        conv.swap(*conv.data_indices("server")[:2])
        packets = conv.packets()
    """

    client: Endpoint
    server: Endpoint
    start: datetime
    client_isn: int = 0x1000_0000
    server_isn: int = 0x5000_0000
    mss: int = 1460
    rtt_ns: int = 2_000_000
    gap_ns: int = 40_000
    ipv6_ext: bool = False
    segments: list[Segment] = field(default_factory=list, init=False)
    _sent: dict[str, bytearray] = field(init=False)
    _syn: dict[str, int] = field(init=False)  # 1 once the side's SYN took a sequence number
    _fin: dict[str, int] = field(init=False)
    _clock: int = field(init=False)

    def __post_init__(self) -> None:
        self._sent = {"client": bytearray(), "server": bytearray()}
        self._syn = {"client": 0, "server": 0}
        self._fin = {"client": 0, "server": 0}
        self._clock = to_ns(self.start)

    # -- building --

    def open(self) -> None:
        """The three-way handshake (SYN, SYN-ACK, ACK) with an MSS option."""
        mss_option = struct.pack("!BBH", 2, 4, self.mss)
        self._emit("client", "S", b"", options=mss_option)
        self._syn["client"] = 1
        self._tick(self.rtt_ns // 2)
        self._emit("server", "SA", b"", options=mss_option)
        self._syn["server"] = 1
        self._tick(self.rtt_ns // 2)
        self._emit("client", "A", b"")

    def send(
        self, sender: Sender, data: bytes, *, cuts: Iterable[int] = (), ack: bool = True
    ) -> None:
        """``data`` from ``sender`` in segments of at most MSS bytes, also cut at ``cuts``.

        ``cuts`` are offsets into ``data`` (e.g. mid-way through a TLS record header). The peer
        ACKs every second segment and the last one unless ``ack`` is False.
        """
        self._tick(self.rtt_ns // 2)
        bounds = sorted({0, len(data), *(c for c in cuts if 0 < c < len(data))})
        pieces = []
        for lo, hi in itertools.pairwise(bounds):
            pieces += [data[i : min(i + self.mss, hi)] for i in range(lo, hi, self.mss)]
        for count, piece in enumerate(pieces, 1):
            self._emit(sender, "PA" if count == len(pieces) else "A", piece)
            if ack and (count % 2 == 0 or count == len(pieces)):
                self._emit(_peer(sender), "A", b"")
            self._tick(self.gap_ns)

    def close(self, initiator: Sender = "client") -> None:
        """An orderly close: FIN from ``initiator``, FIN-ACK back, final ACK."""
        other = _peer(initiator)
        self._tick(self.rtt_ns // 2)
        self._emit(initiator, "FA", b"")
        self._fin[initiator] = 1
        self._tick(self.rtt_ns // 2)
        self._emit(other, "FA", b"")
        self._fin[other] = 1
        self._tick(self.rtt_ns // 2)
        self._emit(initiator, "A", b"")

    def reset(self, sender: Sender) -> None:
        """An abortive close: RST from ``sender``."""
        self._tick(self.rtt_ns // 2)
        self._emit(sender, "RA", b"")

    # -- damage --

    def data_indices(self, sender: Sender) -> list[int]:
        """Positions in ``segments`` of the segments carrying ``sender``'s data."""
        return [i for i, seg in enumerate(self.segments) if seg.sender == sender and seg.payload]

    def indices_in(self, sender: Sender, start: int, end: int) -> list[int]:
        """Positions of ``sender``'s data segments that begin within stream bytes [start, end)."""
        return [i for i in self.data_indices(sender) if start <= self.segments[i].offset < end]

    def swap(self, i: int, j: int) -> None:
        """Capture segments ``i`` and ``j`` in each other's place (out-of-order arrival)."""
        a, b = self.segments[i], self.segments[j]
        self.segments[i] = replace(b, time_ns=a.time_ns)
        self.segments[j] = replace(a, time_ns=b.time_ns)

    def retransmit(self, i: int, *, after: int = 2, delay_ns: int = 200_000_000) -> None:
        """Segment ``i`` sent again ``after`` positions later, after an RTO of ``delay_ns``.

        Everything captured after the retransmission moves ``delay_ns`` later with it.
        """
        where = min(i + 1 + after, len(self.segments))
        when = self.segments[where - 1].time_ns + delay_ns
        for k in range(where, len(self.segments)):
            self.segments[k] = replace(
                self.segments[k], time_ns=self.segments[k].time_ns + delay_ns
            )
        self._insert(where, replace(self.segments[i], time_ns=when))

    def duplicate(self, i: int) -> None:
        """Segment ``i`` captured twice in a row (a SPAN port seeing it on two VLANs)."""
        self._insert(i + 1, replace(self.segments[i], time_ns=self.segments[i].time_ns + 1000))

    def overlap(self, i: int, *, back: int, length: int, same: bool = True) -> None:
        """After segment ``i``, a segment starting ``back`` bytes before its end, ``length`` long.

        ``same=False`` fills the overlapping part with different bytes (an inconsistent overlap).
        """
        seg = self.segments[i]
        stream = self._sent[seg.sender]
        start = seg.offset + len(seg.payload) - back
        payload = bytes(stream[start : start + length])
        if not same:
            payload = bytes(byte ^ 0x5A for byte in payload[:back]) + payload[back:]
        base = self._isn(seg.sender) + self._syn[seg.sender]
        extra = replace(
            seg,
            seq=(base + start) % 2**32,
            payload=payload,
            offset=start,
            time_ns=seg.time_ns + 1000,
        )
        self._insert(i + 1, extra)

    def drop(self, i: int) -> None:
        """Segment ``i`` never reached the capture point: a real gap in the stream."""
        del self.segments[i]

    def midstream(self) -> None:
        """Remove the three-way handshake: the capture starts after the connection was set up."""
        self.segments[:] = [seg for seg in self.segments if "S" not in seg.flags]
        if self.segments and not self.segments[0].payload:
            del self.segments[0]

    # -- output --

    def packets(self) -> list[Packet]:
        """The segments as IP packets, timestamps forced strictly increasing in list order."""
        out, last = [], 0
        for number, seg in enumerate(self.segments):
            last = max(seg.time_ns, last + 1000)
            src, dst = (
                (self.client, self.server) if seg.sender == "client" else (self.server, self.client)
            )
            options = struct.pack("!BBH", 2, 4, self.mss) if "S" in seg.flags else b""
            tcp = tcp_header(src, dst, seg.seq, seg.ack, seg.flags, seg.payload, options=options)
            ip = ip_packet(src[0], dst[0], _PROTO_TCP, tcp, ident=number, ipv6_ext=self.ipv6_ext)
            out.append(Packet(last, src[0], dst[0], ip))
        return out

    def sent(self, sender: Sender) -> bytes:
        """The whole byte stream ``sender`` sent (what a perfect reassembly yields)."""
        return bytes(self._sent[sender])

    # -- internals --

    def _isn(self, sender: Sender) -> int:
        return self.client_isn if sender == "client" else self.server_isn

    def _next_seq(self, sender: Sender) -> int:
        used = self._syn[sender] + len(self._sent[sender]) + self._fin[sender]
        return (self._isn(sender) + used) % 2**32

    def _emit(self, sender: Sender, flags: str, payload: bytes, *, options: bytes = b"") -> None:
        peer = _peer(sender)
        ack = self._next_seq(peer) if "A" in flags else 0
        segment = Segment(
            sender,
            flags,
            self._next_seq(sender),
            ack,
            payload,
            self._clock,
            len(self._sent[sender]),
        )
        self.segments.append(segment)
        self._sent[sender] += payload
        self._tick(1000)

    def _insert(self, where: int, segment: Segment) -> None:
        self.segments.insert(where, segment)

    def _tick(self, ns: int) -> None:
        self._clock += ns


def _peer(sender: Sender) -> Sender:
    return "server" if sender == "client" else "client"


# --- background traffic ---------------------------------------------------------------------------


def rtp_stream(
    src: Endpoint,
    dst: Endpoint,
    start: datetime,
    *,
    count: int = 50,
    ssrc: int = 0x1234ABCD,
    ptime_ns: int = 20_000_000,
) -> list[Packet]:
    """A G.711 RTP stream: ``count`` packets of 160 bytes every ``ptime_ns``."""
    begin = to_ns(start)
    packets = []
    for n in range(count):
        header = struct.pack("!BBHII", 0x80, 0x00 if n else 0x80, n & 0xFFFF, n * 160, ssrc)
        packets.append(udp_packet(src, dst, header + bytes([0xD5]) * 160, begin + n * ptime_ns))
    return packets


def dns_exchange(
    client: Endpoint, server: Endpoint, start: datetime, name: str, answer: str = "10.1.1.5"
) -> list[Packet]:
    """A DNS A query and its answer."""
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    question = qname + struct.pack("!HH", 1, 1)
    query = struct.pack("!HHHHHH", 0x2B7C, 0x0100, 1, 0, 0, 0) + question
    record = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + ipaddress.ip_address(answer).packed
    response = struct.pack("!HHHHHH", 0x2B7C, 0x8180, 1, 1, 0, 0) + question + record
    begin = to_ns(start)
    return [
        udp_packet(client, server, query, begin),
        udp_packet(server, client, response, begin + 800_000),
    ]


def plain_tcp(
    client: Endpoint, server: Endpoint, start: datetime, exchange: Sequence[tuple[Sender, bytes]]
) -> list[Packet]:
    """A whole non-TLS TCP connection (e.g. SCCP on 2000, HTTP on 6970) with the given data."""
    conv = TcpConversation(client, server, start)
    conv.open()
    for sender, data in exchange:
        conv.send(sender, data)
    conv.close()
    return conv.packets()


def merge(*streams: Iterable[Packet]) -> list[Packet]:
    """Several packet lists as one capture, in time order (stable for equal times)."""
    return list(heapq.merge(*streams, key=lambda packet: packet.time_ns))


# --- link-layer framing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """How packets are framed on one capture interface.

    ``kind``: "ethernet" (``vlans`` outermost first: one tag is 802.1Q, two are QinQ with an
    802.1ad outer tag), "sll", "sll2", "raw" or "null" (BSD loopback). ``macs`` maps IP
    addresses to MAC addresses ("2C:31:24:C9:F8:E1"); others get a stable made-up MAC.
    ``capture_host`` is the address whose packets SLL marks as outgoing.
    """

    kind: str = "ethernet"
    vlans: tuple[int, ...] = ()
    macs: Mapping[str, str] = field(default_factory=dict)
    capture_host: str | None = None
    name: str = "eth0"

    @property
    def linktype(self) -> int:
        return {
            "ethernet": LINKTYPE_ETHERNET,
            "sll": LINKTYPE_LINUX_SLL,
            "sll2": LINKTYPE_LINUX_SLL2,
            "raw": LINKTYPE_RAW,
            "null": LINKTYPE_NULL,
        }[self.kind]

    def frame(self, packet: Packet) -> bytes:
        """``packet`` with this link's header in front."""
        ethertype = 0x0800 if packet.version == 4 else 0x86DD
        if self.kind == "raw":
            return packet.ip
        if self.kind == "null":
            return struct.pack("<I", 2 if packet.version == 4 else 30) + packet.ip
        src_mac = self._mac(packet.src)
        outgoing = 4 if packet.src == self.capture_host else 0
        if self.kind == "sll":
            return struct.pack("!HHH6s2xH", outgoing, 1, 6, src_mac, ethertype) + packet.ip
        if self.kind == "sll2":
            return struct.pack("!H2xIHBB6s2x", ethertype, 2, 1, outgoing, 6, src_mac) + packet.ip
        tags = b""
        for depth, vlan in enumerate(self.vlans):
            outer = depth == 0 and len(self.vlans) > 1
            tags += struct.pack("!H", 0x88A8 if outer else 0x8100) + struct.pack("!H", vlan)
        return self._mac(packet.dst) + src_mac + tags + struct.pack("!H", ethertype) + packet.ip

    def _mac(self, address: str) -> bytes:
        if address in self.macs:
            return bytes.fromhex(self.macs[address].replace(":", "").replace("-", ""))
        digest = hashlib.sha256(address.encode()).digest()
        return bytes([0x02]) + digest[:5]  # locally administered


# --- capture files --------------------------------------------------------------------------------


def write_pcap(
    path: Path | str,
    packets: Iterable[Packet],
    *,
    link: Link | None = None,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
) -> Path:
    """A classic pcap file; packets longer than ``snaplen`` are cut (original length kept)."""
    link = link or Link()
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    with _open(path) as out:
        out.write(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, link.linktype))
        for packet in packets:
            data = link.frame(packet)
            seconds, frac = divmod(packet.time_ns, _NS)
            frac = frac if nanosecond else frac // 1000
            kept = data[:snaplen]
            out.write(struct.pack(order + "IIII", seconds, frac, len(kept), len(data)) + kept)
    return Path(path)


def write_pcapng(
    path: Path | str,
    interfaces: Sequence[tuple[Link, Iterable[Packet]]],
    *,
    keylog: str | None = None,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
) -> Path:
    """A pcapng file: one interface per ``(link, packets)``, packets merged in time order.

    ``keylog`` (NSS key log text) is stored in a Decryption Secrets Block before the packets,
    so Wireshark decrypts the TLS sessions without a separate file.
    """
    order = ">" if big_endian else "<"
    tagged = [_tagged(index, packets) for index, (_, packets) in enumerate(interfaces)]
    with _open(path) as out:
        out.write(_block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)))
        for link, _ in interfaces:
            out.write(_block(order, 1, _interface_body(order, link, nanosecond, snaplen)))
        if keylog:
            secrets = keylog.encode()
            body = struct.pack(order + "II", 0x544C534B, len(secrets)) + _pad(secrets)
            out.write(_block(order, 0x0A, body))
        links = [link for link, _ in interfaces]
        for time_ns, index, packet in heapq.merge(*tagged, key=lambda item: item[:2]):
            data = links[index].frame(packet)
            stamp = time_ns if nanosecond else time_ns // 1000
            kept = data[:snaplen]
            body = struct.pack(
                order + "IIIII", index, stamp >> 32, stamp & 0xFFFFFFFF, len(kept), len(data)
            ) + _pad(kept)
            out.write(_block(order, 6, body))
    return Path(path)


def _tagged(index: int, packets: Iterable[Packet]) -> Iterator[tuple[int, int, Packet]]:
    return ((packet.time_ns, index, packet) for packet in packets)


def _interface_body(order: str, link: Link, nanosecond: bool, snaplen: int) -> bytes:
    name = link.name.encode()
    options = struct.pack(order + "HH", 2, len(name)) + _pad(name)
    if nanosecond:
        options += struct.pack(order + "HHB3x", 9, 1, 9)
    options += struct.pack(order + "HH", 0, 0)
    return struct.pack(order + "HHI", link.linktype, 0, snaplen) + options


def _block(order: str, kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack(order + "II", kind, length) + body + struct.pack(order + "I", length)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _open(path: Path | str) -> BinaryIO:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "wb", mtime=0)  # reproducible bytes
    return path.open("wb")
