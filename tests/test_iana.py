"""capana.iana: the registry tables give the names capana printed with scapy, and Wireshark agrees.

capana named cipher suites and alerts with scapy's tables until the tables moved into the
package; those names are in the JSON report, so every code scapy names must keep its name.
tshark (``-G values``) is the independent check on the names IANA's registry added.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from scapy.layers.tls.crypto.suites import _tls_cipher_suites
from scapy.layers.tls.record import _tls_alert_description

from capana import iana, tls

ROOT = Path(__file__).resolve().parent.parent

# Codes where capana keeps scapy's name and Wireshark (like IANA) spells it otherwise.
SCAPY_SPELLINGS = {0x0026, 0x0029, 0xC0AA, 0xC0AB, 0xCC13, 0xCC14, 0xCC15}


def test_every_cipher_suite_scapy_names_keeps_its_name() -> None:
    # A ServerHello carries a 16-bit suite; scapy's 24-bit SSLv2 kinds cannot reach the name.
    reachable = {code: name for code, name in _tls_cipher_suites.items() if code <= 0xFFFF}
    assert len(reachable) > 250
    for code, name in reachable.items():
        assert tls.cipher_suite_name(code) == name, hex(code)


def test_every_alert_scapy_names_keeps_its_name() -> None:
    assert len(_tls_alert_description) > 30
    for code, name in _tls_alert_description.items():
        assert tls.alert_name(code) == name, code


def test_codes_without_a_name_read_as_before() -> None:
    assert tls.cipher_suite_name(0xC030) == "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    assert tls.cipher_suite_name(0x0A0A) == "0x0a0a"  # GREASE: reserved, not a suite
    assert tls.cipher_suite_name(None) is None
    assert tls.alert_name(48) == "unknown_ca"
    assert tls.alert_name(200) == "alert_200"
    assert tls.alert_name(None) is None
    assert iana.SIGNATURE_SCHEMES[0x0804] == "rsa_pss_rsae_sha256"


@cache
def tshark_values(field: str) -> dict[int, str]:
    """Wireshark's names for a field's values (``tshark -G values`` rows: V, field, code, name)."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (apt-get install tshark)")
    out = subprocess.run(
        ["tshark", "-G", "values"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    names = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "V" and parts[1] == field:
            names[int(parts[2], 0)] = parts[3]
    assert names, f"tshark -G values lists no names for {field}"
    return names


def test_cipher_suite_names_agree_with_wireshark() -> None:
    theirs = tshark_values("tls.handshake.ciphersuite")
    differ = {code for code, name in iana.CIPHER_SUITES.items() if theirs.get(code, name) != name}
    assert differ <= SCAPY_SPELLINGS, sorted(hex(code) for code in differ - SCAPY_SPELLINGS)
    # Every suite Wireshark and the table both name: most of the table, not a sample.
    assert len(set(theirs) & set(iana.CIPHER_SUITES)) > 340


def test_signature_scheme_names_agree_with_wireshark() -> None:
    theirs = tshark_values("tls.handshake.sig_hash_alg")
    shared = set(theirs) & set(iana.SIGNATURE_SCHEMES)
    assert len(shared) >= 17
    assert {code: theirs[code] for code in shared} == {
        code: iana.SIGNATURE_SCHEMES[code] for code in shared
    }


def test_alert_codes_agree_with_wireshark() -> None:
    """Wireshark writes "Unknown CA" where IANA writes unknown_ca: the codes must match."""
    theirs = tshark_values("tls.alert_message.desc")

    def words(name: str) -> str:
        return name.removesuffix("_RESERVED").replace("_", " ").lower()

    assert {code: words(name) for code, name in iana.ALERTS.items()} == {
        code: theirs[code].lower() for code in iana.ALERTS
    }


def test_scanning_a_capture_imports_no_scapy(tmp_path: Path) -> None:
    """The CLI on a real TLS capture (cipher suite and names printed) never loads scapy."""
    script = (
        "import sys\n"
        "from capana.cli import main\n"
        "args = ['scan', 'pcaps/reordered-cert.pcap', '--format', 'json', '-o', sys.argv[1]]\n"
        "status = main(args)\n"
        "assert status == 0, status\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scapy'))\n"
    )
    out = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert '"cipher_suite": "TLS_' in out.read_text()
