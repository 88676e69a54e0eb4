"""An annotated copy of a capture: the same packets as pcapng, with comments on chosen frames.

Frames are numbered from 1 over every packet of the file, as Wireshark and capana's reader
count them. A pcapng is copied block by block (interfaces, name resolution, decryption secrets
and every other block kept as they are), an ``opt_comment`` added to each Enhanced (or obsolete)
Packet Block named; a pcap becomes a pcapng of one interface with its link type, snap length and
timestamp resolution. Gzip'd inputs are read through. Only one block (or record) is held at a
time, bounded by ``capture.MAX_RECORD``. In Wireshark: ``frame.comment contains "capana"``.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from capana.capture import MAX_RECORD

_GZIP_MAGIC = b"\x1f\x8b"
_PCAP_MAGIC = {  # as stored -> (byte order, pcapng if_tsresol exponent)
    b"\xd4\xc3\xb2\xa1": ("<", 6),
    b"\xa1\xb2\xc3\xd4": (">", 6),
    b"\x4d\x3c\xb2\xa1": ("<", 9),
    b"\xa1\xb2\x3c\x4d": (">", 9),
}
_SHB, _IDB, _PB, _SPB, _EPB = 0x0A0D0D0A, 1, 2, 3, 6
_BYTE_ORDER = {b"\x1a\x2b\x3c\x4d": ">", b"\x4d\x3c\x2b\x1a": "<"}
_OPT_END, _OPT_COMMENT, _OPT_TSRESOL = 0, 1, 9
# A comment longer than this is cut: an option length is 16 bits.
MAX_COMMENT = 60_000


class AnnotateError(Exception):
    """The capture cannot be copied (unreadable, not a capture, damaged); names the file."""


def write_annotated(source: str | Path, target: str | Path, comments: Mapping[int, str]) -> int:
    """Copy ``source`` to ``target`` as pcapng with ``comments`` ({frame number: text}) on those
    frames; returns how many frames got their comment. Raises AnnotateError (for damage found
    midway, after writing every packet before it), and OSError when ``target`` cannot be
    written."""
    source, target = Path(source), Path(target)
    if source.resolve() == target.resolve():
        raise AnnotateError(f"{target}: would overwrite the capture it annotates")
    try:
        raw = source.open("rb")
    except OSError as error:
        raise AnnotateError(f"{source}: cannot open: {error.strerror or error}") from None
    with raw:
        stream: BinaryIO = raw
        if raw.read(2) == _GZIP_MAGIC:
            stream = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        raw.seek(0)
        try:
            blocks = _copy(stream, source, comments)
        except (EOFError, OSError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
            raise AnnotateError(f"{source}: cannot read: {error}") from None
        written = 0
        with target.open("wb") as out:
            try:
                for block, commented in blocks:
                    out.write(block)
                    written += commented
            except (EOFError, zlib.error, gzip.BadGzipFile) as error:
                raise AnnotateError(f"{source}: cannot read on: {error}") from None
    return written


def _copy(
    stream: BinaryIO, source: Path, comments: Mapping[int, str]
) -> Iterator[tuple[bytes, bool]]:
    magic = stream.read(4)
    if magic in _PCAP_MAGIC:
        return _from_pcap(stream, magic, source, comments)
    if magic == struct.pack("<I", _SHB):
        return _from_pcapng(stream, magic, source, comments)
    raise AnnotateError(f"{source}: not a pcap or pcapng file (magic {magic.hex()})")


def _from_pcap(
    stream: BinaryIO, magic: bytes, source: Path, comments: Mapping[int, str]
) -> Iterator[tuple[bytes, bool]]:
    """pcap records as Enhanced Packet Blocks of one interface (written little endian)."""
    endian, exponent = _PCAP_MAGIC[magic]
    header = stream.read(20)
    if len(header) < 20:
        raise AnnotateError(f"{source}: pcap file header truncated")
    snaplen, network = struct.unpack_from(endian + "II", header, 12)
    units = 10**exponent
    yield _block(_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)), False
    options = _option(_OPT_TSRESOL, bytes([exponent])) if exponent != 6 else b""
    options += _option(_OPT_END, b"") if options else b""
    yield _block(_IDB, struct.pack("<HHI", network & 0xFFFF, 0, snaplen) + options), False
    number = 0
    while record := stream.read(16):
        if len(record) < 16:
            raise AnnotateError(f"{source}: record header truncated after packet {number}")
        seconds, fraction, caplen, wirelen = struct.unpack(endian + "IIII", record)
        if caplen > MAX_RECORD:
            raise AnnotateError(f"{source}: record {number + 1} claims {caplen} bytes")
        data = stream.read(caplen)
        if len(data) < caplen:
            raise AnnotateError(f"{source}: packet {number + 1} truncated")
        number += 1
        moment = seconds * units + fraction
        body = struct.pack("<IIIII", 0, moment >> 32, moment & 0xFFFFFFFF, caplen, wirelen)
        body += _padded(data) + _comment_options(comments.get(number))
        yield _block(_EPB, body), number in comments


def _from_pcapng(
    stream: BinaryIO, magic: bytes, source: Path, comments: Mapping[int, str]
) -> Iterator[tuple[bytes, bool]]:
    """pcapng blocks as they are, a comment option added to the packet blocks named."""
    endian = "<"
    interfaces = 0
    number = 0
    head = magic + stream.read(4)
    while len(head) == 8:
        if head[:4] == struct.pack("<I", _SHB):
            order = stream.read(4)
            if order not in _BYTE_ORDER:
                raise AnnotateError(f"{source}: bad byte-order magic after packet {number}")
            endian = _BYTE_ORDER[order]
            head += order
        btype, length = struct.unpack(endian + "II", head[:8])
        if length < 12 or length & 3 or length > MAX_RECORD:
            raise AnnotateError(f"{source}: bad block length {length} after packet {number}")
        block = head + stream.read(length - len(head))
        if len(block) < length:
            raise AnnotateError(f"{source}: block truncated after packet {number}")
        if btype == _SHB:
            interfaces = 0
        elif btype == _IDB:
            interfaces += 1
        elif btype in (_EPB, _PB, _SPB) and _counted(block, btype, endian, interfaces):
            number += 1
            text = comments.get(number)
            if text is not None and btype != _SPB:  # a Simple Packet Block has no options
                yield _with_comment(block, btype, endian, text), True
                head = stream.read(8)
                continue
        yield block, False
        head = stream.read(8)
    if head:
        raise AnnotateError(f"{source}: block header truncated after packet {number}")


def _counted(block: bytes, btype: int, endian: str, interfaces: int) -> bool:
    """Does capana's reader count this packet block? (Known interface, captured length fits.)"""
    if btype == _SPB:
        return len(block) >= 16 and interfaces > 0
    if len(block) < 32:
        return False
    fields = endian + ("I8xI" if btype == _EPB else "H10xI")
    interface, caplen = struct.unpack_from(fields, block, 8)
    return bool(interface < interfaces and caplen <= len(block) - 32)


def _with_comment(block: bytes, btype: int, endian: str, text: str) -> bytes:
    """The packet block with ``text`` as an opt_comment after its options, same byte order."""
    caplen = struct.unpack_from(endian + "I", block, 20)[0]
    options_at = 28 + caplen + (-caplen % 4)
    kept = bytearray()
    at = options_at
    while at + 4 <= len(block) - 4:
        code, size = struct.unpack_from(endian + "HH", block, at)
        if code == _OPT_END or at + 4 + size > len(block) - 4:
            break
        kept += block[at : at + 4 + size + (-size % 4)]
        at += 4 + size + (-size % 4)
    value = text.encode("utf-8")[:MAX_COMMENT]
    kept += _option(_OPT_COMMENT, value, endian) + _option(_OPT_END, b"", endian)
    body = block[8:options_at] + bytes(kept)
    return _block(btype, body, endian)


def _comment_options(text: str | None) -> bytes:
    if text is None:
        return b""
    return _option(_OPT_COMMENT, text.encode("utf-8")[:MAX_COMMENT]) + _option(_OPT_END, b"")


def _option(code: int, value: bytes, endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + _padded(value)


def _block(btype: int, body: bytes, endian: str = "<") -> bytes:
    length = 12 + len(body)
    return struct.pack(endian + "II", btype, length) + body + struct.pack(endian + "I", length)


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)
