"""JSON and JSON Lines views.

The CLI writes them piece by piece (:func:`json_chunks`, :func:`jsonl_chunks`): each handshake,
device and file is turned into a record when written, so a site's report costs the memory of
one record, not of the whole document's objects (a 5,000-handshake site is 38 MB of JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from capana.model import Report
from capana.views.records import handshake_record, report_members

# Members of the top-level object, indented as ``json.dumps(..., indent=2)`` indents them.
_MEMBER = "\n  "
_ITEM = "\n    "


def render_json(report: Report) -> str:
    """``json.dumps(report_record(report), indent=2)``, and a newline."""
    return "".join(json_chunks(report))


def json_chunks(report: Report) -> Iterator[str]:
    """:func:`render_json` in pieces: a list's records made one at a time."""
    yield "{"
    for index, (key, value) in enumerate(report_members(report).items()):
        yield ("," if index else "") + _MEMBER + json.dumps(key) + ": "
        if isinstance(value, Iterator):
            yield from _list_chunks(value)
        else:
            yield json.dumps(value, indent=2).replace("\n", _MEMBER)
    yield "\n}\n"


def _list_chunks(records: Iterator[object]) -> Iterator[str]:
    empty = True
    for record in records:
        yield (
            ("," if not empty else "[") + _ITEM + json.dumps(record, indent=2).replace("\n", _ITEM)
        )
        empty = False
    yield "[]" if empty else _MEMBER + "]"


def render_jsonl(report: Report) -> str:
    """One handshake per line, for streaming into lab tooling."""
    return "".join(jsonl_chunks(report))


def jsonl_chunks(report: Report) -> Iterator[str]:
    """``render_jsonl(report)`` a line at a time."""
    for record in report.handshakes:
        yield json.dumps(handshake_record(record)) + "\n"
