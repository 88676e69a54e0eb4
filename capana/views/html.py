"""HTML view: a self-contained page (inline CSS, no script, no network), and the fragments that
notebooks show for a report, a device, a handshake or a certificate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape

from capana.model import (
    SEVERITY_RANK,
    CertificateReport,
    Device,
    Finding,
    HandshakeReport,
    Report,
)
from capana.views.records import certificate_record, device_record, handshake_record, iso

# Every rule is scoped under .capana so a notebook's own styles are left alone.
STYLE = """
.capana { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; }
.capana h1 { font-size: 22px; margin: 0 0 4px; }
.capana h2 { font-size: 17px; margin: 20px 0 6px; border-bottom: 1px solid #d5d9e0; }
.capana table { border-collapse: collapse; margin: 4px 0 10px; }
.capana th, .capana td { border: 1px solid #d5d9e0; padding: 3px 8px; text-align: left;
  vertical-align: top; }
.capana th { background: #eef1f5; }
.capana table.handshakes td { white-space: nowrap; }
.capana .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
.capana .badge { display: inline-block; border-radius: 3px; padding: 0 6px; color: #fff;
  font-weight: 600; white-space: nowrap; }
.capana .ok { background: #1e8e3e; }
.capana .bad { background: #c5221f; }
.capana .warn { background: #e37400; }
.capana .info { background: #1a73e8; }
.capana .muted { background: #80868b; }
.capana .finding { border-left: 5px solid #80868b; padding: 4px 10px; margin: 6px 0;
  background: #f8f9fa; }
.capana .finding.bad { border-color: #c5221f; }
.capana .finding.warn { border-color: #e37400; }
.capana .finding.info { border-color: #1a73e8; }
.capana .finding p { margin: 2px 0; }
.capana .fix { color: #3c4043; }
.capana .summary { color: #3c4043; margin: 0 0 8px; }
"""

_TONE = {
    # validation status
    "trusted": "ok",
    "expired": "bad",
    "not_yet_valid": "bad",
    "untrusted": "bad",
    "invalid": "bad",
    "revoked": "bad",
    "not_checked": "muted",
    # handshake outcome
    "established": "ok",
    "rejected": "bad",
    "incomplete": "warn",
    # finding severity
    "error": "bad",
    "warning": "warn",
    "info": "info",
}


def render_html(report: Report) -> str:
    """The whole report as one HTML page that opens offline."""
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>capana report: {escape(_capture_names(report))}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<div class='capana'>\n<h1>capana report</h1>\n{_report_body(report)}</div>\n"
        "</body>\n</html>\n"
    )


def report_fragment(report: Report) -> str:
    """The report for a notebook cell: devices, findings and handshakes."""
    return f"<style>{STYLE}</style><div class='capana'>{_report_body(report)}</div>"


def device_fragment(device: Device) -> str:
    """One device: its row, its connections and its findings."""
    return (
        f"<style>{STYLE}</style><div class='capana'>"
        + _device_table([device])
        + _handshake_table(device.handshakes)
        + _findings(device)
        + "</div>"
    )


def handshake_fragment(record: HandshakeReport) -> str:
    """One handshake: its facts, both chains and its findings."""
    data = handshake_record(record)
    facts = {
        "client": data["client"],
        "server": data["server"],
        "service": data["service"],
        "start": data["start"],
        "TLS": data["tls_version"],
        "cipher suite": data["cipher_suite"],
        "client certificate": data["client_cert_status"],
        "verdict": _verdict(record),
        "outcome": _outcome(record),
    }
    chains = [("client chain", record.client_chain), ("server chain", record.server_chain)]
    return (
        f"<style>{STYLE}</style><div class='capana'>"
        + _facts(facts, raw={"verdict", "outcome"})
        + "".join(
            f"<h2>{title}</h2>" + _certificate_table(chain) for title, chain in chains if chain
        )
        + "".join(_finding_block(f, 1) for f in record.findings)
        + "</div>"
    )


def certificate_fragment(report: CertificateReport) -> str:
    """One certificate's fields."""
    data = certificate_record(report)
    del data["der_b64"]
    facts = {key: _text(value) for key, value in data.items()}
    facts["kind"] = _badge(report.kind, "info" if report.kind in ("LSC", "MIC") else "muted")
    return f"<style>{STYLE}</style><div class='capana'>{_facts(facts, raw={'kind'})}</div>"


# Pieces ----------------------------------------------------------------------------------


def _report_body(report: Report) -> str:
    parts = [f"<p class='summary'>{escape(_summary(report))}</p>"]
    parts.append("<h2>Devices</h2>")
    parts.append(_device_table(report.devices) if report.devices else "<p>No device.</p>")
    groups = [group for device in report.devices for group in _finding_groups(device)]
    groups.sort(key=lambda same: -SEVERITY_RANK[same[0].severity])
    findings = "".join(_finding_block(same[0], len(same)) for same in groups)
    parts.append("<h2>Findings</h2>" + (findings or "<p>No finding.</p>"))
    parts.append("<h2>Handshakes</h2>")
    for capture in report.captures:
        span = f"{iso(capture.start)} .. {iso(capture.end)}" if capture.start else "no packets"
        parts.append(
            f"<p><span class='mono'>{escape(capture.path)}</span>: "
            f"{capture.packets} packets, {escape(span)}</p>"
        )
        parts += [f"<p>{_badge('error', 'bad')} {escape(e)}</p>" for e in capture.errors]
        parts += [f"<p>{_badge('warning', 'warn')} {escape(w)}</p>" for w in capture.warnings]
        records = [r for r in report.handshakes if r.handshake.capture == capture.path]
        parts.append(_handshake_table(records) if records else "<p>No TLS handshake.</p>")
    return "\n".join(parts) + "\n"


def _summary(report: Report) -> str:
    stores = ", ".join(report.trust_stores) or "none (verdicts not checked)"
    counts = [
        f"{len(report.captures)} capture(s)",
        f"{len(report.handshakes)} handshake(s)",
        f"{len(report.devices)} device(s)",
        f"trust stores: {stores}",
    ]
    return ", ".join(counts)


def _device_table(devices: Iterable[Device]) -> str:
    header = ("device", "model", "addresses", "services", "certificate", "issuer", "verdict")
    rows = []
    for device in devices:
        data = device_record(device)
        issuers = dict.fromkeys(c.issuer_label for c in device.certificates if c.issuer_label)
        verdicts = dict.fromkeys(c["validation"] for c in data["connections"])
        worst = data["worst_finding"]
        rows.append(
            (
                escape(data["device"]),
                escape(data["model"] or "-"),
                escape(", ".join(data["addresses"])),
                escape(", ".join(data["services"])),
                _kinds(data["kinds"]),
                escape(", ".join(issuers) or "-"),
                " ".join(_badge(v, _TONE.get(v, "muted")) for v in verdicts),
                _badge(f"{worst['severity']}: {worst['code']}", _TONE[worst["severity"]])
                if worst
                else _badge("ok", "ok"),
            )
        )
    return _table((*header, "worst finding"), rows, "devices")


def _kinds(kinds: Sequence[str]) -> str:
    if not kinds:
        return "-"
    return " + ".join(_badge(kind, "info" if kind in ("LSC", "MIC") else "muted") for kind in kinds)


def _findings(device: Device) -> str:
    """A device's findings, each code once with the number of connections it was found on."""
    return "".join(_finding_block(same[0], len(same)) for same in _finding_groups(device))


def _finding_groups(device: Device) -> list[list[Finding]]:
    by_code: dict[str, list[Finding]] = {}
    for finding in device.findings:
        by_code.setdefault(finding.code, []).append(finding)
    return list(by_code.values())


def _finding_block(finding: Finding, times: int) -> str:
    tone = _TONE[finding.severity]
    count = f" (on {times} connections)" if times > 1 else ""
    return (
        f"<div class='finding {tone}'><p>{_badge(finding.severity.upper(), tone)} "
        f"<span class='mono'>{escape(finding.code)}</span>{count}</p>"
        f"<p>{escape(finding.message)}</p>"
        f"<p class='fix'><b>fix:</b> {escape(finding.advice)}</p></div>"
    )


def _handshake_table(records: Iterable[HandshakeReport]) -> str:
    header = ("time", "client", "server", "service", "TLS", "client cert", "issuer")
    rows = []
    for record in records:
        data = handshake_record(record)
        leaf = record.client_leaf
        if leaf is None:
            certificate, issuer = escape(data["client_cert_status"]), "-"
        else:
            identity = leaf.classification.device or (leaf.parsed and leaf.parsed.subject_cn)
            certificate = f"{_kinds([leaf.kind])} {escape((identity or leaf.sha256)[:40])}"
            issuer = escape(leaf.issuer_label or "-")
        start = record.handshake.start
        time = start.strftime("%H:%M:%S.%f")[:-3] if start else "-"
        rows.append(
            (
                f"<span title='{escape(data['start'] or '')}'>{time}</span>",
                escape(data["client"]),
                escape(data["server"]),
                escape(data["service"]),
                escape(data["tls_version"] or "-"),
                certificate,
                issuer,
                _verdict(record),
                _outcome(record),
            )
        )
    return _table((*header, "verdict", "outcome"), rows, "handshakes")


def _certificate_table(chain: Iterable[CertificateReport]) -> str:
    header = ("kind", "subject", "issuer", "not after", "sha256")
    rows = []
    for cert in chain:
        data = certificate_record(cert)
        rows.append(
            (
                _kinds([data["kind"]]),
                escape(data.get("subject") or data.get("error") or "-"),
                escape(data.get("issuer") or "-"),
                escape(data.get("not_after") or "-"),
                f"<span class='mono'>{escape(data['sha256'][:16])}</span>",
            )
        )
    return _table(header, rows, "certificates")


def _verdict(record: HandshakeReport) -> str:
    validation = record.validation
    text: str = validation.status
    if validation.status != "not_checked":
        text += f" ({validation.store or 'default'})"
    badge = _badge(text, _TONE.get(validation.status, "muted"))
    reasons = "; ".join(reason.text for reason in validation.reasons)
    return badge + (f"<br><small>{escape(reasons)}</small>" if reasons else "")


def _outcome(record: HandshakeReport) -> str:
    handshake = record.handshake
    text: str = handshake.outcome
    fatal = [a for a in handshake.alerts if a.level in ("fatal", "encrypted")]
    if fatal:
        text += f": {fatal[0].sender} {fatal[0].description or 'encrypted alert'}"
    return _badge(text, _TONE.get(handshake.outcome, "muted"))


def _facts(facts: Mapping[str, object], raw: Iterable[str] = ()) -> str:
    """A two-column table; values are escaped unless their key is in ``raw``."""
    keep = set(raw)
    rows = [
        f"<tr><th>{escape(key)}</th><td>{value if key in keep else escape(_text(value))}</td></tr>"
        for key, value in facts.items()
    ]
    return "<table class='facts'>" + "".join(rows) + "</table>"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], name: str) -> str:
    """A table of already-escaped cells."""
    head = "".join(f"<th>{escape(title)}</th>" for title in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{name}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _badge(text: str, tone: str) -> str:
    return f"<span class='badge {tone}'>{escape(text)}</span>"


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _capture_names(report: Report) -> str:
    return ", ".join(capture.path for capture in report.captures) or "no capture"
