"""Adversarial chains for the verdict: each judged by capana and by ``openssl verify -attime``.

Beyond the matrix of ``test_validation``: anchors out of their validity, name constraints,
critical extensions on a CA, loops, repeats, mixed key types, key identifiers that disagree, and
the cases once measured where capana trusted what OpenSSL refuses (keyUsage without a bit, an
extension twice, explicit EC parameters) or refused what it accepts (an issuer name spelt with
other spaces). Each case states capana's status and OpenSSL's must be the same (mapped by
``openssl_oracle``); where capana is knowingly stricter the case says so and why. The rule that
matters: no chain is ``trusted`` where OpenSSL refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID, ObjectIdentifier
from openssl_oracle import needs_openssl, openssl_accepts, openssl_statuses, pem
from samplegen.pki import Issued, issue, new_key, rebuild
from test_validation import CAPTURE, _chain, _store, utc

from capana.certificates import parse_certificate
from capana.validation import validate_chain

WINDOW = {"not_before": utc(2020), "not_after": utc(2030)}


@dataclass(frozen=True)
class Case:
    store: tuple[Issued, ...]
    chain: tuple[Issued, ...]
    expected: str
    at: datetime = CAPTURE
    openssl: str | None = None  # OpenSSL's status where capana knowingly differs (say why)


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

    def version1(tbs: asn1_x509.TbsCertificate) -> None:
        tbs["version"] = "v1"

    return rebuild(draft, key, version1)


def twice(item: Issued, signer: Issued, oid: str) -> Issued:
    """``item`` with its extension ``oid`` present twice (cryptography's builder refuses it)."""

    def repeat(tbs: asn1_x509.TbsCertificate) -> None:
        extensions = list(tbs["extensions"])
        extensions += [e for e in extensions if e["extn_id"].dotted == oid]
        tbs["extensions"] = asn1_x509.Extensions(extensions)

    return rebuild(item, signer, repeat)


def explicit_curve(item: Issued, signer: Issued) -> Issued:
    """``item`` with its P-256 key written with explicit curve parameters (RFC 5480 forbids)."""
    point = item.key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    p256 = {
        "version": "ecdpVer1",
        "field_id": {"field_type": "prime_field", "parameters": P256_PRIME},
        "curve": {"a": P256_A.to_bytes(32, "big"), "b": P256_B.to_bytes(32, "big")},
        "base": b"\x04" + P256_GX.to_bytes(32, "big") + P256_GY.to_bytes(32, "big"),
        "order": P256_ORDER,
        "cofactor": 1,
    }
    parameters = asn1_keys.ECDomainParameters(
        name="specified", value=asn1_keys.SpecifiedECDomain(p256)
    )
    spki = asn1_keys.PublicKeyInfo(
        {"algorithm": {"algorithm": "ec", "parameters": parameters}, "public_key": point}
    )

    def explicit(tbs: asn1_x509.TbsCertificate) -> None:
        tbs["subject_public_key_info"] = spki

    return rebuild(item, signer, explicit)


def respelt_issuer(item: Issued, signer: Issued, common_name: str) -> Issued:
    """``item`` naming its issuer ``CN=<common_name>`` as a UTF8String, spelt as given."""

    def respell(tbs: asn1_x509.TbsCertificate) -> None:
        tbs["issuer"] = asn1_x509.Name.build({"common_name": common_name}, use_printable=False)

    return rebuild(item, signer, respell)


# SEC 2 / FIPS 186-4 P-256 domain parameters, written out for the explicit form.
P256_PRIME = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_A = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
P256_GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
P256_GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
BASIC_CONSTRAINTS, SUBJECT_ALT_NAME = "2.5.29.19", "2.5.29.17"


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
    empty_ku_root = issue(
        "CN=Empty Usage Root", key=new_key("ec256"), ca=True, key_usage=[], **WINDOW
    )
    empty_ku_intermediate = issue(
        "CN=Empty Usage CA", issuer=root, key=new_key("ec256"), ca=True, key_usage=[], **WINDOW
    )
    named_leaf = _leaf(intermediate, san=("sep001122334455.voice.example.com",))
    odd_twice = _leaf(intermediate, extra_extensions=[(odd, False)])
    spaced_root = issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, " Spaced  Root ")]),
        key=new_key("ec256"),
        ca=True,
        **WINDOW,
    )
    return {
        "CA keyUsage present with no bit set": Case(
            (empty_ku_root,), (_leaf(empty_ku_root),), "invalid"
        ),
        "intermediate keyUsage present with no bit set": Case(
            (root,), (_leaf(empty_ku_intermediate), empty_ku_intermediate), "invalid"
        ),
        "leaf keyUsage present with no bit set": Case(
            (intermediate,), (_leaf(intermediate, key_usage=[]),), "invalid"
        ),
        "leaf with basicConstraints twice": Case(
            (intermediate,), (twice(leaf, intermediate, BASIC_CONSTRAINTS),), "invalid"
        ),
        "leaf with subjectAltName twice": Case(
            (intermediate,), (twice(named_leaf, intermediate, SUBJECT_ALT_NAME),), "invalid"
        ),
        "intermediate with basicConstraints twice": Case(
            (root,), (leaf, twice(intermediate, root, BASIC_CONSTRAINTS)), "invalid"
        ),
        "leaf with an unknown extension twice (stricter than openssl)": Case(
            (intermediate,),
            (twice(odd_twice, intermediate, "1.3.6.1.4.1.9.99.2"),),
            "invalid",
            # RFC 5280 4.2 forbids any extension twice; OpenSSL only flags the ones it reads.
            openssl="trusted",
        ),
        "leaf EC key with explicit curve parameters": Case(
            (intermediate,), (explicit_curve(leaf, intermediate),), "invalid"
        ),
        "intermediate EC key with explicit curve parameters": Case(
            (root,), (leaf, explicit_curve(intermediate, root)), "invalid"
        ),
        "issuer name spelt with leading and trailing spaces": Case(
            (spaced_root,),
            (respelt_issuer(_leaf(spaced_root), spaced_root, "Spaced Root"),),
            "trusted",
        ),
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
            (cert_sign_root,), (_leaf(cert_sign_root),), "trusted"
        ),
        "v1 self-signed root": Case((v1_root,), (_leaf(v1_root),), "trusted"),
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
        "name constraints, name inside": Case(
            (critical_nc,), (_leaf(critical_nc, san=("phone.example.com",)),), "trusted"
        ),
        "critical unknown extension on the intermediate": Case(
            (root,), (_leaf(odd_intermediate), odd_intermediate), "invalid"
        ),
        "chain loop, no anchor": Case((stranger,), (_leaf(loop_a), loop_a, loop_b), "untrusted"),
        "chain loop, anchored by a twin": Case(
            (loop_b0,), (_leaf(loop_a), loop_b, loop_a), "trusted"
        ),
        "leaf sent twice": Case((intermediate,), (leaf, leaf), "trusted"),
        "intermediate sent twice": Case((root,), (leaf, intermediate, intermediate), "trusted"),
        "ecdsa intermediate under an rsa root": Case((root,), (leaf, intermediate), "trusted"),
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
    "CA keyUsage present with no bit set",
    "intermediate keyUsage present with no bit set",
    "leaf keyUsage present with no bit set",
    "leaf with basicConstraints twice",
    "leaf with subjectAltName twice",
    "intermediate with basicConstraints twice",
    "leaf with an unknown extension twice (stricter than openssl)",
    "leaf EC key with explicit curve parameters",
    "intermediate EC key with explicit curve parameters",
    "issuer name spelt with leading and trailing spaces",
    "v3 root without basicConstraints or keyUsage",
    "intermediate under a v3 root without basicConstraints",
    "intermediate without basicConstraints, keyCertSign",
    "anchor without basicConstraints, keyCertSign",
    "v1 self-signed root",
    "anchor expired at capture, rest valid",
    "anchor not yet valid at capture",
    "name constraints (critical), name outside",
    "name constraints (not critical), name outside",
    "name constraints, name inside",
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
def test_status_agrees_with_openssl(name: str, cases: dict[str, Case], tmp_path: Path) -> None:
    case = cases[name]
    store_pem = b"".join(item.pem for item in case.store)
    chain_pem = b"".join(item.pem for item in case.chain)
    oracle = openssl_statuses(store_pem, chain_pem, case.at, tmp_path)
    assert (case.openssl or case.expected) in oracle
    result = validate_chain(_chain(case.chain), _store(case.store), case.at)
    assert "trusted" in oracle or result.status != "trusted", result


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
    assert not openssl_accepts(ca.pem, pem(bytes(der)), CAPTURE, tmp_path)
