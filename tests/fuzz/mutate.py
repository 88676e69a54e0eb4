"""Mutations of a capture file's bytes: bit flips, truncations, length fields, record shuffles.

Each mutator takes a random generator and the bytes, and returns the new bytes with a short
description, so that a failure can be reproduced from its seed and read from its log line.
"""

from __future__ import annotations

import gzip
import random
import re
import struct
from collections.abc import Callable

Mutator = Callable[[random.Random, bytes], tuple[bytes, str]]

# Values that sit on the edges of length checks.
_INTERESTING_16 = (0, 1, 4, 5, 0x3FFF, 0x4000, 0x4800, 0x4801, 0x7FFF, 0x8000, 0xFFFF)
_INTERESTING_24 = (0, 1, 3, 4, 0xFFFF, 0x10000, 0x100000, 0x100001, 0x7FFFFF, 0xFFFFFF)
_INTERESTING_32 = (0, 1, 12, 16, 28, 0xFFFF, 0x40000, 0x4000000, 0x7FFFFFFF, 0xFFFFFFFF)
# A TLS record header: content type, major version 3, minor 0..4.
_TLS_HEADER = re.compile(rb"[\x14-\x18]\x03[\x00-\x04]")
_PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}


def records(data: bytes) -> tuple[str, list[tuple[int, int]]]:
    """The byte order and (offset, length) of each pcap record or pcapng block, as framed."""
    found: list[tuple[int, int]] = []
    if data[:4] in _PCAP_MAGICS or data[:4] == b"\xa1\xb2\x3c\x4d":
        order = _PCAP_MAGICS.get(data[:4], ">")
        offset = 24
        while offset + 16 <= len(data):
            size = 16 + struct.unpack_from(order + "I", data, offset + 8)[0]
            found.append((offset, min(size, len(data) - offset)))
            offset += size
        return order, found
    if data[:4] == b"\x0a\x0d\x0d\x0a" and len(data) >= 12:
        order = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        offset = 0
        while offset + 12 <= len(data):
            size = struct.unpack_from(order + "I", data, offset + 4)[0]
            if size < 12:
                break
            found.append((offset, min(size, len(data) - offset)))
            offset += size
        return order, found
    return "<", found


def bit_flips(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    out = bytearray(data)
    count = rng.choice((1, 1, 2, 4, 8, 32))
    for _ in range(count):
        at = rng.randrange(len(out))
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out), f"flip {count} bits"


def truncation(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    cut = rng.randrange(len(data))
    if rng.random() < 0.5:  # near the end: the common case of a capture cut short
        cut = max(0, len(data) - rng.randrange(1, min(len(data), 4096) + 1))
    return data[:cut], f"truncate at {cut}"


def length_field(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """A record's captured/wire length (pcap) or a block's length (pcapng) set to an edge."""
    order, found = records(data)
    if not found:
        return bit_flips(rng, data)
    offset, _ = rng.choice(found)
    value = rng.choice((*_INTERESTING_32, rng.randrange(1 << 32)))
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        # block length (front or trailer), or an EPB's captured length
        where = rng.choice((4, 20, -4))
        if where == -4:
            length = struct.unpack_from(order + "I", data, offset + 4)[0]
            where = length - 4
    else:
        where = rng.choice((8, 12))  # caplen or wire length
    at = offset + where
    if at + 4 > len(data) or at < 0:
        return truncation(rng, data)
    out = bytearray(data)
    struct.pack_into(order + "I", out, at, value)
    return bytes(out), f"length field at {at} = {value}"


def tls_length(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """A TLS record length, handshake length or certificate list length set to an edge."""
    headers = [match.start() for match in _TLS_HEADER.finditer(data)]
    if not headers:
        return bit_flips(rng, data)
    at = rng.choice(headers)
    out = bytearray(data)
    kind = rng.choice(("record", "handshake", "list"))
    if kind == "record" and at + 5 <= len(out):
        value = rng.choice(_INTERESTING_16)
        out[at + 3 : at + 5] = value.to_bytes(2, "big")
    elif kind == "handshake" and at + 9 <= len(out):
        value = rng.choice(_INTERESTING_24)
        out[at + 6 : at + 9] = value.to_bytes(3, "big")
    elif at + 12 <= len(out):
        value = rng.choice(_INTERESTING_24)
        out[at + 9 : at + 12] = value.to_bytes(3, "big")
    else:
        return bit_flips(rng, data)
    return bytes(out), f"tls {kind} length at {at} = {value}"


def shuffle(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Records (packets, so TCP segments) swapped, duplicated, dropped or moved."""
    _, found = records(data)
    if len(found) < 3:
        return bit_flips(rng, data)
    head = data[: found[0][0]]
    pieces = [data[offset : offset + size] for offset, size in found]
    tail = data[found[-1][0] + found[-1][1] :]
    first = rng.randrange(1, len(pieces))  # keep a pcapng section header first
    second = rng.randrange(1, len(pieces))
    action = rng.choice(("swap", "duplicate", "drop", "move", "reverse"))
    if action == "swap":
        pieces[first], pieces[second] = pieces[second], pieces[first]
    elif action == "duplicate":
        pieces.insert(second, pieces[first])
    elif action == "drop":
        del pieces[first]
    elif action == "move":
        pieces.insert(second, pieces.pop(first))
    else:
        low, high = sorted((first, second))
        pieces[low : high + 1] = pieces[low : high + 1][::-1]
    return head + b"".join(pieces) + tail, f"{action} records {first} {second}"


def splice(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """A stretch of the file copied over another place (frames that look almost right)."""
    size = rng.randrange(1, min(len(data), 2048) + 1)
    source = rng.randrange(len(data) - size + 1)
    target = rng.randrange(len(data) - size + 1)
    out = bytearray(data)
    out[target : target + size] = data[source : source + size]
    return bytes(out), f"splice {size} bytes {source}->{target}"


def edge_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    out = bytearray(data)
    count = rng.randrange(1, 9)
    for _ in range(count):
        out[rng.randrange(len(out))] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF))
    return bytes(out), f"set {count} bytes to edge values"


MUTATORS: tuple[Mutator, ...] = (
    bit_flips,
    truncation,
    length_field,
    tls_length,
    shuffle,
    splice,
    edge_bytes,
)


def mutate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """One to three stacked mutations; now and then gzip'd (and that cut short)."""
    steps = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not data:
            break
        data, step = rng.choice(MUTATORS)(rng, data)
        steps.append(step)
    if data and rng.random() < 0.08:
        data = gzip.compress(data, compresslevel=1)
        steps.append("gzip")
        if rng.random() < 0.5:
            cut = rng.randrange(len(data))
            data = data[:cut]
            steps.append(f"gzip cut at {cut}")
    return data, "; ".join(steps)
