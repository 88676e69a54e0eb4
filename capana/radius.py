"""802.1X between switch and authentication server: RADIUS (RFC 2865, 3579) to EAP-TLS sessions.

Each packet's EAP-Message attributes are joined into one EAP packet. An Access-Request belongs to
the session whose Access-Challenge gave its State, else to the session of its Calling-Station-Id
(the phone's MAC) on the same NAS and server; a Challenge, Accept or Reject belongs to the
session of the Request with its identifier. Access-Accept/Reject end the session.

State is bounded: each session holds at most one key of each kind (State, station, pending
identifier) and at most ``max_sessions`` are open; the oldest is reported (with a note) beyond.
"""

from __future__ import annotations

import re
from collections.abc import MutableSet
from typing import NamedTuple

from capana.budget import Budget
from capana.decode import Datagram
from capana.eap import EapTlsSession, parse_eap
from capana.model import Problem, ProblemCode
from capana.packets import address_text, endpoint_text
from capana.session_keys import SecretsLookup
from capana.streams import Fact

RADIUS_PORTS = frozenset({1812, 1645})
ACCESS_REQUEST = 1
ACCESS_ACCEPT = 2
ACCESS_REJECT = 3
ACCESS_CHALLENGE = 11
ATTRIBUTE_STATE = 24
ATTRIBUTE_CALLING_STATION_ID = 31
ATTRIBUTE_EAP_MESSAGE = 79
MAX_SESSIONS = 10_000
# Frame numbers kept per session for its display filter; later ones extend the last range.
MAX_FILTER_FRAMES = 256
_MAC = re.compile(r"[0-9a-fA-F]{12}")
_MAC_SEPARATORS = str.maketrans("", "", ":-. ")


class RadiusPacket(NamedTuple):
    code: int
    identifier: int
    eap: bytes  # the EAP-Message attributes joined; empty when there are none
    state: bytes | None
    calling_station: str | None


def parse_radius(data: bytes) -> RadiusPacket | None:
    """The RADIUS packet in a UDP payload, or None when it is not one."""
    if len(data) < 20:
        return None
    length = (data[2] << 8) | data[3]
    if length < 20 or length > len(data):
        return None
    eap = bytearray()
    state = station = None
    offset = 20
    while offset + 2 <= length:
        kind, size = data[offset], data[offset + 1]
        if size < 2 or offset + size > length:
            return None
        value = data[offset + 2 : offset + size]
        if kind == ATTRIBUTE_EAP_MESSAGE:
            eap += value
        elif kind == ATTRIBUTE_STATE:
            state = bytes(value)
        elif kind == ATTRIBUTE_CALLING_STATION_ID:
            station = normalized_mac(value.decode("utf-8", "replace"))
        offset += size
    return RadiusPacket(data[0], data[1], bytes(eap), state, station)


def normalized_mac(text: str) -> str:
    """``2C-31-24-C9-F8-E1`` (or ``2c31.24c9.f8e1``) as ``2c:31:24:c9:f8:e1``; else as given."""
    digits = text.strip().translate(_MAC_SEPARATORS)
    if not _MAC.fullmatch(digits):
        return text.strip()
    digits = digits.lower()
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


Endpoints = tuple[bytes, int, bytes, int]  # NAS address and port, server address and port
# An index key: its kind ("state", "station", "pending"), the endpoints, then the kind's value.
_IndexKey = tuple[object, ...]


class _RadiusSession:
    __slots__ = ("eap", "endpoints", "frames", "keys", "station")

    def __init__(
        self,
        endpoints: Endpoints,
        station: str | None,
        budget: Budget | None,
        keys: SecretsLookup | None,
    ) -> None:
        self.endpoints = endpoints
        self.station = station
        self.eap = EapTlsSession(budget, keys)
        self.keys: dict[str, _IndexKey] = {}  # kind -> its key in the table's index
        self.frames: list[int] = []  # its packets' numbers, for the display filter

    def seen(self, frame: int) -> None:
        if frame <= 0:
            return
        if len(self.frames) < MAX_FILTER_FRAMES:
            self.frames.append(frame)
        else:
            self.frames[-1] = frame  # the last range grows to the latest packet


class RadiusTable:
    """Follows the RADIUS EAP exchanges of one capture; finished ones land in ``completed``.

    A :class:`capana.datagrams.DatagramReader` of the datagrams to or from a RADIUS port.
    """

    def __init__(
        self,
        capture: str,
        ports: MutableSet[int],
        budget: Budget | None = None,
        keys: SecretsLookup | None = None,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.capture = capture
        self.budget = budget
        self.keys = keys  # a key log's secrets by client random, for TLS 1.3 EAP-TLS
        self.max_sessions = max_sessions
        self.completed: list[Fact] = []
        self.evicted = 0
        ports |= RADIUS_PORTS
        self._index: dict[_IndexKey, _RadiusSession] = {}  # state, station and pending keys
        self._open: dict[int, _RadiusSession] = {}  # by id(), oldest first

    def claims(self, datagram: Datagram) -> bool:
        return datagram.source_port in RADIUS_PORTS or datagram.destination_port in RADIUS_PORTS

    def add(self, datagram: Datagram, timestamp: float, frame: int) -> None:
        packet = parse_radius(datagram.payload)
        if packet is None:
            return
        if packet.code == ACCESS_REQUEST and datagram.destination_port in RADIUS_PORTS:
            nas = datagram.source, datagram.source_port
            endpoints = (*nas, datagram.destination, datagram.destination_port)
            self._request(endpoints, packet, timestamp, frame)
        elif packet.code in (ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE):
            nas = datagram.destination, datagram.destination_port
            endpoints = (*nas, datagram.source, datagram.source_port)
            self._response(endpoints, packet, timestamp, frame)

    def finish(self) -> None:
        """End of capture: report every exchange still open."""
        for session in list(self._open.values()):
            self._close(session)

    def _request(
        self, endpoints: Endpoints, packet: RadiusPacket, timestamp: float, frame: int
    ) -> None:
        session = None
        if packet.state is not None:
            session = self._index.get(("state", endpoints, packet.state))
        if session is None and packet.calling_station is not None:
            session = self._index.get(("station", endpoints, packet.calling_station))
        eap = parse_eap(packet.eap) if packet.eap else None
        if session is not None and eap is not None and session.eap.restarts(eap):
            self._close(session)
            session = None
        if session is None:
            session = self._open_session(endpoints, packet.calling_station)
        self._key(session, "pending", (endpoints, packet.identifier))
        session.seen(frame)
        if eap is not None:
            session.eap.feed(eap, timestamp, frame)

    def _response(
        self, endpoints: Endpoints, packet: RadiusPacket, timestamp: float, frame: int
    ) -> None:
        session = self._index.get(("pending", endpoints, packet.identifier))
        if session is None:
            return  # the answer to a request the capture does not hold
        session.seen(frame)
        if packet.state is not None:
            self._key(session, "state", (endpoints, packet.state))
        eap = parse_eap(packet.eap) if packet.eap else None
        if eap is not None:
            session.eap.feed(eap, timestamp, frame)
        if packet.code == ACCESS_ACCEPT:
            session.eap.eap_outcome = "established"
        elif packet.code == ACCESS_REJECT:
            session.eap.eap_outcome = "rejected"
        if session.eap.done:
            self._close(session)

    def _open_session(self, endpoints: Endpoints, station: str | None) -> _RadiusSession:
        session = _RadiusSession(endpoints, station, self.budget, self.keys)
        self._open[id(session)] = session
        if station is not None:
            self._key(session, "station", (endpoints, station))
        if len(self._open) > self.max_sessions:
            oldest = next(iter(self._open.values()))
            if oldest.eap.tls_started:
                self.evicted += 1
                text = "evicted: too many RADIUS sessions open at once"
                oldest.eap.problems.append(Problem(ProblemCode.EVICTED, text))
            self._close(oldest)
        return session

    def _key(self, session: _RadiusSession, kind: str, key: _IndexKey) -> None:
        """Index ``session`` under ``key``, replacing its previous key of that kind."""
        old = session.keys.get(kind)
        if old is not None and self._index.get(old) is session:
            del self._index[old]
        index_key = (kind, *key)
        session.keys[kind] = index_key
        self._index[index_key] = session

    def _close(self, session: _RadiusSession) -> None:
        self._open.pop(id(session), None)
        for key in session.keys.values():
            if self._index.get(key) is session:
                del self._index[key]
        nas, nas_port, server, server_port = session.endpoints
        nas_text = endpoint_text(address_text(nas), nas_port)
        if session.station is None:
            text = f"no Calling-Station-Id: client is the NAS {nas_text}"
            session.eap.problems.append(Problem(ProblemCode.NO_CALLING_STATION, text))
        handshake = session.eap.handshake(
            capture=self.capture,
            transport="radius",
            client=session.station or nas_text,
            server=endpoint_text(address_text(server), server_port),
            server_port=server_port,
            wireshark_filter=_radius_filter(session.frames),
        )
        if handshake is not None:
            self.completed.append(handshake)


def _radius_filter(frames: list[int]) -> str | None:
    """The session's own packets by number (its responses carry no MAC to filter on)."""
    if not frames:
        return None
    ranges: list[str] = []
    first = last = frames[0]
    for frame in [*frames[1:], -1]:
        if frame == last + 1:
            last = frame
            continue
        ranges.append(str(first) if first == last else f"{first}..{last}")
        first = last = frame
    if len(frames) == MAX_FILTER_FRAMES and len(ranges) > 1:
        # The last entry stands for every packet up to it: one range from the one before.
        ranges[-2:] = [f"{ranges[-2].split('..')[0]}..{frames[-1]}"]
    return f"radius and frame.number in {{{', '.join(ranges)}}}"
