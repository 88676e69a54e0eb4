"""The terminal view: per capture, one line per handshake, the phone's certificate first."""

from __future__ import annotations

import textwrap

from capana.model import Device, FileReport, Finding, HandshakeReport, Report
from capana.views.records import iso

_DEVICE_COLUMNS = (
    "device",
    "model",
    "address",
    "services",
    "mode",
    "cert",
    "issuer",
    "verdict",
    "worst",
)
_FILE_COLUMNS = ("time", "client", "server", "via", "file", "status", "size", "kind", "signature")

_COLUMNS = (
    "time",
    "client",
    "server",
    "service",
    "tls",
    "client cert",
    "issuer",
    "verdict",
    "outcome",
)


def render_table(report: Report) -> str:
    """Phones first (one line each, findings under them), then every handshake per capture."""
    lines = _device_block(report) if report.devices else []
    for capture in report.captures:
        span = f"{iso(capture.start)} .. {iso(capture.end)}" if capture.start else "no packets"
        lines.append(f"{capture.path}: {capture.packets} packets, {span}")
        lines += [f"  error: {error}" for error in capture.errors]
        lines += [f"  warning: {warning}" for warning in capture.warnings]
        rows = [_row(r) for r in report.handshakes if r.handshake.capture == capture.path]
        if rows:
            lines += ["  " + line for line in _aligned([_COLUMNS, *rows])]
        else:
            lines.append("  no TLS handshakes")
        files = [_file_row(f) for f in report.files if f.transfer.capture == capture.path]
        if files:
            lines += ["  " + line for line in _aligned([_FILE_COLUMNS, *files])]
        lines.append("")
    return "\n".join(lines)


def _row(record: HandshakeReport) -> tuple[str, ...]:
    handshake = record.handshake
    time = handshake.start.strftime("%H:%M:%S.%f")[:-3] if handshake.start else "-"
    return (
        time,
        handshake.client,
        handshake.server,
        handshake.service,
        (handshake.tls_version or "-").replace("TLS ", ""),
        _client_certificate(record),
        _issuer(record),
        _verdict(record),
        _outcome(record),
    )


def _client_certificate(record: HandshakeReport) -> str:
    leaf = record.client_leaf
    if leaf is None:
        return record.handshake.client_cert_status
    identity = leaf.classification.device or (leaf.parsed and leaf.parsed.subject_cn)
    return f"{leaf.kind} {identity or leaf.sha256[:12]}"


def _issuer(record: HandshakeReport) -> str:
    leaf = record.client_leaf
    return (leaf and leaf.issuer_label) or "-"


def _verdict(record: HandshakeReport) -> str:
    validation = record.validation
    if validation.status == "not_checked":
        return "-"
    return f"{validation.status} ({validation.store or 'default'})"


def _outcome(record: HandshakeReport) -> str:
    handshake = record.handshake
    fatal = [a for a in handshake.alerts if a.level in ("fatal", "encrypted")]
    if fatal:
        alert = fatal[0]
        return f"{handshake.outcome}: {alert.sender} {alert.description or 'encrypted alert'}"
    return handshake.outcome


def _file_row(report: FileReport) -> tuple[str, ...]:
    transfer = report.transfer
    code = f" ({transfer.response_code})" if transfer.response_code is not None else ""
    signature: str = report.signature.status if report.signature else "-"
    if report.signer is not None:
        signature += f" ({report.signer.name})"
    return (
        transfer.start.strftime("%H:%M:%S.%f")[:-3] if transfer.start else "-",
        transfer.client,
        transfer.server,
        transfer.transport,
        transfer.name,
        transfer.status.replace("_", " ") + code,
        str(transfer.size),
        report.kind,
        signature,
    )


def _aligned(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _device_block(report: Report) -> list[str]:
    lines = [f"{len(report.devices)} device(s)"]
    rows = [_DEVICE_COLUMNS, *(_device_row(device) for device in report.devices)]
    aligned = _aligned(rows)
    lines.append("  " + aligned[0])
    for device, line in zip(report.devices, aligned[1:], strict=True):
        lines.append("  " + line)
        if device.files:
            lines += _files_line(device)
        by_code: dict[str, list[Finding]] = {}
        for finding in device.findings:
            by_code.setdefault(finding.code, []).append(finding)
        for same in by_code.values():
            lines += _finding_lines(same[0], len(same))
    lines.append("")
    return lines


def _device_row(device: Device) -> tuple[str, ...]:
    leaves = device.certificates
    issuers = {c.issuer_label for c in leaves if c.issuer_label}
    verdicts = dict.fromkeys(r.validation.status for r in device.handshakes)
    worst = device.worst
    return (
        device.name,
        device.model or "-",
        ",".join(device.addresses),
        ",".join(device.services) or "-",
        device.security_mode or "-",
        "+".join(device.kinds) or "-",
        ",".join(sorted(issuers)) or "-",
        ",".join(v for v in verdicts if v != "not_checked") or "-",
        f"{worst.severity}: {worst.code}" if worst else "ok",
    )


def _files_line(device: Device) -> list[str]:
    """The files a device asked for, those it did not get with their status."""
    wrap = textwrap.TextWrapper(width=100, initial_indent="    ", subsequent_indent="      ")
    missed = [f"{f.name} {f.status.replace('_', ' ')}" for f in device.files if f.status != "ok"]
    got = ", ".join(device.file_names) or "none"
    return wrap.wrap(f"files: {got}" + (f" (not got: {', '.join(missed)})" if missed else ""))


def _finding_lines(finding: Finding, times: int) -> list[str]:
    """A finding, once per code and device (``times``: on how many connections)."""
    wrap = textwrap.TextWrapper(width=100, initial_indent="      ", subsequent_indent="        ")
    count = f" (on {times} connections)" if times > 1 else ""
    return [
        f"    {finding.severity.upper()} {finding.code}{count}",
        *wrap.wrap(finding.message),
        *wrap.wrap("fix: " + finding.advice),
    ]
