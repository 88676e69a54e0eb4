"""Certificate files as admins have them: the leaf first unless the file says otherwise.

The PKCS#7 bundles are made by ``openssl crl2pkcs7``, as an admin would make them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from openssl_oracle import needs_openssl, pem
from samplegen.pki import Issued, capf, new_key, phone_lsc

from capana import certfiles
from capana.certfiles import (
    CertificateFile,
    CertificateFileError,
    leaf_first,
    read_certificates,
    read_file,
)
from capana.certificates import parse_certificate
from capana.model import UnparsedCertificate


@pytest.fixture(scope="module")
def chain() -> tuple[Issued, Issued]:
    authority = capf(key=new_key("ec256"))
    return phone_lsc(authority, key=new_key("ec256")), authority


def subjects(found: CertificateFile) -> list[str]:
    return [cert.subject_cn for cert in leaf_first(found)]  # type: ignore[union-attr]


def test_leaf_first_as_written_and_root_first(chain: tuple[Issued, Issued]) -> None:
    lsc, authority = chain
    assert subjects(read_certificates(lsc.pem + authority.pem)) == [
        "CP-8861-SEP2C3124C9F8E1",
        "CAPF-0992727f",
    ]
    assert subjects(read_certificates(authority.pem + lsc.pem)) == [
        "CP-8861-SEP2C3124C9F8E1",
        "CAPF-0992727f",
    ]
    assert subjects(read_certificates(authority.pem)) == ["CAPF-0992727f"]


def test_text_around_pem_blocks_and_der(chain: tuple[Issued, Issued]) -> None:
    lsc, _ = chain
    trace = b"09:00:01 CAPF troubleshoot SEP2C3124C9F8E1\r\n" + lsc.pem.replace(b"\n", b"\r\n")
    assert leaf_first(read_certificates(trace + b"end of trace\n")) == (parse_certificate(lsc.der),)
    assert read_certificates(lsc.der).certificates == (parse_certificate(lsc.der),)
    assert read_certificates(b"a log line, no certificate\n").certificates == ()
    garbage = read_certificates(b"\x30\x03\x02\x01\x01").certificates
    assert len(garbage) == 1 and isinstance(garbage[0], UnparsedCertificate)
    with pytest.raises(CertificateFileError, match="unreadable PEM"):
        read_certificates(b"-----BEGIN CERTIFICATE-----\nMIIBA\n-----END CERTIFICATE-----\n")


@needs_openssl
@pytest.mark.parametrize("form", ["DER", "PEM"])
def test_pkcs7_from_openssl_has_no_order(
    chain: tuple[Issued, Issued], form: str, tmp_path: Path
) -> None:
    lsc, authority = chain
    (tmp_path / "chain.pem").write_bytes(authority.pem + lsc.pem)
    p7b = tmp_path / "chain.p7b"
    subprocess.run(
        ["openssl", "crl2pkcs7", "-nocrl", "-certfile", str(tmp_path / "chain.pem"),
         "-outform", form, "-out", str(p7b)],
        check=True, capture_output=True, timeout=10,
    )  # fmt: skip
    found = read_certificates(p7b.read_bytes(), pkcs7=True)
    assert not found.ordered and len(found.certificates) == 2
    assert subjects(found) == ["CP-8861-SEP2C3124C9F8E1", "CAPF-0992727f"]
    with pytest.raises(CertificateFileError, match="PKCS#7"):
        read_certificates(pem(b"\x30\x03\x02\x01\x01", "PKCS7"))


def test_files_are_read_up_to_a_bound(
    chain: tuple[Issued, Issued], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lsc, _ = chain
    (tmp_path / "lsc.pem").write_bytes(lsc.pem)
    assert read_file(tmp_path / "lsc.pem") == lsc.pem
    monkeypatch.setattr(certfiles, "MAX_FILE_BYTES", len(lsc.pem) - 1)
    with pytest.raises(CertificateFileError, match="larger than"):
        read_file(tmp_path / "lsc.pem")
    with pytest.raises(CertificateFileError, match="cannot read"):
        read_file(tmp_path / "missing.pem")
