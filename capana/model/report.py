"""The report: captures as read, judged handshakes, and the devices they group into."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from capana.model.certificates import Certificate, CertificateReport, Kind
from capana.model.files import FileReport
from capana.model.handshakes import HandshakeReport
from capana.model.sessions import CapfReport, Registration, TvsQuery
from capana.model.verdicts import SEVERITY_RANK, Finding, Severity


@dataclass(frozen=True)
class CaptureSummary:
    """One capture file as read: how much, when, and what went wrong."""

    path: str
    format: str | None
    packets: int
    start: datetime | None
    end: datetime | None
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    keylog: tuple[bytes, ...] = ()

    @property
    def readable(self) -> bool:
        return self.format is not None


@dataclass(frozen=True)
class Device:
    """One phone (by device name, else by client address) across a capture."""

    name: str
    model: str | None
    addresses: tuple[str, ...]
    handshakes: tuple[HandshakeReport, ...]
    certificates: tuple[CertificateReport, ...]
    files: tuple[FileReport, ...] = ()  # the files it requested from the TFTP service

    @property
    def file_names(self) -> tuple[str, ...]:
        """The files it downloaded whole, in order, each once."""
        return tuple(dict.fromkeys(f.name for f in self.files if f.status == "ok"))

    @property
    def security_mode(self) -> str | None:
        """The deviceSecurityMode of the last configuration it downloaded that says one."""
        modes = [f.security_mode for f in self.files if f.security_mode]
        return modes[-1] if modes else None

    @property
    def kinds(self) -> tuple[Kind, ...]:
        """LSC/MIC/... of the leaf certificates it presented, in order of first use."""
        return tuple(dict.fromkeys(cert.kind for cert in self.certificates))

    @property
    def switched(self) -> bool:
        """Did the device present both an LSC and a MIC (e.g. its LSC was deleted)?"""
        return {"LSC", "MIC"} <= set(self.kinds)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(record.handshake.service for record in self.handshakes))

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Its handshakes' findings, then its files'."""
        return _findings(self.handshakes, self.files)

    @property
    def registration(self) -> Registration | None:
        """The phone's last registration read in the capture (an answered one before one
        without an answer); None when none was read."""
        found = [r.handshake.registration for r in self.handshakes if r.handshake.registration]
        answered = [registration for registration in found if registration.result != "unknown"]
        return (answered or found)[-1] if found else None

    @property
    def capf_sessions(self) -> tuple[CapfReport, ...]:
        return tuple(r.capf for r in self.handshakes if r.capf is not None)

    @property
    def tvs_queries(self) -> tuple[tuple[TvsQuery, CertificateReport | None], ...]:
        """Every question the phone asked TVS, with the certificate asked about."""
        return tuple(
            pair
            for r in self.handshakes
            if r.tvs is not None
            for pair in zip(r.tvs.session.queries, r.tvs.certificates, strict=True)
        )

    @property
    def worst(self) -> Finding | None:
        return max(self.findings, key=lambda f: SEVERITY_RANK[f.severity], default=None)

    def __repr__(self) -> str:
        worst = self.worst
        news = f"worst {worst.severity} {worst.code}" if worst else "no finding"
        presented = "+".join(self.kinds) or "no certificate"
        where = ", ".join(a for a in self.addresses if a != self.name)
        label = " ".join(filter(None, [self.name, self.model, where and f"at {where}"]))
        return f"<Device {label}: {presented}, {len(self.handshakes)} handshake(s), {news}>"


@dataclass(frozen=True)
class Report:
    """Everything capana found in one or more captures."""

    captures: tuple[CaptureSummary, ...]
    handshakes: tuple[HandshakeReport, ...]
    devices: tuple[Device, ...] = ()
    trust_stores: tuple[str, ...] = ()
    # About the inputs as a whole: a store no handshake used, a key log without secrets.
    warnings: tuple[str, ...] = ()
    # Every certificate of the stores given, so a path found can be shown by name.
    store_certificates: tuple[Certificate, ...] = ()
    files: tuple[FileReport, ...] = ()  # every file transfer, per capture in request order

    @property
    def certificates(self) -> tuple[CertificateReport, ...]:
        """Every distinct certificate seen (handshakes, then trust lists), first seen first."""
        seen: dict[str, CertificateReport] = {}
        for record in self.handshakes:
            for cert in record.client_chain + record.server_chain:
                seen.setdefault(cert.sha256, cert)
        for file in self.files:
            for entry in file.records:
                if entry.certificate is not None:
                    seen.setdefault(entry.certificate.sha256, entry.certificate)
        return tuple(seen.values())

    @property
    def findings(self) -> tuple[Finding, ...]:
        """The handshakes' findings, then the files'."""
        return _findings(self.handshakes, self.files)

    def has_finding(self, severity: Severity) -> bool:
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
            *([_count(len(self.files), "file transfer")] if self.files else []),
            _count(len(self.devices), "device"),
            *(_count(severities[s], s) for s in ("error", "warning") if severities[s]),
        ]
        unreadable = sum(not capture.readable for capture in self.captures)
        if unreadable:
            parts.append(_count(unreadable, "unreadable capture"))
        return f"<Report {', '.join(parts)}>"


def _findings(
    handshakes: tuple[HandshakeReport, ...], files: tuple[FileReport, ...]
) -> tuple[Finding, ...]:
    found = [f for record in handshakes for f in record.findings]
    return (*found, *(f for file in files for f in file.findings))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
