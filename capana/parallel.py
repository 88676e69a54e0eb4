"""``analyze`` over many capture files in worker processes, merged into the serial run's report.

Each file is analysed on its own (captures do not share state: a handshake is judged against the
trust stores and its own capture's time), so concatenating per-file reports in input order and
grouping devices over all handshakes gives the report a single ``analyze`` call gives.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from capana.analyzer import TrustArgument, analyze, capture_files, load_stores
from capana.devices import group_devices
from capana.keylog import KeyLog
from capana.report import Report
from capana.scan import ProgressCallback


def analyze_files(
    paths: str | Path | Iterable[str | Path],
    trust: TrustArgument = None,
    *,
    jobs: int = 1,
    progress: ProgressCallback | None = None,
    keylog: str | Path | KeyLog | None = None,
) -> Report:
    """Like :func:`capana.analyze`, with up to ``jobs`` processes (0: one per CPU).

    Trust stores and the key log are loaded once, here, so a bad one fails before any work
    starts. With one job ``progress`` follows the bytes of each file; with more, the bytes of
    finished files.
    """
    files = list(capture_files(paths))
    stores = load_stores(trust)
    keys = KeyLog.read(keylog) if isinstance(keylog, str | Path) else keylog
    workers = min(jobs or os.cpu_count() or 1, len(files))
    if workers <= 1:
        return analyze(files, trust=stores, progress=progress, keylog=keys)
    sizes = [_size(path) for path in files]
    parts: list[Report | None] = [None] * len(files)
    with ProcessPoolExecutor(max_workers=workers, initializer=_quiet_on_interrupt) as pool:
        pending = {
            pool.submit(analyze, path, stores, keylog=keys): i for i, path in enumerate(files)
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                parts[pending.pop(future)] = future.result()
            if progress is not None:
                finished = sum(size for size, part in zip(sizes, parts, strict=True) if part)
                progress(finished, sum(sizes))
    return merge_reports([part for part in parts if part is not None])


def merge_reports(parts: Sequence[Report]) -> Report:
    """One report from per-file reports (same trust stores), in the order given."""
    handshakes = tuple(record for part in parts for record in part.handshakes)
    return Report(
        captures=tuple(capture for part in parts for capture in part.captures),
        handshakes=handshakes,
        devices=group_devices(handshakes),
        trust_stores=parts[0].trust_stores if parts else (),
    )


def _quiet_on_interrupt() -> None:
    """Ctrl-C in a worker: exit at once, no traceback; the parent reports the interrupt."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
