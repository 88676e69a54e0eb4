"""From a capture file to the facts in it: read, decode, reassemble, fold into TLS handshakes
and file transfers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from capana.capture import CaptureError, CaptureInfo, CaptureReader, Packet
from capana.connections import ConnectionTable
from capana.dot1x import RADIUS_PORT_HIGH_BYTES, Dot1xTable
from capana.handshake import utc_from_epoch
from capana.keylog import CaptureKeys, KeyLog, KeyLogError
from capana.model import CaptureSummary, FileTransfer, Handshake
from capana.packets import DECODED_LINKTYPES, decode_tcp, worth_decoding
from capana.streams import Fact

# Called now and then with (bytes read, total bytes) so a CLI can draw a progress bar.
ProgressCallback = Callable[[int, int], None]
_PROGRESS_EVERY = 1 << 16  # packets


@dataclass(frozen=True)
class CaptureFacts:
    """One capture as read: its summary, TLS handshakes by start time, file transfers by the
    frame of their request."""

    summary: CaptureSummary
    handshakes: list[Handshake]
    transfers: list[FileTransfer]


def scan_capture(
    path: str | Path,
    progress: ProgressCallback | None = None,
    keylog: str | Path | KeyLog | None = None,
) -> tuple[CaptureSummary, list[Handshake]]:
    """Every TLS handshake in one capture file, by start time (the file transfers too:
    :func:`read_capture`). Never raises on bad input."""
    facts = read_capture(path, progress, keylog)
    return facts.summary, facts.handshakes


def read_capture(
    path: str | Path,
    progress: ProgressCallback | None = None,
    keylog: str | Path | KeyLog | None = None,
) -> CaptureFacts:
    """Every fact in one capture file. Never raises on bad input.

    ``keylog`` (a key log file or a loaded :class:`KeyLog`) adds to the key log lines of the
    capture's own Decryption Secrets Blocks, which are always used to read encrypted sessions.
    """
    name = str(path)
    keylog, key_errors = _load_keylog(keylog)
    try:
        reader = CaptureReader(path)
    except CaptureError as error:
        summary = CaptureSummary(name, None, 0, None, None, (str(error), *key_errors), ())
        return CaptureFacts(summary, [], [])
    keys = CaptureKeys(reader.info.keylog, keylog)
    table = ConnectionTable(name, keys=keys)
    dot1x = Dot1xTable(name)  # 802.1X: EAPOL and RADIUS, fed only frames TCP does not take
    with reader:
        facts = _facts(_Numbered(reader, progress), table, dot1x)
    summary = _summary(name, reader.info, table, dot1x, keys, key_errors)
    handshakes = [fact for fact in facts if isinstance(fact, Handshake)]
    transfers = [fact for fact in facts if isinstance(fact, FileTransfer)]
    handshakes.sort(key=lambda h: h.start or _EPOCH)
    transfers.sort(key=lambda t: t.request_frame)
    return CaptureFacts(summary, handshakes, transfers)


def _load_keylog(
    keylog: str | Path | KeyLog | None,
) -> tuple[KeyLog | None, tuple[str, ...]]:
    if not isinstance(keylog, str | Path):
        return keylog, ()
    try:
        return KeyLog.read(keylog), ()
    except KeyLogError as error:
        return None, (str(error),)


def _facts(records: _Numbered, table: ConnectionTable, dot1x: Dot1xTable) -> list[Fact]:
    """The per-packet loop: every packet to the TCP table or the 802.1X table, or dropped."""
    facts: list[Fact] = []
    for timestamp, linktype, frame, wire_length in worth_decoding(
        records, table.flows, RADIUS_PORT_HIGH_BYTES
    ):
        segment = decode_tcp(linktype, frame, wire_length)
        if segment is not None:
            table.add(segment, timestamp, records.number)
            if table.completed:
                facts.extend(table.completed)
                table.completed.clear()
        else:
            dot1x.add(linktype, frame, timestamp, records.number)
    table.finish()
    facts.extend(table.completed)
    facts.extend(dot1x.finish())
    return facts


def _summary(
    name: str,
    info: CaptureInfo,
    table: ConnectionTable,
    dot1x: Dot1xTable,
    keys: CaptureKeys,
    key_errors: tuple[str, ...],
) -> CaptureSummary:
    """The capture as read, with every limit that was hit said as a warning."""
    warnings = list(info.warnings)
    errors = list(info.errors)
    unknown = {lt: at for lt, at in info.linktypes.items() if lt not in DECODED_LINKTYPES}
    for linktype, at in unknown.items():
        line = f"{name}: link type {linktype} is not decoded at byte {at}: its packets skipped"
        # An error when nothing in the file could be read, else a warning.
        (errors if len(unknown) == len(info.linktypes) else warnings).append(line)
    warnings += [f"key log: {problem}" for problem in keys.problems]
    if table.evicted:
        warnings.append(
            f"{table.evicted} TLS connections were evicted before their end: "
            f"more than {table.max_connections} connections open at once"
        )
    if dot1x.evicted:
        warnings.append(f"{dot1x.evicted} 802.1X authentications were evicted before their end")
    if table.held.hits:
        warnings.append(
            f"{table.held.hits} holes in TCP streams were declared gaps early: more than "
            f"{table.held.limit >> 20} MiB waited behind holes across the capture"
        )
    start, end = utc_from_epoch(info.start), utc_from_epoch(info.end)
    if (start is None) != (info.start is None) or (end is None) != (info.end is None):
        warnings.append("packet timestamps out of range: the capture time is unknown")
    return CaptureSummary(
        path=name,
        format=info.format,
        packets=info.packets,
        start=start,
        end=end,
        errors=tuple(errors) + key_errors,
        warnings=tuple(warnings),
        keylog=tuple(info.keylog),
    )


class _Numbered:
    """The reader's packets, counted: ``number`` is the 1-based number of the packet last handed
    out, as Wireshark numbers frames (the fast path drops most packets after this count).
    ``progress`` is called every ``_PROGRESS_EVERY`` packets."""

    def __init__(self, reader: CaptureReader, progress: ProgressCallback | None) -> None:
        self.reader = reader
        self.progress = progress
        self.number = 0

    def __iter__(self) -> Iterator[Packet]:
        reader, progress = self.reader, self.progress
        for self.number, record in enumerate(reader, 1):
            yield record
            if progress is not None and self.number % _PROGRESS_EVERY == 0:
                progress(reader.bytes_read, reader.size)


_EPOCH = datetime.fromtimestamp(0, tz=timezone.utc)
