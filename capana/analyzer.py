"""``analyze``: captures and trust stores in, a :class:`~capana.model.Report` out. The one door.

Each capture is read and judged on its own (a handshake is judged against the trust stores and
its own capture's time), so captures can be analysed in any process or machine: the report is
the per-capture results in input order, devices grouped over all of them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from pathlib import Path

from capana.devices import group_devices
from capana.file_judging import judge_files
from capana.inputs import PathArgument, TrustArgument, capture_files, load_keylog, load_stores
from capana.judging import judge
from capana.keylog import KeyLog
from capana.model import CaptureSummary, FileReport, HandshakeReport, Report
from capana.scan import ProgressCallback, read_capture
from capana.truststore import TrustStore

CaptureResult = tuple[CaptureSummary, tuple[HandshakeReport, ...], tuple[FileReport, ...]]


def analyze(
    paths: PathArgument,
    trust: TrustArgument = None,
    *,
    keylog: str | Path | KeyLog | None = None,
    jobs: int = 1,
    executor: Executor | None = None,
    progress: ProgressCallback | None = None,
) -> Report:
    """Analyse capture files (folders are searched for captures) against trust stores.

    ``keylog``, an NSS key log file (``SSLKEYLOGFILE``), lets TLS 1.3 handshakes be read; key
    log lines in pcapng Decryption Secrets Blocks are always used. ``jobs`` analyses up to that
    many files at once in processes of this machine (0: one per CPU); ``executor`` takes any
    :class:`concurrent.futures.Executor` instead (a Dask cluster's ``client.get_executor()``,
    say). The report is the same either way. Trust stores and the key log are loaded here,
    once, so a bad one raises TrustStoreError or KeyLogError before any work starts.
    ``progress(done, total)`` follows the bytes read (of finished files when in parallel).

    >>> report = analyze("pcaps/phone-reboot.pcapng", trust="pcaps/phone-reboot-trust")
    >>> [h.client_leaf.kind for h in report.handshakes if h.client_leaf]  # doctest: +SKIP
    ['LSC', 'LSC', 'MIC', ...]
    """
    files = list(capture_files(paths))
    stores = load_stores(trust)
    keys = load_keylog(keylog)
    workers = min(jobs or os.cpu_count() or 1, len(files))
    if executor is not None:
        results = _distributed(executor, files, stores, keys, progress)
    elif workers > 1:
        with ProcessPoolExecutor(workers, initializer=_quiet_on_interrupt) as pool:
            results = _distributed(pool, files, stores, keys, progress)
    else:
        results = [analyze_capture(path, stores, keys, progress) for path in files]
    return assemble(results, stores)


def analyze_capture(
    path: Path,
    stores: Mapping[str | None, TrustStore],
    keys: KeyLog | None = None,
    progress: ProgressCallback | None = None,
) -> CaptureResult:
    """One capture read and judged: what a worker does. Never raises on a bad capture.

    Its files are judged after its handshakes, against them (the same phone, the same capture).
    """
    facts = read_capture(path, progress, keys)
    start = facts.summary.start
    handshakes = tuple(judge(handshake, stores, start) for handshake in facts.handshakes)
    files = judge_files(facts.transfers, handshakes, stores, start)
    return facts.summary, handshakes, files


def assemble(results: Sequence[CaptureResult], stores: Mapping[str | None, TrustStore]) -> Report:
    """The report of per-capture results, in the order given."""
    handshakes = tuple(record for _, records, _ in results for record in records)
    files = tuple(file for _, _, reports in results for file in reports)
    return Report(
        captures=tuple(summary for summary, _, _ in results),
        handshakes=handshakes,
        devices=group_devices(handshakes, files),
        trust_stores=tuple(sorted(name or "default" for name in stores)),
        files=files,
    )


def _distributed(
    executor: Executor,
    files: list[Path],
    stores: Mapping[str | None, TrustStore],
    keys: KeyLog | None,
    progress: ProgressCallback | None,
) -> list[CaptureResult]:
    """Every file submitted to ``executor``; results in input order as they finish."""
    futures: dict[Future[CaptureResult], int] = {
        executor.submit(analyze_capture, path, dict(stores), keys): i
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
