"""One memory budget for every buffer of a capture, so that no input can make capana grow.

Each buffer that holds bytes waiting for more (TCP segments behind a hole and the bytes kept to
compare overlaps, TLS records and handshake messages being joined, DTLS fragments, EAP-TLS
fragments, IP fragments) takes its bytes from the capture's :class:`Budget` before it grows and
gives them back when it shrinks or is dropped. A buffer refused its bytes stops growing as its
own bound says (a TCP hole becomes a gap, a TLS direction stops with a problem, a fragmented
datagram is dropped), and the refusal is counted by kind so that a warning says what the budget
cut. ``held`` never passes ``limit`` by more than one TCP segment (held before its hole is
declared a gap).

The limit leaves room, within capana's 300 MB for any input, for Python's own overhead: the flow
tables (bounded in entries by their own modules) and the report.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

MAX_CAPTURE_BUFFERED = 128 << 20  # bytes held by all the buffers of one capture at once

# What a buffer holds, as the warning names it.
BufferKind = Literal["tcp", "tls", "dtls", "eap", "ip-fragments"]
KIND_TEXT: dict[BufferKind, str] = {
    "tcp": "TCP data held behind holes or kept to compare overlaps",
    "tls": "TLS records and handshake messages being joined",
    "dtls": "DTLS handshake fragments being joined",
    "eap": "EAP-TLS fragments being joined",
    "ip-fragments": "IP fragments being reassembled",
}


class Budget:
    """Bytes held by the buffers sharing it; ``refused`` counts, by kind, the growth it refused."""

    __slots__ = ("held", "limit", "peak", "refused")

    def __init__(self, limit: int = MAX_CAPTURE_BUFFERED) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0
        self.refused: Counter[BufferKind] = Counter()

    def take(self, size: int, kind: BufferKind) -> bool:
        """Reserve ``size`` more bytes; False (and counted) when that would pass the limit."""
        held = self.held + size
        if held > self.limit:
            self.refused[kind] += 1
            return False
        self.held = held
        if held > self.peak:
            self.peak = held
        return True

    def give(self, size: int) -> None:
        """Return ``size`` bytes a buffer no longer holds."""
        self.held -= size

    def warnings(self) -> list[str]:
        """One line per kind of buffer the budget cut, with how often."""
        return [
            f"the capture-wide memory budget ({self.limit >> 20} MiB for all buffers) was "
            f"reached {count} times: {KIND_TEXT[kind]} were cut short"
            for kind, count in sorted(self.refused.items())
        ]
