"""Validations per second of a 3-certificate chain (MIC <- manufacturing CA <- root anchor).

    python3 bench/validation.py [--rounds 2000]

Prints the rate for a SHA-256 chain and for the SHA-1 chain real MICs carry; each validation
builds the path by signature and checks the rules and dates at capture time. A third line: an
LSC under an enterprise CA with name constraints, against a store holding a CRL of 1,000
entries for each CA (revocation and name constraints checked on every validation).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pcaps"))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from samplegen import pki

from capana.certificates import parse_certificate
from capana.revocation import parse_crl
from capana.truststore import TrustStore
from capana.validation import validate_chain

CAPTURE_TIME = datetime(2024, 3, 1, tzinfo=timezone.utc)
CRL_ENTRIES = 1000


def rate(sha2: bool, rounds: int) -> float:
    root, ca = pki.cisco_manufacturing_pki(sha2=sha2)
    mic = pki.phone_mic(ca, hash_name="sha256" if sha2 else "sha1")
    chain = [parse_certificate(mic.der), parse_certificate(ca.der)]
    store = TrustStore("callmanager", (parse_certificate(root.der),), ("bench",))
    assert validate_chain(chain, store, CAPTURE_TIME).status == "trusted"
    started = time.perf_counter()
    for _ in range(rounds):
        validate_chain(chain, store, CAPTURE_TIME)
    return rounds / (time.perf_counter() - started)


def constrained_rate(rounds: int) -> float:
    """An LSC <- constrained enterprise CA <- root, with a CRL of CRL_ENTRIES for each CA."""
    window = {"not_before": datetime(2020, 1, 1), "not_after": datetime(2030, 1, 1)}
    root = pki.issue("O=Example,CN=Example Root CA", ca=True, **window)
    constraints = x509.NameConstraints([x509.DNSName("voice.example.com")], None)
    issuing = pki.issue(
        "O=Example,CN=Example Voice CA",
        issuer=root,
        ca=True,
        extra_extensions=[(constraints, True)],
        **window,
    )
    lsc = pki.issue(
        "O=Example,CN=SEP2C3124C9F8E1", issuer=issuing, san=["sep2c3124c9f8e1.voice.example.com"],
        **window,
    )  # fmt: skip
    crls = tuple(parse_crl(_crl(ca)) for ca in (root, issuing))
    chain = [parse_certificate(lsc.der), parse_certificate(issuing.der)]
    store = TrustStore("callmanager", (parse_certificate(root.der),), ("bench",), crls=crls)
    assert validate_chain(chain, store, CAPTURE_TIME).status == "trusted"
    started = time.perf_counter()
    for _ in range(rounds):
        validate_chain(chain, store, CAPTURE_TIME)
    return rounds / (time.perf_counter() - started)


def _crl(issuer: pki.Issued) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(datetime(2024, 2, 1))
        .next_update(datetime(2024, 4, 1))
    )
    for serial in range(1, CRL_ENTRIES + 1):
        entry = x509.RevokedCertificateBuilder().serial_number(serial)
        builder = builder.add_revoked_certificate(
            entry.revocation_date(datetime(2024, 1, 1)).build()
        )
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = parser.parse_args().rounds
    for label, sha2 in (("SHA-256 chain", True), ("SHA-1 chain", False)):
        print(f"{label}: {rate(sha2, rounds):,.0f} validations/s (3 certificates, {rounds} rounds)")
    print(
        f"name constraints and CRLs: {constrained_rate(rounds):,.0f} validations/s "
        f"(3 certificates, 2 CRLs of {CRL_ENTRIES} entries, {rounds} rounds)"
    )


if __name__ == "__main__":
    main()
