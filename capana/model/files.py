"""The files a phone fetched from the cluster's TFTP service: transfers, what the files hold, and
capana's verdicts on them (signature, signer, every record's certificate, findings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from capana.model.certificates import AnyCertificate, CertificateReport
from capana.model.verdicts import Finding

TransferTransport = Literal["http", "tftp"]
# ok: the whole file arrived; not_found: HTTP 404 or TFTP error 1 (normal for a CTL outside
# mixed mode); incomplete: the phone did not get the whole file, because the server refused it
# otherwise (problem "refused", the code in ``response_code``), the connection or the capture
# ended first, or bytes are missing from the capture.
TransferStatus = Literal["ok", "not_found", "incomplete"]
TransferProblem = Literal[
    "refused",  # an HTTP status >= 400 other than 404, a TFTP error other than 1
    "body-truncated",  # over MAX_FILE_BYTES: the rest was counted, not kept
    "block-missing",  # a TFTP DATA block the capture lacks: the body has a hole
    "snaplen",  # packets of the body cut by the capture's snaplen
    "stream-gap",  # the TCP stream has a hole: HTTP could not be followed past it
    "bad-http",  # h11 refused the bytes: not HTTP/1.x, or broken framing
    "evicted",  # too many TFTP transfers open at once: closed early, as incomplete
]

FileKind = Literal["ctl", "itl", "config", "config-signed", "config-encrypted", "other"]
FileProblem = Literal[
    "truncated-header",  # shorter than its header says
    "header-overrun",  # the header's elements do not end where the header length says
    "bad-header-element",  # a known tag whose value has the wrong size, or undecodable
    "unknown-header-element",
    "truncated-element",  # a value shorter than its length says
    "duplicate-element",  # a header element that must be unique appears twice (first kept)
    "bad-text",  # a name that is not UTF-8
    "missing-signature",
    "missing-digest-algorithm",
    "missing-signer-serial",
    "bad-record",  # a record that does not open with its record length: the rest is not read
    "truncated-record",
    "bad-record-element",
    "too-many-records",  # past MAX_RECORDS the rest is not read
    "unread-bytes",  # past MAX_PARSED_BYTES the file is counted, not read
    "unparsed-certificate",  # a record whose DER no parser accepted
]
SignatureStatus = Literal["valid", "invalid", "unknown"]
SignatureReason = Literal[
    "verified",
    "signature-mismatch",
    "no-signature",
    "signer-not-given",  # a .sgn: checked with the certificates of a trust list, none here
    "signer-not-found",  # no given certificate has the header's serial number
    "signer-unparsed",
    "not-read-whole",  # over MAX_PARSED_BYTES: the signed bytes were not all read
    "unsupported-digest",
    "unsupported-key",
]
ConfigProblem = Literal["xml-malformed", "xml-dtd-refused", "not-a-device-config", "bad-number"]


@dataclass(frozen=True)
class FileTransfer:
    """One request for a file and its outcome. Frames are 1-based over the capture file."""

    capture: str
    transport: TransferTransport
    client: str  # "ip:port" of the phone
    server: str  # "ip:port" of the service asked: its HTTP port, or 69 for TFTP
    name: str  # as requested, without a leading "/" or a query
    status: TransferStatus
    size: int  # body bytes seen (all of them, kept or not)
    request_frame: int  # the frame that completed the request
    last_frame: int  # the last frame of the exchange (the final TFTP ACK when captured)
    start: datetime | None  # when the request was sent
    announced_size: int | None = None  # Content-Length, or TFTP tsize from the server
    response_code: int | None = None  # the HTTP status, or the TFTP error code
    problems: tuple[TransferProblem, ...] = ()
    body: bytes = field(default=b"", repr=False)  # the first MAX_FILE_BYTES of the file

    @property
    def client_host(self) -> str:
        """The phone's address, without the port."""
        return self.client.rsplit(":", 1)[0].strip("[]")


@dataclass(frozen=True)
class FileHeader:
    """The signed header of a .tlv, .sgn or .enc.sgn file."""

    version: str  # "1.2" for a CUCM trust list, "1.0" for a .sgn, "2.0" for an .enc.sgn
    header_length: int
    signer_version: str | None  # "1.1" marks a signer that may hold an EC key
    signer_name: str | None  # the signer certificate's subject, as the file writes it
    signer_serial: str | None  # hex, as stored
    signer_issuer: str | None
    digest_algorithm: str | None  # "SHA-1", "SHA-256", "SHA-512" or "hash_N"
    file_name: str | None
    timestamp: datetime | None  # when the file was built, UTC


@dataclass(frozen=True)
class TrustRecord:
    """One certificate of a trust list and what it is trusted for."""

    role: str  # "SAST", "CCM", "CCM+TFTP", "TFTP", "CAPF", "APP-SERVER", "TVS", "role_N"
    role_code: int | None
    dns_name: str | None
    subject: str | None
    issuer: str | None
    serial: str | None
    certificate: AnyCertificate | None
    ip_address: str | None
    certificate_hash: str | None  # hex, when the record carries one


@dataclass(frozen=True)
class EncryptionHeader:
    """How an .enc.sgn is encrypted: an AES key wrapped to one phone's public key."""

    iv: bytes
    padding: int | None  # bytes of padding after the content
    key_size: int | None  # bits, as the file says (enccnf writes the wrapped key's size)
    key_algorithm: int | None
    wrapped_key: bytes = field(repr=False)  # RSA PKCS#1 v1.5 to the phone's key
    content_digest_algorithm: str | None
    content_digest: str | None  # hex digest of the plain configuration

    @property
    def wrapped_key_bits(self) -> int:
        """The size of the phone key the AES key was wrapped to (its RSA modulus, in bits)."""
        return len(self.wrapped_key) * 8


@dataclass(frozen=True)
class SignatureCheck:
    """Whether the signature verifies; ``signer`` is the certificate tried, when one was."""

    status: SignatureStatus
    reason: SignatureReason
    signer: AnyCertificate | None = None


@dataclass(frozen=True)
class ServiceMember:
    """One server of a list in the configuration (a TVS or a CAPF), in the file's order."""

    address: str | None
    port: int | None

    def __str__(self) -> str:
        return f"{self.address or '?'}:{self.port}" if self.port is not None else f"{self.address}"


@dataclass(frozen=True)
class PhoneConfig:
    """The security settings of one configuration file; None where the file does not say."""

    root: str | None  # the document element, "device" for a phone's configuration
    device_security_mode: int | None  # 1 non-secure, 2 authenticated, 3 encrypted
    transport_layer_protocol: int | None  # 1 tcp, 2 udp, 3 tls, 4 tcp+udp
    tvs: tuple[ServiceMember, ...]
    capf_auth_mode: int | None
    capf: tuple[ServiceMember, ...]
    cert_hash: str | None  # as written: enccnf writes the MD5 of the phone's DER, in hex
    encrypted: bool  # encrConfig is true: the full configuration is the .enc.sgn file
    problems: tuple[ConfigProblem, ...]
    security_mode: str | None  # "non-secure", "authenticated", "encrypted", "mode_N"
    transport: str | None  # "tcp", "udp", "tls", "tcp+udp", "transport_N"


@dataclass(frozen=True)
class PhoneFile:
    """What one downloaded file holds. ``signature_check`` is None for an unsigned file."""

    kind: FileKind
    size: int
    header: FileHeader | None
    records: tuple[TrustRecord, ...]
    config: PhoneConfig | None  # a plain or signed configuration's settings
    encryption: EncryptionHeader | None
    signature_check: SignatureCheck | None
    too_large: bool  # a trust list over 64 KB: phones refuse it
    problems: tuple[FileProblem, ...]
    signature: bytes = field(repr=False, default=b"")
    signed_bytes: bytes = field(repr=False, default=b"")  # what the signature covers, if all read
    content: bytes = field(repr=False, default=b"")  # after a .sgn header; the XML if plain


@dataclass(frozen=True)
class RecordReport:
    """A trust list record with its certificate parsed and classified."""

    record: TrustRecord
    certificate: CertificateReport | None

    @property
    def role(self) -> str:
        return self.record.role


@dataclass(frozen=True)
class FileReport:
    """One transfer judged: what the file holds and whether its signature and contents hold up.

    ``device``: the phone it is for (``SEP`` + MAC from the name, else the device that address
    presented a certificate as), None when neither says. ``signature``: the file's own check for
    a trust list; a signed configuration's against the trust lists the same phone downloaded in
    the same capture (``unknown`` when it downloaded none). ``config``: a configuration's
    settings; for an ``.enc.sgn``, the binding its companion ``.cnf.xml.sgn`` declared.
    """

    transfer: FileTransfer
    kind: FileKind
    device: str | None
    file: PhoneFile | None  # None when no body arrived to read
    records: tuple[RecordReport, ...] = ()
    signature: SignatureCheck | None = None
    signer: CertificateReport | None = None
    config: PhoneConfig | None = None
    findings: tuple[Finding, ...] = ()

    @property
    def name(self) -> str:
        return self.transfer.name

    @property
    def status(self) -> TransferStatus:
        return self.transfer.status

    @property
    def security_mode(self) -> str | None:
        return self.config.security_mode if self.config else None

    def __repr__(self) -> str:
        signature = f", signature {self.signature.status}" if self.signature else ""
        return (
            f"<FileReport {self.transfer.transport} {self.name} {self.status} "
            f"{self.kind}{signature}, {len(self.findings)} finding(s)>"
        )
