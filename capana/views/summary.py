"""The report at a glance: each device's verdict, phones told from other hosts, and the counts
every view opens with. Pure functions of the report, shared by the table, JSON and HTML views.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from capana.domain import PHONE_SIGNALLING
from capana.model import (
    SEVERITY_RANK,
    CapfReport,
    CertificateReport,
    Device,
    Finding,
    Registration,
    Report,
    Severity,
    TvsQuery,
)

# "ok": every connection completed its handshake with a certificate trusted by the store;
# "error"/"warning": its worst finding; "unverified": nothing wrong seen, nothing proven either
# (no store given, no certificate asked for, TLS 1.3 without keys, cleartext, incomplete).
DeviceVerdict = Literal["ok", "warning", "error", "unverified"]
DEVICE_VERDICTS: tuple[DeviceVerdict, ...] = ("error", "warning", "unverified", "ok")
_VERDICT_WORDS: tuple[tuple[DeviceVerdict, str], ...] = (
    ("error", "with errors"),
    ("warning", "with warnings"),
    ("unverified", "not verified"),
)


def device_verdict(device: Device) -> DeviceVerdict:
    """What a support engineer should think of this device, in one word."""
    worst = device.worst
    if worst is not None and worst.severity in ("error", "warning"):
        return worst.severity
    proven = device.handshakes and all(
        not record.handshake.cleartext
        and record.handshake.outcome == "established"
        and record.handshake.client_cert_status == "present"
        and record.validation.status == "trusted"
        for record in device.handshakes
    )
    return "ok" if proven else "unverified"


def is_phone(device: Device) -> bool:
    """A phone by its certificates (LSC, MIC, a SEP device name) or by the CUCM services it
    spoke to (SCCP, SIP, CAPF, TVS); anything else is a host (a PC's HTTPS, say)."""
    if device.name.upper().startswith("SEP") or {"LSC", "MIC"} & set(device.kinds):
        return True
    return any(service in PHONE_SIGNALLING for service in device.services)


def ordered_devices(devices: Iterable[Device], phones_only: bool = False) -> tuple[Device, ...]:
    """Phones first, then the other hosts (unless ``phones_only``), each in report order."""
    listed = list(devices)
    phones = [device for device in listed if is_phone(device)]
    hosts = [] if phones_only else [device for device in listed if not is_phone(device)]
    return (*phones, *hosts)


def presented(device: Device) -> str:
    """What the device presented: "LSC", "MIC", "LSC+MIC", "other" or "none"."""
    kinds = [kind for kind in device.kinds if kind in ("LSC", "MIC")]
    if kinds:
        return "+".join(sorted(kinds, reverse=True))
    return "other" if device.kinds else "none"


@dataclass(frozen=True)
class Summary:
    """The counts a report opens with. Verdicts count phones (hosts are only counted); what
    was presented counts devices; findings count connections (one per connection it was
    found on)."""

    captures: int
    handshakes: int
    phones: int
    hosts: int
    verdicts: Mapping[DeviceVerdict, int]
    presented: Mapping[str, int]
    trusted: Mapping[str, int]  # "ok" phones by what they presented
    findings: Mapping[Severity, int]
    finding_devices: Mapping[str, int]  # code -> devices it was found on


def summarize(report: Report) -> Summary:
    phones = [device for device in report.devices if is_phone(device)]
    verdicts = Counter(device_verdict(device) for device in phones)
    ok_phones = [device for device in phones if device_verdict(device) == "ok"]
    by_code = Counter(code for device in report.devices for code in _codes(device.findings))
    severities = Counter(finding.severity for finding in report.findings)
    return Summary(
        captures=len(report.captures),
        handshakes=len(report.handshakes),
        phones=len(phones),
        hosts=len(report.devices) - len(phones),
        verdicts={verdict: verdicts[verdict] for verdict in DEVICE_VERDICTS},
        presented=dict(Counter(presented(device) for device in report.devices)),
        trusted=dict(Counter(presented(device) for device in ok_phones)),
        findings={severity: severities[severity] for severity in ("error", "warning", "info")},
        finding_devices=dict(sorted(by_code.items())),
    )


def summary_line(summary: Summary) -> str:
    """One line: 500 phones: 470 LSC trusted, 12 MIC trusted, 8 with errors; 3 other hosts."""
    parts = [f"{count} {kind} trusted" for kind, count in sorted(summary.trusted.items())]
    verdicts = summary.verdicts
    parts += [f"{verdicts[v]} {noun}" for v, noun in _VERDICT_WORDS if verdicts[v]]
    line = f"{_count(summary.phones, 'phone')}: {', '.join(parts) or 'none seen'}"
    if summary.hosts:
        line += f"; {_count(summary.hosts, 'other host')}"
    return line


def finding_groups(devices: Sequence[Device]) -> list[FindingGroup]:
    """Findings grouped by code and advice, most severe first, each with the devices (and the
    number of connections) it was found on: 500 identical MIC notes are one group."""
    groups: dict[tuple[str, str, str], FindingGroup] = {}
    for device in devices:
        for finding in device.findings:
            key = (finding.code, finding.severity, finding.advice)
            group = groups.get(key)
            if group is None:
                group = groups[key] = FindingGroup(finding, [], 0)
            if device not in group.devices:
                group.devices.append(device)
            group.connections += 1
    return sorted(groups.values(), key=lambda g: -SEVERITY_RANK[g.finding.severity])


@dataclass
class FindingGroup:
    """One finding code (with one advice) and where it was found; ``finding`` is the first."""

    finding: Finding
    devices: list[Device]
    connections: int


def _codes(findings: Iterable[Finding]) -> set[str]:
    return {finding.code for finding in findings}


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


# What happened inside the sessions, in a few words each: the table, CSV, DataFrames and HTML
# all say it the same way.


def capf_text(report: CapfReport) -> str:
    """``install (auth mic, RSA 2048): installed; LSC from CAPF-0992727f, trusted``."""
    session = report.session
    details = ", ".join(filter(None, (session.auth and f"auth {session.auth}", session.key)))
    text = (session.operation or "request") + (f" ({details})" if details else "")
    text += ": " + session.result.replace("_", " ")
    if session.refused and session.reason is not None:
        text += f" ({session.reason.text}" + (
            f": {session.reason.info})" if session.reason.info else ")"
        )
    issued = report.issued
    if issued is not None:
        text += f"; {issued.kind} from {issued.issuer_label or '?'}"
        status = report.issued_validation.status
        text += f", {status}" if status != "not_checked" else ""
    return text


def tvs_text(query: TvsQuery, certificate: CertificateReport | None) -> str:
    """``cucm-pub.example.com: trusted for CCM+TFTP, cache 86400 s``."""
    text = f"{certificate.name if certificate else 'no certificate'}: {query.status}"
    if query.roles:
        text += " for " + ", ".join(query.roles)
    if query.ttl is not None:
        text += f", cache {query.ttl} s"
    return text


def registration_text(registration: Registration) -> str:
    """``registered: 200 OK, line 1001`` or ``rejected: RegisterReject (Device not found)``."""
    text: str = registration.result
    if registration.status:
        text += f": {registration.status}"
        text += f" ({registration.reason})" if registration.reason else ""
    if registration.line:
        text += f", line {registration.line}"
    return text


def registered(device: Device) -> bool | None:
    """Did the phone register (its last answered registration)? None: none was read."""
    registration = device.registration
    if registration is None or registration.result == "unknown":
        return None
    return registration.result == "registered"
