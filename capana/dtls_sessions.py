"""DTLS handshakes in a capture's UDP datagrams: flows found by content, read by capana.dtls.

A flow (addresses and ports, both ways) becomes a session at a datagram that opens a ClientHello,
on any port, or at a ServerHello or HelloVerifyRequest (a capture that starts mid-handshake). On
the CAPWAP ports (control 5246, data 5247) CAPWAP's DTLS header is taken off first, and any
epoch-0 handshake record opens a session, the access controller (the 5246/5247 side) being the
server. Each side's datagrams go to a :class:`capana.dtls.DtlsDirection`, whose events fold into
a :class:`HandshakeTracker` as TLS's do: the same facts, with ``transport="udp"`` and the
service "capwap" or "dtls". A ClientHello with another random on the same flow is a new
handshake (an access point joining again): the old session is reported and a new one starts.

Bounds: at most MAX_SESSIONS open sessions (the oldest is reported with a note past it), each
holding what its two DtlsDirections hold; at most MAX_CLOSED flows remembered as finished, so
that their late datagrams do not open a session mid-handshake.
"""

from __future__ import annotations

from collections.abc import MutableSet

from capana import tls
from capana.budget import Budget
from capana.decode import Datagram
from capana.domain import CAPWAP_PORTS, CAPWAP_SERVICE, GENERIC_DTLS_SERVICE
from capana.dtls import DtlsDirection, capwap_dtls, looks_like_dtls_client_hello
from capana.handshake import CLIENT, SERVER, HandshakeTracker
from capana.model import Problem, ProblemCode, Sender
from capana.packets import address_text, conversation_filter, endpoint_text
from capana.streams import Fact

MAX_SESSIONS = 10_000
MAX_CLOSED = 4096
_RECORD_HEADER = 13
_HELLO_RANDOM = slice(_RECORD_HEADER + 12 + 2, _RECORD_HEADER + 12 + 2 + 32)
# Handshake messages only a server sends first: a session seen from them knows its server.
_SERVER_FIRST = frozenset({tls.SERVER_HELLO, 3})  # 3: HelloVerifyRequest (RFC 6347 4.2.1)

Flow = tuple[bytes, int, bytes, int]  # source address and port, destination address and port


class _Session:
    """One DTLS handshake on a flow: its client's flow key, two directions and the fold."""

    __slots__ = ("client", "directions", "problems", "random", "tracker")

    def __init__(self, client: Flow, random: bytes, budget: Budget | None) -> None:
        self.client = client
        self.random = random
        self.directions = {CLIENT: DtlsDirection(budget), SERVER: DtlsDirection(budget)}
        self.tracker = HandshakeTracker()
        self.problems: list[Problem] = []

    def cut(self, sender: Sender) -> None:
        """A datagram of ``sender`` was cut by the snaplen (said once)."""
        if all(problem.code != ProblemCode.SNAPLEN for problem in self.problems):
            text = f"{sender} datagram cut by the capture's snaplen"
            self.problems.append(Problem(ProblemCode.SNAPLEN, text))
        self.tracker.lost_data(sender)


class DtlsSessions:
    """The DTLS handshakes of one capture, a :class:`capana.datagrams.DatagramReader`."""

    def __init__(
        self,
        capture: str,
        ports: MutableSet[int],
        budget: Budget | None = None,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.capture = capture
        self.budget = budget
        self.max_sessions = max_sessions
        self.completed: list[Fact] = []
        self.evicted = 0
        ports |= CAPWAP_PORTS
        self._sessions: dict[Flow, _Session] = {}  # both directions' keys; oldest first
        self._closed: dict[Flow, None] = {}

    def claims(self, datagram: Datagram) -> bool:
        """A datagram of a CAPWAP port, or whose first bytes look like a DTLS record."""
        payload = datagram.payload
        return (
            (len(payload) > 1 and payload[1] == 0xFE)
            or datagram.source_port in CAPWAP_PORTS
            or datagram.destination_port in CAPWAP_PORTS
        )

    def add(self, datagram: Datagram, timestamp: float, frame: int) -> None:
        capwap = datagram.source_port in CAPWAP_PORTS or datagram.destination_port in CAPWAP_PORTS
        payload = capwap_dtls(datagram.payload) if capwap else datagram.payload
        if not payload:
            return  # CAPWAP in clear (discovery, a data channel without DTLS)
        flow = (
            datagram.source,
            datagram.source_port,
            datagram.destination,
            datagram.destination_port,
        )
        session = self._session(flow, payload, capwap)
        if session is None:
            return
        sender = CLIENT if flow == session.client else SERVER
        if datagram.missing:
            session.cut(sender)
        for event in session.directions[sender].feed(payload):
            session.tracker.on_event(sender, event, timestamp, frame)
        if session.tracker.done:
            self._close(session)

    def finish(self) -> None:
        """End of capture: every session still open is reported."""
        for session in list({id(s): s for s in self._sessions.values()}.values()):
            self._close(session)

    def _session(self, flow: Flow, payload: bytes, capwap: bool) -> _Session | None:
        """The session this datagram belongs to or opens, else None."""
        session = self._sessions.get(flow)
        if looks_like_dtls_client_hello(payload):
            random = _client_random(payload)
            if session is not None and (flow != session.client or _new(session.random, random)):
                self._close(session)
                session = None
            if session is None:
                session = self._open(flow, random)
            return session
        if session is not None or flow in self._closed or not _epoch0_handshake(payload):
            return session
        reverse = (flow[2], flow[3], flow[0], flow[1])
        if payload[_RECORD_HEADER] in _SERVER_FIRST:
            return self._open(reverse, b"")
        if capwap:
            return self._open(reverse if flow[1] in CAPWAP_PORTS else flow, b"")
        return None

    def _open(self, client: Flow, random: bytes) -> _Session:
        session = _Session(client, random, self.budget)
        self._closed.pop(client, None)
        self._closed.pop(_reverse(client), None)
        self._sessions[client] = self._sessions[_reverse(client)] = session
        if len(self._sessions) > 2 * self.max_sessions:
            oldest = next(iter(self._sessions.values()))
            self.evicted += 1
            text = "evicted: too many DTLS sessions open at once"
            oldest.problems.append(Problem(ProblemCode.EVICTED, text))
            self._close(oldest)
        return session

    def _close(self, session: _Session) -> None:
        client = session.client
        server = _reverse(client)
        for key in (client, server):
            if self._sessions.get(key) is session:
                del self._sessions[key]
            self._closed[key] = None
        while len(self._closed) > MAX_CLOSED:
            del self._closed[next(iter(self._closed))]
        tracker = session.tracker
        if not tracker.saw_handshake:
            return
        conflicts = sum(direction.conflicts for direction in session.directions.values())
        if conflicts:
            text = f"{conflicts} DTLS handshake fragments contradicted bytes seen before"
            session.problems.append(Problem(ProblemCode.OVERLAP_CONFLICT, text))
        server_port = client[3]
        client_address, server_address = address_text(client[0]), address_text(client[2])
        self.completed.append(
            tracker.result(
                capture=self.capture,
                transport="udp",
                client=endpoint_text(client_address, client[1]),
                server=endpoint_text(server_address, server_port),
                server_port=server_port,
                service=CAPWAP_SERVICE if server_port in CAPWAP_PORTS else GENERIC_DTLS_SERVICE,
                gaps=0,
                problems=tuple(session.problems),
                wireshark_filter=conversation_filter(
                    "udp", client_address, client[1], server_address, server_port
                ),
            )
        )


def _reverse(flow: Flow) -> Flow:
    return flow[2], flow[3], flow[0], flow[1]


def _client_random(payload: bytes) -> bytes:
    """The random of a ClientHello that opens this datagram (its first fragment), else b""."""
    fragment_offset = payload[_RECORD_HEADER + 6 : _RECORD_HEADER + 9]
    if fragment_offset != b"\0\0\0" or len(payload) < _HELLO_RANDOM.stop:
        return b""
    return payload[_HELLO_RANDOM]


def _new(known: bytes, random: bytes) -> bool:
    """Is ``random`` another ClientHello's than ``known`` (both seen)?"""
    return bool(known and random and known != random)


def _epoch0_handshake(payload: bytes) -> bool:
    """Does the datagram open with an epoch-0 DTLS handshake record (the hellos and flights)?"""
    return (
        len(payload) > _RECORD_HEADER
        and payload[0] == tls.HANDSHAKE
        and payload[1] == 0xFE
        and payload[3] == 0
        and payload[4] == 0
    )
