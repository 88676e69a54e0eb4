"""Certificates as a report holds them: the parsed fields, or the DER that no parser accepted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from capana.model.verdicts import Reason

Kind = Literal["MIC", "LSC", "CAPF", "CA", "other"]


@dataclass(frozen=True, eq=False)
class Certificate:
    """One parsed X.509 certificate; equal to another exactly when the DER bytes are equal.

    ``subject``/``issuer`` are RFC 4514 text for people; names are matched by their DER
    (``subject_der``/``issuer_der``) in RFC 5280's comparison form, see ``capana.certificates``.
    """

    sha256: str
    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    signature_algorithm: str
    signature_hash: str | None
    public_key: str
    is_ca: bool | None
    path_length: int | None
    key_usage: frozenset[str]
    extended_key_usage: tuple[str, ...]
    subject_alt_names: tuple[str, ...]
    subject_key_id: bytes | None
    authority_key_id: bytes | None
    critical_extensions: frozenset[str]
    subject_der: bytes = field(repr=False)
    issuer_der: bytes = field(repr=False)
    tbs_der: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    public_key_der: bytes = field(repr=False)
    der: bytes = field(repr=False)
    subject_cn: str | None = None
    issuer_cn: str | None = None
    subject_serial_number: str | None = None  # the subject's serialNumber ("PID:CP-8861 SN:…")
    parsed_by: str = "cryptography"
    notes: tuple[str, ...] = ()
    extensions: frozenset[str] = frozenset()  # dotted OIDs of every extension, critical or not
    version: int = 3  # X.509 version: 1 or 3 (a v1 self-signed root is a CA without extensions)
    # Why no path through this certificate can be trusted, found while parsing (an extension
    # twice, keyUsage without a bit, explicit EC parameters): OpenSSL will not use it either.
    defects: tuple[Reason, ...] = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and other.sha256 == self.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    @property
    def issuer_label(self) -> str:
        """The issuer's common name, else its whole name."""
        return self.issuer_cn or self.issuer

    def valid_at(self, moment: datetime) -> bool:
        return self.not_before <= moment <= self.not_after


@dataclass(frozen=True, eq=False)
class UnparsedCertificate:
    """DER bytes that no parser accepted; kept so nothing the capture showed is lost."""

    sha256: str
    error: str
    der: bytes = field(repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnparsedCertificate) and other.sha256 == self.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)


AnyCertificate = Certificate | UnparsedCertificate


@dataclass(frozen=True)
class Classification:
    """``kind``, with the phone's device (``SEP`` + MAC) and model where the subject has them."""

    kind: Kind
    device: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class CertificateReport:
    """A certificate as it appeared, with what it claims to be."""

    certificate: AnyCertificate
    classification: Classification

    @property
    def sha256(self) -> str:
        return self.certificate.sha256

    @property
    def kind(self) -> Kind:
        return self.classification.kind

    @property
    def parsed(self) -> Certificate | None:
        cert = self.certificate
        return cert if isinstance(cert, Certificate) else None

    @property
    def label(self) -> str:
        """Subject, or the hash when the certificate could not be parsed."""
        cert = self.certificate
        return cert.subject if isinstance(cert, Certificate) else f"unparsed {cert.sha256[:16]}"

    @property
    def name(self) -> str:
        """Who it is in a few words: the device, else the subject's CN, else the label."""
        cert = self.parsed
        return self.classification.device or (cert and cert.subject_cn) or self.label

    @property
    def issuer_label(self) -> str | None:
        """The issuer's common name (else its whole name); None when unparsed."""
        cert = self.parsed
        return cert.issuer_label if cert else None

    def __repr__(self) -> str:
        issuer = self.issuer_label or "?"
        return (
            f"<CertificateReport {self.kind} {self.name} from {issuer}, sha256 {self.sha256[:12]}>"
        )
