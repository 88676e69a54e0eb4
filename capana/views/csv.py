"""CSV view: one row per handshake, the phone's leaf certificate flattened into columns."""

from __future__ import annotations

import csv
import io

from capana.model import Report
from capana.views.records import HANDSHAKE_COLUMNS, handshake_row


def render_csv(report: Report) -> str:
    """The header always, then a row per handshake; empty cells for None."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HANDSHAKE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(handshake_row(record) for record in report.handshakes)
    return out.getvalue()
