"""The report as plain JSON-ready dicts: the contract lab scripts parse (names are stable)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from capana.certificates import Certificate
from capana.devices import Device
from capana.handshake import AlertSeen
from capana.report import CertificateReport, HandshakeReport, Report
from capana.scan import CaptureSummary


def report_record(report: Report) -> dict[str, Any]:
    return {
        "captures": [capture_record(capture) for capture in report.captures],
        "devices": [device_record(device) for device in report.devices],
        "handshakes": [handshake_record(record) for record in report.handshakes],
    }


def device_record(device: Device) -> dict[str, Any]:
    worst = device.worst
    return {
        "device": device.name,
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
        "worst_finding": worst.to_dict() if worst else None,
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
        "client_cert_status": handshake.client_cert_status,
        "client_chain": [certificate_record(cert) for cert in record.client_chain],
        "server_chain": [certificate_record(cert) for cert in record.server_chain],
        "requested_ca_names": None
        if handshake.requested_ca_names is None
        else list(handshake.requested_ca_names),
        "issuer_requested": record.issuer_requested,
        "alerts": [alert_record(alert) for alert in handshake.alerts],
        "outcome": handshake.outcome,
        "gaps": handshake.gaps,
        "problems": list(handshake.problems),
        "validation": record.validation.to_dict(),
        "server_validation": record.server_validation.to_dict(),
        "findings": [finding.to_dict() for finding in record.findings],
    }


def alert_record(alert: AlertSeen) -> dict[str, Any]:
    return {"from": alert.sender, "level": alert.level, "description": alert.description}


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
    else:
        record["error"] = cert.error
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
