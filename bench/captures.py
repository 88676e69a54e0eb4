"""Benchmark captures: real phone handshakes replicated inside replicated background traffic.

A few dozen real OpenSSL handshakes (``samplegen``) are laid on the wire once each; every copy in
a capture is the same frames with the phone's address and port rewritten, so the certificates a
capture holds are known exactly (``Planted``). Background traffic (RTP, SIP, DNS, bulk TCP, TLS
application data on 2443 with no handshake) is made from frame templates in a fixed rotation.
IP and TCP checksums of rewritten frames are left stale: none of the tools measured checks them.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pcaps"))

from samplegen.scenarios import (
    CAPTURE_TIME,
    CUCM_V4,
    KeyRing,
    build_cluster,
    write_trust_dir,
)
from samplegen.tlsrun import run_handshake
from samplegen.wire import (
    Link,
    Packet,
    TcpConversation,
    ip_packet,
    tcp_header,
    udp_packet,
)

SCCP_TLS, SIP_TLS = 2443, 5061
MODELS = ("CP-8861", "CP-8845", "CP-7841", "CP-8851", "CP-8865", "CP-7821")
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
_RECORD = struct.Struct("<IIII")
_EPOCH_S = int(CAPTURE_TIME.timestamp())
_ETH = 14  # Ethernet header; IPv4 follows (no VLAN in these captures)
_SRC_IP, _DST_IP, _SRC_PORT, _DST_PORT = _ETH + 12, _ETH + 16, _ETH + 20, _ETH + 22
_SEQ = _ETH + 24
_LINK = Link()
_PLAIN_FIRST = 300_000  # copy numbers of plain connections: addresses apart from the phones'


@dataclass(frozen=True)
class Template:
    """One real handshake as Ethernet frames; ``from_client`` marks the phone's frames."""

    frames: tuple[bytes, ...]
    from_client: tuple[bool, ...]
    client_chain: tuple[str, ...]  # SHA-256 of each certificate the phone sent
    kind: str  # "LSC" or "MIC"


@dataclass(frozen=True)
class Planted:
    """One handshake copy in a capture: the phone's endpoint and the chain it sent."""

    client: str
    client_chain: tuple[str, ...]


def templates(count: int, out: Path) -> tuple[list[Template], Path]:
    """``count`` distinct real handshakes (LSC and MIC phones on 2443 and 5061), and a trust dir."""
    cluster = build_cluster(KeyRing())
    trust = cluster.callmanager_trust()
    result = []
    for n in range(count):
        model = MODELS[n % len(MODELS)]
        mac = f"2C3124D0{n:04X}"
        kind = "LSC" if n % 3 else "MIC"
        cert = cluster.lsc(model, mac) if kind == "LSC" else cluster.mic(model, mac)
        port = SCCP_TLS if n % 2 else SIP_TLS
        shake = run_handshake(
            server_chain=[cluster.callmanager],
            client_chain=[cert],
            trust=[item.cert for item in trust],
            verify_time=CAPTURE_TIME,
            app_data=[
                ("client", b"REGISTER sip:x SIP/2.0\r\n\r\n"),
                ("server", b"SIP/2.0 200\r\n"),
            ],
        )
        assert shake.established, shake.server_error
        conv = TcpConversation(("10.99.0.1", 40000), (CUCM_V4, port), CAPTURE_TIME)
        conv.open()
        for flight in shake.flights:
            conv.send(flight.sender, flight.data)
        conv.close()
        packets = conv.packets()
        result.append(
            Template(
                tuple(_LINK.frame(p) for p in packets),
                tuple(p.src == "10.99.0.1" for p in packets),
                (hashlib.sha256(cert.der).hexdigest(),),
                kind,
            )
        )
    return result, write_trust_dir(out / "trust", trust)


def handshake_copy(template: Template, number: int) -> tuple[list[bytes], Planted]:
    """Copy ``number`` of a template: phone 10.(100+n/60000).x.y, port 20000 + n % 40000."""
    address = bytes((10, 100 + number // 60000, (number // 250) % 240, 1 + number % 250))
    port = (20000 + number % 40000).to_bytes(2, "big")
    frames = []
    for frame, from_client in zip(template.frames, template.from_client, strict=True):
        copy = bytearray(frame)
        if from_client:
            copy[_SRC_IP : _SRC_IP + 4] = address
            copy[_SRC_PORT : _SRC_PORT + 2] = port
        else:
            copy[_DST_IP : _DST_IP + 4] = address
            copy[_DST_PORT : _DST_PORT + 2] = port
        frames.append(bytes(copy))
    client = f"{'.'.join(map(str, address))}:{int.from_bytes(port, 'big')}"
    return frames, Planted(client, template.client_chain)


# --- background ---------------------------------------------------------------------------------


def _udp(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytearray:
    return bytearray(_LINK.frame(udp_packet(src, dst, payload, 0)))


def _tcp(src: tuple[str, int], dst: tuple[str, int], payload: bytes, flags: str) -> bytearray:
    segment = tcp_header(src, dst, 1, 1, flags, payload)
    return bytearray(_LINK.frame(Packet(0, src[0], dst[0], ip_packet(src[0], dst[0], 6, segment))))


def _rtp() -> Iterator[bytes]:
    """200 concurrent G.711 streams, round robin, RTP sequence numbers counting up."""
    streams = [
        _udp(
            (f"10.30.{n // 200}.{n % 200 + 1}", 16384 + 2 * n), ("10.31.0.9", 30000 + n), bytes(172)
        )
        for n in range(200)
    ]
    for n, frame in enumerate(streams):
        frame[42:54] = struct.pack("!BBHII", 0x80, 0, 0, 0, 0x1000 + n)
        frame[54:] = b"\xd5" * 160
    for sequence in itertools.count():
        for frame in streams:
            struct.pack_into("!HI", frame, 44, sequence & 0xFFFF, sequence * 160 & 0xFFFFFFFF)
            yield bytes(frame)


def _sip() -> Iterator[bytes]:
    text = (
        "OPTIONS sip:{n}@10.10.1.5 SIP/2.0\r\nVia: SIP/2.0/UDP 10.40.0.{n}:5060\r\n"
        "From: <sip:{n}@10.40.0.{n}>\r\nTo: <sip:ping@10.10.1.5>\r\nCall-ID: {n}-bench\r\n"
        "CSeq: 1 OPTIONS\r\nUser-Agent: Cisco-CP8861/14.2.1\r\nContent-Length: 0\r\n\r\n"
    )
    frames = [
        bytes(_udp((f"10.40.0.{n + 1}", 5060), (CUCM_V4, 5060), text.format(n=n).encode() * 3))
        for n in range(50)
    ]
    yield from itertools.cycle(frames)


def _dns() -> Iterator[bytes]:
    header = b"\x2b\x7c\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    query = header + b"\x04cucm\x07example\x03com\x00\x00\x01\x00\x01"
    answer = query[:2] + b"\x81\x80\x00\x01\x00\x01" + query[8:] + bytes(16)
    frames = []
    for n in range(20):
        client = (f"10.50.0.{n + 1}", 53000 + n)
        frames += [bytes(_udp(client, ("10.10.1.2", 53), query))]
        frames += [bytes(_udp(("10.10.1.2", 53), client, answer))]
    yield from itertools.cycle(frames)


def _bulk() -> Iterator[bytes]:
    """20 bulk TCP flows (SMB, HTTP, backups) with no SYN seen: full segments, an ACK each two."""
    flows = []
    for n in range(20):
        src, dst = (f"10.60.0.{n + 1}", 40000 + n), ("10.61.0.1", (445, 8080, 22, 873)[n % 4])
        data = _tcp(src, dst, bytes(range(256)) * 5 + bytes(180), "A")
        ack = _tcp(dst, src, b"", "A")
        flows.append((data, ack))
    for round_ in itertools.count():
        for data, ack in flows:
            struct.pack_into("!I", data, _SEQ, (round_ * 1460) & 0xFFFFFFFF)
            yield bytes(data)
            if round_ % 2:
                struct.pack_into("!I", ack, _SEQ + 4, (round_ * 1460 + 1460) & 0xFFFFFFFF)
                yield bytes(ack)


def _tls_app() -> Iterator[bytes]:
    """100 SCCP-over-TLS sessions on 2443 joined mid-stream: application data only."""
    flows = []
    for n in range(100):
        phone, cucm = (f"10.70.{n // 200}.{n % 200 + 1}", 50000 + n), (CUCM_V4, SCCP_TLS)
        size = 180 + (n * 37) % 300
        record = b"\x17\x03\x03" + size.to_bytes(2, "big") + bytes(size)
        flows.append(
            [_tcp(phone, cucm, record, "PA"), _tcp(cucm, phone, record[: 5 + size // 2], "PA")]
        )
    for round_ in itertools.count():
        for pair in flows:
            for frame in pair:
                payload = len(frame) - _ETH - 40
                struct.pack_into("!I", frame, _SEQ, (round_ * payload) & 0xFFFFFFFF)
                yield bytes(frame)


# One rotation of 100 background packets: mostly RTP, then bulk TCP, TLS data, SIP, DNS.
_ROTATION = "R" * 50 + "B" * 27 + "T" * 14 + "S" * 5 + "D" * 4


def background() -> Iterator[bytes]:
    """An endless mix averaging about 460 bytes per frame, in a fixed interleaved order."""
    sources = {"R": _rtp(), "B": _bulk(), "T": _tls_app(), "S": _sip(), "D": _dns()}
    order = [_ROTATION[(i * 37) % 100] for i in range(100)]  # interleave the kinds
    while True:
        for kind in order:
            yield next(sources[kind])


# --- writing ------------------------------------------------------------------------------------


def write_capture(
    path: Path, packets: int, shakes: Iterator[list[bytes]], count: int, step_us: int = 20
) -> int:
    """A pcap of about ``packets`` frames with ``count`` handshakes spread evenly through it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = background()
    every = max(1, packets // (count + 1)) if count else packets + 1
    written = 0
    us = 0
    pack = _RECORD.pack
    with path.open("wb", buffering=1 << 20) as out:
        out.write(_PCAP_HEADER)
        planted = 0
        while written < packets or planted < count:
            if planted < count and written >= every * (planted + 1):
                frames = next(shakes)
                planted += 1
            else:
                frames = [next(noise)]
            for frame in frames:
                us += step_us
                seconds, micros = divmod(us, 1_000_000)
                out.write(pack(_EPOCH_S + seconds, micros, len(frame), len(frame)))
                out.write(frame)
                written += 1
    return written


def planted_copies(
    chosen: list[Template], count: int, first: int = 0
) -> tuple[Iterator[list[bytes]], list[Planted]]:
    """``count`` copies cycling through ``chosen``; the frames come lazily, the facts now."""
    facts = []
    pairs = []
    for number in range(first, first + count):
        template = chosen[number % len(chosen)]
        pairs.append((template, number))
        facts.append(handshake_copy(template, number)[1])
    frames = (handshake_copy(template, number)[0] for template, number in pairs)
    return frames, facts


# The plain connections' request: a web page, which capana passes over, or a phone's
# configuration file, which it follows as a file transfer (the "files" capture).
PAGE_REQUEST = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
FILE_REQUEST = b"GET /SEP2C3124C9F8E1.cnf.xml HTTP/1.1\r\nHost: x\r\n\r\n"


def many_connections(
    path: Path,
    chosen: list[Template],
    plain: int,
    tls: int,
    concurrent: bool = True,
    request: bytes = PAGE_REQUEST,
) -> tuple[int, list[Planted]]:
    """``plain`` short non-TLS connections all open at once, and ``tls`` handshakes among them.

    Every plain connection's SYN, SYN-ACK and ACK come first, then each sends ``request`` and gets
    an answer, then all close: the flow table holds every one of them at the peak. Not
    ``concurrent``: the same frames, each connection whole before the next (the control).
    """
    conv = TcpConversation(("10.99.0.1", 40000), ("10.81.255.1", 8080), CAPTURE_TIME)
    conv.open()
    conv.send("client", request, ack=False)
    conv.send("server", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", ack=False)
    conv.close()
    packets = conv.packets()
    short = Template(
        tuple(_LINK.frame(p) for p in packets), tuple(p.src == "10.99.0.1" for p in packets), (), ""
    )
    phases: list[list[bytes]] = [[], [], []]
    for n in range(plain):
        frames = handshake_copy(short, _PLAIN_FIRST + n)[0]
        if concurrent:
            phases[0] += frames[:3]
            phases[1] += frames[3:5]
            phases[2] += frames[5:]
        else:
            phases[1] += frames
    shakes, facts = planted_copies(chosen, tls)
    middle = phases[1]
    every = max(1, len(middle) // (tls + 1))
    mixed: list[bytes] = []
    for index, frames in enumerate(shakes):
        mixed += middle[index * every : (index + 1) * every] + frames
    mixed += middle[tls * every :]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb", buffering=1 << 20) as out:
        out.write(_PCAP_HEADER)
        us = 0
        for frame in itertools.chain(phases[0], mixed, phases[2]):
            us += 5
            seconds, micros = divmod(us, 1_000_000)
            out.write(_RECORD.pack(_EPOCH_S + seconds, micros, len(frame), len(frame)) + frame)
    return len(phases[0]) + len(mixed) + len(phases[2]), facts


__all__ = [
    "FILE_REQUEST",
    "PAGE_REQUEST",
    "Planted",
    "Template",
    "background",
    "handshake_copy",
    "many_connections",
    "planted_copies",
    "templates",
    "write_capture",
]
