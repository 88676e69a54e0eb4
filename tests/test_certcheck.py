"""A certificate without a capture: ``capana.verify`` and ``capana cert``, on Cisco's real
certificates (held to ``openssl verify``) and on built LSC chains with CRLs."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from openssl_oracle import needs_openssl, openssl_statuses, pem
from samplegen.pki import capf, issue, new_key, phone_lsc, phone_mic
from test_revocation import crl

import capana
from capana.certfiles import CertificateFileError
from capana.model import ReasonCode
from capana.truststore import TrustStoreError

PROJECT = Path(__file__).resolve().parent.parent
AP_MIC = "certs/mic_cisco_ap_AP3G2-b83861f305ac_from_capwap_pcap.pem"
MFG_CA = "certs/cisco_manufacturing_ca.pem"
ROOT_2048 = "certs/cisco_root_ca_2048.pem"
BUNDLE = "certs/cisco_public_ca_bundle.pem"
ECC_ROOT, ECC_SUDI_CA = "certs/cisco_ecc_root_ca.pem", "certs/act2_ecc_sudi_ca.pem"
IN_2020 = datetime(2020, 6, 1, tzinfo=timezone.utc)
AT = datetime(2024, 3, 1, tzinfo=timezone.utc)


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "capana", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- capana.verify on the real Cisco certificates ----------------------------------------------


@needs_openssl
@pytest.mark.parametrize("at", [IN_2020, AT])
def test_verify_real_ap_mic_as_openssl_does(shared_data: Path, at: datetime, tmp_path: Path):
    chain = [shared_data / AP_MIC, shared_data / MFG_CA]
    result = capana.verify(chain, trust=shared_data / ROOT_2048, at=at)
    assert result.status == ("trusted" if at == IN_2020 else "expired")
    assert result.anchor == "CN=Cisco Root CA 2048,O=Cisco Systems" and len(result.path) == 3
    assert ReasonCode.WEAK_SIGNATURE in result.codes
    store = (shared_data / ROOT_2048).read_bytes()
    pems = b"".join(path.read_bytes() for path in chain)
    assert result.status in openssl_statuses(store, pems, at, tmp_path)


def test_verify_takes_paths_bytes_pem_text_and_sequences(shared_data: Path) -> None:
    mic, ca = (shared_data / AP_MIC).read_bytes(), (shared_data / MFG_CA).read_bytes()
    bundle = shared_data / BUNDLE
    as_der = capana.verify(pem_to_der(mic), trust=bundle, at=IN_2020)
    for chain in (shared_data / AP_MIC, str(shared_data / AP_MIC), mic, mic.decode(), [mic, ca]):
        assert capana.verify(chain, trust=bundle, at=IN_2020) == as_der
    assert (
        as_der.status == "trusted" and as_der.anchor == "CN=Cisco Manufacturing CA,O=Cisco Systems"
    )
    naive = capana.verify(mic, trust=bundle, at=datetime(2020, 6, 1))
    assert naive == as_der  # a time without a zone is UTC
    assert capana.verify(mic, trust=bundle).status == "expired"  # now: the MIC ran out in 2024


def test_verify_keeps_the_ecc_cas_with_fractional_seconds(shared_data: Path) -> None:
    """Cisco's ECC CAs carry fractional seconds, which cryptography and OpenSSL refuse: the one
    quirk capana tolerates, because those CAs are real."""
    result = capana.verify(shared_data / ECC_SUDI_CA, trust=shared_data / ECC_ROOT, at=AT)
    assert result.status == "trusted" and result.anchor == "CN=Cisco ECC Root CA,O=Cisco"


def test_verify_without_trust_and_its_errors(shared_data: Path, tmp_path: Path) -> None:
    result = capana.verify(shared_data / AP_MIC)
    assert result.status == "not_checked" and ReasonCode.NO_TRUST_STORE in result.codes
    (tmp_path / "notes.txt").write_text("no certificate here")
    with pytest.raises(CertificateFileError, match=r"notes\.txt"):
        capana.verify(tmp_path / "notes.txt")
    with pytest.raises(CertificateFileError, match="cannot read"):
        capana.verify(tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="one trust store"):
        capana.verify(
            shared_data / AP_MIC,
            trust={"callmanager": shared_data / BUNDLE, "capf": shared_data / ROOT_2048},
        )
    named = capana.verify(
        shared_data / AP_MIC, trust=f"callmanager={shared_data / BUNDLE}", at=IN_2020
    )
    assert (named.store, named.status) == ("callmanager", "trusted")


def pem_to_der(text: bytes) -> bytes:
    from capana.certificates import load_pem_or_der

    return load_pem_or_der(text)[0].der


# --- capana.verify with CRLs ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lsc_pki() -> tuple[object, object]:
    """A CAPF (CA:TRUE, cRLSign) and an LSC it issued, valid around AT."""
    window = {"not_before": AT - timedelta(days=365), "not_after": AT + timedelta(days=365)}
    authority = issue(
        "C=MX,O=Cisco,OU=Voice,CN=CAPF-0992727f", key=new_key("ec256"), ca=True, **window
    )
    return authority, phone_lsc(authority, key=new_key("ec256"), **window)


def test_verify_with_crls_as_bytes_and_files(lsc_pki, tmp_path: Path) -> None:
    authority, lsc = lsc_pki
    (tmp_path / "capf.pem").write_bytes(authority.pem)
    revoking = crl(authority, [(lsc, None)])
    assert capana.verify(lsc.pem, trust=tmp_path / "capf.pem", at=AT).status == "trusted"
    by_bytes = capana.verify(lsc.pem, trust=tmp_path / "capf.pem", at=AT, crls=revoking)
    assert by_bytes.status == "revoked" and ReasonCode.REVOKED in by_bytes.codes
    (tmp_path / "capf.crl").write_bytes(pem(revoking, "X509 CRL"))
    by_file = capana.verify(
        lsc.pem, trust=tmp_path / "capf.pem", at=AT, crls=[tmp_path / "capf.crl"]
    )
    assert by_file == by_bytes
    with pytest.raises(TrustStoreError):
        capana.verify(lsc.pem, trust=tmp_path / "capf.pem", crls=b"not a crl")


# --- capana cert ------------------------------------------------------------------------------


def test_cert_command_on_a_real_mic(shared_data: Path) -> None:
    result = run(
        "cert",
        shared_data / AP_MIC,
        "--trust",
        shared_data / BUNDLE,
        "--at",
        "2020-06-01T00:00:00Z",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "MIC AP3G2-b83861f305ac, issued by Cisco Manufacturing CA" in out
    assert "verdict      trusted (default store), anchor CN=Cisco Manufacturing CA" in out
    assert "INFO weak-signature" in out and "INFO mic-without-eku-or-san" in out
    later = run("cert", shared_data / AP_MIC, "--trust", shared_data / BUNDLE, "--fail-on", "error")
    assert later.returncode == 1
    assert "verdict      expired" in later.stdout and "ERROR certificate-expired" in later.stdout


def test_cert_command_json_verdict_per_store_and_revocation(lsc_pki, tmp_path: Path) -> None:
    authority, lsc = lsc_pki
    store = tmp_path / "CallManager-trust"
    store.mkdir()
    (store / "capf.pem").write_bytes(authority.pem)
    (tmp_path / "capf.crl").write_bytes(crl(authority, [(lsc, None)]))
    (tmp_path / "capf-trace.txt").write_bytes(
        b"2024-03-01 09:00:00 CAPF: Troubleshoot: phone certificate follows\n" + lsc.pem + b"done\n"
    )
    result = run(
        "cert", tmp_path / "capf-trace.txt",
        "--trust", f"callmanager={store}", "--trust", f"capf={tmp_path / 'capf.crl'}",
        "--at", "2024-03-01", "--crl", tmp_path / "capf.crl", "--format", "json",
    )  # fmt: skip
    assert result.returncode == 2  # a store of CRLs only is a usage error
    assert "holds no certificate" in result.stderr
    result = run(
        "cert", tmp_path / "capf-trace.txt", "--trust", f"callmanager={store}",
        "--at", "2024-03-01", "--crl", tmp_path / "capf.crl", "--format", "json",
        "--fail-on", "error",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    record = json.loads(result.stdout)["files"][0]
    assert record["at"] == "2024-03-01T00:00:00Z"
    assert [c["kind"] for c in record["chain"]] == ["LSC"]
    assert record["chain"][0]["device"] == "SEP2C3124C9F8E1"
    (verdict,) = record["verdicts"]
    assert verdict["validation"]["status"] == "revoked"
    assert verdict["validation"]["store"] == "callmanager"
    assert "revoked" in verdict["validation"]["reason_codes"]
    assert [f["code"] for f in verdict["findings"]] == ["certificate-revoked"]


def test_cert_command_reads_root_first_bundles_and_p7b(lsc_pki, tmp_path: Path) -> None:
    authority, lsc = lsc_pki
    (tmp_path / "root-first.pem").write_bytes(authority.pem + lsc.pem)
    (tmp_path / "capf.pem").write_bytes(authority.pem)
    result = run(
        "cert", tmp_path / "root-first.pem", "--trust", tmp_path / "capf.pem", "--at", "2024-03-01"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'root-first.pem'}: LSC SEP2C3124C9F8E1")
    assert "chain        CAPF CAPF-0992727f" in result.stdout


def test_cert_command_usage_errors(shared_data: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("nothing")
    bad_file = run("cert", tmp_path / "empty.txt", shared_data / AP_MIC)
    assert bad_file.returncode == 2
    assert "empty.txt" in bad_file.stderr and "AP3G2-b83861f305ac" in bad_file.stdout
    bad_time = run("cert", shared_data / AP_MIC, "--at", "yesterday")
    assert bad_time.returncode == 2 and "ISO-8601" in bad_time.stderr
    bad_crl = run(
        "cert",
        shared_data / AP_MIC,
        "--trust",
        shared_data / BUNDLE,
        "--crl",
        tmp_path / "empty.txt",
    )
    assert bad_crl.returncode == 2 and "empty.txt" in bad_crl.stderr
    assert "examples:" in run("cert", "--help").stdout


def test_cert_command_mic_and_capf(tmp_path: Path) -> None:
    """The findings that need no capture: a MIC whose CA the store lacks, and a CAPF."""
    window = {"not_before": AT - timedelta(days=99), "not_after": AT + timedelta(days=99)}
    mic = phone_mic(issue("O=Cisco,CN=Cisco Manufacturing CA SHA2", ca=True, **window))
    authority = capf(key=new_key("ec256"))
    (tmp_path / "mic.pem").write_bytes(mic.pem)
    (tmp_path / "capf.pem").write_bytes(authority.pem)
    result = run(
        "cert", tmp_path / "mic.pem", tmp_path / "capf.pem",
        "--trust", f"capf={tmp_path / 'capf.pem'}", "--at", "2024-03-01", "--fail-on", "error",
    )  # fmt: skip
    assert result.returncode == 1
    assert "MIC SEP2C3124C9F8E1 (CP-8861)" in result.stdout
    assert "ERROR mic-ca-missing" in result.stdout and "CAPF-trust" in result.stdout
    assert "CAPF CAPF-0992727f" in result.stdout and "verdict      trusted (capf)" in result.stdout


def test_the_readme_example_is_what_capana_cert_prints(shared_data: Path) -> None:
    """The README's `capana cert` example, run from the project root as it says."""
    readme = (PROJECT / "README.md").read_text()
    block = readme[readme.index("$ capana cert ") :].split("```", 1)[0]
    command, expected = block.replace("\\\n", " ").split("\n", 1)
    words = command.split()[2:]  # after "$ capana"
    result = subprocess.run(
        [sys.executable, "-m", "capana", *words],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected.strip()
