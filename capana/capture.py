"""Capture files as a stream of records: pcap and pcapng, plain or gzip'd.

The first stage of the pipeline. It reads the file once, in large chunks, and hands out one
``(timestamp, linktype, frame, wire_length)`` tuple per packet without decoding anything.
A file that is not a capture raises :class:`CaptureError` when opened; damage found while
reading ends the iteration there (or, in pcapng, skips one block whose framing is intact) and
adds a one-line error naming the file, byte offset and packet number to ``info.errors``.
Everything before the damage has been yielded. Example::

    with CaptureReader("phone-reboot.pcapng") as capture:
        for timestamp, linktype, frame, wire_length in capture:
            ...
    print(capture.info.packets, capture.info.errors)
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

# A record or block longer than this is corrupt; it also bounds the read buffer.
MAX_RECORD = 64 << 20
# libpcap and Wireshark accept packets up to this size whatever the file's snaplen says.
STANDARD_SNAPLEN = 262_144
# Damage reports kept verbatim per file; further ones are only counted.
MAX_ERRORS = 20

Packet = tuple[float, int, bytes, int]

# pcap magic as stored -> (byte order, timestamp fraction units per second)
_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_GZIP_MAGIC = b"\x1f\x8b"

# pcapng (draft-ietf-opsawg-pcapng): block types, byte-order magic, option codes
_SHB = 0x0A0D0D0A
_SHB_MAGIC = b"\x0a\x0d\x0d\x0a"
_IDB, _PB, _SPB, _EPB, _DSB = 1, 2, 3, 6, 10
_BYTE_ORDER = {b"\x1a\x2b\x3c\x4d": ">", b"\x4d\x3c\x2b\x1a": "<"}
_OPT_END, _OPT_TSRESOL, _OPT_TSOFFSET = 0, 9, 14
_SECRETS_TLS_KEYLOG = 0x544C534B  # "TLSK"


class CaptureError(Exception):
    """The file cannot be read as a capture; the message names the file and where it failed."""


@dataclass
class CaptureInfo:
    """What the reader learnt about one capture file; complete once iteration ends."""

    path: str
    format: str  # "pcap" or "pcapng", with "+gzip" for a gzip'd file
    packets: int = 0
    start: float | None = None  # earliest packet timestamp, UTC epoch seconds
    end: float | None = None  # latest packet timestamp
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    keylog: list[bytes] = field(default_factory=list)  # TLS key log lines from pcapng DSBs
    linktypes: dict[int, int] = field(default_factory=dict)  # link type -> byte declared at


class _Interface(NamedTuple):
    """A pcapng interface: timestamp ticks / units + offset = epoch seconds."""

    linktype: int
    snaplen: int
    units: int
    offset: int


class CaptureReader:
    """Streams the packets of one pcap or pcapng file (optionally gzip'd); a context manager.

    ``bytes_read`` and ``size`` measure progress in the file on disk (compressed bytes for a
    gzip'd file). Iterating twice continues where the first iteration stopped.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        chunk_size: int = 1 << 20,
        max_record: int = MAX_RECORD,
    ) -> None:
        self.path = os.fspath(path)
        self._chunk = max(chunk_size, 64)
        self._max_record = max_record
        self._base = 0  # offset in the (uncompressed) stream of the buffer's first byte
        self._read_failure: str | None = None
        self._errors_dropped = 0
        try:
            self._raw: BinaryIO = open(self.path, "rb")  # noqa: SIM115 (closed by close())
            self.size = os.fstat(self._raw.fileno()).st_size
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot open: {exc.strerror or exc}") from None
        self._stream: BinaryIO = self._raw
        self._read: Callable[[int], bytes] = self._read_plain
        self._records: Generator[Packet, None, None] | None = None
        try:
            self._records = self._open()
        except BaseException:
            self.close()
            raise
        self.bytes_read = self._raw.tell()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Packet]:
        assert self._records is not None
        return self._records

    def close(self) -> None:
        """End iteration (``info`` gets its totals) and close the file."""
        if self._records is not None:
            self._records.close()
        self._stream.close()
        self._raw.close()

    # -- opening -------------------------------------------------------------------------

    def _open(self) -> Generator[Packet, None, None]:
        """Detect gzip and the capture format; return the record generator for the file."""
        buf = self._read(4)
        if not buf:
            raise CaptureError(f"{self.path}: empty file")
        suffix = ""
        if buf[:2] == _GZIP_MAGIC:
            self._raw.seek(0)
            self._stream = gzip.GzipFile(fileobj=self._raw, mode="rb")  # type: ignore[assignment]
            self._read = self._read_gzip
            suffix = "+gzip"
            buf = self._read(4)
            if self._read_failure or not buf:
                raise CaptureError(f"{self.path}: {self._read_failure or 'empty gzip stream'}")
        buf += self._read(self._chunk)
        magic = buf[:4]
        if magic in _PCAP_MAGIC:
            self.info = CaptureInfo(self.path, "pcap" + suffix)
            return self._open_pcap(buf)
        if magic == _SHB_MAGIC:
            self.info = CaptureInfo(self.path, "pcapng" + suffix)
            return self._open_pcapng(buf)
        raise CaptureError(f"{self.path}: not a pcap or pcapng file (magic {magic.hex()})")

    def _open_pcap(self, buf: bytes) -> Generator[Packet, None, None]:
        if len(buf) < 24:
            raise CaptureError(f"{self.path}: pcap file header truncated at byte {len(buf)}")
        endian, units = _PCAP_MAGIC[buf[:4]]
        major, minor, _, _, snaplen, network = struct.unpack_from(endian + "HHiIII", buf, 4)
        if major != 2:
            raise CaptureError(f"{self.path}: unsupported pcap version {major}.{minor}")
        # The upper bits of the link-type field carry FCS information (LT_LINKTYPE in libpcap).
        self.info.linktypes[network & 0xFFFF] = 20
        return self._pcap_records(buf, endian, units, snaplen, network & 0xFFFF)

    def _open_pcapng(self, buf: bytes) -> Generator[Packet, None, None]:
        if len(buf) < 16:
            raise CaptureError(f"{self.path}: pcapng section header truncated at byte {len(buf)}")
        endian = _BYTE_ORDER.get(buf[8:12])
        if endian is None:
            raise CaptureError(f"{self.path}: bad pcapng byte-order magic {buf[8:12].hex()}")
        major, minor = struct.unpack_from(endian + "HH", buf, 12)
        if major != 1:
            raise CaptureError(f"{self.path}: unsupported pcapng version {major}.{minor}")
        return self._pcapng_records(buf, endian)

    # -- input -----------------------------------------------------------------------------

    def _read_plain(self, size: int) -> bytes:
        try:
            return self._raw.read(size)
        except OSError as exc:
            self._read_failure = f"read failed ({exc})"
            return b""

    def _read_gzip(self, size: int) -> bytes:
        """Decompress up to ``size`` bytes; keep what came out before a gzip error."""
        parts: list[bytes] = []
        got = 0
        try:
            while got < size:
                part = self._stream.read1(size - got)  # type: ignore[attr-defined]
                if not part:
                    break
                parts.append(part)
                got += len(part)
        except EOFError:
            self._read_failure = "gzip stream ends early"
        except (OSError, zlib.error) as exc:
            self._read_failure = f"gzip stream is corrupt ({exc})"
        return b"".join(parts)

    def _more(self, buf: bytes, off: int, need: int) -> bytes:
        """Return ``buf[off:]`` extended until it holds ``need`` bytes or the input ends.

        The buffer holds at most max(chunk_size, need) bytes, and need <= max_record + 32.
        """
        rest = buf[off:]
        self._base += off
        data = b"" if self._read_failure else self._read(max(need, self._chunk) - len(rest))
        self.bytes_read = self._raw.tell()
        return rest + data if rest else data

    # -- reporting -------------------------------------------------------------------------

    def _fail(self, offset: int, packet: int, what: str) -> None:
        """Record one line of damage at ``offset`` in the (uncompressed) stream."""
        if len(self.info.errors) >= MAX_ERRORS:
            self._errors_dropped += 1
            return
        where = "uncompressed byte" if self.info.format.endswith("+gzip") else "byte"
        self.info.errors.append(f"{self.path}: {what} at {where} {offset} (packet {packet})")

    def _fail_short(self, have: int, need: int, packet: int, record: str) -> None:
        """Report the input ending ``have`` bytes into a ``need``-byte record."""
        if self._read_failure:
            self._fail(self._base + have, packet, self._read_failure)
        elif have:
            self._fail(self._base, packet, f"{record} truncated: {have} of {need} bytes")

    def _finish(self, packets: int, low: float, high: float, cut: dict[int, int]) -> None:
        """Fill in the totals once iteration ends, however it ends."""
        info = self.info
        info.packets = packets
        if packets and low <= high:
            info.start, info.end = low, high
        for snaplen, count in sorted(cut.items()):
            if snaplen > 0:
                info.warnings.append(f"{count} packets cut by snaplen {snaplen}")
            else:
                info.warnings.append(f"{count} packets captured shorter than on the wire")
        if self._errors_dropped:
            info.errors.append(f"{self.path}: {self._errors_dropped} further errors not listed")
            self._errors_dropped = 0
        self.bytes_read = self._raw.tell() if not self._raw.closed else self.size

    # -- pcap ------------------------------------------------------------------------------

    def _pcap_records(
        self, buf: bytes, endian: str, units: int, snaplen: int, linktype: int
    ) -> Generator[Packet, None, None]:
        """Walk pcap records: 16-byte header (sec, fraction, caplen, wire length) + frame."""
        header = struct.Struct(endian + "IIII").unpack_from
        limit = min(max(snaplen, STANDARD_SNAPLEN), self._max_record)
        snap = snaplen if 0 < snaplen <= limit else limit  # fast-path bound; more is rare
        scale = 1 / units
        off, n, cut, oversize = 24, 0, 0, 0
        low, high = math.inf, -math.inf
        try:
            while True:
                end = len(buf)
                stop = end - 16
                while off <= stop:
                    sec, frac, caplen, wirelen = header(buf, off)
                    start = off + 16
                    nxt = start + caplen
                    if nxt > end or caplen > snap:
                        break
                    ts = sec + frac * scale
                    if ts < low:
                        low = ts
                    if ts > high:
                        high = ts
                    if caplen < wirelen:
                        cut += 1
                    n += 1
                    yield ts, linktype, buf[start:nxt], wirelen
                    off = nxt
                # Slow path: a record straddles the buffer end, is oversized, or input ends.
                need = 16
                if off + 16 <= end:
                    caplen = header(buf, off)[2]
                    if caplen > limit:
                        self._fail(
                            self._base + off,
                            n + 1,
                            f"record length {caplen} exceeds snaplen {snaplen} (limit {limit})",
                        )
                        return
                    need += caplen
                    if caplen > snap:
                        oversize += 1
                if off + need > end:
                    self.info.packets = n
                    buf, off = self._more(buf, off, need), 0
                    if len(buf) < need:
                        self._fail_short(len(buf), need, n + 1, "record")
                        return
                if need == 16:
                    continue  # header now buffered; the fast path takes it
                sec, frac, caplen, wirelen = header(buf, off)
                ts = sec + frac * scale
                low, high = min(low, ts), max(high, ts)
                if caplen < wirelen:
                    cut += 1
                n += 1
                yield ts, linktype, buf[off + 16 : off + need], wirelen
                off += need
        finally:
            if oversize:
                self.info.warnings.append(f"{oversize} packets longer than snaplen {snaplen}")
            self._finish(n, low, high, {snaplen: cut} if cut else {})

    # -- pcapng ----------------------------------------------------------------------------

    def _pcapng_records(self, buf: bytes, endian: str) -> Generator[Packet, None, None]:
        """Walk pcapng blocks: well-formed Enhanced Packet Blocks fast, the rest one by one."""
        block_header = struct.Struct(endian + "II").unpack_from
        trailer = struct.Struct(endian + "I").unpack_from
        epb = struct.Struct(endian + "7I").unpack_from  # EPB header with its block header
        interfaces: list[_Interface] = []
        off, n = 0, 0
        low, high, last_ts = math.inf, -math.inf, 0.0
        cut: dict[int, int] = {}
        try:
            while True:
                end = len(buf)
                nif = len(interfaces)
                stop = end - 28
                while off <= stop:
                    btype, blen, ifid, ts_high, ts_low, caplen, wirelen = epb(buf, off)
                    nxt = off + blen
                    if (
                        btype != _EPB
                        or nxt > end
                        or blen & 3
                        or ifid >= nif
                        or caplen > blen - 32
                        or trailer(buf, nxt - 4)[0] != blen
                    ):
                        break
                    linktype, snaplen, units, offset = interfaces[ifid]
                    ts = ((ts_high << 32) | ts_low) / units + offset
                    if ts < low:
                        low = ts
                    if ts > high:
                        high = ts
                    last_ts = ts
                    if caplen < wirelen:
                        cut[snaplen] = cut.get(snaplen, 0) + 1
                    n += 1
                    yield ts, linktype, buf[off + 28 : off + 28 + caplen], wirelen
                    off = nxt
                # Slow path: one block of any other kind, a damaged block, or more input.
                if off + 12 > end:
                    self.info.packets = n
                    buf, off = self._more(buf, off, 12), 0
                    if len(buf) < 12:
                        self._fail_short(len(buf), 12, n + 1, "block")
                        return
                    continue
                at = self._base + off
                if buf[off : off + 4] == _SHB_MAGIC:
                    endian = _BYTE_ORDER.get(buf[off + 8 : off + 12], "")
                    if not endian:
                        self._fail(at, n + 1, "bad byte-order magic in section header")
                        return
                    block_header = struct.Struct(endian + "II").unpack_from
                    trailer = struct.Struct(endian + "I").unpack_from
                    epb = struct.Struct(endian + "7I").unpack_from
                btype, blen = block_header(buf, off)
                if blen < 12 or blen & 3 or blen > self._max_record:
                    self._fail(at, n + 1, f"bad block length {blen}")
                    return
                if off + blen > end:
                    self.info.packets = n
                    buf, off = self._more(buf, off, blen), 0
                    if len(buf) < blen:
                        self._fail_short(len(buf), blen, n + 1, "block")
                        return
                    continue  # the block is buffered now; read its header again
                trailing = trailer(buf, off + blen - 4)[0]
                if trailing != blen:
                    self._fail(at, n + 1, f"block length {blen} but trailing length {trailing}")
                    return
                body = buf[off + 8 : off + blen - 4]
                off += blen
                if btype == _SHB:
                    if blen < 28 or struct.unpack_from(endian + "H", body, 4)[0] != 1:
                        self._fail(at, n + 1, "unsupported or short section header")
                        return
                    interfaces = []
                elif btype == _IDB:
                    face = self._interface(body, endian, at, n + 1)
                    if face is None:
                        return
                    interfaces.append(face)
                elif btype == _DSB:
                    self._secrets(body, endian, at, n + 1)
                elif btype in (_EPB, _PB, _SPB):
                    found = self._packet(btype, body, endian, interfaces, last_ts, at, n + 1)
                    if found is not None:
                        packet, face = found
                        if btype != _SPB:
                            ts = packet[0]
                            low, high, last_ts = min(low, ts), max(high, ts), ts
                        if len(packet[2]) < packet[3]:
                            cut[face.snaplen] = cut.get(face.snaplen, 0) + 1
                        n += 1
                        yield packet
        finally:
            self._finish(n, low, high, cut)

    def _packet(
        self,
        btype: int,
        body: bytes,
        endian: str,
        interfaces: list[_Interface],
        last_ts: float,
        at: int,
        number: int,
    ) -> tuple[Packet, _Interface] | None:
        """Decode an EPB, obsolete PB or SPB body; None (and an error) if it is inconsistent."""
        if btype == _SPB:
            if len(body) < 4:
                self._fail(at, number, "simple packet block too short")
                return None
            ifid, wirelen, start = 0, struct.unpack_from(endian + "I", body)[0], 4
        else:
            if len(body) < 20:
                self._fail(at, number, "packet block too short")
                return None
            fields = endian + ("5I" if btype == _EPB else "HxxIIII")
            ifid, ts_high, ts_low, caplen, wirelen = struct.unpack_from(fields, body)
            start = 20
        if ifid >= len(interfaces):
            self._fail(at, number, f"packet for undeclared interface {ifid}")
            return None
        face = interfaces[ifid]
        if btype == _SPB:
            # No timestamp and no captured length: the frame fills the block up to snaplen.
            caplen = min(wirelen, len(body) - 4, face.snaplen or MAX_RECORD)
            ts = last_ts
        else:
            if caplen > len(body) - 20:
                self._fail(at, number, f"captured length {caplen} overruns its block")
                return None
            ts = ((ts_high << 32) | ts_low) / face.units + face.offset
        return (ts, face.linktype, body[start : start + caplen], wirelen), face

    def _interface(self, body: bytes, endian: str, at: int, number: int) -> _Interface | None:
        """Decode an Interface Description Block body with its if_tsresol/if_tsoffset."""
        if len(body) < 8:
            self._fail(at, number, "interface description block too short")
            return None
        linktype, snaplen = struct.unpack_from(endian + "HxxI", body)
        units, offset = 1_000_000, 0
        pos = 8
        while pos + 4 <= len(body):
            code, size = struct.unpack_from(endian + "HH", body, pos)
            if code == _OPT_END:
                break
            if pos + 4 + size > len(body):
                self._fail(at, number, f"interface option {code} overruns its block")
                break
            if code == _OPT_TSRESOL and size == 1:
                exponent = body[pos + 4]
                units = (2 if exponent & 0x80 else 10) ** (exponent & 0x7F)
            elif code == _OPT_TSOFFSET and size == 8:
                offset = struct.unpack_from(endian + "q", body, pos + 4)[0]
            pos += 4 + size + (-size % 4)
        self.info.linktypes.setdefault(linktype, at)
        return _Interface(linktype, snaplen, units, offset)

    def _secrets(self, body: bytes, endian: str, at: int, number: int) -> None:
        """Keep the TLS key log lines of a Decryption Secrets Block; other secrets are skipped."""
        if len(body) < 8:
            self._fail(at, number, "decryption secrets block too short")
            return
        kind, size = struct.unpack_from(endian + "II", body)
        if size > len(body) - 8:
            self._fail(at, number, f"secrets length {size} overruns its block")
            return
        if kind == _SECRETS_TLS_KEYLOG:
            lines = body[8 : 8 + size].splitlines()
            self.info.keylog.extend(line for line in lines if line.strip())
