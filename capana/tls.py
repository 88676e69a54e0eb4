"""TLS record layer and handshake messages, sans-IO: one direction's bytes in, events out.

Nothing here knows about packets or TCP. A :class:`TlsDirection` is fed the in-order bytes one
peer sent and hands back the handshake messages, alerts and record kinds it found, reassembling
records across feeds, several messages per record and one message across several records.

Scapy's TLS classes are not used on this path: dissecting one ClientHello with them costs about
2.5 ms here, which alone would cap a reboot capture at a few hundred handshakes per second. The
parsers below read only the fields capana reports, with every length checked against its bound.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from capana import iana
from capana.budget import Budget
from capana.model import ProblemCode

CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
HEARTBEAT = 24
_RECORD_TYPES = frozenset({CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT})

CLIENT_HELLO = 1
SERVER_HELLO = 2
CERTIFICATE = 11
CERTIFICATE_REQUEST = 13
SERVER_HELLO_DONE = 14
CLIENT_KEY_EXCHANGE = 16
FINISHED = 20

EXTENSION_SERVER_NAME = 0
EXTENSION_SIGNATURE_ALGORITHMS = 13
EXTENSION_SUPPORTED_VERSIONS = 43
EXTENSION_CERTIFICATE_AUTHORITIES = 47

TLS13 = 0x0304
DTLS13 = 0xFEFC
# The versions whose handshake after the hellos is encrypted (RFC 8446, RFC 9147).
TLS13_VERSIONS = frozenset({TLS13, DTLS13})
# ServerHello.random of a HelloRetryRequest (RFC 8446, 4.1.3).
_HELLO_RETRY_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)

# Bounds. A handshake message may claim 16 MiB; no honest message needs more than
# MAX_HANDSHAKE_MESSAGE, and no phone sends more than MAX_CHAIN_CERTIFICATES certificates. A
# Certificate message is read up to MAX_CERTIFICATE_MESSAGE bytes (64 certificates of 2 KiB):
# the certificates within them are kept, the rest of the message passed over, with a problem.
MAX_HANDSHAKE_MESSAGE = 1 << 20
MAX_CERTIFICATE_MESSAGE = 128 << 10
# TLSCiphertext.length may not exceed 2^14 + 2048 (RFC 5246, 6.2.3); a longer claim is not TLS.
MAX_RECORD_LENGTH = (1 << 14) + 2048
MAX_CHAIN_CERTIFICATES = 64

VERSION_NAMES = {
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    TLS13: "TLS 1.3",
    0x0002: "SSL 2.0",
    0xFEFF: "DTLS 1.0",
    0xFEFD: "DTLS 1.2",
    DTLS13: "DTLS 1.3",
}


def version_name(version: int | None) -> str | None:
    if version is None:
        return None
    return VERSION_NAMES.get(version, f"0x{version:04x}")


def cipher_suite_name(code: int | None) -> str | None:
    if code is None:
        return None
    return iana.CIPHER_SUITES.get(code, f"0x{code:04x}")


def alert_name(code: int | None) -> str | None:
    if code is None:
        return None
    return iana.ALERTS.get(code, f"alert_{code}")


def signature_scheme_name(code: int) -> str:
    """A SignatureScheme (RFC 8446 4.2.3) by its IANA name ("rsa_pss_rsae_sha256"), else its
    number."""
    return iana.SIGNATURE_SCHEMES.get(code, f"0x{code:04x}")


def is_grease(code: int) -> bool:
    """A GREASE value (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa; they mean nothing."""
    return code & 0x0F0F == 0x0A0A and code >> 8 == code & 0xFF


def looks_like_client_hello(data: bytes) -> bool:
    """Do these first bytes of a stream open a TLS (or SSLv2-style) ClientHello?"""
    if len(data) >= 6 and data[0] == HANDSHAKE and data[1] == 3 and data[5] == CLIENT_HELLO:
        return True
    return len(data) >= 5 and bool(data[0] & 0x80) and data[2] == CLIENT_HELLO and data[3] in (0, 3)


def looks_like_tls_record(data: bytes) -> bool:
    """Do these bytes start with a plausible TLS record header of any kind?"""
    return len(data) >= 5 and data[0] in _RECORD_TYPES and data[1] == 3 and data[2] <= 4


# Events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientHello:
    version: int
    cipher_suites: tuple[int, ...]
    server_name: str | None
    supported_versions: tuple[int, ...]
    sslv2_format: bool = False
    random: bytes = b""  # names the session in a key log
    signature_algorithms: tuple[int, ...] = ()


@dataclass(frozen=True)
class ServerHello:
    version: int
    cipher_suite: int
    selected_version: int | None
    hello_retry: bool
    random: bytes = b""  # with the client's, derives TLS <= 1.2 keys
    extensions: tuple[int, ...] = ()  # types, in order (extended_master_secret, encrypt_then_mac)


@dataclass(frozen=True)
class CertificateMessage:
    certificates: tuple[bytes, ...]
    problem: str | None = None


@dataclass(frozen=True)
class CertificateRequest:
    ca_names: tuple[bytes, ...]
    problem: str | None = None


@dataclass(frozen=True)
class OtherHandshake:
    message_type: int


@dataclass(frozen=True)
class TruncatedMessage:
    """A handshake message whose end the capture lacks (a snaplen cut, a hole): its type,
    declared length and the bytes of it seen. A ClientHello's version and random, when seen,
    come as a ClientHello."""

    message_type: int
    length: int
    seen: int


@dataclass(frozen=True)
class Alert:
    level: int | None
    description: int | None

    @property
    def encrypted(self) -> bool:
        return self.level is None


@dataclass(frozen=True)
class ChangeCipherSpec:
    pass


@dataclass(frozen=True)
class EncryptedRecord:
    content_type: int
    length: int


@dataclass(frozen=True)
class ApplicationData:
    """A decrypted (or NULL-cipher) application data record and its content."""

    length: int
    content: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class Renegotiation:
    """A TLS <= 1.2 handshake started inside the session: a protected handshake record after
    the Finished that followed this peer's last ChangeCipherSpec (readable or not)."""


@dataclass(frozen=True)
class DecryptionFailed:
    """A record did not decrypt with the key log's secret; later records stay encrypted."""

    message: str


@dataclass(frozen=True)
class ProtocolError:
    """The bytes stopped being TLS (or a message was malformed), with a code saying how."""

    code: ProblemCode
    message: str


TlsEvent = (
    ClientHello
    | ServerHello
    | CertificateMessage
    | CertificateRequest
    | OtherHandshake
    | TruncatedMessage
    | Alert
    | ChangeCipherSpec
    | EncryptedRecord
    | ApplicationData
    | Renegotiation
    | DecryptionFailed
    | ProtocolError
)


class RecordDecryptor(Protocol):
    """Opens one direction's protected records (see :class:`capana.tls13.HandshakeDecryptor`)."""

    @property
    def active(self) -> bool: ...

    def open(self, header: bytes, ciphertext: bytes) -> tuple[int, bytes]:
        """(inner content type, content); raises ValueError when the record does not open.

        TLS 1.3 hides the type inside the record; TLS <= 1.2 returns the header's.
        """
        ...

    def finished(self) -> None:
        """This peer's Finished was read."""
        ...


class _Received:
    """Bytes received and not read yet, kept as the pieces they came in: joined only once all
    the bytes needed are there, so that no buffer grows piece by piece (thousands of buffers
    growing at once fragment the heap to twice their size)."""

    __slots__ = ("pieces", "size")

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        if data:
            self.pieces.append(data)
            self.size += len(data)

    def take(self) -> bytes:
        """All the bytes, as one; the caller gives back what it did not read (``keep``)."""
        joined = self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)
        self.clear()
        return joined

    def keep(self, rest: bytes) -> None:
        self.pieces = [rest] if rest else []
        self.size = len(rest)

    def clear(self) -> None:
        self.pieces = []
        self.size = 0


class TlsDirection:
    """Parses the records one peer sent. Feed in-order bytes; read events back.

    Buffers: at most one incomplete record (MAX_RECORD_LENGTH + 5) plus the last feed, and at
    most one incomplete handshake message, capped at MAX_HANDSHAKE_MESSAGE (a Certificate at
    MAX_CERTIFICATE_MESSAGE), both as the pieces they came in until they are whole. Both take
    their bytes from the capture's ``budget``; refused, the direction stops with a LIMIT problem.
    Each byte is copied O(1) times, so cost is O(n) overall. :meth:`truncate` says what the
    capture cut short of the message being received.

    With a key log: ``on_hello`` is called with each hello as soon as it is parsed, so that the
    caller can set ``decryptor`` before the next record of the same feed; from then on protected
    records are opened and their contents reported like plaintext ones: application data records
    (TLS 1.3), and every record after this peer's ChangeCipherSpec (TLS <= 1.2, where the outer
    type is the real one; in TLS 1.3 every record after it is application data anyway).
    """

    def __init__(
        self,
        on_hello: Callable[[ClientHello | ServerHello], None] | None = None,
        budget: Budget | None = None,
    ) -> None:
        self._records = _Received()
        self._record_need = 5  # bytes to have before reading on: a header, then its record
        self._messages = _Received()  # handshake bytes of records read, not yet a whole message
        self._message_need = 4
        self._skipping = 0  # bytes of a cut Certificate message still to pass over
        self._encrypted = False
        self._protected_handshakes = 0  # handshake records since the last ChangeCipherSpec
        self.failed = False
        self.records = 0
        self.on_hello = on_hello
        self.decryptor: RecordDecryptor | None = None
        self._budget = budget
        self._held = 0  # bytes taken from the budget

    def __del__(self) -> None:
        if self._budget is not None:
            self._budget.give(self._held)

    def feed(self, data: bytes) -> list[TlsEvent]:
        if self.failed:
            return []
        events = self._feed(data)
        if self._budget is not None:
            self._account(events)
        return events

    def _account(self, events: list[TlsEvent]) -> None:
        """Hold what the buffers hold now against the budget; stop when it is refused."""
        budget = self._budget
        assert budget is not None
        held = self._records.size + self._messages.size
        if held > self._held and not budget.take(held - self._held, "tls"):
            text = "the capture-wide memory budget is spent: the rest of this side is not read"
            self._fail(events, ProblemCode.LIMIT, text)
            held = 0
        if held < self._held:
            budget.give(self._held - held)
        self._held = held

    def truncate(self) -> list[TlsEvent]:
        """The capture lacks what follows: the handshake message being received is cut short.

        What was seen of it: a :class:`TruncatedMessage`, after a ClientHello of the version
        and random it showed.
        """
        if self.failed or self._encrypted:
            return []
        partial = b"".join(self._messages.pieces)
        pending = b"".join(self._records.pieces)
        if len(pending) > 5 and pending[0] == HANDSHAKE and not self._skipping:
            partial += pending[5 : 5 + int.from_bytes(pending[3:5], "big")]
        if len(partial) < 4:
            return []
        message_type, length = partial[0], int.from_bytes(partial[1:4], "big")
        events: list[TlsEvent] = [TruncatedMessage(message_type, length, len(partial) - 4)]
        if message_type == CLIENT_HELLO and len(partial) >= 4 + 2 + 32:
            random = partial[6:38]
            events.insert(
                0, ClientHello(int.from_bytes(partial[4:6], "big"), (), None, (), False, random)
            )
        return events

    def _feed(self, data: bytes) -> list[TlsEvent]:
        received = self._records
        received.add(data)
        if received.size < self._record_need:
            return []
        buffer = received.take()
        events: list[TlsEvent] = []
        start, need = 0, 5
        while not self.failed:
            available = len(buffer) - start
            if available < 5:
                need = 5
                break
            if start == 0 and self.records == 0 and buffer[0] & 0x80:
                need = 2 + (((buffer[0] & 0x7F) << 8) | buffer[1])
                if available < need:
                    break
                self.records += 1
                events.append(parse_sslv2_client_hello(buffer[2:need]))
                start = need
                continue
            content_type, major, _minor, length = struct.unpack_from(">BBBH", buffer, start)
            if content_type not in _RECORD_TYPES or major != 3:
                self._fail(
                    events,
                    ProblemCode.NOT_TLS,
                    f"not a TLS record (bytes {buffer[start : start + 5].hex()})",
                )
                break
            if length > MAX_RECORD_LENGTH:
                self._fail(
                    events,
                    ProblemCode.RECORD_TOO_LONG,
                    f"record type {content_type} claims {length} bytes, "
                    f"over the TLS limit of {MAX_RECORD_LENGTH}",
                )
                break
            end = start + 5 + length
            if end > len(buffer):
                need = 5 + length
                break
            self.records += 1
            if self.decryptor is not None and (content_type == APPLICATION_DATA or self._encrypted):
                self._decrypt(buffer[start : start + 5], buffer[start + 5 : end], events)
            else:
                self._record(content_type, buffer[start + 5 : end], events)
            start = end
        if not self.failed:
            received.keep(buffer[start:] if start else buffer)
            self._record_need = need
        return events

    def _fail(self, events: list[TlsEvent], code: ProblemCode, message: str) -> None:
        self.failed = True
        self._records.clear()
        self._messages.clear()
        events.append(ProtocolError(code, message))

    def _record(self, content_type: int, body: bytes, events: list[TlsEvent]) -> None:
        if content_type == CHANGE_CIPHER_SPEC:
            self._change_cipher_spec(events)
        elif content_type == ALERT:
            if self._encrypted or len(body) != 2:
                events.append(Alert(None, None))
            else:
                events.append(Alert(body[0], body[1]))
        elif content_type == HANDSHAKE and (not self._encrypted or _whole_hello(body)):
            self._handshake_bytes(body, events)
        else:
            if content_type == HANDSHAKE:
                self._protected_handshake(events)
            events.append(EncryptedRecord(content_type, len(body)))

    def _change_cipher_spec(self, events: list[TlsEvent]) -> None:
        self._encrypted = True
        self._protected_handshakes = 0
        events.append(ChangeCipherSpec())

    def _protected_handshake(self, events: list[TlsEvent]) -> None:
        """The first protected handshake record after a ChangeCipherSpec is the Finished."""
        self._protected_handshakes += 1
        if self._protected_handshakes == 2:
            events.append(Renegotiation())

    def _decrypt(self, header: bytes, ciphertext: bytes, events: list[TlsEvent]) -> None:
        """A protected record: its inner record, or EncryptedRecord if it won't open."""
        decryptor = self.decryptor
        assert decryptor is not None
        try:
            inner_type, content = decryptor.open(header, ciphertext)
        except ValueError as error:
            self.decryptor = None
            events.append(DecryptionFailed(str(error)))
            events.append(EncryptedRecord(header[0], len(ciphertext)))
            return
        tls13 = header[0] == APPLICATION_DATA  # TLS <= 1.2 never carries these in type 23
        if inner_type == HANDSHAKE:
            if not tls13:
                self._protected_handshake(events)
            self._handshake_bytes(content, events, tls13=tls13)
        elif inner_type == ALERT:
            level, description = (content[0], content[1]) if len(content) == 2 else (None, None)
            events.append(Alert(level, description))
        elif inner_type == APPLICATION_DATA:
            events.append(ApplicationData(len(content), content))
        elif inner_type == CHANGE_CIPHER_SPEC and not tls13:
            self._change_cipher_spec(events)  # a renegotiated session's keys start after it
        else:
            self._fail(
                events, ProblemCode.NOT_TLS, f"decrypted record has content type {inner_type}"
            )
        if self.decryptor is not None and not self.decryptor.active:
            self.decryptor = None

    def _handshake_bytes(self, body: bytes, events: list[TlsEvent], tls13: bool = False) -> None:
        if self._skipping:
            passed = min(self._skipping, len(body))
            self._skipping -= passed
            body = body[passed:]
        received = self._messages
        received.add(body)
        if received.size < self._message_need:
            return
        buffer = received.take()
        start, need = 0, 4
        while len(buffer) - start >= 4:
            message_type = buffer[start]
            length = int.from_bytes(buffer[start + 1 : start + 4], "big")
            if message_type == CERTIFICATE and length > MAX_CERTIFICATE_MESSAGE:
                if len(buffer) - start - 4 < MAX_CERTIFICATE_MESSAGE:
                    need = 4 + MAX_CERTIFICATE_MESSAGE
                    break
                start = self._cut_certificate(buffer, start, length, events, tls13)
                continue
            if length > MAX_HANDSHAKE_MESSAGE:
                self._fail(
                    events,
                    ProblemCode.MESSAGE_TOO_LONG,
                    f"handshake message type {message_type} claims {length} bytes, "
                    f"over the {MAX_HANDSHAKE_MESSAGE}-byte limit",
                )
                return
            end = start + 4 + length
            if end > len(buffer):
                need = 4 + length
                break
            event = parse_handshake_message(message_type, buffer[start + 4 : end], tls13)
            events += kept(event, self._budget)
            start = end
            if isinstance(event, ClientHello | ServerHello) and self.on_hello is not None:
                self.on_hello(event)
            elif message_type == FINISHED and tls13 and self.decryptor is not None:
                self.decryptor.finished()
        if not self.failed:
            received.keep(buffer[start:] if start else buffer)
            self._message_need = need

    def _cut_certificate(
        self, buffer: bytes, start: int, length: int, events: list[TlsEvent], tls13: bool
    ) -> int:
        """A Certificate message over MAX_CERTIFICATE_MESSAGE: the certificates within its
        first bytes, a LIMIT problem, and the rest passed over. Where the buffer is read to."""
        body = buffer[start + 4 : start + 4 + MAX_CERTIFICATE_MESSAGE]
        events += kept(cut_certificate_message(body, tls13), self._budget)
        events.append(certificate_cut_problem(length, MAX_CERTIFICATE_MESSAGE))
        taken = min(length, len(buffer) - start - 4)
        self._skipping = length - taken
        return start + 4 + taken


def kept(event: TlsEvent, budget: Budget | None) -> list[TlsEvent]:
    """``event``, a Certificate message's certificates as the capture's budget keeps them (one
    copy of each), with a LIMIT problem when it left some out."""
    if budget is None or not isinstance(event, CertificateMessage):
        return [event]
    certificates = budget.keep(event.certificates)
    message = CertificateMessage(certificates, event.problem)
    if len(certificates) == len(event.certificates):
        return [message]
    missing = len(event.certificates) - len(certificates)
    text = f"{missing} certificates not kept: the capture's bytes for certificates are spent"
    return [message, ProtocolError(ProblemCode.LIMIT, text)]


def cut_certificate_message(body: bytes, tls13: bool = False) -> CertificateMessage:
    """The certificates wholly within the first bytes of a Certificate message cut short."""
    return _tls13_certificate(_Reader(body), cut=True) if tls13 else _certificate_list(body, True)


def certificate_cut_problem(length: int, kept: int) -> ProtocolError:
    return ProtocolError(
        ProblemCode.LIMIT,
        f"Certificate message of {length} bytes read to its first {kept}: the certificates "
        "within them kept, the rest passed over",
    )


def _whole_hello(body: bytes) -> bool:
    """Is this record body exactly one ClientHello or ServerHello?

    TLS 1.3 peers send a compatibility ChangeCipherSpec after a HelloRetryRequest, and the
    hellos after it are still plaintext (RFC 8446, D.4). An encrypted TLS 1.2 Finished passes
    this test by chance with odds of about 2^-31.
    """
    return (
        len(body) >= 4
        and body[0] in (CLIENT_HELLO, SERVER_HELLO)
        and int.from_bytes(body[1:4], "big") == len(body) - 4
    )


# Message parsers: each takes the message body and returns an event, never raises. ------------


class _Reader:
    """Bounds-checked reads over one message body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def remaining(self) -> int:
        return len(self.data) - self.offset

    def integer(self, size: int) -> int:
        if self.remaining() < size:
            raise _Truncated
        value = int.from_bytes(self.data[self.offset : self.offset + size], "big")
        self.offset += size
        return value

    def take(self, size: int) -> bytes:
        if self.remaining() < size:
            raise _Truncated
        value = self.data[self.offset : self.offset + size]
        self.offset += size
        return value

    def vector(self, length_size: int) -> bytes:
        return self.take(self.integer(length_size))


class _Truncated(Exception):
    """A length field claimed more bytes than the message holds."""


def parse_handshake_message(message_type: int, body: bytes, tls13: bool = False) -> TlsEvent:
    """One handshake message; ``tls13`` for the forms only TLS 1.3 (encrypted) messages take."""
    parser = (tls13 and _TLS13_PARSERS.get(message_type)) or _PARSERS.get(message_type)
    if parser is None:
        return OtherHandshake(message_type)
    try:
        return parser(_Reader(body))
    except _Truncated:
        return ProtocolError(
            ProblemCode.MESSAGE_MALFORMED,
            f"handshake message type {message_type} is truncated or malformed",
        )


def _client_hello(reader: _Reader) -> ClientHello:
    version = reader.integer(2)
    random = reader.take(32)
    reader.vector(1)
    suites = _codes(reader.vector(2))
    reader.vector(1)
    server_name = None
    supported: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    if reader.remaining() >= 2:
        for ext_type, ext in _extensions(_Reader(reader.vector(2))):
            if ext_type == EXTENSION_SERVER_NAME:
                server_name = _server_name(ext)
            elif ext_type == EXTENSION_SUPPORTED_VERSIONS:
                supported = _codes(_Reader(ext).vector(1))
            elif ext_type == EXTENSION_SIGNATURE_ALGORITHMS:
                signature_algorithms = _codes(_Reader(ext).vector(2))
    return ClientHello(
        version,
        suites,
        server_name,
        supported,
        random=random,
        signature_algorithms=signature_algorithms,
    )


def _codes(data: bytes) -> tuple[int, ...]:
    """A list of 2-byte code points (versions, signature schemes); an odd last byte is dropped."""
    return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data) - 1, 2))


def _server_hello(reader: _Reader) -> ServerHello:
    version = reader.integer(2)
    random = reader.take(32)
    reader.vector(1)
    suite = reader.integer(2)
    reader.integer(1)
    selected = None
    types: list[int] = []
    if reader.remaining() >= 2:
        for ext_type, ext in _extensions(_Reader(reader.vector(2))):
            types.append(ext_type)
            if ext_type == EXTENSION_SUPPORTED_VERSIONS and len(ext) == 2:
                selected = int.from_bytes(ext, "big")
    return ServerHello(
        version, suite, selected, random == _HELLO_RETRY_RANDOM, random, tuple(types)
    )


def _certificate_list(body: bytes, cut: bool = False) -> CertificateMessage:
    """Certificates of a TLS <= 1.2 Certificate message, keeping all that lengths allow.

    ``cut``: ``body`` is the start of a longer message; its lengths reaching past it are no
    problem, and empty entries (padding, in a hostile message) are not certificates.
    """
    reader = _Reader(body)
    certificates: list[bytes] = []
    problem = None
    try:
        declared = reader.integer(3)
        if declared != reader.remaining() and not cut:
            problem = (
                f"certificate list claims {declared} bytes, the message holds {reader.remaining()}"
            )
        while reader.remaining() > 0:
            if len(certificates) == MAX_CHAIN_CERTIFICATES:
                problem = f"more than {MAX_CHAIN_CERTIFICATES} certificates; the rest were skipped"
                break
            der = reader.vector(3)
            if der or not cut:
                certificates.append(der)
    except _Truncated:
        if not cut:
            problem = problem or "certificate list is truncated"
    return CertificateMessage(tuple(certificates), problem)


def _certificate_request(reader: _Reader) -> CertificateRequest:
    """TLS 1.0-1.2 CertificateRequest. A 1.2 request carries signature algorithms first."""
    body = reader.data
    for has_signature_algorithms in (True, False):
        attempt = _Reader(body)
        try:
            attempt.vector(1)
            if has_signature_algorithms:
                attempt.vector(2)
            names = _Reader(attempt.vector(2))
            if attempt.remaining():
                continue
            ca_names = []
            while names.remaining():
                ca_names.append(names.vector(2))
            return CertificateRequest(tuple(ca_names))
        except _Truncated:
            continue
    return CertificateRequest((), "certificate request is malformed")


def _tls13_certificate(reader: _Reader, cut: bool = False) -> CertificateMessage:
    """TLS 1.3 Certificate: a request context, then entries of certificate + extensions
    (``cut`` as for :func:`_certificate_list`)."""
    certificates: list[bytes] = []
    problem = None
    try:
        reader.vector(1)  # certificate_request_context
        declared = reader.integer(3)
        if declared != reader.remaining() and not cut:
            problem = (
                f"certificate list claims {declared} bytes, the message holds {reader.remaining()}"
            )
        entries = _Reader(reader.take(min(declared, reader.remaining())))
        while entries.remaining() > 0:
            if len(certificates) == MAX_CHAIN_CERTIFICATES:
                problem = f"more than {MAX_CHAIN_CERTIFICATES} certificates; the rest were skipped"
                break
            der = entries.vector(3)
            if der or not cut:
                certificates.append(der)
            entries.vector(2)  # per-certificate extensions (OCSP status, SCTs)
    except _Truncated:
        if not cut:
            problem = problem or "certificate list is truncated"
    return CertificateMessage(tuple(certificates), problem)


def _tls13_certificate_request(reader: _Reader) -> CertificateRequest:
    """TLS 1.3 CertificateRequest: CA names sit in the certificate_authorities extension."""
    reader.vector(1)  # certificate_request_context
    ca_names: list[bytes] = []
    for ext_type, ext in _extensions(_Reader(reader.vector(2))):
        if ext_type == EXTENSION_CERTIFICATE_AUTHORITIES:
            names = _Reader(_Reader(ext).vector(2))
            while names.remaining():
                ca_names.append(names.vector(2))
    return CertificateRequest(tuple(ca_names))


def _extensions(reader: _Reader) -> Iterator[tuple[int, bytes]]:
    while reader.remaining() >= 4:
        ext_type = reader.integer(2)
        yield ext_type, reader.vector(2)


def _server_name(ext: bytes) -> str | None:
    names = _Reader(_Reader(ext).vector(2))
    while names.remaining() >= 3:
        name_type = names.integer(1)
        name = names.vector(2)
        if name_type == 0:
            return name.decode("ascii", "replace")
    return None


_Parser = Callable[[_Reader], TlsEvent]
_PARSERS: dict[int, _Parser] = {
    CLIENT_HELLO: _client_hello,
    SERVER_HELLO: _server_hello,
    CERTIFICATE: lambda reader: _certificate_list(reader.data),
    CERTIFICATE_REQUEST: _certificate_request,
}
_TLS13_PARSERS: dict[int, _Parser] = {
    CERTIFICATE: _tls13_certificate,
    CERTIFICATE_REQUEST: _tls13_certificate_request,
}


def parse_sslv2_client_hello(body: bytes) -> TlsEvent:
    """An SSLv2-format ClientHello (RFC 5246, E.2): 3-byte cipher specs, no extensions."""
    reader = _Reader(body)
    try:
        if reader.integer(1) != CLIENT_HELLO:
            text = "SSLv2 record is not a ClientHello"
            return ProtocolError(ProblemCode.MESSAGE_MALFORMED, text)
        version = reader.integer(2)
        specs_length = reader.integer(2)
        reader.integer(2)
        reader.integer(2)
        specs = reader.take(specs_length)
    except _Truncated:
        return ProtocolError(ProblemCode.MESSAGE_MALFORMED, "SSLv2 ClientHello is truncated")
    suites = tuple(
        int.from_bytes(specs[i + 1 : i + 3], "big")
        for i in range(0, len(specs) - 2, 3)
        if specs[i] == 0
    )
    return ClientHello(version, suites, None, (), sslv2_format=True)
