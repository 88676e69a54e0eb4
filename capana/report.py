"""The report: one data model that every view (table, JSON, CSV, HTML, notebook) renders."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from capana.certificates import AnyCertificate, Certificate
from capana.classify import Classification, common_name
from capana.findings import SEVERITY_RANK, Finding
from capana.handshake import Handshake
from capana.scan import CaptureSummary
from capana.validation import Validation

if TYPE_CHECKING:
    import pandas

    from capana.devices import Device
    from capana.notebook import Frames


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

    def __repr__(self) -> str:
        cert = self.certificate
        issuer = common_name(cert.issuer) or cert.issuer if isinstance(cert, Certificate) else "?"
        who = self.classification.device or common_name(self.label) or self.label
        return f"<CertificateReport {self.kind} {who} from {issuer}, sha256 {self.sha256[:12]}>"

    def _repr_html_(self) -> str:
        from capana.views.html import certificate_fragment

        return certificate_fragment(self)


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

    def __repr__(self) -> str:
        handshake, leaf = self.handshake, self.client_leaf
        presented = (
            f"{leaf.kind} {leaf.classification.device or leaf.sha256[:12]}"
            if leaf
            else (handshake.client_cert_status)
        )
        return (
            f"<HandshakeReport {handshake.client} -> {handshake.server} {handshake.service}: "
            f"{presented}, {self.validation.status}, {handshake.outcome}>"
        )

    def _repr_html_(self) -> str:
        from capana.views.html import handshake_fragment

        return handshake_fragment(self)


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

    def __repr__(self) -> str:
        severities = Counter(finding.severity for finding in self.findings)
        parts = [
            _count(len(self.captures), "capture"),
            _count(len(self.handshakes), "handshake"),
            _count(len(self.devices), "device"),
            *(_count(severities[s], s) for s in ("error", "warning") if severities[s]),
        ]
        unreadable = sum(not capture.readable for capture in self.captures)
        if unreadable:
            parts.append(_count(unreadable, "unreadable capture"))
        return f"<Report {', '.join(parts)}>"

    def _repr_html_(self) -> str:
        from capana.views.html import report_fragment

        return report_fragment(self)

    def to_pandas(self) -> pandas.DataFrame:
        """One row per handshake, the phone's leaf certificate flattened (needs pandas)."""
        from capana.notebook import handshake_frame

        return handshake_frame(self)

    def frames(self) -> Frames:
        """DataFrames of handshakes, devices, certificates and findings (needs pandas)."""
        from capana.notebook import frames

        return frames(self)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
