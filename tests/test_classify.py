"""MIC or LSC is read from the issuer; device and model from the subject."""

from __future__ import annotations

from pathlib import Path

import pytest
from samplegen.pki import (
    capf,
    cisco_manufacturing_pki,
    issue,
    new_key,
    phone_lsc,
    phone_mic,
    server_cert,
)

from capana.certificates import load_pem_or_der, parse_certificate
from capana.classify import classify, phone_identity
from capana.model import Classification
from capana.truststore import TrustStore


@pytest.fixture(scope="module")
def pki():
    key = new_key("ec256")
    root, manufacturing = cisco_manufacturing_pki(True, root_key=key, ca_key=key)
    the_capf = capf(key=key)
    window = {
        "not_before": root.cert.not_valid_before_utc,
        "not_after": root.cert.not_valid_after_utc,
    }
    offline = issue("O=Example,CN=Example Voice CA", key=key, ca=True, **window)
    return {"root": root, "mfg": manufacturing, "capf": the_capf, "offline": offline, "key": key}


def _kind(issued, stores=()) -> Classification:
    return classify(parse_certificate(issued.der), stores)


def test_mic_lsc_capf_ca(pki) -> None:
    key = pki["key"]
    assert _kind(phone_mic(pki["mfg"], key=key)) == Classification(
        "MIC", "SEP2C3124C9F8E1", "CP-8861"
    )
    assert _kind(phone_lsc(pki["capf"], key=key)) == Classification(
        "LSC", "SEP2C3124C9F8E1", "CP-8861"
    )
    assert _kind(pki["capf"]).kind == "CAPF"
    assert _kind(pki["mfg"]).kind == "CA"
    assert _kind(pki["root"]).kind == "CA"
    assert _kind(server_cert(None, key=key)) == Classification("other")


def test_lsc_from_an_offline_ca_needs_the_store(pki) -> None:
    lsc = phone_lsc(pki["offline"], key=pki["key"], org="C=US,O=Example,OU=Voice")
    store = TrustStore("callmanager", (parse_certificate(pki["offline"].der),), ())
    assert _kind(lsc).kind == "other"
    assert _kind(lsc, [store]).kind == "LSC"
    assert _kind(lsc, [TrustStore("asa", store.certificates, ())]).kind == "other"
    callmanager_cert = server_cert(pki["offline"], key=pki["key"])
    assert _kind(callmanager_cert, [store]).kind == "other"  # not a phone: no SEP device


def test_mic_claim_is_by_name_only(pki) -> None:
    """A forged issuer name still classifies as MIC: the claim; validation judges it."""
    _, forged_mfg = cisco_manufacturing_pki(True, root_key=pki["key"], ca_key=new_key("ec256"))
    assert _kind(phone_mic(forged_mfg, key=pki["key"])).kind == "MIC"


@pytest.mark.parametrize(
    ("common_name", "serial_number", "device", "model"),
    [
        ("CP-8861-SEP2C3124C9F8E1", "PID:CP-8861 SN:X", "SEP2C3124C9F8E1", "CP-8861"),
        ("SEP00FF33aa99bb", None, "SEP00FF33AA99BB", None),
        ("SEP00FF33aa99bb", "PID:CP-7821 SN:FCH1", "SEP00FF33AA99BB", "CP-7821"),
        ("CP-8865NR-SEPB000B4BA0AEE", None, "SEPB000B4BA0AEE", "CP-8865NR"),
        ("cucm-pub.example.com", None, None, None),
        ("SEP1234", None, None, None),
        (None, "PID:C9300-24U SN:FCW2131L0JE", None, "C9300-24U"),
    ],
)
def test_phone_identity(
    common_name: str | None, serial_number: str | None, device: str | None, model: str | None
) -> None:
    assert phone_identity(common_name, serial_number) == (device, model)


def test_real_certificates(shared_data: Path) -> None:
    certs = shared_data / "certs"

    def kind(name: str) -> Classification:
        return classify(load_pem_or_der((certs / name).read_bytes())[0])

    assert kind("mic_cisco_ap_AP3G2-b83861f305ac_from_capwap_pcap.pem").kind == "MIC"
    assert kind("sudi_cisco_C9300-24U_FCW2131L0JE.pem") == Classification("MIC", None, "C9300-24U")
    assert kind("cisco_manufacturing_ca.pem").kind == "CA"
    assert kind("cisco_ecc_root_ca.pem").kind == "CA"
    assert kind("selfsigned_cisco_tetration_sensor_client_from_tls_sgt_pcap.pem").kind == "other"
