"""Test helpers for the CAPF and TVS daemons: when they can run, and with which Python.

The daemons (``../shared/oracles/usecallmanager-daemons``) run as separate processes through
``samplegen.daemons``; they need root and tcpdump to be captured, and a Python with
cryptography 41. capana decodes CAPF on 3804 and TVS on 2445 only, so end-to-end runs listen on
those ports (``session_capture.service_port``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import PROJECT
from samplegen import daemons, loopback

DAEMONS = PROJECT.parent / "shared" / "oracles" / "usecallmanager-daemons"
NOW = datetime.now(timezone.utc)
WINDOW = {"not_before": NOW - timedelta(days=1), "not_after": NOW + timedelta(days=365)}


def daemon_python(factory: pytest.TempPathFactory) -> Path:
    """A Python for the daemons; skips (saying why) when they cannot run and be captured."""
    if not DAEMONS.is_dir():
        pytest.skip(f"the CAPF/TVS daemons are not at {DAEMONS}")
    if not (loopback.TCPDUMP and os.geteuid() == 0):
        pytest.skip("needs root and tcpdump to capture on lo")
    python = daemons.oracle_python(factory.getbasetemp())
    if python is None:
        pytest.skip(f"no Python with {daemons.ORACLE_CRYPTOGRAPHY} for the daemons")
    return python
