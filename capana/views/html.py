"""HTML view: one self-contained page (inline CSS and script, no network), and the fragments
notebooks show for a report, a device, a handshake or a certificate.

Rendered with Jinja2, autoescaping on: every text from a capture (names, SNI, identities) is
escaped by the engine. Templates are package data under ``capana/views/templates``. The page
sorts and filters with its inline script; the fragments need none (notebooks may not run it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from capana.model import (
    Certificate,
    CertificateReport,
    ClientHelloFacts,
    Device,
    Finding,
    HandshakeReport,
    Report,
)
from capana.views.records import capana_version, iso
from capana.views.summary import (
    DEVICE_VERDICTS,
    device_verdict,
    finding_groups,
    is_phone,
    ordered_devices,
    presented,
    registered,
    summarize,
    summary_line,
)

# Badge tone of each verdict, status, outcome and severity (a CSS class).
TONES = {
    "ok": "ok",
    "trusted": "ok",
    "established": "ok",
    "error": "bad",
    "expired": "bad",
    "not_yet_valid": "bad",
    "untrusted": "bad",
    "invalid": "bad",  # a verdict, or a file's signature that does not verify
    "valid": "ok",
    "not_found": "info",  # a file the service does not have: a CTL outside mixed mode is normal
    "revoked": "bad",
    "rejected": "bad",
    "warning": "warn",
    "incomplete": "warn",
    "info": "info",
    "unverified": "mute",
    "not_checked": "mute",
    "LSC": "lsc",
    "MIC": "mic",
    "LSC+MIC": "lsc",
    "registered": "ok",
    "installed": "ok",
    "fetched": "ok",
    "deleted": "ok",
    "failed": "bad",
    "no_operation": "bad",
}
# The timeline: width of the drawing (SVG units), height of one device's row, the label column.
TIMELINE_WIDTH = 1000
TIMELINE_ROW = 12
TIMELINE_LABELS = 150
# Devices listed by name in a finding before the rest go behind "+N more".
FINDING_DEVICES_SHOWN = 24


def render_html(report: Report, generated: datetime | None = None) -> str:
    """The whole report as one HTML page that opens offline. ``generated``: the time printed
    as generation time (now when not given)."""
    moment = generated or datetime.now(timezone.utc)
    return str(
        _template("page.html.j2").render(
            page=_Page(report),
            version=capana_version(),
            generated=iso(moment.replace(microsecond=0)),
        )
    )


def report_fragment(report: Report) -> str:
    """The report for a notebook cell: summary, findings, devices with their drill-down."""
    return str(_template("fragments.html.j2").module.report(_Page(report)))


def device_fragment(device: Device) -> str:
    """One device: its verdict, findings, certificates and connections."""
    page = _Page(Report(captures=(), handshakes=device.handshakes, devices=(device,)))
    return str(_template("fragments.html.j2").module.device(page, page.devices[0]))


def handshake_fragment(record: HandshakeReport) -> str:
    """One handshake: its facts, both chains and its findings."""
    page = _Page(Report(captures=(), handshakes=(record,)))
    return str(_template("fragments.html.j2").module.handshake(page, record))


def certificate_fragment(report: CertificateReport) -> str:
    """One certificate's fields, fingerprints as CUCM shows them."""
    page = _Page(Report(captures=(), handshakes=()))
    return str(_template("fragments.html.j2").module.certificate(page, report))


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("capana.views", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        iso=iso,
        hms=hms,
        tone=lambda text: TONES.get(str(text), "mute"),
        colon_hex=colon_hex,
        serial=serial_text,
        sha1=lambda cert: colon_hex(hashlib.sha1(cert.der).hexdigest()),
        verdict_rank=DEVICE_VERDICTS.index,
        first_per_code=_first_per_code,
    )
    env.globals["certificate_fields"] = certificate_fields
    env.globals["zip"] = zip
    return env


def _first_per_code(findings: Iterable[Finding]) -> list[Finding]:
    """Each code once, in order, the first finding of it kept."""
    first: dict[str, Finding] = {}
    for finding in findings:
        first.setdefault(finding.code, finding)
    return list(first.values())


def _template(name: str) -> Any:
    return _environment().get_template(name)


def hms(moment: datetime | None) -> str:
    """09:00:01.003, or "-"."""
    return moment.strftime("%H:%M:%S.%f")[:-3] if moment else "-"


def colon_hex(digest: str) -> str:
    """A fingerprint as CUCM and keytool print it: upper-case byte pairs joined by colons."""
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)).upper()


def serial_text(serial: str) -> str:
    """A serial number as CUCM's certificate pages print it: lower-case colon-separated bytes."""
    padded = serial if len(serial) % 2 == 0 else "0" + serial
    return ":".join(padded[i : i + 2] for i in range(0, len(padded), 2))


@dataclass(frozen=True)
class Mark:
    """One handshake on the timeline."""

    x: float
    tone: str
    shape: str  # "dot" or "cross" (refused)
    title: str


@dataclass(frozen=True)
class TimelineRow:
    device: DeviceView
    y: int
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class DeviceView:
    """A device with what its row and drill-down show, computed once."""

    number: int
    device: Device
    verdict: str
    presented: str
    phone: bool
    issuers: tuple[str, ...]
    codes: tuple[str, ...]
    certificates: tuple[CertificateReport, ...]  # every client certificate it sent, distinct
    registered: bool | None  # its last answered registration; None: none read
    sessions: tuple[HandshakeReport, ...]  # its connections whose insides were read

    @property
    def anchor(self) -> str:
        return f"d{self.number}"

    @property
    def search(self) -> str:
        """What the text filter matches: names, addresses, issuers, services, codes."""
        device = self.device
        words = (device.name, device.model or "", *device.addresses, *self.issuers)
        return " ".join((*words, *device.services, *self.codes)).lower()


class _Page:
    """What the templates read: the report, its devices in display order, and lookups."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.summary = summarize(report)
        self.summary_line = summary_line(self.summary)
        self.devices = tuple(
            _device_view(n, d) for n, d in enumerate(ordered_devices(report.devices))
        )
        self.by_device = {id(view.device): view for view in self.devices}
        self.groups = finding_groups([view.device for view in self.devices])
        self.codes = sorted({code for view in self.devices for code in view.codes})
        self.offers = _numbered(
            record.handshake.client_hello
            for record in report.handshakes
            if record.handshake.client_hello is not None
        )
        self.ca_lists = _numbered(
            record.requested_ca_names for record in report.handshakes if record.requested_ca_names
        )
        names = {c.sha256: c.name for c in report.certificates}
        stored = {c.sha256: c.subject_cn or c.subject for c in report.store_certificates}
        self.names = {**stored, **names}

    def view(self, device: Device) -> DeviceView:
        return self.by_device[id(device)]

    def offer(self, hello: ClientHelloFacts | None) -> int | None:
        return None if hello is None else self.offers.get(hello)

    def ca_list(self, names: tuple[str, ...] | None) -> int | None:
        return None if not names else self.ca_lists.get(names)

    def cert_name(self, sha256: str) -> str:
        return self.names.get(sha256, f"{sha256[:12]}…")

    def shown(self, items: Sequence[Device]) -> Sequence[Device]:
        return items[:FINDING_DEVICES_SHOWN]

    def hidden(self, items: Sequence[Device]) -> Sequence[Device]:
        return items[FINDING_DEVICES_SHOWN:]

    @property
    def timeline(self) -> tuple[TimelineRow, ...]:
        """Each device a row, each handshake a mark at its start (no start: not drawn)."""
        starts = [r.handshake.start for r in self.report.handshakes if r.handshake.start]
        if not starts:
            return ()
        first, last = min(starts), max(starts)
        span = max((last - first).total_seconds(), 1e-6)
        width = TIMELINE_WIDTH - TIMELINE_LABELS - 30
        rows = []
        for index, view in enumerate(self.devices):
            marks = tuple(
                _mark(record, TIMELINE_LABELS + width * (start - first).total_seconds() / span)
                for record in view.device.handshakes
                if (start := record.handshake.start) is not None
            )
            rows.append(TimelineRow(view, 24 + index * TIMELINE_ROW, marks))
        return tuple(rows)

    @property
    def timeline_ticks(self) -> tuple[tuple[float, str], ...]:
        starts = [r.handshake.start for r in self.report.handshakes if r.handshake.start]
        if not starts:
            return ()
        first, last = min(starts), max(starts)
        width = TIMELINE_WIDTH - TIMELINE_LABELS - 30
        ticks = 5
        return tuple(
            (TIMELINE_LABELS + width * i / ticks, hms(first + (last - first) * i / ticks)[:8])
            for i in range(ticks + 1)
        )

    @property
    def timeline_width(self) -> int:
        return TIMELINE_WIDTH

    @property
    def timeline_height(self) -> int:
        return 30 + len(self.devices) * TIMELINE_ROW


def _device_view(number: int, device: Device) -> DeviceView:
    certificates = {c.sha256: c for r in device.handshakes for c in r.client_chain}
    return DeviceView(
        number=number,
        device=device,
        verdict=device_verdict(device),
        presented=presented(device),
        phone=is_phone(device),
        issuers=tuple(sorted({c.issuer_label for c in device.certificates if c.issuer_label})),
        codes=tuple(dict.fromkeys(f.code for f in device.findings)),
        certificates=tuple(certificates.values()),
        registered=registered(device),
        sessions=tuple(r for r in device.handshakes if r.capf or r.tvs or r.handshake.registration),
    )


def _mark(record: HandshakeReport, x: float) -> Mark:
    handshake = record.handshake
    worst = max((f.severity for f in record.findings), key=_rank, default="info")
    if handshake.outcome == "rejected" or worst == "error":
        tone = "bad"
    elif worst == "warning" or handshake.outcome == "incomplete":
        tone = "warn"
    elif record.validation.status == "trusted" and handshake.outcome == "established":
        tone = "ok"
    else:
        tone = "mute"
    alert = handshake.server_fatal_alert or next(
        (a.description or "encrypted alert" for a in handshake.alerts if a.level != "warning"),
        None,
    )
    what = handshake.outcome + (f": {alert}" if alert else "")
    title = f"{hms(handshake.start)} {handshake.service} {what}"
    return Mark(round(x, 1), tone, "cross" if handshake.outcome == "rejected" else "dot", title)


def _rank(severity: str) -> int:
    return ("info", "warning", "error").index(severity)


def _numbered(items: Iterable[Any]) -> dict[Any, int]:
    """Distinct items, numbered from 1 in order of first appearance."""
    numbers: dict[Any, int] = {}
    for item in items:
        numbers.setdefault(item, len(numbers) + 1)
    return numbers


def certificate_fields(report: CertificateReport) -> list[tuple[str, str]]:
    """A certificate's fields, as the certificate card lists them."""
    cert = report.certificate
    if not isinstance(cert, Certificate):
        return [("SHA-256 fingerprint", colon_hex(cert.sha256)), ("not parsed", cert.error)]
    days = (cert.not_after - cert.not_before).days
    constraints = "" if cert.is_ca is None else f"CA:{str(cert.is_ca).upper()}"
    if cert.path_length is not None:
        constraints += f", pathlen:{cert.path_length}"
    return [
        ("subject", cert.subject),
        ("issuer", cert.issuer),
        ("serial number", serial_text(cert.serial)),
        ("valid", f"{iso(cert.not_before)} to {iso(cert.not_after)} ({days} days)"),
        ("SHA-1 fingerprint", colon_hex(hashlib.sha1(cert.der).hexdigest())),
        ("SHA-256 fingerprint", colon_hex(cert.sha256)),
        ("signature", cert.signature_algorithm),
        ("public key", cert.public_key),
        ("subjectAltName", ", ".join(cert.subject_alt_names) or "none"),
        ("extendedKeyUsage", ", ".join(cert.extended_key_usage) or "none"),
        ("keyUsage", ", ".join(sorted(cert.key_usage)) or "none"),
        ("basicConstraints", constraints or "none"),
    ]
