"""Trust stores as CUCM exports them, and which store judges which handshake."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from samplegen.pki import capf, new_key

from capana.truststore import (
    TrustStore,
    TrustStoreError,
    load_trust_store,
    parse_trust_option,
    store_for,
)


@pytest.fixture(scope="module")
def capfs():
    return capf(key=new_key("ec256")), capf("CAPF-a7fb32bf", key=new_key("ec256"))


def _p7b(*ders: bytes) -> bytes:
    certificates = [asn1_x509.Certificate.load(der) for der in ders]
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [],
            "encap_content_info": {"content_type": "data"},
            "certificates": certificates,
            "signer_infos": [],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


def test_public_bundle_loads_including_the_ecc_cas(shared_data: Path) -> None:
    store = load_trust_store(shared_data / "certs/cisco_public_ca_bundle.pem", "callmanager")
    assert store.name == "callmanager" and len(store) == 9
    ecc = [c for c in store.certificates if c.parsed_by == "asn1crypto"]
    assert {c.subject for c in ecc} == {
        "CN=Cisco ECC Root CA,O=Cisco",
        "CN=ACT2 ECC SUDI CA,O=Cisco",
    }


def test_folder_as_exported_from_cucm(shared_data: Path, tmp_path: Path, capfs) -> None:
    shutil.copy(
        shared_data / "certs/cisco_manufacturing_ca.pem", tmp_path / "Cisco_Manufacturing_CA.pem"
    )
    (tmp_path / "CAPF-0992727f.der").write_bytes(capfs[0].der)
    (tmp_path / "CAPF-a7fb32bf.cer").write_bytes(capfs[1].pem)
    (tmp_path / "README.txt").write_text("not a certificate")
    store = load_trust_store(tmp_path)
    assert store.name is None and len(store) == 3 and len(store.sources) == 3


@pytest.mark.parametrize("pem", [False, True])
def test_pkcs7_bundles(tmp_path: Path, capfs, pem: bool) -> None:
    data = _p7b(capfs[0].der, capfs[1].der)
    if pem:
        data = b"-----BEGIN PKCS7-----\n" + base64.encodebytes(data) + b"-----END PKCS7-----\n"
    (tmp_path / "capf-trust.p7b").write_bytes(data)
    store = load_trust_store(tmp_path / "capf-trust.p7b", "capf")
    assert {c.subject.split(",")[0] for c in store.certificates} == {"L=Mexico City"}
    assert len(store) == 2


def test_duplicates_are_kept_once(tmp_path: Path, capfs) -> None:
    (tmp_path / "bundle.pem").write_bytes(capfs[0].pem * 2 + capfs[1].pem)
    assert len(load_trust_store(tmp_path / "bundle.pem")) == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.pem", None, "cannot read"),
        (
            "key.pem",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "no certificate",
        ),
        ("garbage.der", b"\x30\x03\x02\x01\x01", "no certificate"),
        ("broken.p7b", b"\x30\x03\x02\x01\x01", "PKCS#7"),
    ],
)
def test_unusable_files_name_the_file(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(TrustStoreError, match=message) as error:
        load_trust_store(tmp_path / name)
    assert name in str(error.value)


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TrustStoreError, match="no certificate files"):
        load_trust_store(tmp_path)


def test_parse_trust_option(tmp_path: Path) -> None:
    assert parse_trust_option("callmanager=cm.pem") == ("callmanager", Path("cm.pem"))
    assert parse_trust_option("CAPF=capf-trust.p7b") == ("capf", Path("capf-trust.p7b"))
    assert parse_trust_option("2445=tvs.pem") == ("2445", Path("tvs.pem"))
    assert parse_trust_option("CallManager-trust/") == (None, Path("CallManager-trust/"))
    odd = tmp_path / "a=b.pem"
    odd.write_bytes(b"")
    assert parse_trust_option(str(odd)) == (None, odd)
    with pytest.raises(TrustStoreError, match="unknown trust store name"):
        parse_trust_option("tomcat=t.pem")


def test_store_for_routes_by_service_and_port() -> None:
    stores = {
        key: TrustStore(key, (), ()) for key in (None, "callmanager", "capf", "ise", "asa", "8443")
    }
    assert store_for("sccp-tls", 2443, stores).name == "callmanager"
    assert store_for("sip-tls", 5061, stores).name == "callmanager"
    assert store_for("capf", 3804, stores).name == "capf"
    assert store_for("eap-tls", 0, stores).name == "ise"
    assert store_for("https", 443, stores).name == "asa"
    assert store_for("https", 8443, stores).name == "8443"
    assert store_for("tvs", 2445, stores).name is None
    assert store_for("sip-tls", 5061, {None: stores[None]}).name is None
    assert store_for("sip-tls", 5061, {}) is None
