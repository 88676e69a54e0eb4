"""Views of certificates judged without a capture (``capana cert``): a terminal table and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from capana.model import CertificateCheck, CertificateReport, ReasonCode, StoreVerdict
from capana.views.records import certificate_record, finding_record, iso, validation_record
from capana.views.table import finding_lines


def render_check_json(checks: Sequence[CertificateCheck]) -> str:
    return json.dumps({"files": [check_record(check) for check in checks]}, indent=2) + "\n"


def check_record(check: CertificateCheck) -> dict[str, Any]:
    """One file: ``{"file", "at", "errors", "chain": [cert], "verdicts": [...]}``."""
    return {
        "file": check.source,
        "at": iso(check.at),
        "errors": list(check.errors),
        "chain": [certificate_record(cert) for cert in check.chain],
        "verdicts": [
            {
                "validation": validation_record(verdict.validation),
                "findings": [finding_record(finding) for finding in verdict.findings],
            }
            for verdict in check.verdicts
        ],
    }


def render_check_table(checks: Sequence[CertificateCheck]) -> str:
    """Per file: what the leaf is, its dates, the chain read, then each store's verdict."""
    lines: list[str] = []
    for check in checks:
        lines += _check_lines(check)
        lines.append("")
    return "\n".join(lines)


def _check_lines(check: CertificateCheck) -> list[str]:
    leaf = check.leaf
    if leaf is None:
        return [f"{check.source}: " + "; ".join(check.errors or ("no certificate",))]
    lines = [f"{check.source}: {_describe(leaf)}, judged at {iso(check.at)}"]
    cert = leaf.parsed
    if cert is None:
        lines.append(f"  unparsed     {leaf.certificate.sha256}")
    else:
        lines += [
            f"  subject      {cert.subject}",
            f"  issuer       {cert.issuer}",
            f"  valid        {iso(cert.not_before)} .. {iso(cert.not_after)}",
            f"  key          {cert.public_key}, {cert.signature_algorithm}, serial {cert.serial}",
            f"  sha256       {cert.sha256}",
        ]
    if len(check.chain) > 1:
        lines.append("  chain        " + ", ".join(_short(c) for c in check.chain[1:]))
    for verdict in check.verdicts:
        lines += _verdict_lines(verdict, check.chain)
    return lines


def _verdict_lines(verdict: StoreVerdict, chain: Sequence[CertificateReport]) -> list[str]:
    validation = verdict.validation
    unchecked = ReasonCode.NO_TRUST_STORE in validation.codes
    store = validation.store or ("no trust store" if unchecked else "default store")
    anchor = f", anchor {validation.anchor}" if validation.anchor else ""
    lines = [f"  verdict      {validation.status} ({store}){anchor}"]
    if len(validation.path) > 1:
        names = {cert.sha256: cert.name for cert in chain}
        steps = [names.get(sha, sha[:12]) for sha in validation.path[:-1]]
        steps.append(validation.anchor or validation.path[-1][:12])
        lines.append("    path       " + " <- ".join(steps))
    lines += [f"    reason     {reason.text}" for reason in validation.reasons]
    for finding in verdict.findings:
        lines += finding_lines(finding, 1)
    return lines


def _describe(report: CertificateReport) -> str:
    classification = report.classification
    model = f" ({classification.model})" if classification.model else ""
    issuer = f", issued by {report.issuer_label}" if report.issuer_label else ""
    return f"{report.kind} {report.name}{model}{issuer}"


def _short(report: CertificateReport) -> str:
    return f"{report.kind} {report.name}"
