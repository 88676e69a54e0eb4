"""One door, any executor: the report is the serial run's whether files go to processes of this
machine (``jobs``), a thread pool, or a Dask cluster (``client.get_executor()``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import capana

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
FILES = sorted(PCAPS.glob("*.pcap*"))
TRUST = PCAPS / "phone-reboot-trust"


@pytest.fixture(scope="module")
def serial() -> capana.Report:
    return capana.analyze(FILES, trust=TRUST)


def test_jobs_give_the_serial_report(serial: capana.Report) -> None:
    assert capana.analyze(FILES, trust=TRUST, jobs=2) == serial


def test_any_executor_gives_the_serial_report(serial: capana.Report) -> None:
    seen: list[tuple[int, int]] = []
    with ThreadPoolExecutor(3) as pool:
        report = capana.analyze(
            FILES, trust=TRUST, executor=pool, progress=lambda *done: seen.append(done)
        )
    assert report == serial
    assert len(seen) == len(FILES) and seen[-1][0] == seen[-1][1]


def test_a_dask_cluster_gives_the_serial_report(serial: capana.Report) -> None:
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed not installed: pip install -e '.[dask]'"
    )
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        report = capana.analyze(FILES, trust=TRUST, executor=client.get_executor())
    assert report == serial
