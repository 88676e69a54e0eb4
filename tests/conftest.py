"""Shared test setup: where the real public data lives, and the sample-capture generator."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT.parent / "shared" / "data"
SAMPLE_PCAPS = PROJECT / "pcaps"

# The generator that made the shipped captures also builds the captures the tests need.
sys.path.insert(0, str(SAMPLE_PCAPS))


def shared_captures() -> list[object]:
    """The real public captures, as pytest parameters; one skipped parameter saying why when
    ../shared/data is absent (a fresh clone)."""
    from capana.inputs import capture_files

    folder = SHARED_DATA / "pcaps"
    if not folder.is_dir():
        reason = f"real public test data not present at {SHARED_DATA}"
        return [pytest.param(folder, marks=pytest.mark.skip(reason=reason), id="shared-absent")]
    return [pytest.param(path, id=path.name) for path in sorted(capture_files(folder))]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real Cisco certificates and public captures (never copied into the project)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real public test data not present at {SHARED_DATA}")
    return SHARED_DATA


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: the bounded fuzz run (about a minute); skip with -m 'not fuzz'"
    )


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> object:
    """The report of a 500-phone reboot of real OpenSSL handshakes with mixed verdicts
    (``scenarios.site_reboot``: trusted LSCs and MICs, moved phones, old firmware, expiring
    LSCs, cleartext SCCP, PCs), analysed against its CallManager-trust."""
    from samplegen import scenarios

    from capana import analyze

    scenario = scenarios.site_reboot(tmp_path_factory.mktemp("site"), phones=500)
    return analyze(scenario.capture, trust={"callmanager": scenario.trust_dir})
