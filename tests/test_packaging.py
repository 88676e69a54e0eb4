"""How capana installs: every package listed, the scapy layers as ``capana.dissectors`` (from
the ``dissectors/`` folder), no top-level ``dissectors`` needed, scapy loaded only for a file
that needs its layers."""

from __future__ import annotations

import ast
import subprocess
import sys

import tomllib
from conftest import PROJECT, SAMPLE_PCAPS

SETUPTOOLS = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_is_listed() -> None:
    tree = {
        ".".join(init.parent.relative_to(PROJECT).parts)
        for init in (PROJECT / "capana").rglob("__init__.py")
    }
    mapped = {name: PROJECT / folder for name, folder in SETUPTOOLS["package-dir"].items()}
    assert mapped == {"capana.dissectors": PROJECT / "dissectors"}
    assert (PROJECT / "dissectors" / "__init__.py").is_file()
    assert set(SETUPTOOLS["packages"]) == tree | set(mapped)


def test_nothing_imports_a_top_level_dissectors() -> None:
    for folder in ("capana", "dissectors", "tests"):
        for path in (PROJECT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                assert not any(n.split(".")[0] == "dissectors" for n in names), path


def test_scapy_loads_only_when_a_signed_file_is_met() -> None:
    code = f"""
import sys, capana
capana.analyze({str(SAMPLE_PCAPS / "phone-reboot.pcapng")!r})  # its configurations are plain XML
before = "scapy" in sys.modules
report = capana.analyze({str(SAMPLE_PCAPS / "phone-boot-files.pcap")!r})  # an ITL, a .sgn
print(before, "scapy" in sys.modules, len(report.files))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, files = done.stdout.split()
    assert (before, after) == ("False", "True") and int(files) >= 4
