"""802.1X on the access port: EAPOL frames (IEEE 802.1X-2010 11.3) to EAP-TLS sessions.

An authentication is one supplicant (the phone) and the authenticator of its port (the switch,
the access point): the sender of the EAP-Requests. Either may address the other or the PAE group
address (01:80:c2:00:00:03), as real switches and hostapd do on a point-to-point port, so:
- a frame to a unicast address names both ends (a Request's destination is its supplicant, a
  Response's its authenticator);
- a Response to the group address names its supplicant;
- a Request (or Success, Failure) to the group address belongs to the supplicant its
  authenticator is paired with. Before any, it waits for the Response that answers its EAP
  identifier, which pairs them; the pair parts when that authentication ends.
Sessions are keyed by supplicant: several supplicants on one capture (a SPAN of many ports, each
its own authenticator) stay apart.

State is bounded: at most ``max_sessions`` open sessions (the oldest reported, with a note, past
it), and at most as many authenticators remembered, each with at most one waiting Request.
"""

from __future__ import annotations

from capana.budget import Budget
from capana.decode import EapolFrame
from capana.eap import EAP_RESPONSE, EapPacket, EapTlsSession, parse_eap
from capana.model import Handshake, Problem, ProblemCode
from capana.session_keys import SecretsLookup

EAPOL_EAP_PACKET = 0  # EAPOL packet type; 1 Start, 2 Logoff, 3 Key, ... carry no EAP
MAX_SESSIONS = 10_000


def mac_text(raw: bytes) -> str:
    """``00:aa:bb:cc:00:11``."""
    return raw.hex(":")


class _EapolSession:
    __slots__ = ("authenticator", "eap", "supplicant")

    def __init__(
        self, supplicant: bytes, budget: Budget | None, keys: SecretsLookup | None
    ) -> None:
        self.supplicant = supplicant
        self.authenticator: bytes | None = None
        self.eap = EapTlsSession(budget, keys)


class EapolTable:
    """Follows the 802.1X authentications of one capture; finished ones land in ``completed``."""

    def __init__(
        self,
        capture: str,
        max_sessions: int = MAX_SESSIONS,
        budget: Budget | None = None,
        keys: SecretsLookup | None = None,
    ) -> None:
        self.capture = capture
        self.max_sessions = max_sessions
        self.budget = budget
        self.keys = keys  # a key log's secrets by client random, for TLS 1.3 EAP-TLS
        self.completed: list[Handshake] = []
        self.evicted = 0
        self._sessions: dict[bytes, _EapolSession] = {}
        self._partners: dict[bytes, bytes] = {}  # authenticator -> supplicant, oldest first
        # authenticator -> its Request to the group address: (packet, time, frame number)
        self._waiting: dict[bytes, tuple[EapPacket, float, int]] = {}

    def add(self, frame: EapolFrame, timestamp: float, number: int = 0) -> None:
        """Take an EAPOL frame (``number``: its place in the capture); only EAP-Packets matter."""
        if frame.packet_type != EAPOL_EAP_PACKET:
            return
        packet = parse_eap(frame.body)
        if packet is None:
            return
        source, destination = frame.source, frame.destination
        if packet.code == EAP_RESPONSE:
            supplicant = source
            addressed = None if destination[0] & 1 else destination
            authenticator, waiting = self._answered(supplicant, addressed, packet.identifier)
        elif destination[0] & 1:  # from the authenticator to the group address
            authenticator, waiting = source, None
            found = self._partners.get(authenticator)
            if found is None:
                self._wait(authenticator, packet, timestamp, number)
                return
            supplicant = found
        else:
            supplicant, authenticator, waiting = destination, source, None
        session = self._session(supplicant, packet)
        if authenticator is not None:
            session.authenticator = authenticator
            self._pair(authenticator, supplicant)
        if frame.missing:
            self._cut(session)
        if waiting is not None:
            session.eap.feed(*waiting)
        session.eap.feed(packet, timestamp, number)
        if session.eap.done:
            self._close(session)

    def finish(self) -> None:
        """End of capture: report every authentication still open."""
        for session in self._sessions.values():
            self._report(session)
        self._sessions.clear()

    def _answered(
        self, supplicant: bytes, authenticator: bytes | None, identifier: int
    ) -> tuple[bytes | None, tuple[EapPacket, float, int] | None]:
        """The authenticator of a Response, and the Request to the group address it answers
        (which pairs the two ends), if one waits."""
        if authenticator is None:
            session = self._sessions.get(supplicant)
            if session is not None:
                authenticator = session.authenticator
        candidates = [authenticator] if authenticator is not None else reversed(self._waiting)
        for candidate in list(candidates):
            waiting = self._waiting.get(candidate)
            if waiting is not None and waiting[0].identifier == identifier:
                del self._waiting[candidate]
                return candidate, waiting
        return authenticator, None

    def _wait(self, authenticator: bytes, packet: EapPacket, timestamp: float, number: int) -> None:
        self._waiting.pop(authenticator, None)
        self._waiting[authenticator] = (packet, timestamp, number)
        if len(self._waiting) > self.max_sessions:
            del self._waiting[next(iter(self._waiting))]

    def _pair(self, authenticator: bytes, supplicant: bytes) -> None:
        self._partners.pop(authenticator, None)
        self._partners[authenticator] = supplicant
        if len(self._partners) > self.max_sessions:
            del self._partners[next(iter(self._partners))]

    def _session(self, supplicant: bytes, packet: EapPacket) -> _EapolSession:
        """The open session of ``supplicant`` that ``packet`` continues, else a new one."""
        session = self._sessions.get(supplicant)
        if session is not None and session.eap.restarts(packet):
            self._close(session)
            session = None
        if session is None:
            session = self._sessions[supplicant] = _EapolSession(supplicant, self.budget, self.keys)
            if len(self._sessions) > self.max_sessions:
                self._evict()
        return session

    def _cut(self, session: _EapolSession) -> None:
        session.eap.cut = True
        if all(p.code != ProblemCode.SNAPLEN for p in session.eap.problems):
            text = "EAPOL frames cut by the capture's snaplen"
            session.eap.problems.append(Problem(ProblemCode.SNAPLEN, text))

    def _close(self, session: _EapolSession) -> None:
        """The authentication is over: reported, and its authenticator free for another."""
        if self._sessions.get(session.supplicant) is session:
            del self._sessions[session.supplicant]
        partner = self._partners.get(session.authenticator or b"")
        if partner == session.supplicant:
            del self._partners[session.authenticator or b""]
        self._report(session)

    def _evict(self) -> None:
        oldest = self._sessions.pop(next(iter(self._sessions)))
        if oldest.eap.tls_started:
            self.evicted += 1
            text = "evicted: too many 802.1X sessions open at once"
            oldest.eap.problems.append(Problem(ProblemCode.EVICTED, text))
        self._report(oldest)

    def _report(self, session: _EapolSession) -> None:
        handshake = session.eap.handshake(
            capture=self.capture,
            transport="eapol",
            client=mac_text(session.supplicant),
            server=mac_text(session.authenticator) if session.authenticator else "",
            server_port=0,
            wireshark_filter=f"eapol and eth.addr eq {mac_text(session.supplicant)}",
        )
        if handshake is not None:
            self.completed.append(handshake)
