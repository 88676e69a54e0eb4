"""TLS over one TCP connection: both directions' records to the facts of its handshake.

Sans-IO: fed each side's in-order bytes (and the bytes after a hole) by the flow table, it keeps
one :class:`tls.TlsDirection` per side, the key log hooks, and the :class:`HandshakeTracker`.
"""

from __future__ import annotations

from capana import tls
from capana.handshake import CLIENT, SERVER, HandshakeTracker
from capana.model import Handshake, Problem, ProblemCode, Sender
from capana.session_keys import SecretsLookup, SessionKeys
from capana.streams import Flow


def opens_tls(sender: Sender, first_bytes: bytes, known_port: bool) -> bool:
    """Do a connection's first bytes from ``sender`` start TLS?

    A ClientHello from the client anywhere; on a TLS port any handshake record, since a capture
    may start mid-handshake.
    """
    if sender == CLIENT and tls.looks_like_client_hello(first_bytes):
        return True
    return known_port and tls.looks_like_tls_record(first_bytes) and first_bytes[0] == tls.HANDSHAKE


class TlsStream:
    """One connection's TLS handshake, read from both sides' bytes."""

    __slots__ = ("directions", "session_keys", "tracker")

    def __init__(self, keys: SecretsLookup | None = None) -> None:
        self.directions = {CLIENT: tls.TlsDirection(), SERVER: tls.TlsDirection()}
        self.session_keys: SessionKeys | None = None
        if keys is not None:  # a key log's secrets by client random, to read TLS 1.3
            self.session_keys = SessionKeys(keys)
            self.session_keys.attach(self.directions[CLIENT], self.directions[SERVER])
        self.tracker = HandshakeTracker()

    @property
    def done(self) -> bool:
        return self.tracker.done

    @property
    def hopeless(self) -> bool:
        return self.tracker.hopeless

    def feed(self, sender: Sender, data: bytes, timestamp: float, frame: int = 0) -> None:
        for event in self.directions[sender].feed(data):
            self.tracker.on_event(sender, event, timestamp)

    def after_gap(self, sender: Sender, data: bytes, timestamp: float, frame: int = 0) -> None:
        """Bytes after a hole start mid-record; only a record boundary can resync."""
        self.tracker.lost_data(sender)
        self.directions[sender] = direction = tls.TlsDirection()
        if tls.looks_like_tls_record(data):
            self.feed(sender, data, timestamp)
        else:
            direction.failed = True  # what follows cannot be framed either

    def facts(self, flow: Flow) -> tuple[Handshake, ...]:
        """The handshake, or nothing when no handshake message was ever seen."""
        if not self.tracker.saw_handshake:
            return ()
        keys = self.session_keys
        key_problems = tuple(Problem(ProblemCode.KEYLOG, p) for p in keys.problems) if keys else ()
        handshake = self.tracker.result(
            capture=flow.capture,
            client=flow.client,
            server=flow.server,
            server_port=flow.server_port,
            service=flow.service,
            gaps=flow.gaps,
            problems=flow.problems + key_problems,
            decryption=keys.status if keys else None,
        )
        return (handshake,)
