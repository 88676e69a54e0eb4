"""DTLS record layer (RFC 4347 for 1.0, RFC 6347 for 1.2), sans-IO: one peer's datagrams in, the
events of :mod:`capana.tls` out, so that the TLS fold (:class:`capana.handshake.HandshakeTracker`)
turns a DTLS handshake into the same facts as a TLS one.

What differs from TLS is only the framing: records carry an epoch and a sequence number, and a
handshake message travels in fragments (message_seq, fragment_offset, fragment_length) that may
arrive in any order, more than once (a peer retransmits a whole flight on a timer) and in several
datagrams. Messages are reassembled here and parsed by TLS's own parsers; a message seen before is
not reported again. DTLS 1.3 (RFC 9147) is recognised: its plaintext hellos are read, and its
encrypted records (unified header) are reported as encrypted, as TLS 1.3's are.

Any UDP port: :func:`looks_like_dtls_client_hello` tells a DTLS flow by its first datagram.
CAPWAP (RFC 5415) puts a 4-byte DTLS preamble before the records: :func:`capwap_dtls` removes it.

Bounds, per direction: at most MAX_MESSAGES_IN_PROGRESS messages being reassembled, whose declared
lengths add up to at most MAX_BUFFERED bytes, each in at most MAX_HOLES separate pieces; at most
MAX_MESSAGES messages in all; a Certificate message kept to its first tls.MAX_CERTIFICATE_MESSAGE
bytes (the certificates within them, and a problem). The bytes being joined are taken from the
capture's :class:`Budget`. Past any bound the direction stops with a ProtocolError. A fragment
costs O(MAX_HOLES log MAX_HOLES) at most.
"""

from __future__ import annotations

from capana import tls
from capana.budget import Budget
from capana.model import ProblemCode
from capana.tls import (
    Alert,
    ChangeCipherSpec,
    EncryptedRecord,
    ProtocolError,
    TlsEvent,
    parse_handshake_message,
)

DTLS10 = 0xFEFF
DTLS12 = 0xFEFD
DTLS13 = tls.DTLS13
VERSION_NAMES = {version: tls.VERSION_NAMES[version] for version in (DTLS10, DTLS12, DTLS13)}
# Content types a DTLSPlaintext record may carry: TLS's five, tls12_cid (RFC 9146) and ack (9147).
_CONNECTION_ID = 25
_ACK = 26
_RECORD_TYPES = frozenset(
    {tls.CHANGE_CIPHER_SPEC, tls.ALERT, tls.HANDSHAKE, tls.APPLICATION_DATA, tls.HEARTBEAT}
    | {_CONNECTION_ID, _ACK}
)
_RECORD_HEADER = 13  # type, version, epoch, sequence number (48 bits), length
_MESSAGE_HEADER = 12  # type, length, message_seq, fragment_offset, fragment_length

MAX_MESSAGES_IN_PROGRESS = 32
MAX_BUFFERED = tls.MAX_HANDSHAKE_MESSAGE
MAX_MESSAGES = 1024
MAX_HOLES = 256  # fragments of one message that do not join up yet: past it, not a real peer
MAX_RECORDS_REMEMBERED = 256  # recent records, to pass over a datagram captured twice


def looks_like_dtls_client_hello(datagram: bytes) -> bool:
    """Does this datagram open with an epoch-0 DTLS record holding the start of a ClientHello?"""
    return (
        len(datagram) >= _RECORD_HEADER + _MESSAGE_HEADER
        and datagram[0] == tls.HANDSHAKE
        and datagram[1] == 0xFE
        and datagram[2] in (0xFF, 0xFD)
        and datagram[3] == 0
        and datagram[4] == 0
        and datagram[_RECORD_HEADER] == tls.CLIENT_HELLO
    )


def capwap_dtls(payload: bytes) -> bytes | None:
    """The DTLS records of a CAPWAP datagram (RFC 5415 4.2: preamble version 0, type 1, then 3
    reserved bytes); None for a CAPWAP message in clear (preamble type 0) or anything else."""
    if len(payload) > 4 and payload[0] == 0x01:
        return payload[4:]
    return None


class _Message:
    """One handshake message being reassembled from its fragments: its first ``kept`` bytes
    (all of them, but for a Certificate message cut at tls.MAX_CERTIFICATE_MESSAGE)."""

    __slots__ = ("body", "covered", "kept", "length", "message_type", "ranges")

    def __init__(self, message_type: int, length: int, kept: int) -> None:
        self.message_type = message_type
        self.length = length
        self.kept = kept
        self.body = bytearray(kept)
        self.ranges: list[tuple[int, int]] = []  # received [start, stop), sorted, disjoint
        self.covered = 0

    def add(self, offset: int, data: bytes) -> bool:
        """Keep the bytes not yet received; True when ``data`` contradicts those already kept."""
        if offset >= self.kept:
            return False
        data = data[: self.kept - offset]
        stop = offset + len(data)
        conflict = False
        cursor = offset
        for low, high in self.ranges:
            if high <= cursor:
                continue
            if low >= stop:
                break
            if low > cursor:
                self.body[cursor:low] = data[cursor - offset : low - offset]
            shared_stop = min(high, stop)
            kept = self.body[max(low, cursor) : shared_stop]
            conflict |= kept != data[max(low, cursor) - offset : shared_stop - offset]
            cursor = high
        if cursor < stop:
            self.body[cursor:stop] = data[cursor - offset :]
        self.ranges = _merge(self.ranges, offset, stop)
        self.covered = sum(high - low for low, high in self.ranges)
        return conflict

    @property
    def complete(self) -> bool:
        return self.covered == self.kept


def _merge(ranges: list[tuple[int, int]], start: int, stop: int) -> list[tuple[int, int]]:
    """``ranges`` with [start, stop) added, sorted and with touching ranges joined."""
    out: list[tuple[int, int]] = []
    for low, high in sorted([*ranges, (start, stop)]):
        if out and low <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out


class DtlsDirection:
    """Parses the datagrams one peer sent. Feed each UDP payload; read events back.

    Counters: ``repeated``, datagrams whose handshake fragments had all been seen before (a
    retransmitted flight); ``duplicates``, records captured twice byte for byte (DTLS never
    sends a record again: a retransmission has a new sequence number); ``conflicts``,
    fragments that contradicted bytes seen before (the first ones are kept); ``skipped``,
    datagrams that are not DTLS (STUN and RTP beside WebRTC's DTLS, RFC 7983).
    """

    def __init__(self, budget: Budget | None = None) -> None:
        self._budget = budget
        self.records = 0
        self.repeated = 0
        self.conflicts = 0
        self.skipped = 0
        self.duplicates = 0
        self.failed = False
        self._recent: dict[int, None] = {}  # hashes of the last records, oldest first
        self._in_progress: dict[int, _Message] = {}
        self._buffered = 0
        self._done: set[int] = set()  # message_seq of the messages already reported
        self._malformed_reported = False

    def __del__(self) -> None:
        if self._budget is not None:
            self._budget.give(self._buffered)

    def feed(self, datagram: bytes) -> list[TlsEvent]:
        events: list[TlsEvent] = []
        if self.failed:
            return events
        if not datagram or not 20 <= datagram[0] <= 63:
            self.skipped += 1
            return events
        fresh: list[bool] = []  # per handshake fragment: did it bring a new byte?
        at = 0
        while at < len(datagram) and not self.failed:
            if datagram[at] & 0xE0 == 0x20:  # DTLS 1.3 unified header: an encrypted record
                at = self._unified_record(datagram, at, events)
                continue
            if len(datagram) - at < _RECORD_HEADER:
                self._malformed(events, f"{len(datagram) - at} bytes after the last record")
                break
            content_type, major = datagram[at], datagram[at + 1]
            epoch = (datagram[at + 3] << 8) | datagram[at + 4]
            length = (datagram[at + 11] << 8) | datagram[at + 12]
            body = datagram[at + _RECORD_HEADER : at + _RECORD_HEADER + length]
            if content_type not in _RECORD_TYPES or major != 0xFE:
                self._malformed(events, f"not a DTLS record (bytes {datagram[at : at + 5].hex()})")
                break
            if content_type == _CONNECTION_ID:
                # Its header holds a connection ID of negotiated length: it cannot be framed.
                self.records += 1
                events.append(EncryptedRecord(content_type, len(datagram) - at))
                break
            if len(body) < length:
                self._malformed(events, f"record of {length} bytes cut at {len(body)}")
                break
            record = datagram[at : at + _RECORD_HEADER + length]
            at += _RECORD_HEADER + length
            if self._seen(record):
                continue
            self.records += 1
            self._record(content_type, epoch, body, events, fresh)
        if fresh and not any(fresh):
            self.repeated += 1
        return events

    def _seen(self, record: bytes) -> bool:
        """Was this very record (header, sequence number and bytes) seen lately?"""
        digest = hash(record)
        if digest in self._recent:
            self.duplicates += 1
            return True
        self._recent[digest] = None
        if len(self._recent) > MAX_RECORDS_REMEMBERED:
            del self._recent[next(iter(self._recent))]
        return False

    def _unified_record(self, datagram: bytes, at: int, events: list[TlsEvent]) -> int:
        """An RFC 9147 ciphertext record: flags C (connection ID), S (16-bit sequence), L
        (length present). With a connection ID, or without a length, it fills the datagram."""
        flags = datagram[at]
        header = 1 + (2 if flags & 0x08 else 1)
        if flags & 0x10 or not flags & 0x04 or len(datagram) < at + header + 2:
            events.append(EncryptedRecord(tls.APPLICATION_DATA, len(datagram) - at))
            return len(datagram)
        length = (datagram[at + header] << 8) | datagram[at + header + 1]
        self.records += 1
        events.append(EncryptedRecord(tls.APPLICATION_DATA, length))
        return at + header + 2 + length

    def _record(
        self,
        content_type: int,
        epoch: int,
        body: bytes,
        events: list[TlsEvent],
        fresh: list[bool],
    ) -> None:
        if content_type == tls.CHANGE_CIPHER_SPEC:
            events.append(ChangeCipherSpec())
        elif content_type == tls.ALERT:
            plain = epoch == 0 and len(body) == 2
            events.append(Alert(body[0], body[1]) if plain else Alert(None, None))
        elif content_type == tls.HANDSHAKE and epoch == 0:
            self._handshake(body, events, fresh)
        else:
            events.append(EncryptedRecord(content_type, len(body)))

    def _handshake(self, body: bytes, events: list[TlsEvent], fresh: list[bool]) -> None:
        """The handshake fragments of one record, each: header, then its bytes."""
        at = 0
        while len(body) - at >= _MESSAGE_HEADER and not self.failed:
            message_type = body[at]
            length = int.from_bytes(body[at + 1 : at + 4], "big")
            sequence = (body[at + 4] << 8) | body[at + 5]
            offset = int.from_bytes(body[at + 6 : at + 9], "big")
            size = int.from_bytes(body[at + 9 : at + 12], "big")
            data = body[at + _MESSAGE_HEADER : at + _MESSAGE_HEADER + size]
            at += _MESSAGE_HEADER + size
            if len(data) < size or offset + size > length:
                self._malformed(events, f"handshake fragment of message {sequence} overruns")
                return
            fresh.append(self._fragment(message_type, length, sequence, offset, data, events))
        if at != len(body):
            self._malformed(events, "handshake record ends inside a fragment header")

    def _fragment(
        self,
        message_type: int,
        length: int,
        sequence: int,
        offset: int,
        data: bytes,
        events: list[TlsEvent],
    ) -> bool:
        """Take one fragment; False when every byte of it had been seen before."""
        if sequence in self._done:
            return False
        message = self._in_progress.get(sequence)
        if message is None:
            message = self._start(message_type, length, sequence, events)
            if message is None:
                return False
        elif message.message_type != message_type or message.length != length:
            self.conflicts += 1
            return False
        covered = message.covered
        self.conflicts += message.add(offset, data)
        if len(message.ranges) > MAX_HOLES:
            self._fail(events, f"handshake message {sequence} in over {MAX_HOLES} pieces")
            return False
        if message.complete:
            del self._in_progress[sequence]
            self._release(message.kept)
            self._done.add(sequence)
            for event in _parse(message_type, bytes(message.body), length):
                events += tls.kept(event, self._budget)
        return message.covered > covered or (length == 0 and covered == 0)

    def _start(
        self, message_type: int, length: int, sequence: int, events: list[TlsEvent]
    ) -> _Message | None:
        if len(self._done) >= MAX_MESSAGES:
            self._fail(events, f"more than {MAX_MESSAGES} handshake messages")
            return None
        kept = length
        if message_type == tls.CERTIFICATE:
            kept = min(length, tls.MAX_CERTIFICATE_MESSAGE)
        if (
            len(self._in_progress) >= MAX_MESSAGES_IN_PROGRESS
            or self._buffered + kept > MAX_BUFFERED
        ):
            self._fail(
                events,
                f"handshake message {sequence} of {length} bytes: over the "
                f"{MAX_BUFFERED}-byte reassembly limit",
            )
            return None
        if self._budget is not None and not self._budget.take(kept, "dtls"):
            self._fail(events, "the capture-wide memory budget is spent: the rest is not read")
            return None
        message = self._in_progress[sequence] = _Message(message_type, length, kept)
        self._buffered += kept
        return message

    def _release(self, size: int) -> None:
        self._buffered -= size
        if self._budget is not None:
            self._budget.give(size)

    def _malformed(self, events: list[TlsEvent], message: str) -> None:
        """A datagram that is not well-formed DTLS: said once, and the next one is read."""
        if not self._malformed_reported:
            self._malformed_reported = True
            events.append(ProtocolError(ProblemCode.MESSAGE_MALFORMED, message))

    def _fail(self, events: list[TlsEvent], message: str) -> None:
        self.failed = True
        self._in_progress.clear()
        self._release(self._buffered)
        events.append(ProtocolError(ProblemCode.LIMIT, message))


def _parse(message_type: int, body: bytes, length: int) -> list[TlsEvent]:
    """A handshake message (its first ``len(body)`` of ``length`` bytes), by TLS's parsers: a
    DTLS ClientHello loses its cookie first; a cut Certificate message keeps the certificates
    within its first bytes, with a problem."""
    if message_type == tls.CLIENT_HELLO:
        body = _without_cookie(body)
    if len(body) < length and message_type == tls.CERTIFICATE:
        return [tls.cut_certificate_message(body), tls.certificate_cut_problem(length, len(body))]
    return [parse_handshake_message(message_type, body)]


def _without_cookie(body: bytes) -> bytes:
    """A DTLS ClientHello in TLS's form: the cookie after the session ID taken out."""
    cookie_at = 2 + 32 + 1 + (body[34] if len(body) > 34 else 0)
    if len(body) <= cookie_at:
        return body  # truncated: TLS's parser says so
    return body[:cookie_at] + body[cookie_at + 1 + body[cookie_at] :]
