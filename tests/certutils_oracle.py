"""usecallmanager.nz's certutils as an independent oracle, run as separate processes.

``tlvfile``, ``sgnfile`` and ``enccnf`` build the files phones accept and print what a file holds
(``-p``). They live in ``../shared/oracles/certutils`` (never copied into the project) and need
``cryptography`` (and ``lxml`` for ``enccnf``): the test venv has both. Timestamps are printed in
local time, so every run sets ``TZ=UTC``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT

CERTUTILS = PROJECT.parent / "shared" / "oracles" / "certutils"


def certutils_python() -> str:
    """An interpreter that runs the certutils, or skip the test saying why."""
    if not (CERTUTILS / "tlvfile").is_file():
        pytest.skip(f"certutils oracle not present at {CERTUTILS}")
    probe = subprocess.run([sys.executable, "-c", "import cryptography, lxml"], check=False)
    if probe.returncode != 0:
        pytest.skip("certutils need cryptography and lxml: pip install -e '.[test]'")
    return sys.executable


def run(tool: str, *args: str, cwd: Path) -> str:
    """Run one certutils program in ``cwd``; its standard output (it must succeed)."""
    command = [certutils_python(), str(CERTUTILS / tool), *args]
    env = {**os.environ, "TZ": "UTC"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=60)
    assert done.returncode == 0, f"{tool} {args}: {done.stderr}"
    return done.stdout


def printed(output: str) -> list[dict[str, str]]:
    """``-p`` output as blocks (header first, then one per record) of ``{label: value}``."""
    blocks: list[dict[str, str]] = []
    for chunk in output.split("\n\n"):
        fields = {}
        for line in chunk.splitlines():
            label, _, value = line.partition(":")
            if value:
                fields[label.strip()] = value.strip()
        if fields:
            blocks.append(fields)
    return blocks


def verdict(output: str) -> str:
    """The oracle's last word on the signature: "Valid signature", "Invalid signature", ..."""
    return output.strip().splitlines()[-1]
