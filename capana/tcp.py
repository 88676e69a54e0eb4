"""TCP reassembly of one direction of a connection: segments in, in-order bytes out.

Goals: every byte that was captured comes out once, in sequence order, whatever order the
segments arrived in (retransmissions, duplicates, overlaps, reordering, sequence wrap-around).
A stretch the capture lacks is never invented: it is counted as a gap and skipped. Bytes of a
segment the snaplen cut are skipped at once (they will never come); either way ``resumed`` tells
the caller that the bytes just returned follow bytes the capture lacks.
Bound: at most MAX_BUFFERED bytes in at most MAX_HELD_SEGMENTS segments wait ahead of a hole,
and what the capture's :class:`Budget` grants across all buffers; past any of them the hole is
declared a gap. Held segments sit in a heap by position, so each is pushed and popped once:
O(n log n) in the segments held, never quadratic (tiny segments behind a hole would otherwise be
a DoS). The last OVERLAP_WINDOW bytes delivered are kept (budget permitting), as the payloads
they came in (never copied), to compare with data sent again over them.
"""

from __future__ import annotations

import heapq

from capana.budget import Budget

_MASK = 0xFFFFFFFF
_HALF = 1 << 31
MAX_BUFFERED = 1 << 20
MAX_HELD_SEGMENTS = 4096  # 1-byte segments must not cost 100 bytes of overhead each
OVERLAP_WINDOW = 4096
# The share of the capture's budget overlap windows may use: they are only nice to have.
OVERLAP_SHARE = 0.25


class TcpStream:
    """One direction's bytes. ``next_seq`` is the sequence number of the next byte expected."""

    __slots__ = (
        "_budget",
        "_heap",
        "_lost",
        "_position",
        "_start",
        "_tail",
        "_tail_size",
        "conflicts",
        "gaps",
        "next_seq",
        "pending",
        "pending_bytes",
        "resumed",
    )

    def __init__(self, next_seq: int | None = None, budget: Budget | None = None) -> None:
        self.next_seq = next_seq
        self._budget = budget
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.gaps = 0
        self.conflicts = 0
        self.resumed = False  # the bytes last returned follow a gap or a snaplen cut
        self._lost = False  # the bytes just before next_seq are not in the capture
        self._tail: list[bytes] = []  # the last payloads delivered (a few), ending at next_seq
        self._tail_size = 0
        # Held segments as (position, seq); position counts bytes from any fixed origin and
        # does not wrap, so the heap orders them even across sequence wrap-around.
        self._heap: list[tuple[int, int]] = []
        self._position = 0  # position of next_seq
        self._start: int | None = None  # first seq seen when joined mid-stream (no SYN)

    def add(self, seq: int, payload: bytes, missing: int = 0) -> bytes:
        """Take a segment, of which the capture cut ``missing`` bytes after ``payload``; return
        the bytes that became contiguous (often ``b""``). ``resumed`` says whether they follow
        bytes the capture lacks.

        A cut segment held out of order keeps only its payload: the stretch it lacks is found
        later as a hole, like a lost segment's.
        """
        self.resumed = False
        ready = b""
        if self._lost and self._heap and self._heap[0][0] <= self._position:
            ready = self._resume(self._drain())  # what waited for a cut segment to pass
        if self.next_seq is None:
            self.next_seq = seq  # joined mid-stream: the first byte seen is where we start
            self._start = seq
        offset = (seq - self.next_seq) & _MASK
        if offset >= _HALF:  # starts before what we already have
            overlap = (self.next_seq - seq) & _MASK
            if overlap == 1 and len(payload) == 1:
                return ready  # a keep-alive: one byte, old or garbage (RFC 1122 4.2.3.6)
            self._before_start(seq)
            self._compare_delivered(payload, overlap)
            if overlap >= len(payload) + missing:
                return ready
            missing -= max(0, overlap - len(payload))
            payload = payload[overlap:]
            offset = 0
        if offset:
            self._hold(seq, payload, offset)
            if ready:
                return ready  # a hole to skip waits for the next segment
            budget = self._budget
            if self.pending_bytes > MAX_BUFFERED or len(self.pending) > MAX_HELD_SEGMENTS:
                return self.skip_gap()
            if budget is not None and budget.held > budget.limit:
                return self.skip_gap()
            return b""
        ready += self._resume(payload)
        self._deliver(payload)
        if missing:
            self._skip_cut(missing)
            return ready
        if not self.pending:
            return ready
        return ready + self._drain()

    @property
    def lost_at_end(self) -> bool:
        """Are the bytes just before ``next_seq`` missing from the capture (a snaplen cut)?"""
        return self._lost

    def skip_gap(self) -> bytes:
        """Declare the hole before the earliest held segment lost; return what follows it."""
        while self._heap and self._heap[0][1] not in self.pending:
            heapq.heappop(self._heap)  # superseded entry
        if not self._heap or self.next_seq is None:
            return b""
        position, seq = self._heap[0]
        if position > self._position:
            self.gaps += 1
            self._position, self.next_seq = position, seq
            self._forget_tail()
            self._lost = True  # what comes next follows bytes the capture lacks
        return self._resume(self._drain())

    def _resume(self, data: bytes) -> bytes:
        """``data`` as the next bytes out: after a loss when one is pending."""
        if data and self._lost:
            self._lost = False
            self.resumed = True
        return data

    def _skip_cut(self, missing: int) -> None:
        """Pass over the ``missing`` bytes the snaplen cut from the segment just delivered."""
        self.next_seq = (self.next_seq + missing) & _MASK  # type: ignore[operator]
        self._position += missing
        self._forget_tail()
        self._lost = True

    def _before_start(self, seq: int) -> None:
        """Bytes from before the first one seen of a stream joined mid-way came too late."""
        start = self._start
        if start is not None and 0 < (start - seq) & _MASK < _HALF:
            self.gaps += 1  # what came before the start was already passed over
            self._start = None

    def _deliver(self, payload: bytes) -> None:
        self.next_seq = (self.next_seq + len(payload)) & _MASK  # type: ignore[operator]
        self._position += len(payload)
        self._keep(payload)

    def _keep(self, payload: bytes) -> None:
        """Keep ``payload`` to compare overlaps with, if the budget grants its bytes; let go
        of the oldest payloads not needed to keep OVERLAP_WINDOW bytes."""
        budget = self._budget
        if budget is not None and not budget.take(len(payload), "tcp-overlap", OVERLAP_SHARE):
            self._forget_tail()  # overlaps over these bytes go unchecked
            return
        tail = self._tail
        tail.append(payload)
        self._tail_size += len(payload)
        while self._tail_size - len(tail[0]) >= OVERLAP_WINDOW:
            old = len(tail.pop(0))
            self._tail_size -= old
            if budget is not None:
                budget.give(old)

    def _forget_tail(self) -> None:
        if self._budget is not None:
            self._budget.give(self._tail_size)
        self._tail.clear()
        self._tail_size = 0

    def _hold(self, seq: int, payload: bytes, offset: int) -> None:
        held = self.pending.get(seq)
        if held is not None:
            common = min(len(held), len(payload))
            if held[:common] != payload[:common]:
                self.conflicts += 1
            if len(held) >= len(payload):
                return
            self._held(-len(held))
        else:
            heapq.heappush(self._heap, (self._position + offset, seq))
        self.pending[seq] = payload
        self._held(len(payload))

    def _held(self, change: int) -> None:
        self.pending_bytes += change
        budget = self._budget
        if budget is not None:
            if change < 0:
                budget.give(-change)
            elif not budget.take(change, "tcp"):
                budget.held += change  # held all the same, until add() declares the hole a gap

    def __del__(self) -> None:
        if self._budget is not None:
            self._budget.give(self.pending_bytes + self._tail_size)  # the stream is dropped

    def _drain(self) -> bytes:
        """Deliver held segments that now start at or before ``next_seq``, in position order."""
        out = bytearray()
        heap = self._heap
        while heap and heap[0][0] <= self._position:
            position, seq = heapq.heappop(heap)
            payload = self.pending.pop(seq, None)
            if payload is None:
                continue
            self._held(-len(payload))
            overlap = self._position - position
            self._compare_delivered(payload, overlap)
            if overlap < len(payload):
                fresh = payload[overlap:]
                out += fresh
                self._deliver(fresh)
        return bytes(out)

    def _compare_delivered(self, payload: bytes, overlap: int) -> None:
        """Count a conflict when ``payload``, starting ``overlap`` bytes back, rewrites them."""
        if not overlap:
            return
        tail = b"".join(self._tail)
        start = len(tail) - overlap  # where payload[0] sits in the tail
        skip = max(0, -start)
        end = min(len(payload), overlap)
        if skip < end and payload[skip:end] != tail[start + skip : start + end]:
            self.conflicts += 1
