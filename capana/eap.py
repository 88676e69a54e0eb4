"""EAP-TLS (and the outer TLS of PEAP, TTLS, EAP-FAST, TEAP), sans-IO: EAP packets in, one
handshake out.

Nothing here knows about EAPOL or RADIUS. An :class:`EapTlsSession` is fed the EAP packets of
one authentication in capture order, whichever way they travelled: the EAP code says who sent
each one (Requests, Success and Failure come from the server, Responses from the peer). The
method is the one the server last started (its Start after the peer's Nak, RFC 3748 5.3.1).
It joins the fragments of each TLS message (RFC 5216 2.1.5: L/M/S flags, TLS Message Length; a
server may set L on every fragment, as FreeRADIUS does), feeds every whole message to a
:class:`tls.TlsDirection` per side and folds the events into a :class:`HandshakeTracker`;
EAP-Response/Identity gives the identity, EAP-Success/Failure the outcome. With a key log, a
TLS 1.3 handshake (RFC 9190) is read as TLS's is.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from capana import tls
from capana.budget import Budget
from capana.handshake import CLIENT, SERVER, HandshakeTracker
from capana.model import Handshake, Outcome, Problem, ProblemCode, Sender, Transport
from capana.session_keys import SecretsLookup, SessionKeys

EAP_REQUEST = 1
EAP_RESPONSE = 2
EAP_SUCCESS = 3
EAP_FAILURE = 4
EAP_TYPE_IDENTITY = 1

# EAP methods that run a TLS handshake in their outer layer, and the service each is reported as.
TLS_METHODS = {13: "eap-tls", 21: "eap-ttls", 25: "peap", 43: "eap-fast", 55: "teap"}

FLAG_LENGTH = 0x80  # L: a 4-byte TLS Message Length follows the flags
FLAG_MORE = 0x40  # M: more fragments of this message follow
FLAG_START = 0x20  # S: EAP-TLS Start, from the server
FLAG_OUTER_TLVS = 0x10  # O (TEAP only): a 4-byte Outer TLV Length follows

# Bounds: one TLS message (one side's flight) being joined, per direction, its bytes taken from
# the capture's budget. No honest flight is near it (a phone's chain is a few KB); past it, or
# refused by the budget, the message is dropped and the side marked lost.
MAX_TLS_MESSAGE = 1 << 18
MAX_IDENTITY = 256  # characters kept of an EAP identity


class EapPacket(NamedTuple):
    """One EAP packet (RFC 3748 4): ``method`` and ``data`` only for Request/Response."""

    code: int
    identifier: int
    method: int | None
    data: bytes


def parse_eap(data: bytes) -> EapPacket | None:
    """The EAP packet at the start of ``data`` (trailing padding ignored), or None if malformed."""
    if len(data) < 4:
        return None
    code, identifier = data[0], data[1]
    length = (data[2] << 8) | data[3]
    if length < 4 or length > len(data) or code not in (1, 2, 3, 4):
        return None
    if code in (EAP_SUCCESS, EAP_FAILURE) or length == 4:
        return EapPacket(code, identifier, None, b"")
    return EapPacket(code, identifier, data[4], bytes(data[5:length]))


class _Joiner:
    """Joins one side's EAP-TLS fragments into whole TLS messages.

    Buffer: at most one message being joined, capped at MAX_TLS_MESSAGE bytes.
    """

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget
        self.buffer = bytearray()
        self.expected: int | None = None  # from the L flag
        self.joining = False  # the last fragment had M set
        self.lost = False  # bytes of the message being joined are missing
        self.last: tuple[int, bytes] | None = None  # (identifier, data) of the last fragment
        self.duplicates = 0

    def add(self, identifier: int, data: bytes) -> tuple[bytes | None, bool]:
        """(a whole message or None, whether bytes before it were lost)."""
        if (identifier, data) == self.last:
            self.duplicates += 1  # a retransmission: already taken
            return None, False
        self.last = identifier, data
        flags, offset, expected = data[0], 1, None
        if flags & FLAG_LENGTH:
            if len(data) < 5:
                return None, True
            expected = int.from_bytes(data[1:5], "big")
            offset = 5
        outer = 0
        if flags & FLAG_OUTER_TLVS:  # TEAP: Outer TLVs follow the TLS data of this packet
            outer = int.from_bytes(data[offset : offset + 4], "big")
            offset += 4
        payload = data[offset : len(data) - outer]
        if not payload or flags & FLAG_START:
            return None, False  # an ACK of a fragment, or the server's Start (EAP-FAST: A-ID)
        lost_before = False
        continued = self.joining and expected == self.expected  # L on every fragment
        if flags & FLAG_LENGTH and not continued:
            if self.joining:  # the previous message never got its last fragment
                lost_before = True
            self._reset()
            self.expected = expected
        elif not self.joining and flags & FLAG_MORE:
            self._reset()  # a fragmented message always starts with L: its start is lost
            self.lost = True
        self.joining = bool(flags & FLAG_MORE)
        taken = self.budget is None or self.budget.take(len(payload), "eap")
        if not taken or len(self.buffer) + len(payload) > MAX_TLS_MESSAGE:
            self._reset()
            self.lost = self.joining
            return None, True
        self.buffer += payload
        if self.joining:
            return None, lost_before
        message = bytes(self.buffer)
        lost = self.lost or (self.expected is not None and self.expected != len(message))
        self._reset()
        return (None if lost else message), lost or lost_before

    def _reset(self) -> None:
        if self.budget is not None:
            self.budget.give(len(self.buffer))
        self.buffer.clear()
        self.expected = None
        self.joining = False
        self.lost = False


class EapTlsSession:
    """One EAP authentication: identity, the TLS handshake of its method, and its outcome."""

    def __init__(self, budget: Budget | None = None, keys: SecretsLookup | None = None) -> None:
        self.identity: str | None = None
        self.method: int | None = None  # the TLS method the server started last
        self.eap_outcome: Outcome | None = None  # "established" on Success, "rejected" on Failure
        self.start: float | None = None
        self.cut = False  # the capture's snaplen cut some of its packets
        self.tracker = HandshakeTracker()
        self._budget = budget
        self._directions = {
            CLIENT: tls.TlsDirection(budget=budget),
            SERVER: tls.TlsDirection(budget=budget),
        }
        self.session_keys: SessionKeys | None = None
        if keys is not None:  # a key log's secrets by client random, to read TLS 1.3
            self.session_keys = SessionKeys(keys)
            self.session_keys.attach(self._directions[CLIENT], self._directions[SERVER])
        self._joiners = {CLIENT: _Joiner(budget), SERVER: _Joiner(budget)}
        self._messages = 0  # whole TLS messages read
        self._gaps = 0
        self.problems: list[Problem] = []

    @property
    def done(self) -> bool:
        return self.eap_outcome is not None

    @property
    def tls_started(self) -> bool:
        """Has a TLS message gone either way? (A method's Start and a Nak are not TLS yet.)"""
        return self._messages > 0

    def restarts(self, packet: EapPacket) -> bool:
        """Does ``packet`` begin a new authentication rather than continue this one?"""
        if self.done:
            return True
        identity = packet.code == EAP_RESPONSE and packet.method == EAP_TYPE_IDENTITY
        return self.tls_started and (identity or _is_start(packet))

    def feed(self, packet: EapPacket, timestamp: float, frame: int = 0) -> None:
        """One EAP packet; ``frame``: the capture's packet that carried it (0: unknown)."""
        if self.start is None:
            self.start = timestamp
        if packet.code == EAP_SUCCESS:
            self.eap_outcome = "established"
        elif packet.code == EAP_FAILURE:
            self.eap_outcome = "rejected"
        elif packet.method == EAP_TYPE_IDENTITY and packet.code == EAP_RESPONSE:
            self.identity = packet.data[:MAX_IDENTITY].decode("utf-8", "replace")
        elif packet.method in TLS_METHODS and packet.data:
            if _is_start(packet) or self.method is None:
                self.method = packet.method  # after a Nak, the server starts the peer's choice
            if packet.method == self.method:
                self._fragment(packet, timestamp, frame)

    def _fragment(self, packet: EapPacket, timestamp: float, frame: int) -> None:
        sender: Sender = CLIENT if packet.code == EAP_RESPONSE else SERVER
        message, lost = self._joiners[sender].add(packet.identifier, packet.data)
        if lost:
            self._gaps += 1
            self.tracker.lost_data(sender)
            # What follows a hole starts a fresh message: a record boundary, unless it is lost too.
            old = self._directions[sender]
            self._directions[sender] = tls.TlsDirection(old.on_hello, self._budget)
        if message is not None:
            self._messages += 1
            for event in self._directions[sender].feed(message):
                self.tracker.on_event(sender, event, timestamp, frame)

    def handshake(
        self,
        *,
        capture: str,
        transport: Transport,
        client: str,
        server: str,
        server_port: int,
        wireshark_filter: str | None = None,
    ) -> Handshake | None:
        """The authentication as a handshake, or None when no TLS handshake message was seen."""
        if not self.tracker.saw_handshake:
            return None
        duplicates = sum(joiner.duplicates for joiner in self._joiners.values())
        text = f"{duplicates} EAP-TLS fragments seen twice"
        notes = (Problem(ProblemCode.EAP_REPEATED, text),) if duplicates else ()
        keys = self.session_keys
        key_problems = tuple(Problem(ProblemCode.KEYLOG, p) for p in keys.problems) if keys else ()
        result = self.tracker.result(
            capture=capture,
            transport=transport,
            client=client,
            server=server,
            server_port=server_port,
            service=TLS_METHODS.get(self.method or 13, "eap-tls"),
            gaps=self._gaps,
            problems=tuple(self.problems) + notes + key_problems,
            decryption=keys.status if keys else None,
            cut=self.cut,
            wireshark_filter=wireshark_filter,
        )
        return dataclasses.replace(
            result, outcome=self.eap_outcome or result.outcome, eap_identity=self.identity
        )


def _is_start(packet: EapPacket) -> bool:
    """A server's Start of a TLS method (the S flag)."""
    return (
        packet.code == EAP_REQUEST
        and packet.method in TLS_METHODS
        and bool(packet.data)
        and bool(packet.data[0] & FLAG_START)
    )
