"""Fold the TLS events of both directions of one connection into the facts of its handshake."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from capana import tls
from capana.certificates import AnyCertificate, name_from_der, parse_certificate

CLIENT = "client"
SERVER = "server"

# An AEAD-protected TLS 1.3 alert: 2 bytes of alert, 1 of inner content type, 16 of tag.
_TLS13_ENCRYPTED_ALERT_LENGTH = 19
# After this many encrypted records from one side the handshake is long over (or unreadable).
_ENCRYPTED_RECORDS_TO_WATCH = 16
_RECORDS_BEFORE_HOPELESS = 4
_ALERT_LEVELS = {1: "warning", 2: "fatal"}
_RESUMED = "session resumed (abbreviated handshake): certificates went in an earlier handshake"


@dataclass(frozen=True)
class AlertSeen:
    sender: str
    level: str
    description: str | None


@dataclass(frozen=True)
class Handshake:
    """What one TLS handshake showed on the wire."""

    capture: str
    transport: str
    client: str
    server: str
    server_port: int
    service: str
    start: datetime | None
    tls_version: str | None
    cipher_suite: str | None
    sni: str | None
    client_cert_status: str
    client_chain: tuple[AnyCertificate, ...]
    server_chain: tuple[AnyCertificate, ...]
    requested_ca_names: tuple[str, ...] | None
    alerts: tuple[AlertSeen, ...]
    outcome: str
    gaps: int
    problems: tuple[str, ...] = ()
    # With a key log: "decrypted" (TLS 1.3 handshake read), "failed" (its records did not open),
    # "not_needed" (a TLS <= 1.2 session: certificates in clear); None: no keys for it.
    decryption: str | None = None
    # 802.1X (transport "eapol" or "radius"): the identity from the EAP-Response/Identity.
    eap_identity: str | None = None

    @property
    def client_leaf(self) -> AnyCertificate | None:
        return self.client_chain[0] if self.client_chain else None


@dataclass
class _Side:
    """What one peer has sent so far."""

    hello: tls.ClientHello | tls.ServerHello | None = None
    certificates: tls.CertificateMessage | None = None
    message_types: set[int] = field(default_factory=set)
    changed_cipher: bool = False
    encrypted_records: int = 0
    lost_handshake_bytes: bool = False  # a gap before its ChangeCipherSpec


class HandshakeTracker:
    """Receives events in capture order; knows when the handshake is over."""

    def __init__(self) -> None:
        self._sides = {CLIENT: _Side(), SERVER: _Side()}
        self._request: tls.CertificateRequest | None = None
        self._alerts: list[AlertSeen] = []
        self._problems: list[str] = []
        self._start: float | None = None
        self._tls13_verdict: str | None = None
        self._records = 0

    @property
    def saw_any_hello(self) -> bool:
        return any(side.hello is not None for side in self._sides.values())

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
        return isinstance(hello, tls.ServerHello) and hello.selected_version == tls.TLS13

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

    def lost_data(self, sender: str) -> None:
        """The capture lacks some of ``sender``'s bytes here: what they held is unknown."""
        side = self._sides[sender]
        if not side.changed_cipher:
            side.lost_handshake_bytes = True

    def on_event(self, sender: str, event: tls.TlsEvent, timestamp: float) -> None:
        self._records += 1
        side = self._sides[sender]
        if isinstance(event, tls.ClientHello | tls.ServerHello):
            if sender == CLIENT and side.hello is None:
                self._start = timestamp
            if not (isinstance(event, tls.ServerHello) and event.hello_retry):
                side.hello = event
        elif isinstance(event, tls.CertificateMessage):
            side.certificates = event
            if event.problem:
                self._problems.append(f"{sender} Certificate: {event.problem}")
        elif isinstance(event, tls.CertificateRequest):
            self._request = event
            if event.problem:
                self._problems.append(f"{sender} CertificateRequest: {event.problem}")
        elif isinstance(event, tls.OtherHandshake):
            side.message_types.add(event.message_type)
        elif isinstance(event, tls.ChangeCipherSpec):
            side.changed_cipher = True
        elif isinstance(event, tls.Alert):
            self._alerts.append(_alert_seen(sender, event))
            if event.level not in (None, *_ALERT_LEVELS):
                self._problems.append(f"{sender} alert with unknown level {event.level}")
        elif isinstance(event, tls.EncryptedRecord):
            self._encrypted_record(sender, side, event)
        elif isinstance(event, tls.ProtocolError):
            self._problems.append(f"{sender}: {event.message}")
        elif isinstance(event, tls.DecryptionFailed):
            self._problems.append(f"{sender}: key log secret did not decrypt: {event.message}")
        if (
            self.tls13
            and self._tls13_verdict is None
            and not isinstance(event, tls.EncryptedRecord)
        ):
            self._tls13_decrypted_progress(sender, event)

    def _client_flight_sent(self) -> bool:
        """Has the client sent what follows the server's TLS 1.3 flight (encrypted or read)?"""
        client = self._sides[CLIENT]
        return client.encrypted_records > 0 or tls.FINISHED in client.message_types

    def _tls13_decrypted_progress(self, sender: str, event: tls.TlsEvent) -> None:
        """With keys: the server's first record after the client's flight, read, is the verdict."""
        if sender != SERVER or not self._client_flight_sent():
            return
        if isinstance(event, tls.Alert):
            self._tls13_verdict = "rejected"
        elif isinstance(event, tls.OtherHandshake | tls.ApplicationData):
            self._tls13_verdict = "established"

    def _encrypted_record(self, sender: str, side: _Side, event: tls.EncryptedRecord) -> None:
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
        client: str,
        server: str,
        server_port: int,
        service: str,
        gaps: int,
        problems: tuple[str, ...] = (),
        decryption: str | None = None,
    ) -> Handshake:
        client_side, server_side = self._sides[CLIENT], self._sides[SERVER]
        return Handshake(
            capture=capture,
            transport="tcp",
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
            sni=client_side.hello.server_name
            if isinstance(client_side.hello, tls.ClientHello)
            else None,
            client_cert_status=self._client_cert_status(),
            client_chain=_chain(client_side.certificates),
            server_chain=_chain(server_side.certificates),
            requested_ca_names=self._requested_ca_names(),
            alerts=tuple(self._alerts),
            outcome=self._outcome(),
            gaps=gaps,
            problems=tuple(self._problems) + self._resumption_note() + problems,
            decryption=decryption,
        )

    def _resumption_note(self) -> tuple[str, ...]:
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

    def _client_cert_status(self) -> str:
        client, server = self._sides[CLIENT], self._sides[SERVER]
        if self.tls13 and client.certificates is None:
            # Read with a key log, a server Finished without a CertificateRequest before it.
            finished = tls.FINISHED in server.message_types
            return "not_requested" if finished and self._request is None else "encrypted"
        if client.certificates is not None:
            return "present" if client.certificates.certificates else "absent"
        if self._request is not None:
            if client.lost_handshake_bytes:
                return "unknown"  # its Certificate may have been in the hole
            sent_key_exchange = tls.CLIENT_KEY_EXCHANGE in client.message_types
            return "absent" if sent_key_exchange or client.changed_cipher else "unknown"
        if server.lost_handshake_bytes:
            return "unknown"  # the CertificateRequest may have been in the hole
        if tls.SERVER_HELLO_DONE in server.message_types:
            return "not_requested"
        # No ServerHelloDone before the server's ChangeCipherSpec: a resumed session (or a
        # flight the capture missed), whose certificates went in an earlier handshake.
        return "unknown"

    def _requested_ca_names(self) -> tuple[str, ...] | None:
        if self._request is None:
            return None
        names = []
        for der in self._request.ca_names:
            try:
                names.append(name_from_der(der))
            except Exception as error:  # a hostile name must not lose the others
                self._problems.append(f"unreadable CA name in CertificateRequest: {error}")
        return tuple(names)

    def _outcome(self) -> str:
        if any(alert.level == "fatal" for alert in self._alerts):
            return "rejected"
        if self.tls13:
            return self._tls13_verdict or "incomplete"
        client, server = self._sides[CLIENT], self._sides[SERVER]
        if client.encrypted_records and server.encrypted_records:
            return "established"
        return "incomplete"


def _alert_seen(sender: str, alert: tls.Alert) -> AlertSeen:
    if alert.encrypted:
        return AlertSeen(sender, "encrypted", None)
    # An unknown level ends the connection (OpenSSL answers illegal_parameter): fatal.
    level = _ALERT_LEVELS.get(alert.level, "fatal")
    return AlertSeen(sender, level, tls.alert_name(alert.description))


def _chain(message: tls.CertificateMessage | None) -> tuple[AnyCertificate, ...]:
    if message is None:
        return ()
    return tuple(parse_certificate(der) for der in message.certificates)


def utc_from_epoch(timestamp: float | None) -> datetime | None:
    """UTC time of an epoch timestamp; None when absent or beyond what a datetime holds."""
    if timestamp is None:
        return None
    try:
        return datetime.fromtimestamp(timestamp, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):  # a corrupt packet timestamp
        return None
