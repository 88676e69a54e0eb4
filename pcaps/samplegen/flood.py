"""A small gzip'd capture that expands to thousands of large handshakes, all in progress at once:
the input a capture-wide memory budget is for.

Every connection is a real ClientHello and ServerHello (from one OpenSSL handshake, the
phone's address and port rewritten per copy), then a server Certificate message declaring ``size``
bytes, sent in full-size segments: the real server chain again and again (which gzip folds to
almost nothing), cut at ``size``. The segments go round robin over the
connections, so that every one of them is part-way through its Certificate at the peak.

    handshake = tlsrun.run_handshake(...)  # a real one, for its hellos and server chain
    path = concurrent_certificates(
        tmp_path / "flood.pcap.gz", handshake, chain, connections=600, size=48_000
    )
"""

from __future__ import annotations

import gzip
import struct
from datetime import datetime, timezone
from pathlib import Path

from samplegen import tlsrun, wire

PHONE = ("10.1.1.20", 51234)
CUCM = ("10.1.1.5", 2443)
WHEN = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)
MSS = 1460
_RECORD = 16384
# Ethernet + IPv4 + TCP: where the client's address and port sit in a frame.
_SRC_IP, _DST_IP, _SRC_PORT, _DST_PORT = 26, 30, 34, 36


def concurrent_certificates(
    path: Path,
    handshake: tlsrun.HandshakeBytes,
    chain: tuple[bytes, ...],
    *,
    connections: int,
    size: int,
) -> Path:
    """Write the capture (gzip'd when ``path`` ends in .gz): ``handshake``'s ClientHello and
    ServerHello, then a Certificate of ``size`` bytes opening with ``chain`` (DER)."""
    client_hello = handshake.flights[0].data
    server_flight = handshake.flights[1].data
    server_hello = server_flight[: 5 + int.from_bytes(server_flight[3:5], "big")]
    template = _template([client_hello, server_hello], _certificate_stream(size, chain))
    opener = gzip.open if path.suffix == ".gz" else open
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    seconds = int(WHEN.timestamp())
    with opener(path, "wb") as out:
        out.write(header)
        for micros, frame in enumerate(_interleaved(template, connections)):
            at = struct.pack(
                "<IIII", seconds + micros // 10**6, micros % 10**6, len(frame), len(frame)
            )
            out.write(at + frame)
    return path


def _certificate_stream(size: int, chain: tuple[bytes, ...]) -> bytes:
    """A Certificate message of ``size`` bytes in TLS records: the chain, repeated."""
    entries = b"".join(len(der).to_bytes(3, "big") + der for der in chain)
    body = (size - 3).to_bytes(3, "big") + entries * (size // len(entries) + 1)
    message = bytes([11]) + size.to_bytes(3, "big") + body[:size]
    return b"".join(
        struct.pack(">BHH", 22, 0x0303, len(message[at : at + _RECORD]))
        + message[at : at + _RECORD]
        for at in range(0, len(message), _RECORD)
    )


def _template(hellos: list[bytes], certificate: bytes) -> list[tuple[bytes, bool]]:
    """One connection's frames and whether the client sent each."""
    conv = wire.TcpConversation(PHONE, CUCM, WHEN, mss=MSS)
    conv.open()
    conv.send("client", hellos[0], ack=False)
    conv.send("server", hellos[1] + certificate, ack=False)
    link = wire.Link()
    return [(link.frame(packet), packet.src == PHONE[0]) for packet in conv.packets()]


def _interleaved(template: list[tuple[bytes, bool]], connections: int):
    """Frame n of every connection, then frame n + 1 of every connection, and so on."""
    for frame, from_client in template:
        for number in range(connections):
            address = bytes((10, 2, number // 250, 1 + number % 250))
            port = (20000 + number).to_bytes(2, "big")
            copy = bytearray(frame)
            ip, port_at = (_SRC_IP, _SRC_PORT) if from_client else (_DST_IP, _DST_PORT)
            copy[ip : ip + 4] = address
            copy[port_at : port_at + 2] = port
            yield bytes(copy)
