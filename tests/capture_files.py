"""Tiny pcap and pcapng writers for tests: every byte laid out by hand with ``struct``.

Deliberately independent of ``capana.capture``: the tests read these files back with both
capana and scapy. Functions take the byte order as ``"<"`` or ``">"``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D

SHB, IDB, PB, SPB, NRB, ISB, EPB, DSB, CUSTOM = (
    0x0A0D0D0A,
    1,
    2,
    3,
    4,
    5,
    6,
    10,
    0x00000BAD,
)
TLS_KEYLOG = 0x544C534B


def frame(n: int, size: int = 60) -> bytes:
    """A recognisable frame: its number repeated (so every packet's bytes differ)."""
    return bytes((n + i) & 0xFF for i in range(size))


# -- pcap --------------------------------------------------------------------------------------


def pcap_header(
    *,
    endian: str = "<",
    nano: bool = False,
    snaplen: int = 65535,
    linktype: int = 1,
    version: tuple[int, int] = (2, 4),
) -> bytes:
    magic = PCAP_MAGIC_NS if nano else PCAP_MAGIC_US
    return struct.pack(endian + "IHHiIII", magic, *version, 0, 0, snaplen, linktype)


def pcap_record(
    sec: int, frac: int, data: bytes, wirelen: int | None = None, *, endian: str = "<"
) -> bytes:
    wire = len(data) if wirelen is None else wirelen
    return struct.pack(endian + "IIII", sec, frac, len(data), wire) + data


def pcap(records: Iterable[tuple[int, int, bytes, int | None]], **header: object) -> bytes:
    """A whole pcap file from (sec, fraction, frame, wire length or None) records."""
    endian = str(header.get("endian", "<"))
    body = b"".join(pcap_record(*r, endian=endian) for r in records)
    return pcap_header(**header) + body  # type: ignore[arg-type]


# -- pcapng ------------------------------------------------------------------------------------


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def block(btype: int, body: bytes, endian: str = "<") -> bytes:
    """A block of ``btype`` around ``body`` (padded to 4 bytes), lengths at both ends."""
    body = pad(body)
    length = 12 + len(body)
    return struct.pack(endian + "II", btype, length) + body + struct.pack(endian + "I", length)


def option(code: int, value: bytes, endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + pad(value)


def end_of_options(endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", 0, 0)


def shb(endian: str = "<", *, major: int = 1, minor: int = 0) -> bytes:
    body = struct.pack(endian + "IHHq", 0x1A2B3C4D, major, minor, -1)
    return block(SHB, body, endian)


def idb(
    linktype: int,
    snaplen: int = 0,
    *,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    endian: str = "<",
) -> bytes:
    body = struct.pack(endian + "HHI", linktype, 0, snaplen)
    opts = option(2, b"eth0", endian)  # if_name, to be skipped
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), endian)
    if tsoffset is not None:
        opts += option(14, struct.pack(endian + "q", tsoffset), endian)
    return block(IDB, body + opts + end_of_options(endian), endian)


def epb(
    ifid: int,
    ticks: int,
    data: bytes,
    wirelen: int | None = None,
    *,
    endian: str = "<",
    comment: bytes = b"",
) -> bytes:
    wire = len(data) if wirelen is None else wirelen
    head = struct.pack(endian + "5I", ifid, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire)
    opts = option(1, comment, endian) + end_of_options(endian) if comment else b""
    return block(EPB, head + pad(data) + opts, endian)


def pb(ifid: int, ticks: int, data: bytes, wirelen: int | None = None, *, endian: str = "<"):
    wire = len(data) if wirelen is None else wirelen
    head = struct.pack(endian + "HHIIII", ifid, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire)
    return block(PB, head + data, endian)


def spb(data: bytes, wirelen: int | None = None, *, endian: str = "<") -> bytes:
    wire = len(data) if wirelen is None else wirelen
    return block(SPB, struct.pack(endian + "I", wire) + data, endian)


def dsb(kind: int, secrets: bytes, *, endian: str = "<") -> bytes:
    return block(DSB, struct.pack(endian + "II", kind, len(secrets)) + secrets, endian)


def isb(ifid: int, endian: str = "<") -> bytes:
    return block(ISB, struct.pack(endian + "III", ifid, 0, 0) + end_of_options(endian), endian)


def nrb(endian: str = "<") -> bytes:
    value = bytes([10, 1, 1, 5]) + b"cucm\0"  # IPv4 address, NUL-terminated name
    record = struct.pack(endian + "HH", 1, len(value)) + pad(value)
    return block(NRB, record + struct.pack(endian + "HH", 0, 0), endian)
