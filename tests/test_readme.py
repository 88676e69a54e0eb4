"""The README's promises: its finding table names every code capana can emit, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from capana.findings import CATALOGUE

README = Path(__file__).resolve().parent.parent / "README.md"


def test_finding_table_matches_the_catalogue() -> None:
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (info|warning|error) \|", README.read_text(), re.M)
    assert dict(rows) == {code: severity for code, (severity, _) in CATALOGUE.items()}


def test_first_lines_are_the_install_and_test_commands() -> None:
    first = README.read_text().split("```", 2)[1]
    assert "pip install -e . && capana scan pcaps/" in first
    assert "python3 -m pytest -q" in first
