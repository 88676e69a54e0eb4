"""The report as plain JSON-ready dicts: the contract lab scripts parse (names are stable)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from capana.model import (
    AlertSeen,
    CapfReport,
    CaptureSummary,
    Certificate,
    CertificateReport,
    ClientHelloFacts,
    Device,
    FileReport,
    Finding,
    Frames,
    HandshakeReport,
    PhoneConfig,
    Registration,
    Report,
    TvsQuery,
    TvsReport,
    Validation,
)
from capana.views.summary import (
    Summary,
    capf_text,
    device_verdict,
    is_phone,
    registered,
    registration_text,
    summarize,
    tvs_text,
)


def report_record(report: Report) -> dict[str, Any]:
    """The whole JSON report as one object."""
    return {
        key: list(value) if isinstance(value, Iterator) else value
        for key, value in report_members(report).items()
    }


def report_members(report: Report) -> dict[str, Any]:
    """The JSON report's members in order; its lists as iterators that make each record when
    it is read (the JSON view writes them one at a time)."""
    return {
        "capana_version": capana_version(),
        "summary": summary_record(summarize(report)),
        "warnings": list(report.warnings),
        "captures": map(capture_record, report.captures),
        "devices": map(device_record, report.devices),
        "handshakes": map(handshake_record, report.handshakes),
        "files": map(file_record, report.files),
    }


def capana_version() -> str:
    """The installed capana's version ("unknown" when run from a tree never installed)."""
    from importlib.metadata import PackageNotFoundError, version  # 8 ms: when a view asks

    try:
        return version("capana")
    except PackageNotFoundError:
        return "unknown"


def summary_record(summary: Summary) -> dict[str, Any]:
    """The ``"summary"`` object: device counts by verdict and certificate, finding counts."""
    return {
        "captures": summary.captures,
        "handshakes": summary.handshakes,
        "phones": summary.phones,
        "hosts": summary.hosts,
        "verdicts": dict(summary.verdicts),
        "presented": dict(summary.presented),
        "trusted": dict(summary.trusted),
        "findings": dict(summary.findings),
        "finding_devices": dict(summary.finding_devices),
    }


def device_record(device: Device) -> dict[str, Any]:
    worst = device.worst
    return {
        "device": device.name,
        "phone": is_phone(device),
        "verdict": device_verdict(device),
        "model": device.model,
        "addresses": list(device.addresses),
        "services": list(device.services),
        "kinds": list(device.kinds),
        "switched_lsc_mic": device.switched,
        "certificates": [
            {"sha256": c.sha256, "kind": c.kind, "subject": c.label, "issuer": _issuer(c)}
            for c in device.certificates
        ],
        "connections": [
            {
                "client": r.handshake.client,
                "server": r.handshake.server,
                "service": r.handshake.service,
                "start": iso(r.handshake.start),
                "certificate": r.client_leaf.sha256 if r.client_leaf else None,
                "validation": r.validation.status,
                "outcome": r.handshake.outcome,
            }
            for r in device.handshakes
        ],
        "worst_finding": finding_record(worst) if worst else None,
        "files": list(device.file_names),
        "security_mode": device.security_mode,
        "registered": registered(device),
        "registration": registration_record(device.registration),
    }


def _issuer(report: CertificateReport) -> str | None:
    cert = report.certificate
    return cert.issuer if isinstance(cert, Certificate) else None


def capture_record(capture: CaptureSummary) -> dict[str, Any]:
    return {
        "path": capture.path,
        "format": capture.format,
        "packets": capture.packets,
        "start": iso(capture.start),
        "end": iso(capture.end),
        "errors": list(capture.errors),
        "warnings": list(capture.warnings),
    }


def handshake_record(record: HandshakeReport) -> dict[str, Any]:
    handshake = record.handshake
    return {
        "capture": handshake.capture,
        "transport": handshake.transport,
        "client": handshake.client,
        "server": handshake.server,
        "service": handshake.service,
        "start": iso(handshake.start),
        "tls_version": handshake.tls_version,
        "cipher_suite": handshake.cipher_suite,
        "sni": handshake.sni,
        "eap_identity": handshake.eap_identity,
        "client_cert_status": handshake.client_cert_status,
        "client_chain": [certificate_record(cert) for cert in record.client_chain],
        "server_chain": [certificate_record(cert) for cert in record.server_chain],
        "requested_ca_names": None
        if record.requested_ca_names is None
        else list(record.requested_ca_names),
        "issuer_requested": record.issuer_requested,
        "alerts": [alert_record(alert) for alert in handshake.alerts],
        "outcome": handshake.outcome,
        "gaps": handshake.gaps,
        "decryption": handshake.decryption,
        "problems": [problem.text for problem in handshake.problems],
        "problem_codes": [problem.code.value for problem in handshake.problems],
        "validation": validation_record(record.validation),
        "server_validation": validation_record(record.server_validation),
        "findings": [finding_record(finding) for finding in record.findings],
        "cleartext": handshake.cleartext,
        "client_hello": client_hello_record(handshake.client_hello),
        "server_hello": None
        if handshake.tls_version is None
        else {
            "version": handshake.tls_version,
            "cipher_suite": handshake.cipher_suite,
            "extended_master_secret": handshake.extended_master_secret,
            "encrypt_then_mac": handshake.encrypt_then_mac,
        },
        "frames": frames_record(handshake.frames),
        "wireshark_filter": handshake.wireshark_filter,
        "end": iso(handshake.end),
        "capf": capf_record(record.capf),
        "tvs": tvs_record(record.tvs),
        "registration": registration_record(handshake.registration),
    }


def capf_record(report: CapfReport | None) -> dict[str, Any] | None:
    """The ``"capf"`` object of a handshake on 3804 whose session was read."""
    if report is None:
        return None
    session = report.session
    reason = session.reason
    return {
        "device": session.device,
        "operation": session.operation,
        "auth": session.auth,
        "key": session.key,
        "issued_certificate": certificate_record(report.issued) if report.issued else None,
        "presented_certificate": certificate_record(report.presented) if report.presented else None,
        "result": session.result,
        "reason": None
        if reason is None
        else reason.text + (f": {reason.info}" if reason.info else ""),
        "messages": [{"from": m.sender, "command": m.command} for m in session.messages],
        # The issued LSC against the CAPF store (else the default), when the session ended.
        "issued_validation": validation_record(report.issued_validation),
    }


def tvs_record(report: TvsReport | None) -> dict[str, Any] | None:
    """The ``"tvs"`` object of a handshake on 2445 whose session was read."""
    if report is None:
        return None
    return {
        "queries": [
            {
                "device": query.device,
                "certificate": certificate_record(cert) if cert else None,
                "status": query.status,
                "roles": list(query.roles),
                "ttl": query.ttl,
            }
            for query, cert in zip(report.session.queries, report.certificates, strict=True)
        ]
    }


def registration_record(registration: Registration | None) -> dict[str, Any] | None:
    if registration is None:
        return None
    return {
        "protocol": registration.protocol,
        "result": registration.result,
        "status": registration.status,
        "line": registration.line,
    }


def client_hello_record(hello: ClientHelloFacts | None) -> dict[str, Any] | None:
    """What the client offered, by name; None when its ClientHello is not in the capture."""
    if hello is None:
        return None
    return {
        "versions": list(hello.versions),
        "cipher_suites": list(hello.cipher_suites),
        "signature_algorithms": list(hello.signature_algorithms),
        "sni": hello.sni,
    }


def frames_record(frames: Frames) -> dict[str, int | None]:
    return {
        "client_hello": frames.client_hello,
        "client_certificate": frames.client_certificate,
        "alert": frames.alert,
        "cleartext": frames.cleartext,
    }


def file_record(report: FileReport) -> dict[str, Any]:
    """One file transfer, what the file holds and the verdicts on it (the ``"files"`` list)."""
    transfer = report.transfer
    header = report.file.header if report.file else None
    signer = report.signer
    return {
        "capture": transfer.capture,
        "transport": transfer.transport,
        "client": transfer.client,
        "server": transfer.server,
        "name": transfer.name,
        "status": transfer.status,
        "size": transfer.size,
        "frames": {"request": transfer.request_frame, "last": transfer.last_frame},
        "kind": report.kind,
        "signer": None
        if header is None
        else {
            "subject": header.signer_name,
            "serial": header.signer_serial,
            "sha256": signer.sha256 if signer else None,
        },
        "signature": report.signature.status if report.signature else None,
        "records": [
            {
                "role": entry.role,
                "certificate": certificate_record(entry.certificate) if entry.certificate else None,
            }
            for entry in report.records
        ],
        "config": config_record(report.config) if report.config else None,
        "findings": [finding_record(finding) for finding in report.findings],
        "device": report.device,
        "start": iso(transfer.start),
        "response_code": transfer.response_code,
        "problems": [*transfer.problems, *(report.file.problems if report.file else ())],
    }


def config_record(config: PhoneConfig) -> dict[str, Any]:
    return {
        "device_security_mode": config.device_security_mode,
        "transport": config.transport,
        "tvs": [str(member) for member in config.tvs],
        "capf": [str(member) for member in config.capf],
        "capf_auth_mode": config.capf_auth_mode,
        "cert_hash": config.cert_hash,
        "encrypted": config.encrypted,
    }


def validation_record(validation: Validation) -> dict[str, Any]:
    """The ``"validation"`` object: reasons as text, and their codes beside them."""
    return {
        "store": validation.store,
        "status": validation.status,
        "anchor": validation.anchor,
        "path": list(validation.path),
        "reasons": [reason.text for reason in validation.reasons],
        "reason_codes": [reason.code.value for reason in validation.reasons],
    }


def finding_record(finding: Finding) -> dict[str, Any]:
    return {
        "code": finding.code,
        "severity": finding.severity,
        "message": finding.message,
        "advice": finding.advice,
        "evidence": dict(finding.evidence),
    }


def alert_record(alert: AlertSeen) -> dict[str, Any]:
    return {"from": alert.sender, "level": alert.level, "description": alert.description}


_PARSED_FIELDS = (
    "subject",
    "issuer",
    "serial",
    "not_before",
    "not_after",
    "signature_algorithm",
    "public_key",
)


def certificate_record(report: CertificateReport) -> dict[str, Any]:
    cert = report.certificate
    classification = report.classification
    record: dict[str, Any] = {"sha256": cert.sha256}
    if isinstance(cert, Certificate):
        record.update(
            subject=cert.subject,
            issuer=cert.issuer,
            serial=cert.serial,
            not_before=iso(cert.not_before),
            not_after=iso(cert.not_after),
            signature_algorithm=cert.signature_algorithm,
            public_key=cert.public_key,
        )
    else:  # the contract's keys all stay, null where the DER could not be read
        record.update(dict.fromkeys(_PARSED_FIELDS), error=cert.error)
    record.update(
        kind=classification.kind,
        device=classification.device,
        model=classification.model,
        der_b64=base64.b64encode(cert.der).decode("ascii"),
    )
    return record


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z, to the microsecond when there is one."""
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


# Flat rows: one level of scalars, for CSV and pandas. Built from the records above so every
# view shows the same values under the same names.

_LEAF_FIELDS = ("kind", *_PARSED_FIELDS, "sha256")


# The keys of handshake_row, in order (a CSV header needs them when there is no handshake).
HANDSHAKE_COLUMNS = (
    "capture",
    "start",
    "client",
    "server",
    "service",
    "transport",
    "tls_version",
    "cipher_suite",
    "sni",
    "client_cert_status",
    "device",
    "model",
    *(f"leaf_{name}" for name in _LEAF_FIELDS),
    "chain_length",
    "issuer_requested",
    "validation",
    "trust_store",
    "validation_reasons",
    "server_subject",
    "server_validation",
    "outcome",
    "alerts",
    "gaps",
    "worst_severity",
    "findings",
    "registration",
    "registration_status",
    "registration_line",
    "capf_operation",
    "capf_result",
    "capf_reason",
    "tvs",
)


def handshake_row(record: HandshakeReport) -> dict[str, Any]:
    """One handshake, the phone's leaf certificate flattened into ``leaf_*`` columns."""
    data = handshake_record(record)
    chain = data["client_chain"]
    leaf = chain[0] if chain else {}
    server = data["server_chain"][0] if data["server_chain"] else {}
    validation = data["validation"]
    findings = data["findings"]
    registration, capf = data["registration"], data["capf"]
    return {
        "capture": data["capture"],
        "start": data["start"],
        "client": data["client"],
        "server": data["server"],
        "service": data["service"],
        "transport": data["transport"],
        "tls_version": data["tls_version"],
        "cipher_suite": data["cipher_suite"],
        "sni": data["sni"],
        "client_cert_status": data["client_cert_status"],
        "device": leaf.get("device"),
        "model": leaf.get("model"),
        **{f"leaf_{name}": leaf.get(name) for name in _LEAF_FIELDS},
        "chain_length": len(chain),
        "issuer_requested": data["issuer_requested"],
        "validation": validation["status"],
        "trust_store": validation["store"],
        "validation_reasons": "; ".join(validation["reasons"]),
        "server_subject": server.get("subject"),
        "server_validation": data["server_validation"]["status"],
        "outcome": data["outcome"],
        "alerts": "; ".join(_alert_text(alert) for alert in data["alerts"]),
        "gaps": data["gaps"],
        "worst_severity": findings[0]["severity"] if findings else None,
        "findings": " ".join(finding["code"] for finding in findings),
        "registration": registration["result"] if registration else None,
        "registration_status": registration["status"] if registration else None,
        "registration_line": registration["line"] if registration else None,
        "capf_operation": capf["operation"] if capf else None,
        "capf_result": capf["result"] if capf else None,
        "capf_reason": capf["reason"] if capf else None,
        "tvs": "; ".join(tvs_text(q, c) for q, c in _queries(record)) or None,
    }


def _queries(record: HandshakeReport) -> list[tuple[TvsQuery, CertificateReport | None]]:
    tvs = record.tvs
    return list(zip(tvs.session.queries, tvs.certificates, strict=True)) if tvs else []


def device_row(device: Device) -> dict[str, Any]:
    """One device: what it presented, the verdicts it got, and its worst finding."""
    data = device_record(device)
    worst = data["worst_finding"]
    return {
        "device": data["device"],
        "model": data["model"],
        "addresses": ", ".join(data["addresses"]),
        "services": ", ".join(data["services"]),
        "kinds": "+".join(data["kinds"]),
        "switched_lsc_mic": data["switched_lsc_mic"],
        "issuers": ", ".join(dict.fromkeys(c["issuer"] or "" for c in data["certificates"])),
        "connections": len(data["connections"]),
        "validation": ", ".join(dict.fromkeys(c["validation"] for c in data["connections"])),
        "worst_severity": worst["severity"] if worst else None,
        "worst_finding": worst["code"] if worst else None,
        "registered": data["registered"],
        "registration": registration_text(device.registration) if device.registration else None,
        "capf": "; ".join(capf_text(report) for report in device.capf_sessions) or None,
        "tvs": "; ".join(tvs_text(query, cert) for query, cert in device.tvs_queries) or None,
        "security_mode": data["security_mode"],
        "files": ", ".join(data["files"]),
    }


# The keys of file_row, in order.
FILE_COLUMNS = (
    "capture",
    "start",
    "device",
    "client",
    "server",
    "transport",
    "name",
    "status",
    "response_code",
    "size",
    "request_frame",
    "last_frame",
    "kind",
    "signature",
    "signer",
    "records",
    "security_mode",
    "worst_severity",
    "findings",
)


def file_row(report: FileReport) -> dict[str, Any]:
    """One file transfer: the file's kind, signature and signer, its records counted."""
    data = file_record(report)
    findings = data["findings"]  # most severe first
    return {
        "capture": data["capture"],
        "start": data["start"],
        "device": data["device"],
        "client": data["client"],
        "server": data["server"],
        "transport": data["transport"],
        "name": data["name"],
        "status": data["status"],
        "response_code": data["response_code"],
        "size": data["size"],
        "request_frame": data["frames"]["request"],
        "last_frame": data["frames"]["last"],
        "kind": data["kind"],
        "signature": data["signature"],
        "signer": data["signer"]["subject"] if data["signer"] else None,
        "records": " ".join(record["role"] for record in data["records"]),
        "security_mode": report.security_mode,
        "worst_severity": findings[0]["severity"] if findings else None,
        "findings": " ".join(finding["code"] for finding in findings),
    }


def certificate_row(report: CertificateReport) -> dict[str, Any]:
    """One distinct certificate, without its DER."""
    data = certificate_record(report)
    del data["der_b64"]
    return data


def finding_rows(device: Device) -> list[dict[str, Any]]:
    """Every finding of a device, one row per connection (or file) it was found on."""
    rows = [
        {
            "device": device.name,
            "client": record.handshake.client,
            "server": record.handshake.server,
            "service": record.handshake.service,
            "file": None,
            "start": iso(record.handshake.start),
            **_finding_columns(finding),
        }
        for record in device.handshakes
        for finding in record.findings
    ]
    return rows + [
        {
            "device": device.name,
            "client": file.transfer.client,
            "server": file.transfer.server,
            "service": file.transfer.transport,
            "file": file.name,
            "start": iso(file.transfer.start),
            **_finding_columns(finding),
        }
        for file in device.files
        for finding in file.findings
    ]


def _finding_columns(finding: Finding) -> dict[str, Any]:
    return {key: value for key, value in finding_record(finding).items() if key != "evidence"}


def _alert_text(alert: dict[str, Any]) -> str:
    return f"{alert['from']} {alert['level']} {alert['description'] or 'encrypted'}"
