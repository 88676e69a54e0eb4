"""The report as pandas DataFrames, for notebooks (``pip install capana[notebook]``).

The columns are the CSV view's and the JSON report's names (:mod:`capana.views.records`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from capana.views.records import (
    HANDSHAKE_COLUMNS,
    certificate_row,
    device_row,
    finding_rows,
    handshake_row,
)

if TYPE_CHECKING:
    import pandas

    from capana.report import Report

_TIME_COLUMNS = ("start", "leaf_not_before", "leaf_not_after", "not_before", "not_after")


class Frames(NamedTuple):
    """One DataFrame per table of the report."""

    handshakes: pandas.DataFrame
    devices: pandas.DataFrame
    certificates: pandas.DataFrame
    findings: pandas.DataFrame


def require_pandas() -> Any:
    """The pandas module, or an ImportError that says how to install it."""
    try:
        import pandas
    except ImportError as error:
        raise ImportError(
            "capana's DataFrames need pandas, which is not installed: "
            "pip install 'capana[notebook]'"
        ) from error
    return pandas


def handshake_frame(report: Report) -> pandas.DataFrame:
    """One row per handshake, the phone's leaf certificate in ``leaf_*`` columns."""
    rows = [handshake_row(record) for record in report.handshakes]
    return _frame(rows, HANDSHAKE_COLUMNS)


def frames(report: Report) -> Frames:
    """Handshakes, devices, distinct certificates and findings (one row per connection)."""
    return Frames(
        handshakes=handshake_frame(report),
        devices=_frame([device_row(device) for device in report.devices]),
        certificates=_frame([certificate_row(cert) for cert in report.certificates]),
        findings=_frame([row for device in report.devices for row in finding_rows(device)]),
    )


def _frame(rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None) -> Any:
    pandas = require_pandas()
    frame = pandas.DataFrame(rows, columns=list(columns) if columns else None)
    for column in _TIME_COLUMNS:
        if column in frame.columns:
            frame[column] = pandas.to_datetime(frame[column], utc=True)
    return frame
