"""The README's promises: its finding table names every code capana can emit, and no other;
its examples are what capana prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from capana.cli import main
from capana.findings import CATALOGUE

README = Path(__file__).resolve().parent.parent / "README.md"


def test_finding_table_matches_the_catalogue() -> None:
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (info|warning|error) \|", README.read_text(), re.M)
    assert dict(rows) == {code: severity for code, (severity, _) in CATALOGUE.items()}


def test_first_lines_are_the_install_and_test_commands() -> None:
    first = README.read_text().split("```", 2)[1]
    assert "pip install -e . && capana scan pcaps/" in first
    assert "python3 -m pytest -q" in first


@pytest.mark.parametrize(
    "command",
    [
        "capana scan pcaps/phone-reboot.pcapng --trust callmanager=pcaps/phone-reboot-trust",
        "capana scan pcaps/phone-boot-files.pcap",
    ],
)
def test_examples_are_what_capana_prints(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(README.parent)
    text = README.read_text()
    start = text.index(f"$ {command}\n") + len(command) + 3
    shown = text[start : text.index("```", start)]
    main(shlex.split(command)[1:])
    assert capsys.readouterr().out.rstrip("\n") == shown.rstrip("\n")
