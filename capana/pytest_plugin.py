"""pytest plugin for lab checks: the ``capana_report`` fixture and assertions that name the phone.

Registered through the ``pytest11`` entry point, so installing capana is enough::

    from capana.pytest_plugin import assert_all_phones_used, assert_no_rejected_handshakes

    def test_reboot(capana_report):
        report = capana_report("captures/reboot.pcapng", trust="trust/CallManager-trust")
        assert_all_phones_used(report, kind="LSC", issuer="CAPF-0992727f")
        assert_no_rejected_handshakes(report)

capana itself is imported when the fixture is first used, not when pytest starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from capana.model import CertificateReport, Device, HandshakeReport, Report

__all__ = [
    "assert_all_phones_used",
    "assert_device_used",
    "assert_no_findings",
    "assert_no_rejected_handshakes",
]

_SEVERITIES = ("info", "warning", "error")
# The kinds a phone's certificate can be checked for.
_KINDS = ("LSC", "MIC")


@pytest.fixture(scope="session")
def _capana_reports() -> dict[tuple[Any, ...], Report]:
    """Reports by (paths, trust), so tests that ask for the same capture share one analysis."""
    return {}


@pytest.fixture
def capana_report(
    request: pytest.FixtureRequest, _capana_reports: dict[tuple[Any, ...], Report]
) -> Callable[..., Report]:
    """A factory: ``capana_report(path_or_paths, trust=...) -> Report``.

    Relative paths are taken from the test file's folder, else from the working directory.
    A capture that cannot be read fails the test; it never passes as "no phone, no problem".
    """
    base = Path(request.path).parent

    def analyse(paths: str | Path | Iterable[str | Path], trust: Any = None) -> Report:
        from capana.analyzer import analyze

        located = [_locate(p, base) for p in _as_list(paths)]
        key = (tuple(located), repr(_locate_trust(trust, base)))
        if key not in _capana_reports:
            _capana_reports[key] = analyze(located, trust=_locate_trust(trust, base))
        report = _capana_reports[key]
        unreadable = [error for c in report.captures if not c.readable for error in c.errors]
        if unreadable or not report.captures:
            pytest.fail("capana: " + ("; ".join(unreadable) or f"no capture in {located}"))
        return report

    return analyse


# Assertions ---------------------------------------------------------------------------------


def assert_all_phones_used(report: Report, kind: str, issuer: str | None = None) -> None:
    """Every phone presented only ``kind`` ("LSC"/"MIC") certificates, from ``issuer`` if given.

    ``issuer`` matches the issuer's CN (``CAPF-0992727f``) or its whole RFC 4514 name. A name
    proves nothing on its own: when the report was made with a trust store, the certificate must
    also have verified against it (a regenerated CAPF keeps its name). A report without any
    phone fails: an empty capture proves nothing.
    """
    __tracebackhide__ = True
    _check_kind(kind)
    wanted = f"{_a(kind)} {kind}" + (f" from {issuer}" if issuer else "")
    if not report.devices:
        raise AssertionError(f"no phone in the capture, so none presented {wanted}")
    problems = {device: _mismatches(device, kind, issuer) for device in report.devices}
    lines = [f"{_who(d)}: {reason}" for d, reasons in problems.items() for reason in reasons]
    if lines:
        failed = sum(1 for reasons in problems.values() if reasons)
        raise AssertionError(
            f"{failed} of {len(report.devices)} phone(s) did not present {wanted}:\n  "
            + "\n  ".join(lines)
        )


def assert_device_used(report: Report, device: str, kind: str, issuer: str | None = None) -> None:
    """Device ``device`` (``SEP…``, or the client address) presented only ``kind`` certificates."""
    __tracebackhide__ = True
    _check_kind(kind)
    found = [d for d in report.devices if d.name.casefold() == device.casefold()]
    if not found:
        seen = ", ".join(d.name for d in report.devices) or "none"
        raise AssertionError(f"{device} is not in the capture (devices seen: {seen})")
    reasons = _mismatches(found[0], kind, issuer)
    if reasons:
        raise AssertionError(f"{_who(found[0])}: " + "; ".join(reasons))


def assert_no_rejected_handshakes(report: Report) -> None:
    """No handshake ended in a fatal alert (the server, or the phone, refused the other)."""
    __tracebackhide__ = True
    rejected = [
        (device, record)
        for device in report.devices
        for record in device.handshakes
        if record.handshake.outcome == "rejected"
    ]
    if rejected:
        lines = [f"{_who(device)}: {_rejection(record)}" for device, record in rejected]
        raise AssertionError(f"{len(rejected)} handshake(s) rejected:\n  " + "\n  ".join(lines))


def assert_no_findings(report: Report, severity: str = "error") -> None:
    """No finding of ``severity`` ("info", "warning", "error") or worse."""
    __tracebackhide__ = True
    if severity not in _SEVERITIES:
        raise ValueError(f"severity={severity!r}: use one of {', '.join(map(repr, _SEVERITIES))}")
    floor = _SEVERITIES.index(severity)
    lines = [
        f"{_who(device)}: {finding.severity} {finding.code}: {finding.message}"
        for device in report.devices
        for finding in dict.fromkeys(device.findings)
        if _SEVERITIES.index(finding.severity) >= floor
    ]
    if lines:
        raise AssertionError(
            f"{len(lines)} finding(s) of severity {severity} or worse:\n  " + "\n  ".join(lines)
        )


# Helpers ------------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    """A wrong ``kind`` is a mistake in the test, said as such (never a silent pass or fail)."""
    if kind not in _KINDS:
        raise ValueError(f"kind={kind!r}: use one of {', '.join(map(repr, _KINDS))}")


def _mismatches(device: Device, kind: str, issuer: str | None) -> list[str]:
    """Why ``device`` did not present only ``kind`` (from ``issuer``); empty when it did."""
    if not device.certificates:
        statuses = sorted({r.handshake.client_cert_status for r in device.handshakes})
        return [f"presented no certificate ({', '.join(statuses)})"]
    reasons = []
    for cert in device.certificates:
        presented = f"presented {_a(cert.kind)} {cert.kind} issued by {_issuer(cert)}"
        if cert.kind != kind:
            reasons.append(presented + _where(device, cert))
        elif issuer and not _issuer_matches(cert, issuer):
            reasons.append(f"{presented}, not {issuer}")
        else:
            reasons += [f"{presented}, but {verdict}" for verdict in _unverified(device, cert)]
    return reasons


def _unverified(device: Device, cert: CertificateReport) -> list[str]:
    """The store verdicts other than trusted that ``cert`` got on the device's connections."""
    verdicts = {
        (r.validation.status, r.validation.store or "the default store")
        for r in device.handshakes
        if r.client_leaf is not None
        and r.client_leaf.sha256 == cert.sha256
        and r.validation.status not in ("trusted", "not_checked")
    }
    return [f"it is {status} against {store}" for status, store in sorted(verdicts)]


def _a(kind: str) -> str:
    """The article as the kind is spoken: an LSC ("el-es-see"), a MIC ("mick")."""
    return "an" if kind in ("LSC", "other") else "a"


def _issuer(cert: CertificateReport) -> str:
    return cert.issuer_label or "an unreadable issuer"


def _issuer_matches(cert: CertificateReport, issuer: str) -> bool:
    full = cert.parsed.issuer if cert.parsed else ""
    return issuer.casefold() in (_issuer(cert).casefold(), full.casefold())


def _where(device: Device, cert: CertificateReport) -> str:
    services = dict.fromkeys(
        r.handshake.service
        for r in device.handshakes
        if r.client_leaf is not None and r.client_leaf.sha256 == cert.sha256
    )
    return f" on {', '.join(services)}" if services else ""


def _rejection(record: HandshakeReport) -> str:
    handshake = record.handshake
    fatal = [a for a in handshake.alerts if a.level == "fatal"]
    alert = f"{fatal[0].sender} sent {fatal[0].description}" if fatal else "rejected"
    leaf = record.client_leaf
    presented = f", phone presented {leaf.kind} from {_issuer(leaf)}" if leaf else ""
    why = f"; {record.findings[0].code}: {record.findings[0].message}" if record.findings else ""
    return (
        f"{handshake.client} -> {handshake.server} ({handshake.service}): {alert}{presented}{why}"
    )


def _who(device: Device) -> str:
    details = ", ".join(filter(None, [device.model, *device.addresses]))
    return f"{device.name} ({details})" if details and details != device.name else device.name


def _as_list(paths: str | Path | Iterable[str | Path]) -> list[str | Path]:
    return [paths] if isinstance(paths, str | Path) else list(paths)


def _locate(path: str | Path, base: Path) -> Path:
    path = Path(path)
    beside_test = base / path
    return beside_test if not path.is_absolute() and beside_test.exists() else path


def _locate_trust(trust: Any, base: Path) -> Any:
    """Relative trust paths too (also in ``NAME=PATH``), like capture paths."""
    if isinstance(trust, Path):
        return _locate(trust, base)
    if isinstance(trust, str):
        name, sep, path = trust.rpartition("=")
        return f"{name}{sep}{_locate(path, base)}"
    if isinstance(trust, dict):
        return {name: _locate_trust(value, base) for name, value in trust.items()}
    if isinstance(trust, list | tuple):
        return [_locate_trust(item, base) for item in trust]
    return trust
