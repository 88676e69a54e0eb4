"""From a capture file to the TLS handshakes in it: read, decode, reassemble, fold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from capana.capture import CaptureError, CaptureReader
from capana.connections import ConnectionTable
from capana.handshake import Handshake
from capana.packets import decode_tcp

# Called now and then with (bytes read, total bytes) so a CLI can draw a progress bar.
ProgressCallback = Callable[[int, int], None]
_PROGRESS_EVERY = 1 << 16  # packets


@dataclass(frozen=True)
class CaptureSummary:
    """One capture file as read: how much, when, and what went wrong."""

    path: str
    format: str | None
    packets: int
    start: datetime | None
    end: datetime | None
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    keylog: tuple[bytes, ...] = ()

    @property
    def readable(self) -> bool:
        return self.format is not None


def scan_capture(
    path: str | Path, progress: ProgressCallback | None = None
) -> tuple[CaptureSummary, list[Handshake]]:
    """Every TLS handshake in one capture file, by start time. Never raises on bad input."""
    name = str(path)
    try:
        reader = CaptureReader(path)
    except CaptureError as error:
        return CaptureSummary(name, None, 0, None, None, (str(error),), ()), []
    table = ConnectionTable(name)
    handshakes: list[Handshake] = []
    with reader:
        for number, (timestamp, linktype, frame, wire_length) in enumerate(reader, 1):
            segment = decode_tcp(linktype, frame, wire_length)
            if segment is not None:
                table.add(segment, timestamp)
                if table.completed:
                    handshakes.extend(table.completed)
                    table.completed.clear()
            if progress is not None and number % _PROGRESS_EVERY == 0:
                progress(reader.bytes_read, reader.size)
        table.finish()
        handshakes.extend(table.completed)
        info = reader.info
    warnings = list(info.warnings)
    if table.evicted:
        warnings.append(
            f"{table.evicted} TLS connections were evicted before their end: "
            f"more than {table.max_connections} connections open at once"
        )
    summary = CaptureSummary(
        path=name,
        format=info.format,
        packets=info.packets,
        start=_utc(info.start),
        end=_utc(info.end),
        errors=tuple(info.errors),
        warnings=tuple(warnings),
        keylog=tuple(info.keylog),
    )
    handshakes.sort(key=lambda h: h.start or _EPOCH)
    return summary, handshakes


_EPOCH = datetime.fromtimestamp(0, tz=timezone.utc)


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=timezone.utc)
