"""capana in Jupyter: report objects shown as HTML, and the report as pandas DataFrames
(``pip install capana[notebook]``).

The display is registered with IPython's formatters by type name, so the model never imports a
view: ``import capana`` in a notebook calls :func:`register_display`. The DataFrame columns are
the CSV view's and the JSON report's names (:mod:`capana.views.records`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pandas

    from capana.model import Report

_TIME_COLUMNS = ("start", "leaf_not_before", "leaf_not_after", "not_before", "not_after")
# (module, class) of each report type, and the name of its HTML fragment in capana.views.html.
_FRAGMENTS = (
    ("capana.model.report", "Report", "report_fragment"),
    ("capana.model.report", "Device", "device_fragment"),
    ("capana.model.handshakes", "HandshakeReport", "handshake_fragment"),
    ("capana.model.certificates", "CertificateReport", "certificate_fragment"),
)


def register_display() -> None:
    """Show report objects as HTML in the running IPython, if any (idempotent)."""
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:
        return
    shell: Any = get_ipython()  # type: ignore[no-untyped-call,unused-ignore]
    if shell is None or shell.display_formatter is None:
        return
    formatter = shell.display_formatter.formatters["text/html"]
    for module, name, fragment in _FRAGMENTS:
        formatter.for_type_by_name(module, name, _fragment(fragment))


def _fragment(name: str) -> Callable[[Any], str]:
    def render(item: Any) -> str:
        from capana.views import html

        return str(getattr(html, name)(item))

    return render


class Frames(NamedTuple):
    """One DataFrame per table of the report."""

    handshakes: pandas.DataFrame
    devices: pandas.DataFrame
    certificates: pandas.DataFrame
    findings: pandas.DataFrame
    files: pandas.DataFrame  # one row per file transfer (trust lists, configurations)


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
    from capana.views.records import HANDSHAKE_COLUMNS, handshake_row

    rows = [handshake_row(record) for record in report.handshakes]
    return _frame(rows, HANDSHAKE_COLUMNS)


def frames(report: Report) -> Frames:
    """Handshakes, devices, distinct certificates, findings (one row per connection or file)
    and file transfers.

    >>> frames(report).findings.groupby(["device", "code"]).size()  # doctest: +SKIP
    """
    from capana.views.records import (
        FILE_COLUMNS,
        certificate_row,
        device_row,
        file_row,
        finding_rows,
    )

    return Frames(
        handshakes=handshake_frame(report),
        devices=_frame([device_row(device) for device in report.devices]),
        certificates=_frame([certificate_row(cert) for cert in report.certificates]),
        findings=_frame([row for device in report.devices for row in finding_rows(device)]),
        files=_frame([file_row(file) for file in report.files], FILE_COLUMNS),
    )


def _frame(rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None) -> Any:
    pandas = require_pandas()
    frame = pandas.DataFrame(rows, columns=list(columns) if columns else None)
    for column in _TIME_COLUMNS:
        if column in frame.columns:
            frame[column] = pandas.to_datetime(frame[column], utc=True)
    return frame
