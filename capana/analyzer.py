"""``analyze``: captures and trust stores in, a :class:`~capana.model.Report` out. The one door.

Each capture is read and judged on its own (a handshake is judged against the trust stores and
its own capture's time), so captures can be analysed in any process or machine: the report is
the per-capture results in input order, devices grouped over all of them.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capana.devices import group_devices
from capana.domain import PHONE_SERVICES
from capana.file_findings import without_explained_rejections
from capana.file_judging import judge_files
from capana.findings import DEFAULT_EXPIRY_DAYS, store_label
from capana.inputs import (
    CrlArgument,
    PathArgument,
    TrustArgument,
    capture_files,
    load_keylog,
    load_stores,
)
from capana.judging import judge
from capana.keylog import KeyLog
from capana.model import CaptureSummary, FileReport, Handshake, HandshakeReport, Report
from capana.scan import ProgressCallback, read_capture
from capana.truststore import TrustStore, store_for

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future

# Distinct Python warnings (from the libraries capana uses) kept per capture; more are counted.
MAX_PYTHON_WARNINGS = 20

CaptureResult = tuple[CaptureSummary, tuple[HandshakeReport, ...], tuple[FileReport, ...]]


def analyze(
    paths: PathArgument,
    trust: TrustArgument = None,
    *,
    crls: CrlArgument = (),
    keylog: str | Path | KeyLog | None = None,
    jobs: int = 1,
    executor: Executor | None = None,
    progress: ProgressCallback | None = None,
    expiry_days: int = DEFAULT_EXPIRY_DAYS,
) -> Report:
    """Analyse capture files (folders are searched for captures) against trust stores.

    ``crls``: CRL files or bytes (PEM or DER) every store checks revocation with, at the
    capture's time, beside the ``.crl`` files of the stores' own folders.

    ``keylog``, an NSS key log file (``SSLKEYLOGFILE``), lets TLS 1.3 handshakes and what TLS
    1.0-1.3 CAPF, TVS, SIP and SCCP sessions carry be read; key log lines in pcapng Decryption
    Secrets Blocks are always used. ``jobs`` analyses up to that
    many files at once in processes of this machine (0: one per CPU); ``executor`` takes any
    :class:`concurrent.futures.Executor` instead (a Dask cluster's ``client.get_executor()``,
    say). The report is the same either way. Trust stores and the key log are loaded here,
    once, so a bad one raises TrustStoreError or KeyLogError before any work starts.
    ``progress(done, total)`` follows the bytes read (of finished files when in parallel).
    ``expiry_days``: a certificate expiring within that many days of the capture is a warning.

    >>> report = analyze("pcaps/phone-reboot.pcapng", trust="pcaps/phone-reboot-trust")
    >>> [h.client_leaf.kind for h in report.handshakes if h.client_leaf]  # doctest: +SKIP
    ['LSC', 'LSC', 'MIC', ...]
    """
    files = list(capture_files(paths))
    with _python_warnings() as loading:
        stores = load_stores(trust, crls)
        keys = load_keylog(keylog)
    workers = min(jobs or os.cpu_count() or 1, len(files))
    if executor is not None:
        results = _distributed(executor, files, stores, keys, progress, expiry_days)
    elif workers > 1:
        # Imported here: multiprocessing is a sixth of a small capture's start-up.
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, initializer=_quiet_on_interrupt) as pool:
            results = _distributed(pool, files, stores, keys, progress, expiry_days)
    else:
        results = [analyze_capture(path, stores, keys, progress, expiry_days) for path in files]
    report = assemble(results, stores)
    notes = (*loading, *_keylog_warnings(keylog, keys), *report.warnings)
    return dataclasses.replace(report, warnings=notes)


def analyze_capture(
    path: Path,
    stores: Mapping[str | None, TrustStore],
    keys: KeyLog | None = None,
    progress: ProgressCallback | None = None,
    expiry_days: int = DEFAULT_EXPIRY_DAYS,
) -> CaptureResult:
    """One capture read and judged: what a worker does. Never raises on a bad capture.

    Its files are judged after its handshakes, against them (the same phone, the same capture).
    Python warnings raised meanwhile (a library's note on odd DER, say) become the capture's
    warnings instead of lines on stderr.
    """
    with _python_warnings() as caught:
        facts = read_capture(path, progress, keys)
        summary, start = facts.summary, facts.summary.start
        secure = _tls_clients(facts.handshakes)
        handshakes = tuple(
            judge(
                handshake,
                stores,
                start,
                expiry_days=expiry_days,
                tried_tls=handshake.cleartext and handshake.client_host in secure,
            )
            for handshake in facts.handshakes
        )
        files = judge_files(facts.transfers, handshakes, stores, start)
        handshakes = without_explained_rejections(handshakes, files)
    if caught:
        summary = dataclasses.replace(summary, warnings=(*summary.warnings, *caught))
    return summary, handshakes, files


def assemble(results: Sequence[CaptureResult], stores: Mapping[str | None, TrustStore]) -> Report:
    """The report of per-capture results, in the order given."""
    handshakes = tuple(record for _, records, _ in results for record in records)
    files = tuple(file for _, _, reports in results for file in reports)
    certificates = {cert.sha256: cert for store in stores.values() for cert in store.certificates}
    return Report(
        captures=tuple(summary for summary, _, _ in results),
        handshakes=handshakes,
        devices=group_devices(handshakes, files),
        trust_stores=tuple(sorted(name or "default" for name in stores)),
        warnings=_unused_stores(handshakes, stores),
        store_certificates=tuple(certificates.values()),
        files=files,
    )


def _tls_clients(handshakes: Sequence[Handshake]) -> frozenset[str]:
    """Clients that opened TLS to a phone service (a phone that tried to register secure)."""
    return frozenset(
        h.client_host for h in handshakes if not h.cleartext and h.service in PHONE_SERVICES
    )


def _unused_stores(
    handshakes: Sequence[HandshakeReport], stores: Mapping[str | None, TrustStore]
) -> tuple[str, ...]:
    """A warning for each store that judged no handshake: a wrong name or port, most likely."""
    used = {
        id(store_for(h.service, h.server_port, stores))
        for record in handshakes
        if not (h := record.handshake).cleartext
    }
    return tuple(
        f"{store_label(name)} ({', '.join(store.sources[:2])}) judged no handshake: no "
        "connection in the captures is of its service or port"
        for name, store in stores.items()
        if id(store) not in used
    )


def _keylog_warnings(given: str | Path | KeyLog | None, keys: KeyLog | None) -> tuple[str, ...]:
    if keys is None or len(keys):
        return ()
    name = given if isinstance(given, str | Path) else "the key log given"
    skipped = f" ({keys.problems[0]})" if keys.problems else ""
    return (f"{name}: no usable secret in the key log{skipped}",)


@contextmanager
def _python_warnings() -> Iterator[list[str]]:
    """Collect the Python warnings raised inside, each distinct message once (bounded)."""
    caught: list[str] = []
    dropped = 0

    def keep(message: Any, category: type[Warning], *_: Any, **__: Any) -> None:
        nonlocal dropped
        text = f"{category.__name__}: {message}"
        if text in caught:
            return
        if len(caught) < MAX_PYTHON_WARNINGS:
            caught.append(text)
        else:
            dropped += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = keep
        yield caught
    if dropped:
        caught.append(f"{dropped} more Python warnings")


def _distributed(
    executor: Executor,
    files: list[Path],
    stores: Mapping[str | None, TrustStore],
    keys: KeyLog | None,
    progress: ProgressCallback | None,
    expiry_days: int,
) -> list[CaptureResult]:
    """Every file submitted to ``executor``; results in input order as they finish."""
    from concurrent.futures import as_completed  # not for a serial run: part of its start-up

    futures: dict[Future[CaptureResult], int] = {
        executor.submit(analyze_capture, path, dict(stores), keys, None, expiry_days): i
        for i, path in enumerate(files)
    }
    results: list[CaptureResult | None] = [None] * len(files)
    sizes = [_size(path) for path in files]
    done = 0
    for future in as_completed(futures):
        index = futures[future]
        results[index] = future.result()
        done += sizes[index]
        if progress is not None:
            progress(done, sum(sizes))
    return [result for result in results if result is not None]


def _quiet_on_interrupt() -> None:
    """Ctrl-C in a worker: exit at once, no traceback; the parent reports the interrupt."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
