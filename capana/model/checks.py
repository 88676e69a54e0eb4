"""A certificate judged without a capture (``capana cert``): the chain read from a file, and the
verdict against each trust store with the findings that need no handshake."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from capana.model.certificates import CertificateReport
from capana.model.verdicts import SEVERITY_RANK, Finding, Severity, Validation


@dataclass(frozen=True)
class StoreVerdict:
    """The verdict against one store, and the findings that follow from it."""

    validation: Validation
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class CertificateCheck:
    """One file's chain (leaf first, as read and classified), judged at ``at``.

    ``errors``: why the file could not be read (then ``chain`` is empty).
    """

    source: str
    at: datetime
    chain: tuple[CertificateReport, ...]
    verdicts: tuple[StoreVerdict, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def leaf(self) -> CertificateReport | None:
        return self.chain[0] if self.chain else None

    def has_finding(self, severity: Severity) -> bool:
        """Is there a finding of ``severity`` or worse?"""
        rank = SEVERITY_RANK[severity]
        return any(
            SEVERITY_RANK[finding.severity] >= rank
            for verdict in self.verdicts
            for finding in verdict.findings
        )

    def __repr__(self) -> str:
        leaf = self.leaf
        statuses = ", ".join(v.validation.status for v in self.verdicts) or "unread"
        name = f"{leaf.kind} {leaf.name}" if leaf else "no certificate"
        return f"<CertificateCheck {self.source}: {name}, {statuses}>"
