"""One memory budget for every buffer of a capture, so that no input can make capana grow.

Each buffer that holds bytes waiting for more (TCP segments behind a hole and the bytes kept to
compare overlaps, TLS records and handshake messages being joined, DTLS fragments, EAP-TLS
fragments, IP fragments) takes its bytes from the capture's :class:`Budget` before it grows and
gives them back when it shrinks or is dropped. A buffer refused its bytes stops growing as its
own bound says (a TCP hole becomes a gap, a TLS direction stops with a problem, a fragmented
datagram is dropped), and the refusal is counted by kind so that a warning says what the budget
cut. ``held`` never passes ``limit`` by more than one TCP segment (held before its hole is
declared a gap).

The certificates a capture's handshakes sent are kept for the report once each (a site's phones
all receive the same server chain) and up to MAX_KEPT_CERTIFICATES bytes in all: past it, a
certificate never seen before is left out of its handshake, with a problem.

The limits leave room, within capana's 300 MB for any input, for what Python's allocator adds to
the bytes buffered (measured at about 2x for many buffers growing at once: bench/memory.py), and
for the flow tables, bounded in entries by their own modules.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

MAX_CAPTURE_BUFFERED = 64 << 20  # bytes held by all the buffers of one capture at once
MAX_KEPT_CERTIFICATES = 32 << 20  # bytes of distinct certificates kept for one capture's report

# What a buffer holds, as the warning names it.
BufferKind = Literal["tcp", "tcp-overlap", "tls", "dtls", "eap", "ip-fragments"]
KIND_TEXT: dict[BufferKind, str] = {
    "tcp": "TCP data held behind holes",
    "tcp-overlap": "TCP data kept to compare overlaps with",
    "tls": "TLS records and handshake messages being joined",
    "dtls": "DTLS handshake fragments being joined",
    "eap": "EAP-TLS fragments being joined",
    "ip-fragments": "IP fragments being reassembled",
}


class Budget:
    """Bytes held by the buffers sharing it; ``refused`` counts, by kind, the growth it refused."""

    __slots__ = ("_certificates", "held", "kept", "limit", "peak", "refused", "unkept")

    def __init__(self, limit: int | None = None) -> None:
        self.limit = MAX_CAPTURE_BUFFERED if limit is None else limit
        self.held = 0
        self.peak = 0
        self.refused: Counter[BufferKind] = Counter()
        self._certificates: dict[bytes, bytes] = {}  # each distinct certificate, once
        self.kept = 0  # their bytes
        self.unkept = 0  # certificates left out past MAX_KEPT_CERTIFICATES

    def take(self, size: int, kind: BufferKind, share: float = 1.0) -> bool:
        """Reserve ``size`` more bytes; False (and counted) when that would pass the limit, or
        its ``share`` for a buffer that is only nice to have."""
        held = self.held + size
        if held > self.limit * share:
            self.refused[kind] += 1
            return False
        self.held = held
        if held > self.peak:
            self.peak = held
        return True

    def give(self, size: int) -> None:
        """Return ``size`` bytes a buffer no longer holds."""
        self.held -= size

    def keep(self, certificates: tuple[bytes, ...]) -> tuple[bytes, ...]:
        """The certificates as the report keeps them: the first copy of each; a certificate
        not seen before is left out once MAX_KEPT_CERTIFICATES bytes are kept (``unkept``)."""
        kept = []
        for der in certificates:
            same = self._certificates.get(der)
            if same is None:
                if self.kept + len(der) > MAX_KEPT_CERTIFICATES:
                    self.unkept += 1
                    continue
                self._certificates[der] = same = der
                self.kept += len(der)
            kept.append(same)
        return tuple(kept)

    def warnings(self) -> list[str]:
        """One line per kind of buffer the budget cut, with how often; and the certificates
        left out of the report."""
        lines = [
            f"the capture-wide memory budget ({self.limit >> 20} MiB for all buffers) was "
            f"reached {count} times: {KIND_TEXT[kind]} were cut short"
            for kind, count in sorted(self.refused.items())
        ]
        if self.unkept:
            lines.append(
                f"{self.unkept} certificates were left out of their handshakes: the capture's "
                f"{MAX_KEPT_CERTIFICATES >> 20} MiB for distinct certificates were spent"
            )
        return lines
