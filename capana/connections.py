"""The table of TCP connections: which are TLS, feeding their bytes to the handshake tracker.

State is bounded: a connection that is not TLS is remembered as ``SKIPPED_FLOW`` after its
first payload (one dict entry per direction) and forgotten on FIN/RST; a TLS connection stops
being buffered as soon as its reader is done (its handshake is over, and what capana decodes
inside it, bounded, was read). Past ``max_connections`` the oldest entries are
evicted; an evicted TLS connection is reported with what it had shown and a note saying so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from capana import tls
from capana.cleartext import CleartextSession, cleartext_service
from capana.domain import CLEARTEXT_SERVICE_BY_PORT, SERVICE_BY_PORT, service_for
from capana.handshake import CLIENT, SERVER
from capana.http_stream import HttpFileStream, opens_file_transfer
from capana.model import Problem, ProblemCode, Sender
from capana.packets import (
    FLAG_ACK,
    FLAG_FIN,
    FLAG_RST,
    FLAG_SYN,
    SKIPPED_FLOW,
    SkippedFlow,
    TcpSegment,
    endpoint,
    endpoint_text,
    reverse_key,
)
from capana.session_keys import SecretsLookup
from capana.streams import Fact, Flow, StreamReader
from capana.tcp import HeldBudget, TcpStream
from capana.tls_stream import TlsStream, opens_tls

MAX_CONNECTIONS = 100_000
# A record header and the handshake type: enough to tell a ClientHello from anything else.
_BYTES_TO_DECIDE = 6
_MASK = 0xFFFFFFFF
# Ports whose connections are followed without a SYN: TLS services and cleartext signalling.
_KNOWN_PORTS = frozenset(SERVICE_BY_PORT) | frozenset(CLEARTEXT_SERVICE_BY_PORT)
# Connection.closing (bit 1: the client's FIN, bit 2: the server's; a RST sets both) as sides.
_CLOSED_BY: tuple[tuple[Sender, ...], ...] = ((), (CLIENT,), (SERVER,), (CLIENT, SERVER))


class Connection:
    """A TCP connection being read, or whose first bytes have not been seen yet."""

    __slots__ = (
        "budget",
        "client_key",
        "closing",
        "heads",
        "isns",
        "keys",
        "problems",
        "reader",
        "streams",
    )

    def __init__(
        self,
        client_key: bytes,
        client_isn: int | None,
        server_isn: int | None,
        keys: SecretsLookup | None = None,
        budget: HeldBudget | None = None,
    ) -> None:
        self.client_key = client_key
        self.budget = budget  # bytes held behind holes, shared by the capture's streams
        self.keys = keys  # a key log's secrets by client random, to read TLS 1.3 handshakes
        # The streams are made at the first payload: a connection that never carries one (or
        # whose first bytes are not read) costs a third of the memory. Until then, each side's
        # next sequence number as its SYN said.
        self.streams: dict[Sender, TcpStream] | None = None
        self.isns = (client_isn, server_isn)
        # Chosen by the first bytes: most connections never get one.
        self.reader: StreamReader | None = None
        # First bytes too few to decide on (a segment cut inside the record header), per side.
        self.heads: dict[Sender, bytes] | None = None
        self.problems: list[Problem] = []
        self.closing = 0  # bit 1: the client sent FIN, bit 2: the server did; 3: over

    @property
    def server_port(self) -> int:
        return int.from_bytes(self.client_key[-2:], "big")

    def sender(self, segment: TcpSegment) -> Sender:
        return CLIENT if segment.key == self.client_key else SERVER

    def data(self, sender: Sender, segment: TcpSegment, timestamp: float, frame: int = 0) -> bool:
        """Take a payload (``frame``: its packet's number); False when the connection turns
        out to be of no interest."""
        if segment.missing and all(p.code != ProblemCode.SNAPLEN for p in self.problems):
            text = f"{sender} data cut by the capture's snaplen"
            self.problems.append(Problem(ProblemCode.SNAPLEN, text))
        if self.streams is None:
            client_isn, server_isn = self.isns
            self.streams = {
                CLIENT: TcpStream(client_isn, self.budget),
                SERVER: TcpStream(server_isn, self.budget),
            }
        stream = self.streams[sender]
        gaps = stream.gaps
        ready = stream.add(segment.seq, segment.payload)
        if not ready:
            return True
        reader = self.reader
        if reader is None:
            heads = self.heads or {}
            ready = heads.pop(sender, b"") + ready
            if len(ready) < _BYTES_TO_DECIDE:
                self.heads = {**heads, sender: ready}
                return True
            reader = self.reader = self._open(sender, ready, timestamp, frame)
            if reader is None:
                return False
            for other, held in heads.items():
                reader.feed(other, held, timestamp, frame)
            self.heads = None
        elif stream.gaps != gaps:  # too much waited behind a hole: it was skipped
            reader.after_gap(sender, ready, timestamp, frame)
            return not reader.hopeless
        reader.feed(sender, ready, timestamp, frame)
        return not reader.hopeless

    def syn(self, sender: Sender, next_seq: int) -> bool:
        """A SYN from ``sender`` (the SYN-ACK, or sent again); False if it starts a new one."""
        if self.streams is not None:
            stream = self.streams[sender]
            if stream.next_seq is not None and stream.next_seq != next_seq:
                return False
            stream.next_seq = next_seq
            return True
        client_isn, server_isn = self.isns
        seen = client_isn if sender == CLIENT else server_isn
        if seen is not None and seen != next_seq:
            return False
        self.isns = (next_seq, server_isn) if sender == CLIENT else (client_isn, next_seq)
        return True

    def _open(
        self, sender: Sender, first_bytes: bytes, timestamp: float, frame: int
    ) -> StreamReader | None:
        """The reader these first bytes call for, or None: the connection is not followed."""
        if opens_tls(sender, first_bytes, self.server_port in SERVICE_BY_PORT):
            return TlsStream(self.keys, service_for(self.server_port))
        service = cleartext_service(self.server_port, first_bytes)
        if service is not None:
            return CleartextSession(service, timestamp, frame)
        if opens_file_transfer(sender, first_bytes, self.server_port):
            return HttpFileStream(self.server_port)
        return None

    def flush(self) -> None:
        """The connection is over: what waits behind a hole is read after the gap."""
        if self.reader is None:
            return
        assert self.streams is not None
        for sender, stream in self.streams.items():
            while stream.pending:
                self.reader.after_gap(sender, stream.skip_gap(), 0.0, 0)

    def facts(self, capture: str) -> Sequence[Fact]:
        """What the connection's reader found, on this flow."""
        if self.reader is None:
            return ()
        assert self.streams is not None  # made before the reader
        client_address, client_port = endpoint(self.client_key)
        server_address, server_port = endpoint(self.client_key, destination=True)
        conflicts = tuple(
            Problem(
                ProblemCode.OVERLAP_CONFLICT,
                f"{sender}: {stream.conflicts} overlapping segments with different contents",
            )
            for sender, stream in self.streams.items()
            if stream.conflicts
        )
        flow = Flow(
            capture=capture,
            client=endpoint_text(client_address, client_port),
            server=endpoint_text(server_address, server_port),
            server_port=server_port,
            service=service_for(server_port),
            gaps=sum(stream.gaps for stream in self.streams.values()),
            problems=tuple(self.problems) + conflicts,
            wireshark_filter=wireshark_filter(
                client_address, client_port, server_address, server_port
            ),
            closed=frozenset(_CLOSED_BY[self.closing]),
        )
        return self.reader.facts(flow)


def wireshark_filter(client: str, client_port: int, server: str, server_port: int) -> str:
    """Wireshark's conversation filter for one TCP connection (what "Conversation Filter" gives)."""
    ip = "ipv6" if ":" in client else "ip"
    return (
        f"({ip}.addr eq {client} and {ip}.addr eq {server}) and "
        f"(tcp.port eq {client_port} and tcp.port eq {server_port})"
    )


class ConnectionTable:
    """Follows every TCP connection of one capture; collects what each one showed when it is over.

    ``add`` is the per-packet hot path: for a connection already skipped it costs one dict
    lookup. Facts (handshakes) accumulate in ``completed``; the caller drains it.
    """

    def __init__(
        self,
        capture: str,
        max_connections: int = MAX_CONNECTIONS,
        keys: SecretsLookup | None = None,
    ) -> None:
        self.capture = capture
        self.keys = keys
        self.max_connections = max_connections
        self.evicted = 0
        self.held = HeldBudget()
        self.completed: list[Fact] = []
        # Both direction keys of a connection map to it; SKIPPED_FLOW marks one that is not TLS.
        self._table: dict[bytes, Connection | SkippedFlow] = {}

    @property
    def flows(self) -> Mapping[bytes, Connection | SkippedFlow]:
        """Read-only view for fast paths: segment key -> connection, or SKIPPED_FLOW."""
        return self._table

    def add(self, segment: TcpSegment, timestamp: float, frame: int = 0) -> None:
        """One segment; ``frame`` is its packet's number in the capture (0: unknown)."""
        connection = self._table.get(segment.key)
        flags = segment.flags
        if flags & FLAG_SYN:
            self._syn(segment, None if connection is SKIPPED_FLOW else connection)
            return
        if connection is SKIPPED_FLOW:
            if flags & (FLAG_FIN | FLAG_RST):
                self._forget(segment)
            return
        if connection is None:
            if not segment.payload:
                return
            connection = self._first_payload(segment)
            if connection is None:
                return
        if segment.payload:
            if not connection.data(connection.sender(segment), segment, timestamp, frame):
                self._remember(segment, SKIPPED_FLOW)
                return
            if connection.reader is not None and connection.reader.done:
                self._remember(segment, SKIPPED_FLOW)
                self._report(connection)
                return
        if flags & (FLAG_FIN | FLAG_RST):
            # A FIN sent again by the same side closes nothing more; a RST ends both.
            side = 1 if connection.sender(segment) == CLIENT else 2
            connection.closing |= side if flags & FLAG_FIN else 3
            if connection.closing == 3:
                self._forget(segment)
                self._report(connection)

    def finish(self) -> None:
        """End of capture: report every handshake still open."""
        open_connections = {id(c): c for c in self._table.values() if c is not SKIPPED_FLOW}
        for connection in open_connections.values():
            self._report(connection)
        self._table.clear()

    def _syn(self, segment: TcpSegment, connection: Connection | None) -> None:
        next_seq = (segment.seq + 1) & _MASK
        if connection is not None:
            if connection.syn(connection.sender(segment), next_seq):
                return
            self._forget(segment)  # a new connection on the same addresses and ports
            self._report(connection)
        if segment.flags & FLAG_ACK:
            connection = Connection(segment.reverse_key, None, next_seq, self.keys, self.held)
        else:
            connection = Connection(segment.key, next_seq, None, self.keys, self.held)
        self._remember(segment, connection)

    def _first_payload(self, segment: TcpSegment) -> Connection | None:
        """A connection seen without its SYN: decide from its first bytes who is the client."""
        payload = segment.payload
        if (
            tls.looks_like_client_hello(payload)
            or int.from_bytes(segment.key[-2:], "big") in _KNOWN_PORTS
        ):
            client_key = segment.key
        elif int.from_bytes(segment.key[-4:-2], "big") in _KNOWN_PORTS:
            client_key = segment.reverse_key
        else:
            self._remember(segment, SKIPPED_FLOW)
            return None
        connection = Connection(client_key, None, None, self.keys, self.held)
        self._remember(segment, connection)
        return connection

    def _remember(self, segment: TcpSegment, connection: Connection | SkippedFlow) -> None:
        table = self._table
        table[segment.key] = connection
        table[segment.reverse_key] = connection
        if len(table) > 2 * self.max_connections:
            self._evict()

    def _forget(self, segment: TcpSegment) -> None:
        self._table.pop(segment.key, None)
        self._table.pop(segment.reverse_key, None)

    def _evict(self) -> None:
        """Drop the oldest tenth of the table, at least one entry (dicts keep insertion order)."""
        table = self._table
        for _ in range(max(1, len(table) // 10)):
            connection = table.pop(next(iter(table)))
            if connection is not SKIPPED_FLOW and connection.reader is not None:
                self.evicted += 1
                text = "evicted: too many connections open at once"
                connection.problems.append(Problem(ProblemCode.EVICTED, text))
                table.pop(reverse_key(connection.client_key), None)
                table.pop(connection.client_key, None)
                self._report(connection)

    def _report(self, connection: Connection) -> None:
        connection.flush()
        self.completed.extend(connection.facts(self.capture))
