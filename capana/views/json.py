"""JSON and JSON Lines views."""

from __future__ import annotations

import json

from capana.model import Report
from capana.views.records import handshake_record, report_record


def render_json(report: Report) -> str:
    return json.dumps(report_record(report), indent=2) + "\n"


def render_jsonl(report: Report) -> str:
    """One handshake per line, for streaming into lab tooling."""
    return "".join(json.dumps(handshake_record(record)) + "\n" for record in report.handshakes)
