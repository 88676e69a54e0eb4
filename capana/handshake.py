"""Fold the TLS events of both directions of one connection into the facts of its handshake.

Certificates and CA names stay as the DER that was sent: parsing them is the judging stage's job.
Once the handshake is settled (TLS <= 1.2: both peers sent protected records; TLS 1.3: the
server's answer to the client's flight), later alerts belong to the session, not to it; a
renegotiation (a new handshake inside the session) is folded apart, into its own facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Final

from capana import tls
from capana.model import (
    AlertLevel,
    AlertSeen,
    ClientCertStatus,
    ClientHelloFacts,
    Decryption,
    Frames,
    Handshake,
    Outcome,
    Problem,
    ProblemCode,
    Sender,
    Transport,
)

CLIENT: Final[Sender] = "client"
SERVER: Final[Sender] = "server"

# An AEAD-protected TLS 1.3 alert: 2 bytes of alert, 1 of inner content type, 16 of tag.
_TLS13_ENCRYPTED_ALERT_LENGTH = 19
# After this many encrypted records from one side the handshake is long over (or unreadable).
_ENCRYPTED_RECORDS_TO_WATCH = 16
_RECORDS_BEFORE_HOPELESS = 4
# Renegotiations folded into their own facts per connection; later ones are only counted.
MAX_RENEGOTIATIONS = 4
_ALERT_LEVELS: dict[int | None, AlertLevel] = {1: "warning", 2: "fatal"}
_HELLOS = frozenset({tls.CLIENT_HELLO, tls.SERVER_HELLO})
_RESUMED = Problem(
    ProblemCode.RESUMED,
    "session resumed (abbreviated handshake): certificates went in an earlier handshake",
)


@dataclass
class _Side:
    """What one peer has sent so far."""

    hello: tls.ClientHello | tls.ServerHello | None = None
    certificates: tls.CertificateMessage | None = None
    message_types: set[int] = field(default_factory=set)
    changed_cipher: bool = False
    # Records protected by the session's keys: encrypted ones, and (TLS <= 1.2, read with a key
    # log or a NULL suite) the messages and data read after its ChangeCipherSpec.
    encrypted_records: int = 0
    lost_handshake_bytes: bool = False  # a gap before its ChangeCipherSpec
    truncated: set[int] = field(default_factory=set)  # messages the capture cut short
    renegotiations: int = 0  # Renegotiation events it sent


class HandshakeTracker:
    """Receives events in capture order; knows when the handshake is over."""

    def __init__(self) -> None:
        self._sides = {CLIENT: _Side(), SERVER: _Side()}
        self._request: tls.CertificateRequest | None = None
        self._alerts: list[AlertSeen] = []
        self._problems: list[Problem] = []
        self._start: float | None = None
        self._tls13_verdict: Outcome | None = None
        self._records = 0
        self._frames: dict[str, int] = {}  # Frames field -> frame number, first seen kept
        # Handshakes inside the session (the first MAX_RENEGOTIATIONS), each folded apart.
        self.renegotiations: list[HandshakeTracker] = []

    @property
    def saw_any_hello(self) -> bool:
        """A hello, whole or its start (a capture cut short after its header)."""
        return any(
            side.hello is not None or side.truncated & _HELLOS for side in self._sides.values()
        )

    @property
    def saw_handshake(self) -> bool:
        """A hello, or a well-formed Certificate or CertificateRequest: a capture that starts
        after the hellos (mid-handshake) still shows the phone's certificate."""
        certificates = (side.certificates for side in self._sides.values())
        return (
            self.saw_any_hello
            or any(c is not None and c.certificates and not c.problem for c in certificates)
            or (self._request is not None and not self._request.problem)
        )

    @property
    def hopeless(self) -> bool:
        """Several records and no handshake message: a stream joined mid-session."""
        return not self.saw_handshake and self._records > _RECORDS_BEFORE_HOPELESS

    @property
    def tls13(self) -> bool:
        hello = self._sides[SERVER].hello
        return isinstance(hello, tls.ServerHello) and hello.selected_version in tls.TLS13_VERSIONS

    @property
    def done(self) -> bool:
        """Nothing more about the handshake can come from this connection's later bytes."""
        if any(alert.level == "fatal" for alert in self._alerts):
            return True
        if self._tls13_verdict is not None:
            return True
        client, server = self._sides[CLIENT], self._sides[SERVER]
        if max(client.encrypted_records, server.encrypted_records) > _ENCRYPTED_RECORDS_TO_WATCH:
            return True
        if self.tls13:
            return False
        return client.encrypted_records > 0 and server.encrypted_records > 0

    @property
    def settled(self) -> bool:
        """The handshake's outcome is known: what follows is the session's."""
        if self.tls13:
            return self._tls13_verdict is not None
        client, server = self._sides[CLIENT], self._sides[SERVER]
        return client.encrypted_records > 0 and server.encrypted_records > 0

    @property
    def renegotiation_count(self) -> int:
        """Handshakes started inside the session (each peer signals each one once)."""
        return max(side.renegotiations for side in self._sides.values())

    def lost_data(self, sender: Sender) -> None:
        """The capture lacks some of ``sender``'s bytes here: what they held is unknown."""
        side = self._sides[sender]
        if not side.changed_cipher:
            side.lost_handshake_bytes = True

    def on_event(
        self, sender: Sender, event: tls.TlsEvent, timestamp: float, frame: int = 0
    ) -> None:
        """One event of ``sender``'s; ``frame``: the capture's packet that completed it."""
        self._records += 1
        side = self._sides[sender]
        if isinstance(event, tls.Renegotiation):
            self._renegotiation(side)
            return
        if self.renegotiation_count and not isinstance(
            event, tls.ProtocolError | tls.DecryptionFailed
        ):  # a handshake inside the session: folded apart
            if len(self.renegotiations) == self.renegotiation_count:
                self.renegotiations[-1].on_event(sender, event, timestamp, frame)
            return
        if self.settled and isinstance(event, tls.Alert | tls.ApplicationData):
            return  # the session's, not the handshake's (close_notify, say)
        if (
            side.changed_cipher
            and not self.tls13
            and isinstance(event, tls.OtherHandshake | tls.ApplicationData)
        ):
            side.encrypted_records += 1  # read with the keys (or a NULL suite): its Finished
        if isinstance(event, tls.ClientHello | tls.ServerHello):
            if sender == CLIENT and side.hello is None:
                self._start = timestamp
                self._frame("client_hello", frame)
            if not (isinstance(event, tls.ServerHello) and event.hello_retry):
                side.hello = event
        elif isinstance(event, tls.CertificateMessage):
            side.certificates = event
            if sender == CLIENT:
                self._frame("client_certificate", frame)
            if event.problem:
                self._problem(
                    ProblemCode.CERTIFICATE_LIST, f"{sender} Certificate: {event.problem}"
                )
        elif isinstance(event, tls.CertificateRequest):
            self._request = event
            if event.problem:
                text = f"{sender} CertificateRequest: {event.problem}"
                self._problem(ProblemCode.CERTIFICATE_REQUEST, text)
        elif isinstance(event, tls.OtherHandshake):
            side.message_types.add(event.message_type)
        elif isinstance(event, tls.TruncatedMessage):
            side.truncated.add(event.message_type)
            text = (
                f"{sender}: handshake message type {event.message_type} of {event.length} bytes "
                f"cut short after {event.seen} (the capture lacks the rest)"
            )
            self._problem(ProblemCode.MESSAGE_TRUNCATED, text)
            if event.message_type == tls.CLIENT_HELLO and sender == CLIENT and self._start is None:
                self._start = timestamp
        elif isinstance(event, tls.ChangeCipherSpec):
            side.changed_cipher = True
        elif isinstance(event, tls.Alert):
            self._alerts.append(_alert_seen(sender, event))
            if self._alerts[-1].level == "fatal":
                self._frame("alert", frame)
            if event.level not in (None, *_ALERT_LEVELS):
                text = f"{sender} alert with unknown level {event.level}"
                self._problem(ProblemCode.UNKNOWN_ALERT_LEVEL, text)
        elif isinstance(event, tls.EncryptedRecord):
            self._encrypted_record(sender, side, event)
            if self._tls13_verdict == "rejected":
                self._frame("alert", frame)
        elif isinstance(event, tls.ProtocolError):
            self._problem(event.code, f"{sender}: {event.message}")
        elif isinstance(event, tls.DecryptionFailed):
            text = f"{sender}: key log secret did not decrypt: {event.message}"
            self._problem(ProblemCode.DECRYPTION_FAILED, text)
        if (
            self.tls13
            and self._tls13_verdict is None
            and not isinstance(event, tls.EncryptedRecord)
        ):
            self._tls13_decrypted_progress(sender, event)

    def _problem(self, code: ProblemCode, text: str) -> None:
        self._problems.append(Problem(code, text))

    def _renegotiation(self, side: _Side) -> None:
        """A peer started a handshake inside the session (the other's signal of the same one
        comes too): fold what follows into a tracker of its own."""
        side.renegotiations += 1
        if side.renegotiations <= len(self.renegotiations):
            return  # the other peer's signal of one already started
        if len(self.renegotiations) < MAX_RENEGOTIATIONS:
            self.renegotiations.append(HandshakeTracker())

    def _frame(self, name: str, frame: int) -> None:
        if frame > 0:
            self._frames.setdefault(name, frame)

    def _client_flight_sent(self) -> bool:
        """Has the client sent what follows the server's TLS 1.3 flight (encrypted or read)?"""
        client = self._sides[CLIENT]
        return client.encrypted_records > 0 or tls.FINISHED in client.message_types

    def _tls13_decrypted_progress(self, sender: Sender, event: tls.TlsEvent) -> None:
        """With keys: the server's first record after the client's flight, read, is the verdict."""
        if sender != SERVER or not self._client_flight_sent():
            return
        if isinstance(event, tls.Alert):
            self._tls13_verdict = "rejected"
        elif isinstance(event, tls.OtherHandshake | tls.ApplicationData):
            self._tls13_verdict = "established"

    def _encrypted_record(self, sender: Sender, side: _Side, event: tls.EncryptedRecord) -> None:
        side.encrypted_records += 1
        if not self.tls13 or self._tls13_verdict is not None:
            return
        # TLS 1.3 without keys: the client's flight (its certificate among it) is encrypted.
        # The first record the server sends after it either is an alert (19 bytes) or is not.
        if sender == SERVER and not self._client_flight_sent():
            return
        if sender == CLIENT and tls.FINISHED in side.message_types:
            return  # its handshake was read: what follows is application data
        if event.length == _TLS13_ENCRYPTED_ALERT_LENGTH:
            self._alerts.append(AlertSeen(sender, "encrypted", None))
            self._tls13_verdict = "rejected"
        elif sender == SERVER:
            self._tls13_verdict = "established"

    def result(
        self,
        *,
        capture: str,
        transport: Transport = "tcp",
        client: str,
        server: str,
        server_port: int,
        service: str,
        gaps: int,
        problems: tuple[Problem, ...] = (),
        decryption: Decryption | None = None,
        wireshark_filter: str | None = None,
        cut: bool = False,
    ) -> Handshake:
        """The facts; ``cut``: the capture's snaplen cut some of this handshake's bytes, so a
        certificate that could not be read is "truncated" rather than "unknown"."""
        client_side, server_side = self._sides[CLIENT], self._sides[SERVER]
        client_hello = client_side.hello if isinstance(client_side.hello, tls.ClientHello) else None
        return Handshake(
            capture=capture,
            transport=transport,
            client=client,
            server=server,
            server_port=server_port,
            service=service,
            start=utc_from_epoch(self._start),
            tls_version=tls.version_name(self._version()),
            cipher_suite=tls.cipher_suite_name(
                server_side.hello.cipher_suite
                if isinstance(server_side.hello, tls.ServerHello)
                else None
            ),
            sni=client_hello.server_name if client_hello else None,
            client_cert_status=self._client_cert_status(cut),
            client_chain=_chain(client_side.certificates),
            server_chain=_chain(server_side.certificates),
            requested_ca_names=self._requested_ca_names(),
            alerts=tuple(self._alerts),
            outcome=self._outcome(),
            gaps=gaps,
            problems=tuple(self._problems)
            + self._resumption_note()
            + self._renegotiation_note()
            + problems,
            decryption=decryption,
            client_hello=client_hello_facts(client_hello) if client_hello else None,
            frames=Frames(**self._frames),
            wireshark_filter=wireshark_filter,
        )

    def _renegotiation_note(self) -> tuple[Problem, ...]:
        count = self.renegotiation_count
        if not count:
            return ()
        read = sum(tracker.saw_handshake for tracker in self.renegotiations)
        text = f"renegotiated {count} time(s) inside the session: "
        if read:
            text += f"{read} read and reported as handshakes of their own"
        else:
            text += "its messages are encrypted (a key log would show them)"
        return (Problem(ProblemCode.RENEGOTIATED, text),)

    def _resumption_note(self) -> tuple[Problem, ...]:
        server = self._sides[SERVER]
        resumed = (
            isinstance(server.hello, tls.ServerHello)
            and not self.tls13
            and server.changed_cipher
            and not server.lost_handshake_bytes
            and tls.SERVER_HELLO_DONE not in server.message_types
        )
        return (_RESUMED,) if resumed else ()

    def _version(self) -> int | None:
        server_hello = self._sides[SERVER].hello
        if isinstance(server_hello, tls.ServerHello):
            return server_hello.selected_version or server_hello.version
        return None

    def _client_cert_status(self, cut: bool) -> ClientCertStatus:
        client, server = self._sides[CLIENT], self._sides[SERVER]
        lost: ClientCertStatus = "truncated" if cut else "unknown"  # bytes the capture lacks
        if self.tls13 and client.certificates is None:
            # Read with a key log, a server Finished without a CertificateRequest before it.
            finished = tls.FINISHED in server.message_types
            return "not_requested" if finished and self._request is None else "encrypted"
        if client.certificates is not None:
            return "present" if client.certificates.certificates else "absent"
        if tls.CERTIFICATE in client.truncated:
            return lost
        if self._request is not None:
            if client.lost_handshake_bytes:
                return lost  # its Certificate may have been in the hole
            sent_key_exchange = tls.CLIENT_KEY_EXCHANGE in client.message_types
            return "absent" if sent_key_exchange or client.changed_cipher else "unknown"
        if server.lost_handshake_bytes or server.truncated:
            return lost  # the CertificateRequest may have been in the hole
        if tls.SERVER_HELLO_DONE in server.message_types:
            return "not_requested"
        # No ServerHelloDone before the server's ChangeCipherSpec: a resumed session (or a
        # flight the capture missed), whose certificates went in an earlier handshake.
        return "unknown"

    def _requested_ca_names(self) -> tuple[bytes, ...] | None:
        return None if self._request is None else self._request.ca_names

    def _outcome(self) -> Outcome:
        if any(alert.level == "fatal" for alert in self._alerts):
            return "rejected"
        if self.tls13:
            return self._tls13_verdict or "incomplete"
        client, server = self._sides[CLIENT], self._sides[SERVER]
        if client.encrypted_records and server.encrypted_records:
            return "established"
        return "incomplete"


def client_hello_facts(hello: tls.ClientHello) -> ClientHelloFacts:
    """What the client offered, named. The one place TLS code points become names."""
    versions = hello.supported_versions or (hello.version,)
    return ClientHelloFacts(
        versions=tuple(tls.version_name(v) or "" for v in versions if not tls.is_grease(v)),
        cipher_suites=tuple(
            tls.cipher_suite_name(c) or "" for c in hello.cipher_suites if not tls.is_grease(c)
        ),
        signature_algorithms=tuple(
            tls.signature_scheme_name(c) for c in hello.signature_algorithms if not tls.is_grease(c)
        ),
        sni=hello.server_name,
    )


def _alert_seen(sender: Sender, alert: tls.Alert) -> AlertSeen:
    if alert.encrypted:
        return AlertSeen(sender, "encrypted", None)
    # An unknown level ends the connection (OpenSSL answers illegal_parameter): fatal.
    level = _ALERT_LEVELS.get(alert.level, "fatal")
    return AlertSeen(sender, level, tls.alert_name(alert.description))


def _chain(message: tls.CertificateMessage | None) -> tuple[bytes, ...]:
    return () if message is None else message.certificates


def utc_from_epoch(timestamp: float | None) -> datetime | None:
    """UTC time of an epoch timestamp; None when absent or beyond what a datetime holds."""
    if timestamp is None:
        return None
    try:
        return datetime.fromtimestamp(timestamp, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):  # a corrupt packet timestamp
        return None
