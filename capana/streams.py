"""What the TCP flow table hands to the reader of a connection's application bytes.

A :class:`StreamReader` is chosen by a connection's first bytes (TLS, HTTP file transfers;
clear-text signalling plugs in the same way) and fed both sides' in-order bytes with the number
of the frame that completed them. When the connection ends it turns what it read into facts,
given the :class:`Flow` it ran on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from capana.model import FileTransfer, Handshake, Problem, Sender

# What readers produce; the scan sorts them by type.
Fact = Handshake | FileTransfer


@dataclass(frozen=True)
class Flow:
    """The TCP connection a reader ran on, as the report names it."""

    capture: str
    client: str  # "10.1.1.20:51234"
    server: str
    server_port: int
    service: str
    gaps: int
    problems: tuple[Problem, ...]  # TCP-level: snaplen, overlapping segments, eviction
    wireshark_filter: str  # Wireshark's conversation filter for this connection
    closed: frozenset[Sender] = frozenset()  # the sides seen ending it (FIN or RST)


class StreamReader(Protocol):
    """Reads one connection's application bytes, both sides, in capture order."""

    @property
    def done(self) -> bool:
        """Nothing more of interest can come: the flow table stops buffering the connection."""
        ...

    @property
    def hopeless(self) -> bool:
        """The bytes are not what the reader expected after all: drop the connection."""
        ...

    def feed(self, sender: Sender, data: bytes, timestamp: float, frame: int) -> None:
        """``sender``'s next bytes; ``frame``: the capture's 1-based number of the packet that
        completed them (0 when unknown)."""
        ...

    def after_gap(self, sender: Sender, data: bytes, timestamp: float, frame: int) -> None:
        """``data`` follows a stretch of ``sender``'s bytes the capture lacks."""
        ...

    def facts(self, flow: Flow) -> Sequence[Fact]: ...
