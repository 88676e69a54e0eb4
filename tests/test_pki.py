"""The test-side PKI builds what it claims: names, extensions, SHA-1 that OpenSSL verifies."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from samplegen.pki import capf, cisco_manufacturing_pki, issue, new_key, phone_lsc, phone_mic

from capana.certificates import parse_certificate, self_issued


@pytest.fixture(scope="module")
def sha1_pki():
    return cisco_manufacturing_pki(
        sha2=False, root_key=new_key("rsa1024"), ca_key=new_key("rsa1024")
    )


def test_capf_follows_the_14su2_rule() -> None:
    cert = parse_certificate(capf(key=new_key("ec256")).der)
    assert self_issued(cert)
    assert (cert.is_ca, cert.path_length) == (True, 0)
    assert "key_cert_sign" in cert.key_usage
    assert "CN=CAPF-0992727f" in cert.subject


def test_mic_and_lsc_share_the_subject_device_but_not_the_issuer(sha1_pki) -> None:
    _, manufacturing = sha1_pki
    mic = parse_certificate(phone_mic(manufacturing, key=new_key("ec256"), hash_name="sha1").der)
    lsc = parse_certificate(phone_lsc(capf(key=new_key("ec256")), key=new_key("ec256")).der)
    assert mic.subject.startswith("CN=CP-8861-SEP2C3124C9F8E1,OU=CTG,O=Cisco Systems Inc.")
    assert lsc.subject.startswith("CN=CP-8861-SEP2C3124C9F8E1,OU=Voice,O=Cisco,C=MX")
    assert mic.issuer == "CN=Cisco Manufacturing CA,O=Cisco Systems"
    assert (mic.subject_alt_names, mic.extended_key_usage) == ((), ())
    assert mic.signature_hash == "sha1"
    assert (mic.not_after - mic.not_before).days >= 3650
    assert set(lsc.extended_key_usage) == {"clientAuth", "serverAuth"}


def test_issue_parameters_reach_the_certificate() -> None:
    start, end = (
        datetime(2030, 1, 1, tzinfo=timezone.utc),
        datetime(2031, 1, 1, tzinfo=timezone.utc),
    )
    root = issue(
        "CN=Root", key=new_key("ed25519"), ca=True, path_length=2, not_before=start, not_after=end
    )
    leaf = issue(
        "CN=leaf",
        issuer=root,
        key=new_key("ec256"),
        not_before=start,
        not_after=end,
        serial=7,
        key_usage=None,
        san=["cucm.example.com"],
        subject_key_id=False,
        extended_key_usage=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    cert = parse_certificate(leaf.der)
    assert (cert.serial, cert.not_before, cert.key_usage) == ("7", start, frozenset())
    assert cert.subject_key_id is None and cert.authority_key_id is not None
    assert cert.subject_alt_names == ("cucm.example.com",)
    assert parse_certificate(root.der).path_length == 2
    assert leaf.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert x509.load_pem_x509_certificate(leaf.pem) == leaf.cert


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_sha1_chain_verifies_with_openssl(sha1_pki, tmp_path: Path) -> None:
    root, manufacturing = sha1_pki
    mic = phone_mic(manufacturing, key=new_key("rsa1024"), hash_name="sha1")
    (tmp_path / "root.pem").write_bytes(root.pem)
    (tmp_path / "ca.pem").write_bytes(manufacturing.pem)
    (tmp_path / "mic.pem").write_bytes(mic.pem)
    command = ["openssl", "verify", "-auth_level", "0", "-attime", "1600000000"]
    command += ["-CAfile", "root.pem", "-untrusted", "ca.pem", "mic.pem"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", "mic.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    assert "sha1WithRSAEncryption" in text
