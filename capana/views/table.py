"""The terminal view: a summary line, the devices (phones first), the findings grouped by code,
then every connection per capture. Lines fit ``WIDTH`` columns where the content allows it."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from capana.model import (
    SEVERITY_RANK,
    Device,
    FileReport,
    Finding,
    HandshakeReport,
    Report,
    Severity,
)
from capana.views.records import iso
from capana.views.summary import (
    FindingGroup,
    capf_text,
    device_verdict,
    finding_groups,
    is_phone,
    ordered_devices,
    presented,
    registered,
    registration_text,
    summarize,
    summary_line,
    tvs_text,
)

WIDTH = 120
# Items of a list shown before "+N more": addresses and services of a device, devices of a finding.
MAX_ITEMS = 2
MAX_DEVICES_LISTED = 8
_INDENT = "  "

_DEVICE_HEADER = (
    *("device", "model", "address", "services", "mode", "files", "cert", "issuer", "verdict"),
    *("worst", "registered"),
)
_HANDSHAKE_HEADER = (
    *("time", "client", "server", "service", "tls", "client cert", "verdict", "outcome"),
)
# Columns that give way (cut with "…") when a table is wider than WIDTH, first to last, with the
# narrowest each may become.
_DEVICE_SHRINK = (("worst", 16), ("issuer", 16), ("address", 12), ("services", 8), ("device", 12))
# Device columns shown only when some device has something to say in them.
_DEVICE_OPTIONAL = frozenset({"mode", "files", "registered"})
_FILE_HEADER = ("time", "phone", "server", "file", "status", "size", "kind", "signed")
_FILE_SHRINK = ((6, 8), (3, 24), (2, 16))
_SESSION_SHRINK = ((2, 40), (0, 12))
_HANDSHAKE_SHRINK = ((7, 21), (5, 19), (1, 16), (2, 16))


def render_table(
    report: Report, *, min_severity: Severity = "warning", phones_only: bool = False
) -> str:
    """The report for a terminal. Findings below ``min_severity`` are only counted;
    ``phones_only`` leaves out the hosts that are not phones (a PC's HTTPS)."""
    summary = summarize(report)
    devices = ordered_devices(report.devices, phones_only)
    lines = [summary_line(summary), *(f"warning: {w}" for w in report.warnings), ""]
    if devices:
        lines += _device_block(devices)
        lines += _findings_block(devices, min_severity)
        lines += _sessions_block(devices)
    shown = {id(record) for device in devices for record in device.handshakes}
    for capture in report.captures:
        span = f"{iso(capture.start)} .. {iso(capture.end)}" if capture.start else "no packets"
        counts = f"{capture.packets} packets, {span}"
        one_line = len(capture.path) + len(counts) + 2 <= WIDTH
        lines += [f"{capture.path}: {counts}"] if one_line else [f"{capture.path}:", f"  {counts}"]
        lines += [f"  error: {error}" for error in capture.errors]
        lines += [f"  warning: {warning}" for warning in capture.warnings]
        rows = [
            _handshake_row(record)
            for record in report.handshakes
            if record.handshake.capture == capture.path and id(record) in shown
        ]
        if rows:
            aligned = _aligned([_HANDSHAKE_HEADER, *rows], _HANDSHAKE_SHRINK)
            lines += [_INDENT + line for line in aligned]
        else:
            lines.append("  no TLS handshakes")
        files = [_file_row(f) for f in report.files if f.transfer.capture == capture.path]
        if files:
            lines += [_INDENT + line for line in _aligned([_FILE_HEADER, *files], _FILE_SHRINK)]
        lines.append("")
    return "\n".join(lines)


def _device_block(devices: Sequence[Device]) -> list[str]:
    phones = [device for device in devices if is_phone(device)]
    hosts = [device for device in devices if not is_phone(device)]
    lines = []
    for title, group in ((_count(len(phones), "phone"), phones), (_hosts(hosts), hosts)):
        if not group:
            continue
        lines.append(title)
        lines += [_INDENT + line for line in _device_table(group)]
        lines.append("")
    return lines


def _device_table(devices: Sequence[Device]) -> list[str]:
    rows = [_device_row(device) for device in devices]
    keep = [
        i
        for i, name in enumerate(_DEVICE_HEADER)
        if name not in _DEVICE_OPTIONAL or any(row[i] != "-" for row in rows)
    ]
    header = tuple(_DEVICE_HEADER[i] for i in keep)
    shrink = [(header.index(name), least) for name, least in _DEVICE_SHRINK if name in header]
    table = [header, *(tuple(row[i] for i in keep) for row in rows)]
    return _aligned(table, shrink)


def _hosts(hosts: Sequence[Device]) -> str:
    return f"{_count(len(hosts), 'other host')} (not phones: no phone certificate or service)"


def _device_row(device: Device) -> tuple[str, ...]:
    issuers = sorted({c.issuer_label for c in device.certificates if c.issuer_label})
    worst = device.worst
    return (
        device.name,
        device.model or "-",
        _capped(device.addresses),
        _capped(device.services),
        device.security_mode or "-",
        _files(device),
        presented(device).replace("none", "-"),
        _capped(issuers) if issuers else "-",
        device_verdict(device),
        worst.code if worst else "-",
        {True: "yes", False: "no", None: "-"}[registered(device)],
    )


def _files(device: Device) -> str:
    """Files the device got of those it asked for (a CTL "not found" is normal)."""
    if not device.files:
        return "-"
    got = sum(1 for file in device.files if file.status == "ok")
    return f"{got}/{len(device.files)}"


def _file_row(report: FileReport) -> tuple[str, ...]:
    transfer = report.transfer
    code = f" ({transfer.response_code})" if transfer.response_code is not None else ""
    return (
        transfer.start.strftime("%H:%M:%S") if transfer.start else "-",
        report.device or transfer.client_host,
        transfer.server,
        transfer.name,
        transfer.status.replace("_", " ") + code,
        str(transfer.size),
        report.kind,
        report.signature.status if report.signature else "-",
    )


def _sessions_block(devices: Sequence[Device]) -> list[str]:
    """What each phone said inside its sessions: CAPF operations, TVS answers, registration."""
    rows: list[tuple[str, ...]] = [
        *(
            (device.name, "capf", capf_text(report))
            for device in devices
            for report in device.capf_sessions
        ),
        *(
            (device.name, "tvs", tvs_text(query, cert))
            for device in devices
            for query, cert in device.tvs_queries
        ),
        *(
            (device.name, record.handshake.service, registration_text(registration))
            for device in devices
            for record in device.handshakes
            if (registration := record.handshake.registration) is not None
        ),
    ]
    if not rows:
        return []
    order = {device.name: index for index, device in enumerate(devices)}
    rows.sort(key=lambda row: order[row[0]])  # stable: capf, tvs, registration per phone
    aligned = _aligned(rows, _SESSION_SHRINK)
    return ["inside the sessions", *(_INDENT + line for line in aligned), ""]


def _findings_block(devices: Sequence[Device], min_severity: Severity) -> list[str]:
    floor = SEVERITY_RANK[min_severity]
    groups = finding_groups(devices)
    shown = [g for g in groups if SEVERITY_RANK[g.finding.severity] >= floor]
    hidden = len(groups) - len(shown)
    lines = [f"findings ({min_severity} and worse)" if shown else "no findings to show"]
    if hidden:
        lines[0] += f"; {hidden} of lower severity not shown (--min-severity info)"
    for group in shown:
        lines += _group_lines(group)
    lines.append("")
    return lines


def _group_lines(group: FindingGroup) -> list[str]:
    """A finding once per code and advice: the devices, one message as example, the fix."""
    finding = group.finding
    wrap = textwrap.TextWrapper(width=WIDTH, initial_indent="    ", subsequent_indent="      ")
    names = [device.name for device in group.devices]
    listed = ", ".join(names[:MAX_DEVICES_LISTED])
    if len(names) > MAX_DEVICES_LISTED:
        listed += f" +{len(names) - MAX_DEVICES_LISTED} more"
    head = (
        f"  {finding.severity.upper()} {finding.code}: {_count(len(names), 'device')}, "
        f"{_count(group.connections, 'connection')}: {listed}"
    )
    example = "e.g. " if len(names) > 1 else ""
    return [
        *textwrap.wrap(head, WIDTH, subsequent_indent="      "),
        *wrap.wrap(example + finding.message),
        *wrap.wrap("fix: " + finding.advice),
    ]


def _handshake_row(record: HandshakeReport) -> tuple[str, ...]:
    handshake = record.handshake
    time = handshake.start.strftime("%H:%M:%S.%f")[:-3] if handshake.start else "-"
    status = record.validation.status
    return (
        time,
        handshake.client,
        handshake.server,
        handshake.service,
        (handshake.tls_version or "-").replace("TLS ", ""),
        _client_certificate(record),
        "-" if status == "not_checked" else status,
        _outcome(record),
    )


def _client_certificate(record: HandshakeReport) -> str:
    leaf = record.client_leaf
    if record.handshake.cleartext:
        return "cleartext"
    if leaf is None:
        return record.handshake.client_cert_status
    identity = leaf.classification.device or (leaf.parsed and leaf.parsed.subject_cn)
    return f"{leaf.kind} {identity or leaf.sha256[:12]}"


def _outcome(record: HandshakeReport) -> str:
    handshake = record.handshake
    fatal = [a for a in handshake.alerts if a.level in ("fatal", "encrypted")]
    if not fatal:
        return handshake.outcome
    alert = fatal[0]
    by = "" if alert.sender == "server" else "client "
    return f"{handshake.outcome}: {by}{alert.description or 'encrypted alert'}"


def _aligned(rows: list[tuple[str, ...]], shrink: Sequence[tuple[int, int]]) -> list[str]:
    """Columns padded to their widest cell; when the line is wider than WIDTH, the ``shrink``
    columns give way in turn, down to their minimum, their cells cut with "…"."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    excess = sum(widths) + 2 * (len(widths) - 1) + len(_INDENT) - WIDTH
    for column, narrowest in shrink:
        if excess <= 0:
            break
        cut = min(excess, max(0, widths[column] - narrowest))
        widths[column] -= cut
        excess -= cut
    return [
        "  ".join(_fit(cell, width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _fit(cell: str, width: int) -> str:
    return cell.ljust(width) if len(cell) <= width else cell[: width - 1] + "…"


def _capped(items: Sequence[str]) -> str:
    """The first MAX_ITEMS items, then "+N"."""
    shown = ",".join(items[:MAX_ITEMS])
    return shown + (f",+{len(items) - MAX_ITEMS}" if len(items) > MAX_ITEMS else "")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def finding_lines(finding: Finding, times: int) -> list[str]:
    """A finding, once (``times``: on how many connections it was found)."""
    wrap = textwrap.TextWrapper(width=WIDTH, initial_indent="      ", subsequent_indent="        ")
    count = f" (on {times} connections)" if times > 1 else ""
    return [
        f"    {finding.severity.upper()} {finding.code}{count}",
        *wrap.wrap(finding.message),
        *wrap.wrap("fix: " + finding.advice),
    ]
