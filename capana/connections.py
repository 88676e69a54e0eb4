"""The table of TCP connections: which are TLS, feeding their bytes to the handshake tracker.

State is bounded: a connection seen from its SYN whose first bytes are not TLS is watched, as a
small :class:`Watch` and without reassembly, for a ClientHello that opens a later segment (the
upgrades, STARTTLS and kin), within MAX_CLEAR_PREFIX bytes of each side; one whose TLS does not
start is remembered as ``SKIPPED_FLOW`` (one dict entry per direction) and forgotten on FIN/RST;
a TLS connection stops being buffered as soon as its reader is done (its handshake is over, and
what capana decodes inside it, bounded, was read).
Past ``max_connections`` the oldest entries are evicted; an evicted TLS connection is reported
with what it had shown and a note saying so. Every buffer takes its bytes from the capture's
:class:`Budget`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from capana import tls
from capana.budget import Budget
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
    conversation_filter,
    endpoint,
    endpoint_text,
    reverse_key,
)
from capana.session_keys import SecretsLookup
from capana.streams import Fact, Flow, StreamReader
from capana.tcp import TcpStream
from capana.tls_start import MAX_CLEAR_PREFIX, TlsStart, hello_at
from capana.tls_stream import TlsStream

MAX_CONNECTIONS = 100_000
# A record header and the handshake type: enough to tell a ClientHello from anything else.
_BYTES_TO_DECIDE = 6
_MASK = 0xFFFFFFFF
# Ports whose connections are followed without a SYN: TLS services and cleartext signalling.
_KNOWN_PORTS = frozenset(SERVICE_BY_PORT) | frozenset(CLEARTEXT_SERVICE_BY_PORT)
# Connection.closing (bit 1: the client's FIN, bit 2: the server's; a RST sets both) as sides.
_CLOSED_BY: tuple[tuple[Sender, ...], ...] = ((), (CLIENT,), (SERVER,), (CLIENT, SERVER))


class Watch:
    """A connection whose first bytes were not TLS, watched for a ClientHello that starts later:
    how many bytes each side sent meanwhile."""

    __slots__ = ("client_key", "passed")

    def __init__(self, client_key: bytes) -> None:
        self.client_key = client_key
        self.passed = [0, 0]  # client, server


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
        "upgraded",
    )

    def __init__(
        self,
        client_key: bytes,
        client_isn: int | None,
        server_isn: int | None,
        keys: SecretsLookup | None = None,
        budget: Budget | None = None,
        upgraded: bool = False,
    ) -> None:
        self.client_key = client_key
        self.upgraded = upgraded  # its TLS starts after clear text (found by a Watch)
        self.budget = budget  # the capture's, shared by every buffer
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
        """Take a payload (``frame``: its packet's number); False when the connection turns out
        to be of no interest."""
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
        ready = stream.add(segment.seq, segment.payload, segment.missing)
        if ready and not self._take(sender, ready, stream.resumed, timestamp, frame):
            return False
        reader = self.reader
        if segment.missing and reader is not None and stream.lost_at_end:
            reader.after_gap(sender, b"", timestamp, frame)  # the snaplen cut this side here
        return reader is None or not reader.hopeless

    def _take(
        self, sender: Sender, ready: bytes, resumed: bool, timestamp: float, frame: int
    ) -> bool:
        """Bytes that became contiguous, to the reader (chosen by the first of them); False
        when the connection turns out to be of no interest."""
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
        elif resumed:  # bytes the capture lacks come before these
            reader.after_gap(sender, ready, timestamp, frame)
            return True
        reader.feed(sender, ready, timestamp, frame)
        return True

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

    @property
    def watchable(self) -> bool:
        """Seen from its SYNs, no reader for its first bytes: TLS may still start later."""
        return self.reader is None and None not in self.isns and not self.upgraded

    def _open(
        self, sender: Sender, first_bytes: bytes, timestamp: float, frame: int
    ) -> StreamReader | None:
        """The reader these first bytes call for, or None: the connection is not followed (or,
        ``watchable``, watched for TLS starting later).

        A phone's clear-text SCCP/SIP and its file downloads have readers of their own. TLS is
        read from where it starts in each side: at once when the client opens with a
        ClientHello; the server's after its clear text when the ClientHello came after the
        client's (``upgraded``); from a record boundary on a side seen only from the middle.
        """
        client_isn, server_isn = self.isns
        opens = sender == CLIENT and tls.looks_like_client_hello(first_bytes)
        service = service_for(self.server_port)
        if self.upgraded:
            return TlsStream(self.keys, self.budget, {SERVER: TlsStart(SERVER, "upgrade")}, service)
        if not opens:
            clear = cleartext_service(self.server_port, first_bytes)
            if clear is not None:
                return CleartextSession(clear, timestamp, frame)
            if opens_file_transfer(sender, first_bytes, self.server_port):
                return HttpFileStream(self.server_port)
        if client_isn is not None and server_isn is not None and not opens:
            return None
        from_start = {CLIENT: client_isn is not None, SERVER: server_isn is not None}
        starts = {
            side: TlsStart(side, "resync")
            for side, seen in from_start.items()
            if not (opens and seen)
        }
        return TlsStream(self.keys, self.budget, starts, service)

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
            wireshark_filter=conversation_filter(
                "tcp", client_address, client_port, server_address, server_port
            ),
            closed=frozenset(_CLOSED_BY[self.closing]),
        )
        return self.reader.facts(flow)


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
        budget: Budget | None = None,
    ) -> None:
        self.capture = capture
        self.keys = keys
        self.max_connections = max_connections
        self.evicted = 0
        self.budget = budget or Budget()
        self.completed: list[Fact] = []
        # Both direction keys of a connection map to it; SKIPPED_FLOW marks one that is not TLS.
        self._table: dict[bytes, Connection | Watch | SkippedFlow] = {}

    @property
    def flows(self) -> Mapping[bytes, Connection | Watch | SkippedFlow]:
        """Read-only view for fast paths: segment key -> connection or watch, or SKIPPED_FLOW."""
        return self._table

    def add(self, segment: TcpSegment, timestamp: float, frame: int = 0) -> None:
        """One segment; ``frame`` is its packet's number in the capture (0: unknown)."""
        connection = self._table.get(segment.key)
        flags = segment.flags
        if flags & FLAG_SYN:
            if not flags & (FLAG_FIN | FLAG_RST):  # SYN with FIN or RST opens nothing: noise
                self._syn(segment, connection if isinstance(connection, Connection) else None)
            return
        if connection is SKIPPED_FLOW:
            if flags & (FLAG_FIN | FLAG_RST):
                self._forget(segment)
            return
        if isinstance(connection, Watch):
            self._watched(connection, segment, timestamp, frame)
            return
        if connection is None:
            if not segment.payload:
                return
            connection = self._first_payload(segment)
            if connection is None:
                return
        if segment.payload:
            if not connection.data(connection.sender(segment), segment, timestamp, frame):
                watch = Watch(connection.client_key) if connection.watchable else SKIPPED_FLOW
                self._remember(segment, watch)
                if isinstance(watch, Watch):
                    self._watched(watch, segment, timestamp, frame)  # its first bytes count
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
        open_connections = {id(c): c for c in self._table.values() if isinstance(c, Connection)}
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
            connection = Connection(segment.reverse_key, None, next_seq, self.keys, self.budget)
        else:
            connection = Connection(segment.key, next_seq, None, self.keys, self.budget)
        self._remember(segment, connection)

    def _watched(self, watch: Watch, segment: TcpSegment, timestamp: float, frame: int) -> None:
        """A segment of a watched connection: a ClientHello in it starts TLS there, too many
        bytes without one end the watch."""
        if segment.flags & (FLAG_FIN | FLAG_RST):
            self._forget(segment)
            return
        payload = segment.payload
        client = segment.key == watch.client_key
        at = hello_at(payload, CLIENT) if client else -1
        if at < 0:
            watch.passed[not client] += len(payload)
            if watch.passed[not client] > MAX_CLEAR_PREFIX:
                self._remember(segment, SKIPPED_FLOW)
            return
        connection = Connection(watch.client_key, None, None, self.keys, self.budget, True)
        self._remember(segment, connection)
        start = segment._replace(seq=(segment.seq + at) & _MASK, payload=payload[at:])
        self.add(start, timestamp, frame)

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
        connection = Connection(client_key, None, None, self.keys, self.budget)
        self._remember(segment, connection)
        return connection

    def _remember(self, segment: TcpSegment, connection: Connection | Watch | SkippedFlow) -> None:
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
            if isinstance(connection, Connection) and connection.reader is not None:
                self.evicted += 1
                text = "evicted: too many connections open at once"
                connection.problems.append(Problem(ProblemCode.EVICTED, text))
                table.pop(reverse_key(connection.client_key), None)
                table.pop(connection.client_key, None)
                self._report(connection)

    def _report(self, connection: Connection) -> None:
        connection.flush()
        self.completed.extend(connection.facts(self.capture))
