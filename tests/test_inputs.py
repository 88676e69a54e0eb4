"""What capana is given, checked: trust store names and ports, stores no handshake used, key logs
without a secret, and Python warnings from the libraries (kept in the report, off stderr)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from samplegen.scenarios import CAPTURE_TIME, KeyRing, build_cluster
from samplegen.tlsrun import run_handshake
from samplegen.wire import TcpConversation, write_pcap

from capana import analyze
from capana.inputs import load_stores
from capana.truststore import TrustStoreError

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
REBOOT = PCAPS / "phone-reboot.pcapng"
TRUST = PCAPS / "phone-reboot-trust"


@pytest.mark.parametrize(
    ("trust", "message"),
    [
        ([f"99999={TRUST}"], "99999 is not a TCP port"),
        ([f"0={TRUST}"], "0 is not a TCP port"),
        ([f"callmanger={TRUST}"], "unknown trust store name 'callmanger'"),
        ([f"callmanager={TRUST}", f"callmanager={TRUST}"], "'callmanager' given twice"),
        ([str(TRUST), str(TRUST)], "the default store given twice"),
        (["callmanager="], "no path after 'callmanager='"),
        ({"tvs-trust": TRUST}, "unknown trust store name 'tvs-trust'"),
    ],
    ids=["port-99999", "port-0", "typo", "name-twice", "default-twice", "empty-path", "mapping"],
)
def test_bad_trust_options_are_refused(trust: object, message: str) -> None:
    with pytest.raises(TrustStoreError, match=message):
        load_stores(trust)  # type: ignore[arg-type]


def test_a_port_and_every_known_name_are_accepted() -> None:
    stores = load_stores([f"2443={TRUST}", f"capf={TRUST}", f"ise={TRUST}", str(TRUST)])
    assert set(stores) == {"2443", "capf", "ise", None}


def run(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "capana", "scan", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_cli_refuses_a_bad_port_with_exit_2() -> None:
    result = run(REBOOT, "--trust", f"99999={TRUST}")
    assert result.returncode == 2
    assert "99999 is not a TCP port (1-65535)" in result.stderr and "Traceback" not in result.stderr


def test_a_store_no_handshake_used_is_a_warning() -> None:
    report = analyze(REBOOT, trust={"callmanager": TRUST, "ise": TRUST, "8443": TRUST})
    unused = [w for w in report.warnings if "judged no handshake" in w]
    assert len(unused) == 2
    assert any(w.startswith("the ISE trusted certificates") for w in unused)
    assert any(w.startswith("the trust store for port 8443") for w in unused)
    result = run(REBOOT, "--trust", f"callmanager={TRUST}", "--trust", f"asa={TRUST}")
    assert result.returncode == 0
    assert "capana: warning: the ASA trustpoints" in result.stderr


def test_a_key_log_without_a_usable_secret_is_a_warning(tmp_path: Path) -> None:
    keys = tmp_path / "empty.keys"
    keys.write_text("# nothing here\nCLIENT_RANDOM not-hex not-hex\n")
    report = analyze(PCAPS / "tls13-client-cert.pcap", keylog=keys)
    (warning,) = [w for w in report.warnings if "no usable secret" in w]
    assert str(keys) in warning and "not hexadecimal" in warning


def test_python_warnings_go_into_the_report_not_to_stderr(tmp_path: Path) -> None:
    """A phone certificate with a negative serial number makes cryptography warn (a deprecation
    in the library): the warning is in the capture's warnings, stderr stays clean."""
    cluster = build_cluster(KeyRing())
    lsc = cluster.lsc("CP-8861", "2C3124C9F8E1")
    der = bytearray(lsc.der)
    serial = der.index(b"\xa0\x03\x02\x01\x02") + 7  # after the version: INTEGER tag, length
    der[serial] |= 0x80
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        negative = replace(lsc, cert=x509.load_der_x509_certificate(bytes(der)))
    result = run_handshake(
        server_chain=[cluster.callmanager],
        client_chain=[negative],
        trust=[cluster.capf.cert],
        verify_time=CAPTURE_TIME,
    )
    conversation = TcpConversation(
        ("10.20.1.20", 51234), ("10.10.1.5", 2443), CAPTURE_TIME + timedelta(seconds=1)
    )
    conversation.open()
    for flight in result.flights:
        conversation.send(flight.sender, flight.data)
    conversation.reset("server")
    capture = write_pcap(tmp_path / "negative-serial.pcap", conversation.packets())

    report = analyze(capture)
    (summary,) = report.captures
    assert any("serial number" in w and "Warning" in w for w in summary.warnings), summary
    cli = run(capture, "--format", "json")
    assert cli.returncode == 0 and cli.stderr == ""


def test_fail_on_warning_catches_a_refused_negotiation(shared_data: Path) -> None:
    """The server answers the ClientHello with handshake_failure: never 'ok', exit 1."""
    capture = shared_data / "pcaps" / "zeek_tls_tls-1.2-handshake-failure.pcap"
    assert run(capture, "--fail-on", "warning").returncode == 1
