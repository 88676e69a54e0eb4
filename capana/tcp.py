"""TCP reassembly of one direction of a connection: segments in, in-order bytes out.

Goals: every byte that was captured comes out once, in sequence order, whatever order the
segments arrived in (retransmissions, duplicates, overlaps, reordering, sequence wrap-around).
A stretch the capture lacks is never invented: it is counted as a gap and skipped.
Bound: at most MAX_BUFFERED bytes wait ahead of a hole; past that the hole is declared a gap.
The last OVERLAP_WINDOW bytes delivered are kept to compare with data sent again over them.
"""

from __future__ import annotations

_MASK = 0xFFFFFFFF
_HALF = 1 << 31
MAX_BUFFERED = 1 << 20
OVERLAP_WINDOW = 4096


class TcpStream:
    """One direction's bytes. ``next_seq`` is the sequence number of the next byte expected."""

    __slots__ = ("_tail", "conflicts", "gaps", "next_seq", "pending", "pending_bytes")

    def __init__(self, next_seq: int | None = None) -> None:
        self.next_seq = next_seq
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.gaps = 0
        self.conflicts = 0
        self._tail = b""  # the last bytes delivered, ending at next_seq

    def add(self, seq: int, payload: bytes) -> bytes:
        """Take a segment; return the bytes that became contiguous (often ``b""``)."""
        if self.next_seq is None:
            self.next_seq = seq  # joined mid-stream: the first byte seen is where we start
        offset = (seq - self.next_seq) & _MASK
        if offset >= _HALF:  # starts before what we already have
            overlap = (self.next_seq - seq) & _MASK
            self._compare_delivered(payload, overlap)
            if overlap >= len(payload):
                return b""
            payload = payload[overlap:]
            offset = 0
        if offset:
            self._hold(seq, payload)
            if self.pending_bytes > MAX_BUFFERED:
                return self.skip_gap()
            return b""
        self.next_seq = (self.next_seq + len(payload)) & _MASK
        self._tail = (self._tail + payload)[-OVERLAP_WINDOW:]
        if not self.pending:
            return payload
        return payload + self._drain()

    def skip_gap(self) -> bytes:
        """Declare the hole before the earliest held segment lost; return what follows it."""
        if not self.pending or self.next_seq is None:
            return b""
        earliest = min(self.pending, key=lambda seq: (seq - self.next_seq) & _MASK)
        self.next_seq = earliest
        self.gaps += 1
        self._tail = b""
        return self._drain()

    def _hold(self, seq: int, payload: bytes) -> None:
        held = self.pending.get(seq)
        if held is not None:
            common = min(len(held), len(payload))
            if held[:common] != payload[:common]:
                self.conflicts += 1
            if len(held) >= len(payload):
                return
            self.pending_bytes -= len(held)
        self.pending[seq] = payload
        self.pending_bytes += len(payload)

    def _drain(self) -> bytes:
        out = bytearray()
        progress = True
        while progress and self.pending:
            progress = False
            for seq in list(self.pending):
                offset = (seq - self.next_seq) & _MASK
                if offset and offset < _HALF:
                    continue  # still ahead of a hole
                payload = self.pending.pop(seq)
                self.pending_bytes -= len(payload)
                overlap = (self.next_seq - seq) & _MASK
                self._compare_delivered(payload, overlap)
                if overlap < len(payload):
                    out += payload[overlap:]
                    self._tail = (self._tail + payload[overlap:])[-OVERLAP_WINDOW:]
                    self.next_seq = (seq + len(payload)) & _MASK
                    progress = True
        return bytes(out)

    def _compare_delivered(self, payload: bytes, overlap: int) -> None:
        """Count a conflict when ``payload``, starting ``overlap`` bytes back, rewrites them."""
        start = len(self._tail) - overlap  # where payload[0] sits in the tail
        skip = max(0, -start)
        end = min(len(payload), overlap)
        if skip < end and payload[skip:end] != self._tail[start + skip : start + end]:
            self.conflicts += 1
