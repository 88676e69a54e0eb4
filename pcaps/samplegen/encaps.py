"""Captures as they come from the field: real frames wrapped in every encapsulation capana reads.

Each :class:`Encapsulation` rewrites one Ethernet frame (as ``wire.Link`` frames a packet, or as
a real EAPOL capture holds it) into the frame a capture of that kind holds: behind tags, labels,
PPPoE, a tunnel (GRE, ERSPAN, VXLAN, Geneve, GTP-U, EtherIP, IP-in-IP), a cooked or raw link
header, or on 802.11 (bare, radiotap, PPI, inside CAPWAP data). Scapy's own layers encode them:
an encoder independent of capana's decoder. Scapy has no CAPWAP and no Cisco MetaData layer:
those few header bytes are built here from RFC 5415 and from the 0x8909 format (version,
length, option type, SGT, ethertype), and tshark, which dissects both, is the judge.

Tunnel endpoints are other addresses than the packets inside, so that a decoder reporting the
outer addresses is caught.

    capture = write_frames(tmp_path / "vxlan.pcap", ENCAPSULATIONS["vxlan"], frames)
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.etherip import EtherIP
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.contrib.mpls import MPLS
from scapy.layers.dot11 import Dot11, Dot11QoS, RadioTap
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import (
    GRE,
    LLC,
    SNAP,
    CookedLinux,
    CookedLinuxV2,
    Dot1AD,
    Dot1Q,
    Ether,
    Loopback,
    LoopbackOpenBSD,
)
from scapy.layers.ppi import PPI
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw
from scapy.utils import RawPcapWriter

# Tunnel endpoints, access point and controller: never the addresses of the packets inside.
OUTER_V4 = ("192.0.2.1", "192.0.2.2")
OUTER_V6 = ("2001:db8:ffff::1", "2001:db8:ffff::2")
ACCESS_POINT, CONTROLLER = "192.0.2.10", "192.0.2.20"
ACCESS_POINT_PORT = 5264
BSSID = "00:3a:7d:11:22:33"
SGT = 17

ETHERTYPE_IPV4, ETHERTYPE_IPV6 = 0x0800, 0x86DD

Wrap = Callable[[Ether, bool], Packet | bytes]


@dataclass(frozen=True)
class Encapsulation:
    """How one kind of capture frames what it carries.

    ``wrap(frame, uplink)`` takes an Ethernet frame and whether it goes from the client side
    (the first sender; on 802.11 the station, which sends to the access point). ``carries``
    says what may go in: "ip" (an IPv4 or IPv6 packet only), "ipv4", "ipv6" or "ethernet"
    (any Ethernet frame, EAPOL included). ``preferences`` are tshark options it needs.
    """

    name: str
    linktype: int
    wrap: Wrap
    carries: str = "ethernet"
    preferences: tuple[str, ...] = ()

    def accepts(self, frame: Ether) -> bool:
        version = {ETHERTYPE_IPV4: "ipv4", ETHERTYPE_IPV6: "ipv6"}.get(frame.type)
        return self.carries == "ethernet" or (
            version is not None and self.carries in ("ip", version)
        )

    def frame(self, frame: Ether, uplink: bool) -> bytes:
        return bytes(self.wrap(frame, uplink))


# One frame to write: when (ns since 1970), the Ethernet frame, and whether the client sent it.
Frame = tuple[int, bytes, bool]


def write_frames(
    path: Path,
    encapsulation: Encapsulation,
    frames: Iterable[Frame],
    *,
    snaplen: int | None = None,
) -> Path:
    """A pcap of the frames this encapsulation carries, wrapped; cut at ``snaplen`` (the wire
    length is kept, as a capture with a snaplen does)."""
    with RawPcapWriter(str(path), linktype=encapsulation.linktype, nano=True) as writer:
        writer.linktype = encapsulation.linktype  # scapy takes 0 (BSD loopback) for "guess"
        writer.write_header(None)
        for time_ns, data, uplink in frames:
            ether = Ether(data)
            if not encapsulation.accepts(ether):
                continue
            wrapped = encapsulation.frame(ether, uplink)
            kept = wrapped[:snaplen] if snaplen else wrapped
            seconds, nanoseconds = divmod(time_ns, 1_000_000_000)
            writer.write_packet(
                kept, sec=seconds, usec=nanoseconds, caplen=len(kept), wirelen=len(wrapped)
            )
    return path


# --- building blocks --------------------------------------------------------------------------


def _inner(frame: Ether) -> Packet:
    """The frame's payload as scapy dissected it (IP, IPv6, EAPOL...)."""
    return frame.payload


def _outer_ip(frame: Ether, uplink: bool, ipv6: bool = False) -> Packet:
    """An Ethernet + IP header between the two tunnel endpoints."""
    first, second = OUTER_V6 if ipv6 else OUTER_V4
    source, destination = (first, second) if uplink else (second, first)
    if ipv6:
        return Ether(src=frame.src, dst=frame.dst) / IPv6(src=source, dst=destination)
    return Ether(src=frame.src, dst=frame.dst) / IP(src=source, dst=destination, id=0x1234)


def _tagged(frame: Ether, *tags: Packet) -> Packet:
    """``frame`` with ``tags`` between its MAC addresses and its ethertype."""
    out: Packet = Ether(src=frame.src, dst=frame.dst)
    for tag in tags:
        out = out / tag
    out.lastlayer().type = frame.type
    return out / _inner(frame)


def _ip_version(frame: Ether) -> int:
    return 6 if frame.type == ETHERTYPE_IPV6 else 4


def cisco_metadata_header(ethertype: int, sgt: int = SGT) -> bytes:
    """Cisco MetaData after ethertype 0x8909: version 1, length 1, option SGT (type 1), the
    16-bit SGT, then the ethertype of what follows."""
    return struct.pack("!BBHHH", 1, 1, 0x0001, sgt, ethertype)


def capwap_data_header(native: bool) -> bytes:
    """RFC 5415 4.3: preamble 0 (version 0, type 0: clear CAPWAP), HLEN 2 (8 bytes), RID 0,
    WBID 1 (IEEE 802.11), T (native frame), no flags; fragment ID and offset 0."""
    header_words, radio, binding = 2, 0, 1
    first = (0 << 24) | (header_words << 19) | (radio << 14) | (binding << 9) | (native << 8)
    return struct.pack("!II", first, 0)


def _dot11(frame: Ether, uplink: bool, qos: bool = True) -> Packet:
    """The Ethernet frame as an 802.11 data frame between a station and its access point."""
    if uplink:  # station -> AP: To DS, addr1 = BSSID, addr2 = source, addr3 = destination
        header = Dot11(type=2, subtype=8 if qos else 0, FCfield="to_DS")
        header.addr1, header.addr2, header.addr3 = BSSID, frame.src, frame.dst
    else:  # AP -> station: From DS, addr1 = destination, addr2 = BSSID, addr3 = source
        header = Dot11(type=2, subtype=8 if qos else 0, FCfield="from_DS")
        header.addr1, header.addr2, header.addr3 = frame.dst, BSSID, frame.src
    if qos:
        header = header / Dot11QoS(TID=6)
    return header / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=frame.type) / _inner(frame)


def _swap_frame_control(dot11: bytes) -> bytes:
    return dot11[1:2] + dot11[0:1] + dot11[2:]


def _capwap(frame: Ether, uplink: bool, payload: bytes, native: bool) -> Packet:
    ports = (ACCESS_POINT_PORT, 5247) if uplink else (5247, ACCESS_POINT_PORT)
    hosts = (ACCESS_POINT, CONTROLLER) if uplink else (CONTROLLER, ACCESS_POINT)
    return (
        Ether(src="00:3a:7d:00:00:10", dst="00:3a:7d:00:00:20")
        / IP(src=hosts[0], dst=hosts[1])
        / UDP(sport=ports[0], dport=ports[1])
        / Raw(capwap_data_header(native) + payload)
    )


# --- the catalogue ----------------------------------------------------------------------------


def _cisco_metadata(frame: Ether, _uplink: bool) -> Packet:
    header = cisco_metadata_header(frame.type)
    return Ether(src=frame.src, dst=frame.dst, type=0x8909) / Raw(header) / _inner(frame)


def _cisco_metadata_vlan(frame: Ether, _uplink: bool) -> Packet:
    header = cisco_metadata_header(frame.type)
    tag = Dot1Q(vlan=120, type=0x8909)
    return Ether(src=frame.src, dst=frame.dst) / tag / Raw(header) / _inner(frame)


def _mpls(frame: Ether, _uplink: bool) -> Packet:
    labels = MPLS(label=16, s=0, ttl=64) / MPLS(label=17, s=1, ttl=64)
    return Ether(src=frame.src, dst=frame.dst, type=0x8847) / labels / _inner(frame)


def _mpls_pseudowire(frame: Ether, _uplink: bool) -> Packet:
    labels = MPLS(label=16, s=0, ttl=64) / MPLS(label=18, s=1, ttl=64)
    control_word = Raw(b"\x00\x00\x00\x00")
    return (
        Ether(dst="00:00:5e:00:53:02", src="00:00:5e:00:53:01", type=0x8847)
        / labels
        / (control_word / frame)
    )


def _pppoe(frame: Ether, _uplink: bool) -> Packet:
    protocol = 0x0057 if _ip_version(frame) == 6 else 0x0021
    return (
        Ether(src=frame.src, dst=frame.dst, type=0x8864)
        / PPPoE(sessionid=0x2A11)
        / PPP(proto=protocol)
        / _inner(frame)
    )


def _gre(frame: Ether, uplink: bool) -> Packet:
    return _outer_ip(frame, uplink) / GRE(proto=frame.type) / _inner(frame)


def _gre_options(frame: Ether, uplink: bool) -> Packet:
    gre = GRE(
        proto=frame.type,
        chksum_present=1,
        key_present=1,
        seqnum_present=1,
        key=0xC0FFEE,
        sequence_number=7,
    )
    return _outer_ip(frame, uplink) / gre / _inner(frame)


def _gre_ethernet(frame: Ether, uplink: bool) -> Packet:
    return _outer_ip(frame, uplink) / GRE(proto=0x6558) / frame


def _gre_over_ipv6(frame: Ether, uplink: bool) -> Packet:
    return _outer_ip(frame, uplink, ipv6=True) / GRE(proto=frame.type) / _inner(frame)


def _erspan_1(frame: Ether, uplink: bool) -> Packet:
    return _outer_ip(frame, uplink) / GRE(proto=0x88BE) / frame


def _erspan_2(frame: Ether, uplink: bool) -> Packet:
    gre = GRE(proto=0x88BE, seqnum_present=1, sequence_number=3)
    return _outer_ip(frame, uplink) / gre / ERSPAN_II(session_id=7, vlan=120) / frame


def _erspan_3(frame: Ether, uplink: bool) -> Packet:
    gre = GRE(proto=0x22EB, seqnum_present=1, sequence_number=3)
    return _outer_ip(frame, uplink) / gre / ERSPAN_III(session_id=7, vlan=120, o=0) / frame


def _erspan_3_platform(frame: Ether, uplink: bool) -> Packet:
    gre = GRE(proto=0x22EB, seqnum_present=1, sequence_number=3)
    erspan = ERSPAN_III(session_id=7, vlan=120, o=1) / ERSPAN_PlatformSpecific(platf_id=3)
    return _outer_ip(frame, uplink) / gre / erspan / frame


def _vxlan(frame: Ether, uplink: bool) -> Packet:
    udp = UDP(sport=49152 + (frame.type & 0xFF), dport=4789)
    return _outer_ip(frame, uplink) / udp / VXLAN(vni=5000) / frame


def _geneve(frame: Ether, uplink: bool) -> Packet:
    option = GeneveOptions(classid=0x0103, type=0x80, data=b"\x00\x00\x00\x2a")
    geneve = GENEVE(vni=77, proto=0x6558, options=[option])
    return _outer_ip(frame, uplink) / UDP(sport=50000, dport=6081) / geneve / frame


def _gtp_u(frame: Ether, uplink: bool) -> Packet:
    container = GTPPDUSessionContainer(type=1 if uplink else 0, QFI=9)
    header = GTP_U_Header(teid=0x1F2E3D4C, E=1, next_ex=0x85) / container
    return _outer_ip(frame, uplink) / UDP(sport=2152, dport=2152) / header / _inner(frame)


def _etherip(frame: Ether, uplink: bool) -> Packet:
    return _outer_ip(frame, uplink) / EtherIP() / frame


def _ip_in_ip(frame: Ether, uplink: bool) -> Packet:
    return _outer_ip(frame, uplink) / _inner(frame)  # protocol 4 or 41 from the inner version


def _ip_in_ipv6(frame: Ether, uplink: bool) -> Packet:
    return _outer_ip(frame, uplink, ipv6=True) / _inner(frame)


def _ipv6_extensions(frame: Ether, _uplink: bool) -> Packet:
    inner = _inner(frame)
    headers = (
        IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(type=0, segleft=0, addresses=[])
        / IPv6ExtHdrDestOpt()
    )
    rebuilt = IPv6(src=inner.src, dst=inner.dst, hlim=inner.hlim) / headers / inner.payload
    return Ether(src=frame.src, dst=frame.dst) / rebuilt


def _ipsec_ah(frame: Ether, _uplink: bool) -> Packet:
    """The packet with an IPsec Authentication Header (RFC 4302) before its transport: a
    12-byte ICV, so the header is 24 bytes (payload length 4: in 32-bit words, minus 2)."""
    inner = _inner(frame)
    transport = inner.payload
    ah = AH(nh=inner.nh if _ip_version(frame) == 6 else inner.proto, payloadlen=4, spi=0x1001)
    ah.seq, ah.icv = 1, bytes(12)
    if _ip_version(frame) == 6:
        header = IPv6(src=inner.src, dst=inner.dst, hlim=inner.hlim)
    else:
        header = IP(src=inner.src, dst=inner.dst, ttl=inner.ttl, id=inner.id)
    return Ether(src=frame.src, dst=frame.dst) / header / ah / transport


def _sll(frame: Ether, uplink: bool) -> Packet:
    header = CookedLinux(
        pkttype=4 if uplink else 0, lladdrtype=1, lladdrlen=6, src=_mac(frame.src), proto=frame.type
    )
    return header / _inner(frame)


def _sll2(frame: Ether, uplink: bool) -> Packet:
    header = CookedLinuxV2(
        proto=frame.type,
        ifindex=2,
        lladdrtype=1,
        pkttype=4 if uplink else 0,
        lladdrlen=6,
        src=_mac(frame.src),
    )
    return header / _inner(frame)


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", "")) + b"\x00\x00"


def _raw(frame: Ether, _uplink: bool) -> Packet:
    return _inner(frame)


def _null(frame: Ether, _uplink: bool) -> Packet:
    family = 30 if _ip_version(frame) == 6 else 2  # AF_INET6 is 30 on macOS (24, 28 elsewhere)
    return Loopback(type=family) / _inner(frame)


def _loop(frame: Ether, _uplink: bool) -> Packet:
    family = 24 if _ip_version(frame) == 6 else 2
    return LoopbackOpenBSD(type=family) / _inner(frame)


def _ieee802_11(frame: Ether, uplink: bool) -> Packet:
    return _dot11(frame, uplink, qos=False)


def _radiotap(frame: Ether, uplink: bool) -> Packet:
    radiotap = RadioTap(
        present="TSFT+Flags+Rate+Channel+dBm_AntSignal",
        mac_timestamp=123456789,
        Flags=0,
        Rate=108,
        ChannelFrequency=5180,
        ChannelFlags="OFDM+5GHz",
        dBm_AntSignal=-42,
    )
    return radiotap / _dot11(frame, uplink)


def _ppi(frame: Ether, uplink: bool) -> Packet:
    return PPI(dlt=105) / _dot11(frame, uplink)


def _capwap_80211(frame: Ether, uplink: bool) -> Packet:
    dot11 = _swap_frame_control(bytes(_dot11(frame, uplink)))  # as Cisco access points send it
    return _capwap(frame, uplink, dot11, native=True)


def _capwap_80211_unswapped(frame: Ether, uplink: bool) -> Packet:
    return _capwap(frame, uplink, bytes(_dot11(frame, uplink)), native=True)


def _capwap_8023(frame: Ether, uplink: bool) -> Packet:
    return _capwap(frame, uplink, bytes(frame), native=False)


def _ethernet(frame: Ether, _uplink: bool) -> Packet:
    return frame


def _dot1q(frame: Ether, _uplink: bool) -> Packet:
    return _tagged(frame, Dot1Q(vlan=120, prio=5))


def _qinq(frame: Ether, _uplink: bool) -> Packet:
    return _tagged(frame, Dot1AD(vlan=300, type=0x8100), Dot1Q(vlan=120))


_CATALOGUE = (
    Encapsulation("ethernet", 1, _ethernet),
    Encapsulation("dot1q", 1, _dot1q),
    Encapsulation("qinq", 1, _qinq),
    Encapsulation("cisco-metadata", 1, _cisco_metadata),
    Encapsulation("cisco-metadata-dot1q", 1, _cisco_metadata_vlan),
    Encapsulation("mpls", 1, _mpls, carries="ip"),
    Encapsulation("mpls-pseudowire", 1, _mpls_pseudowire),
    Encapsulation("pppoe", 1, _pppoe, carries="ip"),
    Encapsulation("gre", 1, _gre, carries="ip"),
    Encapsulation("gre-options", 1, _gre_options, carries="ip"),
    Encapsulation("gre-ethernet", 1, _gre_ethernet),
    Encapsulation("gre-over-ipv6", 1, _gre_over_ipv6, carries="ip"),
    Encapsulation("erspan-1", 1, _erspan_1),
    Encapsulation("erspan-2", 1, _erspan_2),
    Encapsulation("erspan-3", 1, _erspan_3),
    Encapsulation("erspan-3-platform", 1, _erspan_3_platform),
    Encapsulation("vxlan", 1, _vxlan),
    Encapsulation("geneve", 1, _geneve),
    Encapsulation("gtp-u", 1, _gtp_u, carries="ip"),
    Encapsulation("etherip", 1, _etherip),
    Encapsulation("ip-in-ip", 1, _ip_in_ip, carries="ipv4"),
    Encapsulation("6in4", 1, _ip_in_ip, carries="ipv6"),
    Encapsulation("6in6", 1, _ip_in_ipv6, carries="ipv6"),
    Encapsulation("4in6", 1, _ip_in_ipv6, carries="ipv4"),
    Encapsulation("ipv6-extensions", 1, _ipv6_extensions, carries="ipv6"),
    Encapsulation("ipsec-ah", 1, _ipsec_ah, carries="ip"),
    Encapsulation("linux-sll", 113, _sll, carries="ip"),
    Encapsulation("linux-sll2", 276, _sll2, carries="ip"),
    Encapsulation("raw", 101, _raw, carries="ip"),
    Encapsulation("raw-12", 12, _raw, carries="ip"),
    Encapsulation("raw-14", 14, _raw, carries="ip"),
    Encapsulation("ipv4", 228, _raw, carries="ipv4"),
    Encapsulation("ipv6", 229, _raw, carries="ipv6"),
    Encapsulation("null", 0, _null, carries="ip"),
    Encapsulation("loop", 108, _loop, carries="ip"),
    Encapsulation("ieee802-11", 105, _ieee802_11),
    Encapsulation("radiotap", 127, _radiotap),
    Encapsulation("ppi", 192, _ppi),
    Encapsulation("capwap-80211", 1, _capwap_80211),
    Encapsulation(
        "capwap-80211-unswapped",
        1,
        _capwap_80211_unswapped,
        preferences=("-o", "capwap.swap_fc:FALSE"),
    ),
    Encapsulation("capwap-8023", 1, _capwap_8023),
)
ENCAPSULATIONS = {encapsulation.name: encapsulation for encapsulation in _CATALOGUE}


def fragmented(frames: Iterable[Frame], size: int) -> list[Frame]:
    """The IP packets longer than ``size`` split into fragments by scapy (``fragment`` for
    IPv4, ``fragment6`` for IPv6), captured the way networks deliver them: every second
    datagram's fragments last first, and before the last one captured, the second fragment
    again, starting 8 bytes earlier (an overlap with the same bytes)."""
    out: list[Frame] = []
    split = 0
    for time_ns, data, uplink in frames:
        ether = Ether(data)
        pieces = _fragments(ether, size)
        if len(pieces) < 2:
            out.append((time_ns, data, uplink))
            continue
        split += 1
        overlap = _overlapping(ether.payload, pieces[1])
        if split % 2 == 0:
            pieces.reverse()
        header = Ether(src=ether.src, dst=ether.dst)
        pieces.insert(len(pieces) - 1, overlap)
        out += [(time_ns + n, bytes(header / piece), uplink) for n, piece in enumerate(pieces)]
    return out


def _fragments(frame: Ether, size: int) -> list[Packet]:
    packet = frame.payload
    if frame.type == ETHERTYPE_IPV4 and len(packet) > size:
        packet = packet.copy()
        packet.flags = 0  # clear Don't Fragment: this path fragments
        return list(fragment(packet, fragsize=size))
    if frame.type == ETHERTYPE_IPV6 and len(packet) > size:
        head = IPv6(src=packet.src, dst=packet.dst, hlim=packet.hlim)
        whole = head / IPv6ExtHdrFragment(id=0x5EED0000 + packet.plen) / packet.payload
        return list(fragment6(whole, size))
    return [packet]


def _overlapping(packet: Packet, second: Packet) -> Packet:
    """``second`` (a fragment of ``packet``) sent again from 8 bytes before its start."""
    data = bytes(packet.payload)
    if isinstance(second, IP):
        start = second.frag * 8 - 8
        stop = start + 8 + len(second.payload)
        again = second.copy()
        again.frag, again.len, again.chksum = start // 8, None, None
        again.remove_payload()
        return again / Raw(data[start:stop])
    header = second[IPv6ExtHdrFragment]
    start = header.offset * 8 - 8
    stop = start + 8 + len(header.payload)
    outer = IPv6(src=second.src, dst=second.dst, hlim=second.hlim)
    fragment_header = IPv6ExtHdrFragment(id=header.id, nh=header.nh, offset=start // 8, m=header.m)
    return outer / fragment_header / Raw(data[start:stop])
