"""Packet comments for an annotated capture: what capana says about each handshake, on the
frames where Wireshark shows its ClientHello, the phone's Certificate, the alert (or the first
cleartext packet), so that ``frame.comment contains "capana"`` lists them."""

from __future__ import annotations

from capana.model import HandshakeReport, Report

# What each frame of a handshake is, in the comment.
_ROLES = (
    ("client_hello", "ClientHello"),
    ("client_certificate", "client Certificate"),
    ("alert", "alert"),
    ("cleartext", "cleartext"),
)


def frame_comments(report: Report, capture: str) -> dict[int, str]:
    """{frame number: comment} for the handshakes of ``capture`` (a path as the report has it)."""
    comments: dict[int, list[str]] = {}
    for record in report.handshakes:
        handshake = record.handshake
        if handshake.capture != capture:
            continue
        verdict = handshake_comment(record)
        for field, role in _ROLES:
            frame = getattr(handshake.frames, field)
            if frame is not None:
                comments.setdefault(frame, []).append(f"capana: {role}: {verdict}")
    return {frame: " | ".join(texts) for frame, texts in sorted(comments.items())}


def handshake_comment(record: HandshakeReport) -> str:
    """One line: what was presented, the verdict, the outcome, the finding codes."""
    handshake, leaf = record.handshake, record.client_leaf
    if handshake.cleartext:
        presented = f"{handshake.service.upper()} in clear"
    elif leaf is None:
        presented = f"client certificate {handshake.client_cert_status}"
    else:
        name = leaf.classification.device or (leaf.parsed and leaf.parsed.subject_cn) or "?"
        presented = f"{leaf.kind} {name} from {leaf.issuer_label or '?'}"
    validation = record.validation
    verdict = validation.status.replace("_", " ")
    if validation.status != "not_checked":
        verdict += f" ({validation.store or 'default'})"
    outcome: str = handshake.outcome
    alert = handshake.server_fatal_alert
    if alert:
        outcome += f" {alert}"
    codes = ", ".join(dict.fromkeys(f.code for f in record.findings)) or "no finding"
    return f"{presented}, {verdict}, {outcome}: {codes}"
