"""The UDP side of a capture: each datagram to the reader that claims it.

A :class:`DatagramReader` says cheaply (by its ports or the first bytes) whether a datagram is
its own, takes it with its time and frame number, and collects what it read as facts in
``completed``, which the scan drains. The table holds ONE set of ports (a
:class:`capana.decode.UdpPorts`, a ``MutableSet[int]``), shared with the per-packet fast path
(:func:`capana.decode.worth_decoding`): the tunnels the decoder opens and every reader's ports.
A reader whose ports change (a transfer's ephemeral ports) is given the set at construction and
adds and removes its ports itself (``add``, ``discard``, ``|=``).
"""

from __future__ import annotations

from typing import Protocol

from capana.budget import Budget
from capana.decode import UDP_TUNNEL_PORTS, Datagram, UdpPorts
from capana.dtls_sessions import DtlsSessions
from capana.radius import RadiusTable
from capana.session_keys import SecretsLookup
from capana.streams import Fact
from capana.tftp import TftpReader


class DatagramReader(Protocol):
    """Reads the datagrams it claims, in capture order."""

    completed: list[Fact]  # facts so far; the scan drains it

    def claims(self, datagram: Datagram) -> bool:
        """Is this datagram the reader's? Cheap: ports or first bytes."""
        ...

    def add(self, datagram: Datagram, timestamp: float, frame: int) -> None: ...

    def finish(self) -> None:
        """End of capture: whatever is still open becomes facts."""
        ...


class DatagramTable:
    """The datagram readers of one capture: RADIUS, TFTP transfers, then DTLS sessions (any
    port, by content)."""

    def __init__(
        self, capture: str, budget: Budget | None = None, keys: SecretsLookup | None = None
    ) -> None:
        self.ports = UdpPorts(UDP_TUNNEL_PORTS)
        self.radius = RadiusTable(capture, self.ports, budget, keys)
        self.tftp = TftpReader(capture, self.ports)
        self.dtls = DtlsSessions(capture, self.ports, budget)
        # The first reader that claims a datagram takes it.
        self.readers: list[DatagramReader] = [self.radius, self.tftp, self.dtls]

    def add(self, datagram: Datagram, timestamp: float, frame: int) -> None:
        for reader in self.readers:
            if reader.claims(datagram):
                reader.add(datagram, timestamp, frame)
                return

    def drain(self) -> list[Fact]:
        """The facts completed since the last call."""
        done: list[Fact] = []
        for reader in self.readers:
            if reader.completed:
                done += reader.completed
                reader.completed.clear()
        return done

    def finish(self) -> list[Fact]:
        """End of capture: every reader's open work, and what was not drained yet."""
        for reader in self.readers:
            reader.finish()
        return self.drain()

    @property
    def evicted(self) -> int:
        """RADIUS exchanges and DTLS sessions reported early: too many open at once."""
        return self.radius.evicted + self.dtls.evicted
