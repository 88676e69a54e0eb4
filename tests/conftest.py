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


# Modules that serve on fixed ports of 127.0.0.1 (capana decodes CAPF 3804, TVS 2445, SIP
# 5060/5061 and TFTP 69 on their own ports only) and capture them on lo: under pytest-xdist they
# share one group, so one worker runs them one after another and none finds its port taken.
FIXED_PORT_MODULES = frozenset(
    {"test_boot_capture", "test_capf", "test_registration", "test_tls12", "test_tvs"}
)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each module an xdist group of its own (its module fixtures built once), the fixed-port
    modules one group together: ``--dist loadgroup`` in pyproject's addopts."""
    for item in items:
        module = item.path.stem
        group = "fixed-ports" if module in FIXED_PORT_MODULES else module
        item.add_marker(pytest.mark.xdist_group(group))


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
