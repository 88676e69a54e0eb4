"""IPv4 and IPv6 fragment reassembly, sans-IO: fragments in, whole datagrams out.

Goals: every datagram whose fragments were all captured comes out once, whatever order the
fragments arrived in. Overlapping fragments are handled as TCP overlaps are: the bytes seen first
are kept, and a later fragment that would rewrite them with different bytes counts a conflict.
A fragment the snaplen cut still counts for the bytes it declares; the datagram then comes out
with its captured prefix and ``missing`` bytes, as a cut packet does.

Bounds: at most MAX_DATAGRAMS datagrams in progress holding MAX_HELD_BYTES between them (each
piece held counted at its size plus PIECE_COST), at most MAX_FRAGMENTS fragments and
MAX_DATAGRAM_LENGTH bytes each; a datagram still incomplete
TIMEOUT seconds of capture time after its first fragment is dropped (Linux's ipfrag_time).
A fragment sent again after its datagram came out (a retransmission, a second capture point)
starts a datagram that never completes: when it ends within the length of a datagram of the
same key that came out (one of the last MAX_DATAGRAMS), it is counted in ``repeated``, not as
dropped. Past a bound the oldest datagrams are dropped and counted by reason in ``dropped``; a
datagram whose bytes the capture's :class:`Budget` refuses is dropped too. A fragment costs
O(fragments of its datagram), so a datagram costs at most O(MAX_FRAGMENTS ** 2).
Nothing is held past :meth:`IpReassembler.finish`, the explicit end of the capture.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal, NamedTuple

from capana.budget import Budget

MAX_DATAGRAMS = 4096
MAX_HELD_BYTES = 16 << 20
MAX_FRAGMENTS = 256  # a 64 KiB datagram at the minimum IPv6 MTU (1280) takes 52
MAX_DATAGRAM_LENGTH = 65535  # IPv4 total length and IPv6 payload length are 16-bit
TIMEOUT = 30.0
PIECE_COST = 128  # bytes a held piece costs beyond its data (tuple, bytes object), counted


DropReason = Literal[
    "timeout", "datagrams", "bytes", "fragments", "too_long", "unfinished", "budget"
]


class Fragment(NamedTuple):
    """One fragment of an IP datagram, as the frame decoder found it.

    ``key`` names the datagram (addresses, protocol, identification); ``payload`` is the
    fragment's captured data at ``offset`` bytes into the datagram's payload, ``missing`` the
    bytes of it the snaplen cut. ``depth`` is how many headers the decoder had read to get here.
    """

    key: bytes
    source: bytes
    destination: bytes
    protocol: int
    offset: int
    more: bool
    payload: bytes
    missing: int
    depth: int


class Reassembled(NamedTuple):
    """A whole datagram's payload: its captured bytes, and the ``missing`` ones that follow."""

    source: bytes
    destination: bytes
    protocol: int
    payload: bytes
    missing: int
    depth: int


class _Datagram:
    """The fragments of one datagram so far: pieces that do not overlap, kept in offset order."""

    __slots__ = ("first", "held", "length", "pieces", "started")

    def __init__(self, first: Fragment, started: float) -> None:
        self.first = first
        self.started = started
        self.length: int | None = None  # known once the last fragment (no "more") is seen
        self.held = 0
        # (start, stop, captured bytes): [start, stop) is declared; the bytes may fall short.
        self.pieces: list[tuple[int, int, bytes]] = []

    def add(self, start: int, stop: int, data: bytes) -> bool:
        """Keep what ``data`` adds to the bytes held; True when it contradicts them."""
        conflict = False
        cursor = start
        fresh = []
        for low, high, kept in self.pieces:
            if high <= cursor:
                continue
            if low >= stop:
                break
            if low > cursor:
                fresh.append((cursor, low, data[cursor - start : low - start]))
            overlap_start, overlap_stop = max(low, cursor), min(high, stop)
            ours = data[overlap_start - start : overlap_stop - start]
            theirs = kept[overlap_start - low : overlap_stop - low]
            common = min(len(ours), len(theirs))
            conflict |= ours[:common] != theirs[:common]
            cursor = high
            if cursor >= stop:
                break
        if cursor < stop:
            fresh.append((cursor, stop, data[cursor - start :]))
        if fresh:
            self.pieces = sorted(self.pieces + fresh)
            self.held += sum(len(piece[2]) + PIECE_COST for piece in fresh)
        return conflict

    def whole(self) -> tuple[bytes, int] | None:
        """(captured payload, missing bytes) once every byte up to ``length`` is declared."""
        length = self.length
        if length is None:
            return None
        covered = 0
        for low, high, _ in self.pieces:
            if low > covered:
                return None
            covered = max(covered, high)
        if covered < length:
            return None
        payload = bytearray()
        for low, high, data in self.pieces:
            if low >= length:
                break
            payload += data[: length - low]
            if len(data) < high - low:
                break  # the snaplen cut this fragment: what follows is not contiguous
        return bytes(payload), length - len(payload)


class IpReassembler:
    """The IP datagrams of one capture being put together from their fragments."""

    def __init__(
        self,
        max_datagrams: int = MAX_DATAGRAMS,
        max_bytes: int = MAX_HELD_BYTES,
        timeout: float = TIMEOUT,
        budget: Budget | None = None,
    ) -> None:
        self.budget = budget
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.completed = 0
        self.conflicts = 0
        self.repeated = 0
        self._lengths: dict[bytes, int] = {}  # length of the datagrams that came out, by key
        self.dropped: Counter[DropReason] = Counter()
        self._held = 0
        self._datagrams: dict[bytes, _Datagram] = {}  # insertion order is age order

    @property
    def held_bytes(self) -> int:
        return self._held

    def add(self, fragment: Fragment, timestamp: float) -> Reassembled | None:
        """Take a fragment; the whole datagram when this fragment completes it, else None."""
        self._expire(timestamp)
        stop = fragment.offset + len(fragment.payload) + fragment.missing
        datagram = self._datagrams.get(fragment.key)
        if stop > MAX_DATAGRAM_LENGTH:
            if datagram is not None:
                self._drop(fragment.key, "too_long")
            else:
                self.dropped["too_long"] += 1
            return None
        if datagram is None:
            datagram = self._datagrams[fragment.key] = _Datagram(fragment, timestamp)
        elif len(datagram.pieces) >= MAX_FRAGMENTS:
            self._drop(fragment.key, "fragments")
            return None
        if fragment.offset == 0:
            datagram.first = fragment  # its depth and protocol describe the datagram
        if not fragment.more:
            if datagram.length is not None and datagram.length != stop:
                self.conflicts += 1  # two different ends: the first one seen stands
            else:
                datagram.length = stop
        held = datagram.held
        self.conflicts += datagram.add(fragment.offset, stop, fragment.payload)
        grown = datagram.held - held
        if self.budget is not None and not self.budget.take(grown, "ip-fragments"):
            datagram.held = held  # the growth was never taken
            self._drop(fragment.key, "budget")
            return None
        self._held += grown
        whole = datagram.whole()
        if whole is not None:
            self._forget(fragment.key)
            self.completed += 1
            self._came_out(fragment.key, len(whole[0]) + whole[1])
            first = datagram.first
            return Reassembled(
                first.source,
                first.destination,
                first.protocol,
                whole[0],
                whole[1],
                first.depth,
            )
        self._bound()
        return None

    def _came_out(self, key: bytes, length: int) -> None:
        lengths = self._lengths
        lengths.pop(key, None)
        lengths[key] = length
        if len(lengths) > self.max_datagrams:
            del lengths[next(iter(lengths))]

    def finish(self) -> None:
        """End of capture: every datagram still incomplete is dropped as unfinished."""
        for key in list(self._datagrams):
            self._drop(key, "unfinished")

    def _expire(self, now: float) -> None:
        datagrams = self._datagrams
        while datagrams:
            key, oldest = next(iter(datagrams.items()))
            if now - oldest.started <= self.timeout:
                return
            self._drop(key, "timeout")

    def _bound(self) -> None:
        while len(self._datagrams) > self.max_datagrams:
            self._drop(next(iter(self._datagrams)), "datagrams")
        while self._held > self.max_bytes:
            self._drop(next(iter(self._datagrams)), "bytes")

    def _drop(self, key: bytes, reason: DropReason) -> None:
        datagram = self._datagrams[key]
        came_out = self._lengths.get(key)
        self._forget(key)
        if came_out is not None and all(high <= came_out for _, high, _ in datagram.pieces):
            self.repeated += 1  # fragments of a datagram that already came out
        else:
            self.dropped[reason] += 1

    def _forget(self, key: bytes) -> None:
        held = self._datagrams.pop(key).held
        self._held -= held
        if self.budget is not None:
            self.budget.give(held)
