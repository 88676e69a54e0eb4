"""Adversarial chains for the verdict: each judged by capana and by ``openssl verify -attime``.

Beyond the matrix of ``test_validation``: anchors out of their validity, name constraints,
critical extensions on a CA, loops, repeats, mixed key types, key identifiers that disagree.
The rule that matters: no chain is ``trusted`` where OpenSSL refuses it. Where capana is
stricter than OpenSSL (it refuses name constraints rather than half-enforce them) the case says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier
from samplegen.pki import Issued, issue, new_key
from test_validation import (
    CAPTURE,
    _chain,
    _pem,
    _store,
    needs_openssl,
    openssl_accepts,
    utc,
)

from capana.certificates import parse_certificate
from capana.validation import validate_chain

WINDOW = {"not_before": utc(2020), "not_after": utc(2030)}


@dataclass(frozen=True)
class Case:
    store: tuple[Issued, ...]
    chain: tuple[Issued, ...]
    expected: str
    at: datetime = CAPTURE
    openssl: bool = False  # does OpenSSL accept it


def _leaf(issuer: Issued, **options: object) -> Issued:
    return issue("CN=SEP001122334455,OU=Voice", issuer=issuer, key=new_key("ec256"), **{
        **WINDOW, **options})  # fmt: skip


def _name_constrained_ca(critical: bool) -> Issued:
    constraints = x509.NameConstraints([x509.DNSName("example.com")], None)
    return issue(
        "CN=Constrained CA",
        key=new_key("ec256"),
        ca=True,
        extra_extensions=[(constraints, critical)],
        **WINDOW,
    )


def _version1_root() -> Issued:
    """A self-signed X.509 v1 root (no extensions at all): cryptography's v3 re-signed as v1."""
    key = new_key("ec256")
    draft = issue(
        "CN=Version 1 Root",
        key=key,
        ca=None,
        key_usage=None,
        subject_key_id=False,
        authority_key_id=False,
        **WINDOW,
    )
    certificate = asn1_x509.Certificate.load(draft.der)
    tbs = asn1_x509.TbsCertificate.load(certificate["tbs_certificate"].dump())
    tbs["version"] = "v1"
    signature = key.sign(tbs.dump(force=True), ec.ECDSA(hashes.SHA256()))
    der = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": certificate["signature_algorithm"],
            "signature_value": signature,
        }
    ).dump()
    return Issued(x509.load_der_x509_certificate(der), key)


def _loop() -> tuple[Issued, Issued, Issued]:
    """CA A signed by CA B, and B signed by A; B0 is B's self-signed twin (same name, key)."""
    key_a, key_b = new_key("ec256"), new_key("ec256")
    b0 = issue("CN=Loop B", key=key_b, ca=True, **WINDOW)
    a = issue("CN=Loop A", issuer=b0, key=key_a, ca=True, **WINDOW)
    b = issue("CN=Loop B", issuer=a, key=key_b, ca=True, **WINDOW)
    return a, b, b0


def _cases() -> dict[str, Case]:
    root = issue("CN=Adversarial Root", key=new_key("rsa2048"), ca=True, **WINDOW)
    intermediate = issue(
        "CN=Adversarial Issuing CA", issuer=root, key=new_key("ec256"), ca=True, **WINDOW
    )
    leaf = _leaf(intermediate)
    old_root = issue(
        "CN=Adversarial Root", key=root.key, ca=True, not_before=utc(2010), not_after=utc(2021)
    )
    late_root = issue(
        "CN=Adversarial Root", key=root.key, ca=True, not_before=utc(2022), not_after=utc(2032)
    )
    odd = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.9.99.2"), b"\x05\x00")
    odd_intermediate = issue(
        "CN=Adversarial Issuing CA",
        issuer=root,
        key=intermediate.key,
        ca=True,
        extra_extensions=[(odd, True)],
        **WINDOW,
    )
    wrong_aki = x509.AuthorityKeyIdentifier(b"\x42" * 20, None, None)
    loop_a, loop_b, loop_b0 = _loop()
    stranger = issue("CN=Stranger", key=new_key("ec256"), ca=True, **WINDOW)
    impostor = issue(
        "CN=Adversarial Issuing CA", issuer=root, key=new_key("rsa2048"), ca=True, **WINDOW
    )
    critical_nc, plain_nc = _name_constrained_ca(True), _name_constrained_ca(False)
    # No basicConstraints: OpenSSL takes such a CA only as the anchor, and only with keyUsage
    # keyCertSign or as a v1 self-signed root (check_ca; X509_V_ERR_INVALID_CA otherwise).
    no_bc = {"key": new_key("ec256"), "ca": None, **WINDOW}
    bare_v3_root = issue("CN=Bare v3 Root", key_usage=None, **no_bc)
    cert_sign_root = issue("CN=Cert Sign Root", key_usage=["key_cert_sign"], **no_bc)
    cert_sign_intermediate = issue(
        "CN=Cert Sign Issuing CA", issuer=root, key_usage=["key_cert_sign"], **no_bc
    )
    under_bare = issue(
        "CN=Issuing CA", issuer=bare_v3_root, key=new_key("ec256"), ca=True, **WINDOW
    )
    v1_root = _version1_root()
    return {
        "v3 root without basicConstraints or keyUsage": Case(
            (bare_v3_root,), (_leaf(bare_v3_root),), "invalid"
        ),
        "intermediate under a v3 root without basicConstraints": Case(
            (bare_v3_root,), (_leaf(under_bare), under_bare), "invalid"
        ),
        "intermediate without basicConstraints, keyCertSign": Case(
            (root,), (_leaf(cert_sign_intermediate), cert_sign_intermediate), "invalid"
        ),
        "anchor without basicConstraints, keyCertSign": Case(
            (cert_sign_root,), (_leaf(cert_sign_root),), "trusted", openssl=True
        ),
        "v1 self-signed root": Case((v1_root,), (_leaf(v1_root),), "trusted", openssl=True),
        "anchor expired at capture, rest valid": Case(
            (old_root,), (leaf, intermediate), "expired", at=utc(2022, 6)
        ),
        "anchor not yet valid at capture": Case(
            (late_root,), (leaf, intermediate), "not_yet_valid", at=utc(2021, 6)
        ),
        "name constraints (critical), name outside": Case(
            (critical_nc,), (_leaf(critical_nc, san=("phone.evil.org",)),), "invalid"
        ),
        "name constraints (not critical), name outside": Case(
            (plain_nc,), (_leaf(plain_nc, san=("phone.evil.org",)),), "invalid"
        ),
        "name constraints, name inside (stricter than openssl)": Case(
            (critical_nc,),
            (_leaf(critical_nc, san=("phone.example.com",)),),
            "invalid",
            openssl=True,
        ),
        "critical unknown extension on the intermediate": Case(
            (root,), (_leaf(odd_intermediate), odd_intermediate), "invalid"
        ),
        "chain loop, no anchor": Case((stranger,), (_leaf(loop_a), loop_a, loop_b), "untrusted"),
        "chain loop, anchored by a twin": Case(
            (loop_b0,), (_leaf(loop_a), loop_b, loop_a), "trusted", openssl=True
        ),
        "leaf sent twice": Case((intermediate,), (leaf, leaf), "trusted", openssl=True),
        "intermediate sent twice": Case(
            (root,), (leaf, intermediate, intermediate), "trusted", openssl=True
        ),
        "ecdsa intermediate under an rsa root": Case(
            (root,), (leaf, intermediate), "trusted", openssl=True
        ),
        "rsa impostor in place of the ecdsa intermediate": Case(
            (root,), (leaf, impostor), "untrusted"
        ),
        "leaf AKI names another key": Case(
            (intermediate,),
            (_leaf(intermediate, authority_key_id=False, extra_extensions=[(wrong_aki, False)]),),
            "untrusted",
        ),
        "intermediate AKI names another key": Case(
            (root,),
            (
                leaf,
                issue(
                    "CN=Adversarial Issuing CA",
                    issuer=root,
                    key=intermediate.key,
                    ca=True,
                    authority_key_id=False,
                    extra_extensions=[(wrong_aki, False)],
                    **WINDOW,
                ),
            ),
            "untrusted",
        ),
    }


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    return _cases()


CASE_NAMES = [
    "v3 root without basicConstraints or keyUsage",
    "intermediate under a v3 root without basicConstraints",
    "intermediate without basicConstraints, keyCertSign",
    "anchor without basicConstraints, keyCertSign",
    "v1 self-signed root",
    "anchor expired at capture, rest valid",
    "anchor not yet valid at capture",
    "name constraints (critical), name outside",
    "name constraints (not critical), name outside",
    "name constraints, name inside (stricter than openssl)",
    "critical unknown extension on the intermediate",
    "chain loop, no anchor",
    "chain loop, anchored by a twin",
    "leaf sent twice",
    "intermediate sent twice",
    "ecdsa intermediate under an rsa root",
    "rsa impostor in place of the ecdsa intermediate",
    "leaf AKI names another key",
    "intermediate AKI names another key",
]


def test_every_case_is_listed(cases: dict[str, Case]) -> None:
    assert sorted(cases) == sorted(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_capana_verdict(name: str, cases: dict[str, Case]) -> None:
    case = cases[name]
    result = validate_chain(_chain(case.chain), _store(case.store), case.at, role="client")
    assert result.status == case.expected, result.reasons
    assert result.reasons or result.status == "trusted"


@needs_openssl
@pytest.mark.parametrize("name", CASE_NAMES)
def test_never_trusted_where_openssl_refuses(
    name: str, cases: dict[str, Case], tmp_path: Path
) -> None:
    case = cases[name]
    store_pem = b"".join(item.pem for item in case.store)
    chain_pem = b"".join(item.pem for item in case.chain)
    accepted = openssl_accepts(store_pem, chain_pem, case.at, tmp_path)
    assert accepted == case.openssl
    result = validate_chain(_chain(case.chain), _store(case.store), case.at)
    assert accepted or result.status != "trusted", result


@needs_openssl
def test_outer_signature_algorithm_rewritten_is_never_trusted(tmp_path: Path) -> None:
    """Fuzz regression: NULL parameters after the TBS turned into an empty OCTET STRING.

    The hash changes and the signature still verifies; cryptography refuses the certificate,
    asn1crypto read it, and capana trusted it where OpenSSL says "certificate signature failure".
    """
    ca = issue("CN=Adversarial CAPF", key=new_key("rsa2048"), ca=True, **WINDOW)
    leaf = issue("CN=SEP001122334455", issuer=ca, key=new_key("ec256"), **WINDOW)
    outer = leaf.der.rindex(bytes.fromhex("06092a864886f70d01010b0500"))  # sha256WithRSA, NULL
    der = bytearray(leaf.der)
    der[outer + 11] = 0x04
    forged = parse_certificate(bytes(der))
    result = validate_chain([forged], _store((ca,)), CAPTURE)
    assert result.status != "trusted", result
    assert not openssl_accepts(ca.pem, _pem(bytes(der)), CAPTURE, tmp_path)
