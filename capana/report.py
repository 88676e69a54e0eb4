"""The report: one data model that every view (table, JSON, CSV, HTML, notebook) renders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from capana.certificates import AnyCertificate, Certificate
from capana.classify import Classification
from capana.findings import SEVERITY_RANK, Finding
from capana.handshake import Handshake
from capana.scan import CaptureSummary
from capana.validation import Validation

if TYPE_CHECKING:
    from capana.devices import Device


@dataclass(frozen=True)
class CertificateReport:
    """A certificate as it appeared, with what it claims to be."""

    certificate: AnyCertificate
    classification: Classification

    @property
    def sha256(self) -> str:
        return self.certificate.sha256

    @property
    def kind(self) -> str:
        return self.classification.kind

    @property
    def label(self) -> str:
        """Subject, or the hash when the certificate could not be parsed."""
        cert = self.certificate
        return cert.subject if isinstance(cert, Certificate) else f"unparsed {cert.sha256[:16]}"


@dataclass(frozen=True)
class HandshakeReport:
    """A handshake's facts and capana's verdicts on them."""

    handshake: Handshake
    client_chain: tuple[CertificateReport, ...]
    server_chain: tuple[CertificateReport, ...]
    validation: Validation
    server_validation: Validation
    issuer_requested: bool | None
    findings: tuple[Finding, ...] = ()

    @property
    def client_leaf(self) -> CertificateReport | None:
        return self.client_chain[0] if self.client_chain else None


@dataclass(frozen=True)
class Report:
    """Everything capana found in one or more captures."""

    captures: tuple[CaptureSummary, ...]
    handshakes: tuple[HandshakeReport, ...]
    devices: tuple[Device, ...] = ()
    trust_stores: tuple[str, ...] = ()

    @property
    def certificates(self) -> tuple[CertificateReport, ...]:
        """Every distinct certificate seen, in order of first appearance."""
        seen: dict[str, CertificateReport] = {}
        for record in self.handshakes:
            for cert in record.client_chain + record.server_chain:
                seen.setdefault(cert.sha256, cert)
        return tuple(seen.values())

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for record in self.handshakes for f in record.findings)

    def has_finding(self, severity: str) -> bool:
        """Is there a finding of ``severity`` or worse?"""
        floor = SEVERITY_RANK[severity]
        return any(SEVERITY_RANK[f.severity] >= floor for f in self.findings)

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(error for capture in self.captures for error in capture.errors)
