"""From a capture file to the facts in it: read, decode, reassemble, fold into TLS handshakes
and file transfers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from capana.budget import Budget
from capana.capture import CaptureError, CaptureInfo, CaptureReader, Packet
from capana.connections import ConnectionTable
from capana.datagrams import DatagramTable
from capana.decode import (
    DECODED_LINKTYPES,
    Datagram,
    EapolFrame,
    FrameDecoder,
    Undecoded,
    worth_decoding,
)
from capana.eapol import EapolTable
from capana.handshake import utc_from_epoch
from capana.ipfrag import (
    MAX_DATAGRAM_LENGTH,
    MAX_DATAGRAMS,
    MAX_FRAGMENTS,
    MAX_HELD_BYTES,
    TIMEOUT,
    IpReassembler,
)
from capana.keylog import CaptureKeys, KeyLog, KeyLogError
from capana.model import CaptureSummary, FileTransfer, Handshake
from capana.packets import TcpSegment
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
    budget = Budget()  # one for every buffer of the capture
    tables = _Tables(
        ConnectionTable(name, keys=keys, budget=budget),
        DatagramTable(name, budget, keys),
        EapolTable(name, budget=budget, keys=keys),
        FrameDecoder(IpReassembler(budget=budget)),
        budget,
    )
    with reader:
        records = reader if progress is None else _reporting(reader, progress)
        facts = _facts(records, tables)
    summary = _summary(name, reader.info, tables, keys, key_errors)
    handshakes = [fact for fact in facts if isinstance(fact, Handshake)]
    transfers = [fact for fact in facts if isinstance(fact, FileTransfer)]
    handshakes.sort(key=lambda h: h.start or _EPOCH)
    transfers.sort(key=lambda t: t.request_frame)
    return CaptureFacts(summary, handshakes, transfers)


@dataclass
class _Tables:
    """Where decoded packets go, and what the decoder could not read."""

    tcp: ConnectionTable
    udp: DatagramTable
    eapol: EapolTable
    decoder: FrameDecoder
    budget: Budget
    undecoded: Counter[Undecoded] = field(default_factory=Counter)


def _load_keylog(
    keylog: str | Path | KeyLog | None,
) -> tuple[KeyLog | None, tuple[str, ...]]:
    if not isinstance(keylog, str | Path):
        return keylog, ()
    try:
        return KeyLog.read(keylog), ()
    except KeyLogError as error:
        return None, (str(error),)


def _facts(records: Iterable[Packet], tables: _Tables) -> list[Fact]:
    """The per-packet loop: each packet that can matter decoded, and what it carries to its
    table (TCP segments, UDP datagrams, EAPOL frames); what cannot be read is counted."""
    facts: list[Fact] = []
    tcp, udp, eapol, undecoded = tables.tcp, tables.udp, tables.eapol, tables.undecoded
    decode = tables.decoder.decode
    for number, (timestamp, linktype, frame, wire_length) in worth_decoding(
        records, tcp.flows, udp.ports
    ):
        decoded = decode(linktype, frame, wire_length, timestamp)
        kind = type(decoded)
        if kind is TcpSegment:
            tcp.add(decoded, timestamp, number)  # type: ignore[arg-type]
            if tcp.completed:
                facts += tcp.completed
                tcp.completed.clear()
        elif kind is Datagram:
            udp.add(decoded, timestamp, number)  # type: ignore[arg-type]
            facts += udp.drain()
        elif kind is EapolFrame:
            eapol.add(decoded, timestamp, number)  # type: ignore[arg-type]
        elif kind is Undecoded and linktype in DECODED_LINKTYPES:
            undecoded[decoded] += 1  # type: ignore[index]
    tables.decoder.finish()
    tcp.finish()
    facts += tcp.completed
    facts += udp.finish()
    eapol.finish()
    facts += eapol.completed
    return facts


def _summary(
    name: str,
    info: CaptureInfo,
    tables: _Tables,
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
    warnings += _undecoded_warnings(tables)
    warnings += [f"key log: {problem}" for problem in keys.problems]
    table = tables.tcp
    if table.evicted:
        warnings.append(
            f"{table.evicted} TLS connections were evicted before their end: "
            f"more than {table.max_connections} connections open at once"
        )
    if tables.eapol.evicted:
        warnings.append(
            f"{tables.eapol.evicted} 802.1X authentications were evicted before their end"
        )
    if tables.udp.evicted:
        warnings.append(
            f"{tables.udp.evicted} RADIUS exchanges or DTLS sessions were evicted before their "
            "end: too many open at once"
        )
    warnings += tables.budget.warnings()
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


def _undecoded_warnings(tables: _Tables) -> list[str]:
    """One line per header the decoder could not read, with its packet count; then the IP
    fragments that never made a whole datagram."""
    lines = [
        f"{count} packets not decoded: {undecoded.layer} ({undecoded.reason.replace('_', ' ')})"
        for undecoded, count in sorted(tables.undecoded.items(), key=lambda item: -item[1])
    ]
    fragments = tables.decoder.fragments
    for reason, count in sorted(fragments.dropped.items()):
        lines.append(
            f"{count} IP datagrams not reassembled from their fragments: {_DROPPED[reason]}"
        )
    if fragments.conflicts:
        lines.append(
            f"{fragments.conflicts} IP fragments overlapped others with different contents: "
            "the first bytes were kept"
        )
    return lines


_DROPPED = {
    "timeout": f"still incomplete {TIMEOUT:.0f} s after their first fragment",
    "datagrams": f"more than {MAX_DATAGRAMS} datagrams in reassembly at once",
    "bytes": f"more than {MAX_HELD_BYTES >> 20} MiB of fragments held at once",
    "fragments": f"more than {MAX_FRAGMENTS} fragments in one datagram",
    "too_long": f"longer than {MAX_DATAGRAM_LENGTH} bytes",
    "unfinished": "fragments missing at the end of the capture",
    "budget": "the capture-wide memory budget was spent",
}


def _reporting(reader: CaptureReader, progress: ProgressCallback) -> Iterator[Packet]:
    """The reader's packets, calling ``progress`` every ``_PROGRESS_EVERY`` of them."""
    for number, record in enumerate(reader, 1):
        yield record
        if number % _PROGRESS_EVERY == 0:
            progress(reader.bytes_read, reader.size)


_EPOCH = datetime.fromtimestamp(0, tz=timezone.utc)
