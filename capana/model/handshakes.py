"""Handshakes: the facts one TLS (or EAP-TLS) handshake showed, and capana's verdicts on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Literal

from capana.model.certificates import CertificateReport
from capana.model.sessions import CapfReport, CapfSession, Registration, TvsReport, TvsSession
from capana.model.verdicts import Finding, Validation

Transport = Literal["tcp", "udp", "eapol", "radius"]
Sender = Literal["client", "server"]
Outcome = Literal["established", "rejected", "incomplete"]
# "truncated": the phone's certificate fell beyond the capture's snaplen.
ClientCertStatus = Literal[
    "present", "absent", "encrypted", "not_requested", "unknown", "truncated"
]
# "decrypted": read with the key log (a TLS 1.3 handshake, a TLS <= 1.2 session's records);
# "failed": its records did not open with the key log's secret; "not_needed": a TLS <= 1.2
# session in the key log whose suite capana does not decrypt (its certificates are in clear);
# "plaintext": a NULL-cipher session (authenticated mode), read without any key.
Decryption = Literal["decrypted", "failed", "not_needed", "plaintext"]
AlertLevel = Literal["warning", "fatal", "encrypted"]


class ProblemCode(str, Enum):
    """What went wrong reading a handshake off the wire; findings match these, never text."""

    SNAPLEN = "snaplen"
    OVERLAP_CONFLICT = "overlap-conflict"
    EVICTED = "evicted"
    NOT_TLS = "not-tls"
    RECORD_TOO_LONG = "record-too-long"
    MESSAGE_TOO_LONG = "message-too-long"
    MESSAGE_MALFORMED = "message-malformed"
    CERTIFICATE_LIST = "certificate-list"
    CERTIFICATE_REQUEST = "certificate-request"
    UNREADABLE_CA_NAME = "unreadable-ca-name"
    UNKNOWN_ALERT_LEVEL = "unknown-alert-level"
    RESUMED = "resumed"
    KEYLOG = "keylog"
    DECRYPTION_FAILED = "decryption-failed"
    LIMIT = "limit"  # a stated bound (buffers, counts) cut the reading short
    RENEGOTIATED = "renegotiated"  # a new handshake inside the session (TLS <= 1.2)
    SESSION_MESSAGES = "session-messages"  # CAPF/TVS/SIP/SCCP inside could not all be read
    EAP_REPEATED = "eap-repeated"
    NO_CALLING_STATION = "no-calling-station"
    RESYNC = "resync"  # a side read from a record boundary after bytes that were not one
    MESSAGE_TRUNCATED = "message-truncated"  # a handshake message the capture cut short


@dataclass(frozen=True)
class Problem:
    """A problem met while reading, as a code and a sentence."""

    code: ProblemCode
    text: str


@dataclass(frozen=True)
class AlertSeen:
    sender: Sender
    level: AlertLevel
    description: str | None


@dataclass(frozen=True)
class ClientHelloFacts:
    """What the client offered, by IANA name (GREASE values left out).

    ``versions``: the supported_versions extension, else the ClientHello's own version (the
    highest it speaks).
    """

    versions: tuple[str, ...]
    cipher_suites: tuple[str, ...]
    signature_algorithms: tuple[str, ...]
    sni: str | None


@dataclass(frozen=True)
class Frames:
    """Where the handshake shows in its capture: 1-based frame numbers, as Wireshark counts
    them (every packet of the file). A message spread over several packets is at the packet
    that completed it, as Wireshark shows it reassembled. None where the capture has none."""

    client_hello: int | None = None
    client_certificate: int | None = None
    alert: int | None = None  # the first fatal (or TLS 1.3 encrypted) alert
    cleartext: int | None = None  # the first cleartext payload of a session without TLS


@dataclass(frozen=True)
class Handshake:
    """What one handshake showed on the wire; certificates and CA names as the DER sent."""

    capture: str
    transport: Transport
    client: str
    server: str
    server_port: int
    service: str
    start: datetime | None
    tls_version: str | None
    cipher_suite: str | None
    sni: str | None
    client_cert_status: ClientCertStatus
    client_chain: tuple[bytes, ...]
    server_chain: tuple[bytes, ...]
    requested_ca_names: tuple[bytes, ...] | None
    alerts: tuple[AlertSeen, ...]
    outcome: Outcome
    gaps: int
    problems: tuple[Problem, ...] = ()
    decryption: Decryption | None = None
    eap_identity: str | None = None  # 802.1X: from the EAP-Response/Identity
    client_hello: ClientHelloFacts | None = None
    frames: Frames = Frames()
    wireshark_filter: str | None = None  # a display filter for this connection (EAP: the MAC)
    # A phone's session that never started TLS (SCCP on 2000, SIP on 5060): no handshake,
    # no certificate; reported so that a phone registering non-secure is seen.
    cleartext: bool = False
    # The TLS <= 1.2 ServerHello's extended_master_secret (RFC 7627) and encrypt_then_mac
    # (RFC 7366); None without such a ServerHello.
    extended_master_secret: bool | None = None
    encrypt_then_mac: bool | None = None
    # What was said inside, where capana decodes the service and could read it (keys, NULL
    # cipher or clear text): CAPF on 3804, TVS on 2445, registration on 5061/2443/5060/2000.
    capf: CapfSession | None = None
    tvs: TvsSession | None = None
    registration: Registration | None = None
    # When the last bytes capana read of the connection were captured (the handshake's, or the
    # session's read inside it); None when unknown.
    end: datetime | None = None

    @property
    def client_host(self) -> str:
        """The client without its port: an IP address, or a MAC for 802.1X."""
        if self.transport in ("eapol", "radius"):
            return self.client  # 802.1X: the client is the phone's MAC, no port
        return self.client.rsplit(":", 1)[0].strip("[]")

    @property
    def problem_codes(self) -> frozenset[ProblemCode]:
        return frozenset(problem.code for problem in self.problems)

    @property
    def server_fatal_alert(self) -> str | None:
        """The description of the first fatal alert the server sent, if any."""
        fatal = (a for a in self.alerts if a.sender == "server" and a.level == "fatal")
        return next((alert.description for alert in fatal), None)


@dataclass(frozen=True)
class HandshakeReport:
    """A handshake's facts and capana's verdicts on them."""

    handshake: Handshake
    client_chain: tuple[CertificateReport, ...]
    server_chain: tuple[CertificateReport, ...]
    requested_ca_names: tuple[str, ...] | None  # RFC 4514, from the CertificateRequest
    validation: Validation
    server_validation: Validation
    issuer_requested: bool | None
    findings: tuple[Finding, ...] = ()
    capf: CapfReport | None = None  # the CAPF session with its certificates judged
    tvs: TvsReport | None = None  # the TVS questions with their certificates judged

    @property
    def client_leaf(self) -> CertificateReport | None:
        return self.client_chain[0] if self.client_chain else None

    def __repr__(self) -> str:
        handshake, leaf = self.handshake, self.client_leaf
        presented = (
            f"{leaf.kind} {leaf.classification.device or leaf.sha256[:12]}"
            if leaf
            else handshake.client_cert_status
        )
        return (
            f"<HandshakeReport {handshake.client} -> {handshake.server} {handshake.service}: "
            f"{presented}, {self.validation.status}, {handshake.outcome}>"
        )
