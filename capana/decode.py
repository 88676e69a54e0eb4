"""From a captured frame to what it carries innermost: a TCP segment, a UDP datagram, an EAPOL
frame, an IP fragment, or the name of the encapsulation that could not be read.

Every header is a parser in a table keyed by what names it: the link type, the ethertype (also
behind VLAN tags, MPLS, PPPoE, GRE, Geneve, SLL), the IP protocol (also IPv6 extension headers),
the UDP port of a tunnel (VXLAN, Geneve, GTP-U, CAPWAP data). A parser reads its header and hands
the rest to the next table, so any nesting decodes, up to MAX_NESTING headers. Addresses and
ports are the innermost ones. A frame is never dropped silently: what carries no IP (ARP, LLDP,
ICMP, 802.11 management) decodes to None, anything else that cannot be read to :class:`Undecoded`
naming the header and why, for the caller to count.

Ethernet + IPv4, untagged or behind one 802.1Q tag, skips the tables: it is most of any
capture (see bench/decode.py). Before any of it, :func:`worth_decoding` drops most frames of a
plain Ethernet/IPv4 capture that cannot matter after a few byte comparisons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableSet
from typing import Literal, NamedTuple

from capana.capture import Packet
from capana.ipfrag import Fragment, IpReassembler, Reassembled
from capana.packets import FLAG_FIN, FLAG_RST, FLAG_SYN, SKIPPED_FLOW, TcpSegment

IPPROTO_TCP = 6
IPPROTO_UDP = 17

# Headers read from the start of a frame to its transport header, tags and labels included.
MAX_NESTING = 24

# Link types (tcpdump.org/linktypes.html) and what their frames start with.
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_OPENBSD = 12
LINKTYPE_RAW_OLD = 14
LINKTYPE_RAW = 101
LINKTYPE_IEEE802_11 = 105
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IEEE802_11_RADIOTAP = 127
LINKTYPE_PPI = 192
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_EAPOL = 0x888E
ETHERTYPE_TRANSPARENT_BRIDGING = 0x6558  # GRE and Geneve payload: an Ethernet frame
ETHERTYPE_ERSPAN_2 = 0x88BE  # also type I, which has no GRE sequence number
ETHERTYPE_ERSPAN_3 = 0x22EB
ETHERTYPE_CISCO_METADATA = 0x8909

# UDP ports of the tunnels decoded (a datagram to or from one is looked into).
UDP_PORT_VXLAN = 4789
UDP_PORT_GENEVE = 6081
UDP_PORT_GTP_U = 2152
UDP_PORT_CAPWAP_DATA = 5247

# Carried on the link but never IP: these decode to None rather than to Undecoded.
_NOT_IP_ETHERTYPES = frozenset(
    {
        0x0806,  # ARP
        0x8035,  # RARP
        0x0842,  # Wake-on-LAN
        0x8808,  # Ethernet flow control
        0x8809,  # slow protocols (LACP)
        0x8863,  # PPPoE discovery
        0x88CC,  # LLDP
        0x88F7,  # PTP
        0x8902,  # 802.1ag CFM
        0x9000,  # loopback (configuration testing)
        0x893A,  # IEEE 1905.1
        0x88E1,  # HomePlug
    }
)
_NOT_IP_PROTOCOLS = frozenset(
    {
        1,  # ICMP
        2,  # IGMP
        58,  # ICMPv6
        59,  # IPv6 no next header
        88,  # EIGRP
        89,  # OSPF
        103,  # PIM
        112,  # VRRP
    }
)

UndecodedReason = Literal["unsupported", "truncated", "malformed", "encrypted", "too_deep"]


class Datagram(NamedTuple):
    """One UDP datagram: raw addresses (4 or 16 bytes), ports, payload, and the payload bytes the
    snaplen cut (``missing``)."""

    source: bytes
    source_port: int
    destination: bytes
    destination_port: int
    payload: bytes
    missing: int


class EapolFrame(NamedTuple):
    """One EAPOL frame (802.1X): its MAC addresses, packet type and body."""

    destination: bytes
    source: bytes
    packet_type: int
    body: bytes
    missing: int


class Undecoded(NamedTuple):
    """A frame decoding stopped in: which header (``layer``) and why."""

    layer: str
    reason: UndecodedReason


Decoded = TcpSegment | Datagram | EapolFrame | Fragment | Undecoded | None


class _NotTunnel:
    """A datagram on a tunnel's port whose payload is not that tunnel: keep it as a datagram."""


_NOT_TUNNEL = _NotTunnel()

# Parser signatures. Every parser takes the frame, where its header starts, where the bytes of
# the layer around it end on the wire (past len(frame) when the snaplen cut it), and the number
# of headers read before it. Link-layer parsers also take the frame's (destination, source) MAC
# addresses as 12 bytes, for EAPOL; IP-level parsers take the IP source and destination.
LinkParser = Callable[[bytes, int, int, int, bytes], Decoded]
IpParser = Callable[[bytes, int, int, int, bytes, bytes], Decoded]
TunnelParser = Callable[[bytes, int, int, int], Decoded | _NotTunnel]

_NO_MACS = bytes(12)


def decode_frame(linktype: int, frame: bytes, wire_length: int) -> Decoded:
    """What ``frame`` (of link type ``linktype``, ``wire_length`` bytes on the wire) carries."""
    if linktype == LINKTYPE_ETHERNET and len(frame) >= 38:
        if frame[12] == 8 and frame[13] == 0:
            return _ipv4(frame, 14, wire_length, 1, _NO_MACS)
        if frame[12] == 0x81 and frame[13] == 0 and frame[16] == 8 and frame[17] == 0:
            return _ipv4(frame, 18, wire_length, 2, _NO_MACS)  # one 802.1Q tag (voice VLAN)
    parser = _LINKTYPES.get(linktype)
    if parser is None:
        return Undecoded(f"link type {linktype}", "unsupported")
    return parser(frame, 0, wire_length, 0, _NO_MACS)


def decode_reassembled(datagram: Reassembled) -> Decoded:
    """What a reassembled IP datagram carries (the frame decoder's work, resumed)."""
    payload = datagram.payload
    return _ip_payload(
        payload,
        0,
        len(payload) + datagram.missing,
        datagram.depth,
        datagram.source,
        datagram.destination,
        datagram.protocol,
    )


class FrameDecoder:
    """:func:`decode_frame` with IP fragments put back together: one per capture.

    ``decode`` never returns a :class:`Fragment`: it returns None until the fragment that
    completes a datagram, then what that datagram carries. ``finish`` is the end of capture.
    """

    def __init__(self, fragments: IpReassembler | None = None) -> None:
        self.fragments = fragments or IpReassembler()

    def decode(self, linktype: int, frame: bytes, wire_length: int, timestamp: float) -> Decoded:
        decoded = decode_frame(linktype, frame, wire_length)
        while type(decoded) is Fragment:
            whole = self.fragments.add(decoded, timestamp)
            if whole is None:
                return None
            decoded = decode_reassembled(whole)
        return decoded

    def finish(self) -> None:
        self.fragments.finish()


_OPEN_OR_CLOSE = FLAG_SYN | FLAG_FIN | FLAG_RST


def worth_decoding(
    records: Iterable[Packet], tcp_flows: Mapping[bytes, object], udp_ports: UdpPorts
) -> Iterator[tuple[int, Packet]]:
    """(frame number, record) of the records that can matter; the number counts every record
    from 1, as Wireshark does, dropped ones included.

    Only untagged Ethernet + IPv4 without options is looked at (Ethernet is link type 1; 6, 17:
    TCP and UDP); every other frame is yielded for the full decode. Dropped after a few byte
    comparisons: a TCP segment without SYN, FIN or RST that carries no payload or belongs to a
    flow ``tcp_flows`` marks SKIPPED_FLOW (its key, addresses + ports, is bytes 26..38: one dict
    lookup); a UDP datagram to and from ports not in ``udp_ports`` (those of the tunnels decoded
    and of the datagram readers) whose payload does not start like a DTLS record, and that is
    not a fragment; ICMP, IGMP, routing protocols. (A TCP fragment after the first has no TCP
    header: what stands in its place passes the checks but by a 2^-16 chance.) On bench's
    1M-packet capture it costs about 340 ns a record, 38 more than the fast path did before it
    numbered frames and looked for DTLS and fragments.
    """
    # Locals, not globals: this loop runs once per record of the capture.
    high, skipped, get = udp_ports.high, SKIPPED_FLOW, tcp_flows.get
    not_ip, open_or_close = _NOT_IP_PROTOCOLS, _OPEN_OR_CLOSE
    for number, record in enumerate(records, 1):
        frame = record[2]
        try:  # a frame shorter than the bytes read below raises: the full decode takes it
            if record[1] == 1 and frame[12] == 8 and frame[13] == 0 and frame[14] == 0x45:
                protocol = frame[23]
                if protocol == 6:  # TCP
                    if not frame[47] & open_or_close and (
                        get(frame[26:38]) is skipped
                        or 0 < (frame[16] << 8 | frame[17]) <= 20 + (frame[46] >> 4) * 4
                    ):
                        continue
                elif protocol == 17:  # UDP
                    if not (
                        (frame[34] in high and (frame[34] << 8 | frame[35]) in udp_ports)
                        or (frame[36] in high and (frame[36] << 8 | frame[37]) in udp_ports)
                        or frame[43] == 0xFE  # a DTLS record's version
                        or (frame[20] != 0x40 and (frame[20] & 0x3F or frame[21]))  # a fragment
                    ):
                        continue
                elif protocol in not_ip and not (frame[20] & 0x3F or frame[21]):  # whole
                    continue
        except IndexError:
            pass
        yield number, record


class UdpPorts(MutableSet[int]):
    """The UDP ports whose datagrams the fast path lets through, shared by whoever needs them;
    ``high`` holds their high bytes, for a one-byte check before the set is asked."""

    __slots__ = ("_ports", "high")

    def __init__(self, ports: Iterable[int] = ()) -> None:
        self._ports: set[int] = set()
        self.high = bytearray()  # one object for good: the fast path keeps a reference to it
        self |= set(ports)

    def __contains__(self, port: object) -> bool:
        return port in self._ports

    def __iter__(self) -> Iterator[int]:
        return iter(self._ports)

    def __len__(self) -> int:
        return len(self._ports)

    def add(self, value: int) -> None:
        self._ports.add(value)
        self._index()

    def discard(self, value: int) -> None:
        self._ports.discard(value)
        self._index()

    def _index(self) -> None:
        self.high[:] = bytes(sorted({port >> 8 for port in self._ports}))


# --- the link layer ----------------------------------------------------------------------------


def _truncated(layer: str) -> Undecoded:
    return Undecoded(layer, "truncated")


def _ethernet(frame: bytes, at: int, end: int, depth: int, _macs: bytes) -> Decoded:
    if len(frame) < at + 14:
        return _truncated("ethernet")
    ethertype = (frame[at + 12] << 8) | frame[at + 13]
    return _ethertype(frame, at + 14, end, depth, frame[at : at + 12], ethertype)


def _ethertype(frame: bytes, at: int, end: int, depth: int, macs: bytes, ethertype: int) -> Decoded:
    """The payload of an ethertype (or an 802.3 length, which an LLC header follows)."""
    parser = _ETHERTYPES.get(ethertype)
    if parser is not None:
        if depth >= MAX_NESTING:
            return Undecoded(f"ethertype 0x{ethertype:04x}", "too_deep")
        return parser(frame, at, end, depth + 1, macs)
    if ethertype < 0x0600:
        return _llc(frame, at, min(end, at + ethertype), depth, macs)
    if ethertype in _NOT_IP_ETHERTYPES:
        return None
    if ethertype == 0x88E5:
        return Undecoded("macsec", "encrypted")
    return Undecoded(f"ethertype 0x{ethertype:04x}", "unsupported")


def _llc(frame: bytes, at: int, end: int, depth: int, macs: bytes) -> Decoded:
    """802.2 LLC: only SNAP with an ethertype (OUI 0) carries IP; STP, CDP, VTP... do not."""
    if len(frame) < at + 3:
        return _truncated("llc")
    if frame[at] != 0xAA or frame[at + 1] != 0xAA or frame[at + 2] != 0x03:
        return None
    if len(frame) < at + 8:
        return _truncated("snap")
    if frame[at + 3] or frame[at + 4] or frame[at + 5]:
        return None  # an organisation's own protocol (Cisco's CDP, DTP, VTP, PVST)
    ethertype = (frame[at + 6] << 8) | frame[at + 7]
    return _ethertype(frame, at + 8, end, depth, macs, ethertype)


def _vlan(frame: bytes, at: int, end: int, depth: int, macs: bytes) -> Decoded:
    """802.1Q / 802.1ad tag: priority and VLAN ID, then the next ethertype."""
    if len(frame) < at + 4:
        return _truncated("vlan")
    return _ethertype(frame, at + 4, end, depth, macs, (frame[at + 2] << 8) | frame[at + 3])


def _cisco_metadata(frame: bytes, at: int, end: int, depth: int, macs: bytes) -> Decoded:
    """Cisco MetaData (TrustSec inline tagging): version, length, option type, SGT, ethertype."""
    if len(frame) < at + 8:
        return _truncated("cisco metadata")
    ethertype = (frame[at + 6] << 8) | frame[at + 7]
    return _ethertype(frame, at + 8, end, depth, macs, ethertype)


def _mpls(frame: bytes, at: int, end: int, depth: int, _macs: bytes) -> Decoded:
    """An MPLS label stack; below it IPv4, IPv6, or an Ethernet pseudowire (with or without the
    control word), told apart by the first nibble as Wireshark does."""
    while True:
        if len(frame) < at + 4:
            return _truncated("mpls")
        bottom = frame[at + 2] & 1
        at += 4
        if bottom:
            break
        depth += 1
        if depth >= MAX_NESTING:
            return Undecoded("mpls", "too_deep")
    if len(frame) <= at:
        return _truncated("mpls payload")
    nibble = frame[at] >> 4
    if nibble == 4:
        return _ipv4(frame, at, end, depth + 1, _NO_MACS)
    if nibble == 6:
        return _ipv6(frame, at, end, depth + 1, _NO_MACS)
    if nibble == 0:
        return _ethernet(frame, at + 4, end, depth + 1, _NO_MACS)  # after the control word
    if nibble == 1:
        return None  # pseudowire associated channel (OAM)
    return _ethernet(frame, at, end, depth + 1, _NO_MACS)


def _pppoe_session(frame: bytes, at: int, end: int, depth: int, _macs: bytes) -> Decoded:
    """PPPoE session stage (RFC 2516): version/type 0x11, code 0, session ID, length, PPP."""
    if len(frame) < at + 6:
        return _truncated("pppoe")
    if frame[at] != 0x11 or frame[at + 1] != 0:
        return Undecoded("pppoe", "malformed")
    length = (frame[at + 4] << 8) | frame[at + 5]
    return _ppp(frame, at + 6, min(end, at + 6 + length), depth)


def _ppp(frame: bytes, at: int, end: int, depth: int) -> Decoded:
    """PPP (RFC 1661): the protocol field, one byte when compressed (its low bit set)."""
    if len(frame) < at + 1:
        return _truncated("ppp")
    if frame[at] & 1:
        protocol, at = frame[at], at + 1
    elif len(frame) < at + 2:
        return _truncated("ppp")
    else:
        protocol, at = (frame[at] << 8) | frame[at + 1], at + 2
    if protocol == 0x0021:
        return _ipv4(frame, at, end, depth + 1, _NO_MACS)
    if protocol == 0x0057:
        return _ipv6(frame, at, end, depth + 1, _NO_MACS)
    if protocol == 0x0281:
        return _mpls(frame, at, end, depth + 1, _NO_MACS)
    if protocol >= 0x8000:
        return None  # link and network control protocols (LCP, IPCP, PAP, CHAP...)
    return Undecoded(f"ppp protocol 0x{protocol:04x}", "unsupported")


def _eapol(frame: bytes, at: int, end: int, _depth: int, macs: bytes) -> Decoded:
    """EAPOL (IEEE 802.1X-2010 11.3): version 1-3, packet type, body length, body."""
    if len(frame) < at + 4:
        return _truncated("eapol")
    if not 1 <= frame[at] <= 3:
        return Undecoded("eapol", "malformed")
    stop = min(at + 4 + ((frame[at + 2] << 8) | frame[at + 3]), end)
    captured = min(stop, len(frame))
    return EapolFrame(macs[:6], macs[6:], frame[at + 1], frame[at + 4 : captured], stop - captured)


def _sll(frame: bytes, at: int, end: int, depth: int, _macs: bytes) -> Decoded:
    """Linux cooked capture v1: packet type, ARPHRD type, address length, address, protocol."""
    if len(frame) < at + 16:
        return _truncated("linux sll")
    macs = _NO_MACS[:6] + frame[at + 6 : at + 12]
    return _sll_protocol(frame, at + 16, end, depth, macs, (frame[at + 14] << 8) | frame[at + 15])


def _sll2(frame: bytes, at: int, end: int, depth: int, _macs: bytes) -> Decoded:
    """Linux cooked capture v2: protocol, reserved, interface, ARPHRD type, packet type,
    address length, address."""
    if len(frame) < at + 20:
        return _truncated("linux sll2")
    macs = _NO_MACS[:6] + frame[at + 12 : at + 18]
    return _sll_protocol(frame, at + 20, end, depth, macs, (frame[at] << 8) | frame[at + 1])


def _sll_protocol(
    frame: bytes, at: int, end: int, depth: int, macs: bytes, protocol: int
) -> Decoded:
    if protocol == 0x0004:  # ETH_P_802_2: an LLC header follows
        return _llc(frame, at, end, depth, macs)
    if protocol < 0x0600:
        return None  # Novell 802.3, CAN, netlink and other non-IP Linux protocols
    return _ethertype(frame, at, end, depth, macs, protocol)


def _loopback(frame: bytes, at: int, end: int, depth: int, _macs: bytes) -> Decoded:
    """BSD loopback: a 4-byte address family, host byte order (link type 0) or network byte
    order (108); IPv6's value differs between BSDs (24, 28, 30) and Linux (10)."""
    if len(frame) < at + 4:
        return _truncated("loopback")
    family = frame[at] or frame[at + 3]
    if family == 2:
        return _ipv4(frame, at + 4, end, depth + 1, _NO_MACS)
    if family in (10, 24, 28, 30):
        return _ipv6(frame, at + 4, end, depth + 1, _NO_MACS)
    return Undecoded(f"loopback family {family}", "unsupported")


def _raw_ip(frame: bytes, at: int, end: int, depth: int, macs: bytes) -> Decoded:
    """An IP packet whose version says which."""
    if len(frame) <= at:
        return _truncated("ip")
    version = frame[at] >> 4
    if version == 4:
        return _ipv4(frame, at, end, depth + 1, macs)
    if version == 6:
        return _ipv6(frame, at, end, depth + 1, macs)
    return Undecoded(f"ip version {version}", "malformed")


# --- 802.11 ------------------------------------------------------------------------------------


def _radiotap(frame: bytes, at: int, end: int, depth: int, _macs: bytes) -> Decoded:
    """Radiotap: its length, and from its Flags field whether 802.11 pads its header."""
    if len(frame) < at + 8:
        return _truncated("radiotap")
    length = frame[at + 2] | (frame[at + 3] << 8)
    if length < 8:
        return Undecoded("radiotap", "malformed")
    if len(frame) < at + length:
        return _truncated("radiotap")
    # The present bitmaps (each with bit 31 when another follows), then the fields: TSFT
    # (bit 0, 8 bytes aligned on 8) and Flags (bit 1, one byte).
    field = at + 4
    while field + 4 < at + length and frame[field + 3] & 0x80:
        field += 4
    present = frame[at + 4]
    field += 4
    if present & 1:
        field = at + ((field - at + 7) & ~7) + 8
    padded = bool(present & 2) and field < at + length and bool(frame[field] & 0x20)
    return _dot11(frame, at + length, end, depth, padded)


def _ppi(frame: bytes, at: int, end: int, depth: int, macs: bytes) -> Decoded:
    """PPI: its length, then a frame of the link type it names (802.11 mostly)."""
    if len(frame) < at + 8:
        return _truncated("ppi")
    length = frame[at + 2] | (frame[at + 3] << 8)
    linktype = int.from_bytes(frame[at + 4 : at + 8], "little")
    parser = _LINKTYPES.get(linktype)
    if parser is None or length < 8:
        return Undecoded(f"ppi link type {linktype}", "unsupported")
    return parser(frame, at + length, end, depth + 1, macs)


def _ieee802_11(frame: bytes, at: int, end: int, depth: int, _macs: bytes) -> Decoded:
    return _dot11(frame, at, end, depth, False)


def _dot11(
    frame: bytes, at: int, end: int, depth: int, padded: bool, swapped: bool = False
) -> Decoded:
    """An 802.11 data frame's LLC payload, with the source and destination MACs as Ethernet
    would give them. ``swapped``: the two frame-control bytes come in the other order."""
    if len(frame) < at + 2:
        return _truncated("802.11")
    control, flags = (frame[at + 1], frame[at]) if swapped else (frame[at], frame[at + 1])
    if (control >> 2) & 3 != 2:
        return None  # management, control and extension frames carry no IP
    if control & 0x40:
        return None  # Null and QoS Null: no payload
    if flags & 0x40:
        return Undecoded("802.11 protected", "encrypted")
    to_ds, from_ds = flags & 1, flags & 2
    header = 30 if to_ds and from_ds else 24
    qos = control & 0x80
    if qos:
        header += 2
        if flags & 0x80:
            header += 4  # HT Control
    if padded:
        header = (header + 3) & ~3
    if len(frame) < at + header:
        return _truncated("802.11")
    if qos and frame[at + (30 if to_ds and from_ds else 24)] & 0x80:
        return Undecoded("802.11 a-msdu", "unsupported")
    destination = at + (16 if to_ds else 4)
    source = at + (24 if to_ds and from_ds else 16 if from_ds else 10)
    macs = frame[destination : destination + 6] + frame[source : source + 6]
    return _llc(frame, at + header, end, depth + 1, macs)


# --- IP ----------------------------------------------------------------------------------------


def _ipv4(frame: bytes, ip: int, end: int, depth: int, _macs: bytes) -> Decoded:
    if len(frame) < ip + 20:
        return _truncated("ipv4")
    header = (frame[ip] & 0x0F) * 4
    total = (frame[ip + 2] << 8) | frame[ip + 3]
    if frame[ip] >> 4 != 4 or header < 20 or 0 < total < header or total > end - ip:
        return Undecoded("ipv4", "malformed")
    # Total length 0: TCP segmentation offload, the NIC fills it in after the capture point.
    ip_end = end if total == 0 else ip + total
    source, destination = frame[ip + 12 : ip + 16], frame[ip + 16 : ip + 20]
    protocol = frame[ip + 9]
    if (frame[ip + 6] & 0x3F) or frame[ip + 7]:
        offset = (((frame[ip + 6] & 0x1F) << 8) | frame[ip + 7]) * 8
        key = source + destination + frame[ip + 9 : ip + 10] + frame[ip + 4 : ip + 6]
        more = bool(frame[ip + 6] & 0x20)
        fragment = (key, source, destination, protocol, offset, more)
        return _fragment(frame, ip + header, ip_end, depth, fragment)
    if protocol == IPPROTO_TCP:
        return _tcp(frame, ip + header, ip_end, depth, source, destination)
    return _ip_payload(frame, ip + header, ip_end, depth, source, destination, protocol)


def _ipv6(frame: bytes, ip: int, end: int, depth: int, _macs: bytes) -> Decoded:
    if len(frame) < ip + 40:
        return _truncated("ipv6")
    if frame[ip] >> 4 != 6:
        return Undecoded("ipv6", "malformed")
    length = (frame[ip + 4] << 8) | frame[ip + 5]
    if 40 + length > end - ip:
        return Undecoded("ipv6", "malformed")
    # Payload length 0: a jumbogram, or BIG TCP / segmentation offload: what was captured.
    ip_end = end if length == 0 else ip + 40 + length
    source, destination = frame[ip + 8 : ip + 24], frame[ip + 24 : ip + 40]
    return _ip_payload(frame, ip + 40, ip_end, depth, source, destination, frame[ip + 6])


def _ip_payload(
    frame: bytes,
    at: int,
    end: int,
    depth: int,
    source: bytes,
    destination: bytes,
    protocol: int,
) -> Decoded:
    """What follows an IP header (or an IPv6 extension header) of ``protocol``."""
    parser = _IP_PROTOCOLS.get(protocol)
    if parser is None:
        if protocol in _NOT_IP_PROTOCOLS:
            return None
        return Undecoded(f"ip protocol {protocol}", "unsupported")
    if depth >= MAX_NESTING:
        return Undecoded(f"ip protocol {protocol}", "too_deep")
    return parser(frame, at, end, depth + 1, source, destination)


def _fragment(
    frame: bytes,
    at: int,
    end: int,
    depth: int,
    header: tuple[bytes, bytes, bytes, int, int, bool],
) -> Fragment:
    """A fragment whose data starts at ``at``; ``header``: key, addresses, protocol, offset and
    more-fragments flag, as its IP header gave them."""
    captured = min(end, len(frame))
    payload = frame[at:captured] if at < captured else b""
    return Fragment(*header, payload, max(0, end - max(captured, at)), depth)


def _ipv6_options(
    frame: bytes, at: int, end: int, depth: int, source: bytes, destination: bytes
) -> Decoded:
    """Hop-by-hop, routing and destination options: next header, length in 8-byte units."""
    if len(frame) < at + 2:
        return _truncated("ipv6 extension header")
    after = at + (frame[at + 1] + 1) * 8
    return _ip_payload(frame, after, end, depth, source, destination, frame[at])


def _authentication_header(
    frame: bytes, at: int, end: int, depth: int, source: bytes, destination: bytes
) -> Decoded:
    """IPsec AH (RFC 4302), in IPv4 or IPv6: next header, length in 4-byte units minus 2."""
    if len(frame) < at + 2:
        return _truncated("ah")
    after = at + (frame[at + 1] + 2) * 4
    return _ip_payload(frame, after, end, depth, source, destination, frame[at])


def _ipv6_fragment(
    frame: bytes, at: int, end: int, depth: int, source: bytes, destination: bytes
) -> Decoded:
    """The IPv6 Fragment header: next header, offset in 8-byte units, M flag, identification."""
    if len(frame) < at + 8:
        return _truncated("ipv6 fragment")
    word = (frame[at + 2] << 8) | frame[at + 3]
    offset, more, protocol = word & 0xFFF8, bool(word & 1), frame[at]
    if not offset and not more:  # an atomic fragment (RFC 6946): the whole datagram
        return _ip_payload(frame, at + 8, end, depth, source, destination, protocol)
    key = source + destination + frame[at : at + 1] + frame[at + 4 : at + 8]
    fragment = (key, source, destination, protocol, offset, more)
    return _fragment(frame, at + 8, end, depth, fragment)


def _esp(
    _frame: bytes, _at: int, _end: int, _depth: int, _source: bytes, _destination: bytes
) -> Decoded:
    return Undecoded("ipsec esp", "encrypted")


def _ip_in_ip(
    frame: bytes, at: int, end: int, depth: int, _source: bytes, _destination: bytes
) -> Decoded:
    return _ipv4(frame, at, end, depth, _NO_MACS)


def _ipv6_in_ip(
    frame: bytes, at: int, end: int, depth: int, _source: bytes, _destination: bytes
) -> Decoded:
    return _ipv6(frame, at, end, depth, _NO_MACS)


def _etherip(
    frame: bytes, at: int, end: int, depth: int, _source: bytes, _destination: bytes
) -> Decoded:
    """EtherIP (RFC 3378): a 2-byte header, version 3, then an Ethernet frame."""
    if len(frame) < at + 2:
        return _truncated("etherip")
    if frame[at] >> 4 != 3:
        return Undecoded("etherip", "malformed")
    return _ethernet(frame, at + 2, end, depth, _NO_MACS)


def _gre(
    frame: bytes, at: int, end: int, depth: int, _source: bytes, _destination: bytes
) -> Decoded:
    """GRE (RFC 2784, 2890): flags, protocol, then checksum, key and sequence when flagged."""
    if len(frame) < at + 4:
        return _truncated("gre")
    flags, version = frame[at], frame[at + 1] & 7
    if version:
        return Undecoded(f"gre version {version}", "unsupported")  # 1 is PPTP's
    if flags & 0x40:
        return Undecoded("gre source route", "unsupported")
    protocol = (frame[at + 2] << 8) | frame[at + 3]
    payload = at + 4 + 4 * ((flags >> 7) + ((flags >> 5) & 1) + ((flags >> 4) & 1))
    if protocol == ETHERTYPE_ERSPAN_2:
        if not flags & 0x10:  # type I: no sequence number and no ERSPAN header
            return _ethernet(frame, payload, end, depth, _NO_MACS)
        return _erspan_2(frame, payload, end, depth)
    if protocol == ETHERTYPE_ERSPAN_3:
        return _erspan_3(frame, payload, end, depth)
    return _tunnel_payload(frame, payload, end, depth, protocol)


def _erspan_2(frame: bytes, at: int, end: int, depth: int) -> Decoded:
    """ERSPAN type II: 8 bytes (version 1, VLAN, session, index), then the mirrored frame."""
    if len(frame) < at + 8:
        return _truncated("erspan")
    if frame[at] >> 4 != 1:
        return Undecoded(f"erspan version {frame[at] >> 4}", "unsupported")
    return _ethernet(frame, at + 8, end, depth + 1, _NO_MACS)


def _erspan_3(frame: bytes, at: int, end: int, depth: int) -> Decoded:
    """ERSPAN type III: 12 bytes (version 2, ..., frame type, O flag), 8 more when O is set."""
    if len(frame) < at + 12:
        return _truncated("erspan")
    if frame[at] >> 4 != 2:
        return Undecoded(f"erspan version {frame[at] >> 4}", "unsupported")
    frame_type = (frame[at + 10] >> 2) & 0x1F
    if frame_type:
        return Undecoded(f"erspan frame type {frame_type}", "unsupported")
    payload = at + 12 + (8 if frame[at + 11] & 1 else 0)
    return _ethernet(frame, payload, end, depth + 1, _NO_MACS)


def _tunnel_payload(frame: bytes, at: int, end: int, depth: int, protocol: int) -> Decoded:
    """A tunnel's payload named by an ethertype, 0x6558 being a whole Ethernet frame."""
    if protocol == ETHERTYPE_TRANSPARENT_BRIDGING:
        return _ethernet(frame, at, end, depth, _NO_MACS)
    return _ethertype(frame, at, end, depth, _NO_MACS, protocol)


# --- transports --------------------------------------------------------------------------------


def _tcp(
    frame: bytes, tcp: int, ip_end: int, _depth: int, source: bytes, destination: bytes
) -> Decoded:
    if len(frame) < tcp + 20:
        return _truncated("tcp")
    data = tcp + (frame[tcp + 12] >> 4) * 4
    if data < tcp + 20:
        return Undecoded("tcp", "malformed")
    captured = len(frame) if len(frame) < ip_end else ip_end
    ports = frame[tcp : tcp + 4]
    return TcpSegment(
        source + destination + ports,
        destination + source + ports[2:] + ports[:2],
        int.from_bytes(frame[tcp + 4 : tcp + 8], "big"),
        int.from_bytes(frame[tcp + 8 : tcp + 12], "big"),
        frame[tcp + 13],
        frame[data:captured] if data < captured else b"",
        ip_end - captured,
    )


def _udp(
    frame: bytes, udp: int, ip_end: int, depth: int, source: bytes, destination: bytes
) -> Decoded:
    if len(frame) < udp + 8:
        return _truncated("udp")
    source_port = (frame[udp] << 8) | frame[udp + 1]
    destination_port = (frame[udp + 2] << 8) | frame[udp + 3]
    length = (frame[udp + 4] << 8) | frame[udp + 5]
    if 0 < length < 8:
        return Undecoded("udp", "malformed")
    udp_end = ip_end if length == 0 else min(udp + length, ip_end)  # 0: a jumbogram's
    tunnel = _UDP_TUNNELS.get(destination_port) or _UDP_TUNNELS.get(source_port)
    if tunnel is not None:
        if depth >= MAX_NESTING:
            return Undecoded("udp tunnel", "too_deep")
        inner = tunnel(frame, udp + 8, udp_end, depth + 1)
        if not isinstance(inner, _NotTunnel):
            return inner
    captured = min(udp_end, len(frame))
    payload = frame[udp + 8 : captured] if udp + 8 < captured else b""
    return Datagram(
        source, source_port, destination, destination_port, payload, max(0, udp_end - captured)
    )


def _tunnel_header(frame: bytes, at: int, end: int, size: int) -> bool | None:
    """Is there room for a ``size``-byte tunnel header? None when the snaplen cut it."""
    if end < at + size:
        return False
    return None if len(frame) < at + size else True


def _vxlan(frame: bytes, at: int, end: int, depth: int) -> Decoded | _NotTunnel:
    """VXLAN (RFC 7348): flags with I set (the reserved bits are ignored), VNI; then an
    Ethernet frame."""
    room = _tunnel_header(frame, at, end, 8)
    if room is None:
        return _truncated("vxlan")
    if not room or not frame[at] & 0x08:
        return _NOT_TUNNEL
    return _ethernet(frame, at + 8, end, depth, _NO_MACS)


def _geneve(frame: bytes, at: int, end: int, depth: int) -> Decoded | _NotTunnel:
    """Geneve (RFC 8926): version 0, options length, protocol type, VNI, options."""
    room = _tunnel_header(frame, at, end, 8)
    if room is None:
        return _truncated("geneve")
    if not room or frame[at] >> 6:
        return _NOT_TUNNEL
    payload = at + 8 + (frame[at] & 0x3F) * 4
    return _tunnel_payload(frame, payload, end, depth, (frame[at + 2] << 8) | frame[at + 3])


def _gtp_u(frame: bytes, at: int, end: int, depth: int) -> Decoded | _NotTunnel:
    """GTP-U (3GPP TS 29.281): a G-PDU's header and extension headers, then an IP packet."""
    room = _tunnel_header(frame, at, end, 8)
    if room is None:
        return _truncated("gtp-u")
    flags = frame[at]
    if not room or flags >> 5 != 1 or not flags & 0x10:
        return _NOT_TUNNEL
    if frame[at + 1] != 0xFF:
        return None  # echo, error indication, end marker: signalling
    payload_end = min(end, at + 8 + ((frame[at + 2] << 8) | frame[at + 3]))
    payload = at + 8
    if flags & 0x07:  # sequence number, N-PDU number and next extension type follow
        payload += 4
        if len(frame) < payload:
            return _truncated("gtp-u")
        next_type = frame[payload - 1]
        while next_type:
            if len(frame) <= payload:
                return _truncated("gtp-u extension")
            if not frame[payload]:
                return Undecoded("gtp-u extension", "malformed")
            payload += frame[payload] * 4
            if len(frame) < payload:
                return _truncated("gtp-u extension")
            next_type = frame[payload - 1]
    return _raw_ip(frame, payload, payload_end, depth, _NO_MACS)


def _capwap_data(frame: bytes, at: int, end: int, depth: int) -> Decoded | _NotTunnel:
    """CAPWAP data channel (RFC 5415 4.3): the header, then an 802.11 frame (wireless binding
    1, T flag set) or an 802.3 frame. Keep-alives carry nothing; a DTLS-protected channel
    (preamble type 1) stays a datagram for the DTLS reader."""
    room = _tunnel_header(frame, at, end, 8)
    if room is None:
        return _truncated("capwap")
    if not room or frame[at] != 0:
        return _NOT_TUNNEL
    header = (frame[at + 1] >> 3) * 4
    binding, native = (frame[at + 2] >> 1) & 0x1F, frame[at + 2] & 1
    flags = frame[at + 3]
    if flags & 0x08:
        return None  # K: a data channel keep-alive
    if flags & 0x80:
        return Undecoded("capwap fragment", "unsupported")
    if header < 8:
        return Undecoded("capwap", "malformed")
    if not native:
        return _ethernet(frame, at + header, end, depth, _NO_MACS)
    if binding != 1:
        return Undecoded(f"capwap wireless binding {binding}", "unsupported")
    payload = at + header
    # Cisco access points send the 802.11 frame control bytes swapped (Wireshark's
    # capwap.swap_fc): the protocol version bits, always 0, are then where the flags are.
    swapped = len(frame) > payload + 1 and bool(frame[payload] & 3)
    return _dot11(frame, payload, end, depth, False, swapped)


def _tcp_parser(
    frame: bytes, at: int, end: int, depth: int, source: bytes, destination: bytes
) -> Decoded:
    return _tcp(frame, at, end, depth, source, destination)


_LINKTYPES: dict[int, LinkParser] = {
    LINKTYPE_NULL: _loopback,
    LINKTYPE_ETHERNET: _ethernet,
    LINKTYPE_RAW_OPENBSD: _raw_ip,
    LINKTYPE_RAW_OLD: _raw_ip,
    LINKTYPE_RAW: _raw_ip,
    LINKTYPE_IEEE802_11: _ieee802_11,
    LINKTYPE_LOOP: _loopback,
    LINKTYPE_LINUX_SLL: _sll,
    LINKTYPE_IEEE802_11_RADIOTAP: _radiotap,
    LINKTYPE_PPI: _ppi,
    LINKTYPE_IPV4: _ipv4,
    LINKTYPE_IPV6: _ipv6,
    LINKTYPE_LINUX_SLL2: _sll2,
}
DECODED_LINKTYPES = frozenset(_LINKTYPES)

_ETHERTYPES: dict[int, LinkParser] = {
    ETHERTYPE_IPV4: _ipv4,
    ETHERTYPE_IPV6: _ipv6,
    0x8100: _vlan,  # 802.1Q
    0x88A8: _vlan,  # 802.1ad (QinQ outer tag)
    0x9100: _vlan,  # pre-standard QinQ
    ETHERTYPE_CISCO_METADATA: _cisco_metadata,
    0x8847: _mpls,
    0x8848: _mpls,
    0x8864: _pppoe_session,
    ETHERTYPE_EAPOL: _eapol,
}

_IP_PROTOCOLS: dict[int, IpParser] = {
    IPPROTO_TCP: _tcp_parser,
    IPPROTO_UDP: _udp,
    0: _ipv6_options,  # hop-by-hop
    43: _ipv6_options,  # routing
    60: _ipv6_options,  # destination options
    44: _ipv6_fragment,
    51: _authentication_header,
    50: _esp,
    4: _ip_in_ip,
    41: _ipv6_in_ip,
    47: _gre,
    97: _etherip,
}

_UDP_TUNNELS: dict[int, TunnelParser] = {
    UDP_PORT_VXLAN: _vxlan,
    UDP_PORT_GENEVE: _geneve,
    UDP_PORT_GTP_U: _gtp_u,
    UDP_PORT_CAPWAP_DATA: _capwap_data,
}
# The UDP ports the decoder looks behind: the fast path must let their datagrams through.
UDP_TUNNEL_PORTS = frozenset(_UDP_TUNNELS)
