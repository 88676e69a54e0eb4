"""802.1X on the access port: EAPOL frames (IEEE 802.1X-2010 11.3) to EAP-TLS sessions.

Sessions are keyed by the supplicant's MAC: a supplicant sends to the PAE group address
(01:80:c2:00:00:03), not to the authenticator, so the authenticator's MAC is learnt from the
frames it sends. State is bounded: at most ``max_sessions`` open sessions, the oldest reported
(with a note) when more appear.
"""

from __future__ import annotations

from capana.decode import EapolFrame
from capana.eap import EAP_RESPONSE, EapTlsSession, parse_eap
from capana.model import Handshake, Problem, ProblemCode

EAPOL_EAP_PACKET = 0  # EAPOL packet type; 1 Start, 2 Logoff, 3 Key, ... carry no EAP
MAX_SESSIONS = 10_000


def mac_text(raw: bytes) -> str:
    """``00:aa:bb:cc:00:11``."""
    return raw.hex(":")


class _EapolSession:
    __slots__ = ("authenticator", "eap", "supplicant")

    def __init__(self, supplicant: bytes) -> None:
        self.supplicant = supplicant
        self.authenticator: bytes | None = None
        self.eap = EapTlsSession()


class EapolTable:
    """Follows the 802.1X authentications of one capture; finished ones land in ``completed``."""

    def __init__(self, capture: str, max_sessions: int = MAX_SESSIONS) -> None:
        self.capture = capture
        self.max_sessions = max_sessions
        self.completed: list[Handshake] = []
        self.evicted = 0
        self._sessions: dict[bytes, _EapolSession] = {}

    def add(self, frame: EapolFrame, timestamp: float) -> None:
        """Take an EAPOL frame; only EAP-Packets matter."""
        if frame.packet_type != EAPOL_EAP_PACKET:
            return
        packet = parse_eap(frame.body)
        if packet is None:
            return
        destination, source = frame.destination, frame.source
        from_supplicant = packet.code == EAP_RESPONSE
        supplicant = source if from_supplicant else destination
        if supplicant[0] & 1:
            return  # a Request/Identity to the group address: not for one supplicant yet
        session = self._sessions.get(supplicant)
        if session is not None and session.eap.restarts(packet):
            self._report(self._sessions.pop(supplicant))
            session = None
        if session is None:
            session = self._sessions[supplicant] = _EapolSession(supplicant)
            if len(self._sessions) > self.max_sessions:
                self._evict()
        if not from_supplicant:
            session.authenticator = source
        session.eap.feed(packet, timestamp)
        if session.eap.done:
            self._report(self._sessions.pop(supplicant))

    def finish(self) -> None:
        """End of capture: report every authentication still open."""
        for session in self._sessions.values():
            self._report(session)
        self._sessions.clear()

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
        )
        if handshake is not None:
            self.completed.append(handshake)
