"""Revocation by CRLs: each case judged by capana and by ``openssl verify -crl_check_all``.

A root, an issuing CA and a phone certificate; each CA publishes a CRL (the root's own CRL too:
OpenSSL's ``-crl_check_all`` wants one for every certificate). Cases: revoked leaf and
intermediate, certificateHold, stale and future CRLs (with and without the serial listed), a
CRL signed by another key of the same name, an unknown critical extension, an issuer without
cRLSign, delta CRLs, a distribution point scope. capana's status must be OpenSSL's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ObjectIdentifier
from openssl_oracle import needs_openssl, openssl_statuses, pem
from samplegen.pki import Issued, issue, new_key

from capana.certificates import parse_certificate
from capana.model import ReasonCode
from capana.revocation import CrlError, load_crls, parse_crl
from capana.truststore import (
    TrustStore,
    TrustStoreError,
    load_crl_file,
    load_trust_store,
    with_crls,
)
from capana.validation import validate_chain

AT = datetime(2024, 3, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)
WINDOW = {
    "not_before": datetime(2020, 1, 1, tzinfo=timezone.utc),
    "not_after": datetime(2030, 1, 1, tzinfo=timezone.utc),
}


@dataclass(frozen=True)
class Pki:
    root: Issued
    issuing: Issued
    leaf: Issued
    twin: Issued  # same name as ``issuing``, another key (a regenerated CA)
    no_crl_sign: Issued  # a CA whose keyUsage lacks cRLSign, and its leaf below
    leaf_of_no_crl_sign: Issued


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = issue("CN=Revocation Root", key=new_key("ec256"), ca=True, **WINDOW)
    issuing = issue("CN=Voice CA", issuer=root, key=new_key("ec256"), ca=True, **WINDOW)
    twin = issue("CN=Voice CA", issuer=root, key=new_key("ec256"), ca=True, **WINDOW)
    no_crl_sign = issue(
        "CN=Signing Only CA",
        issuer=root,
        key=new_key("ec256"),
        ca=True,
        key_usage=("digital_signature", "key_cert_sign"),
        **WINDOW,
    )
    return Pki(
        root=root,
        issuing=issuing,
        leaf=issue("CN=SEP001122334455", issuer=issuing, key=new_key("ec256"), **WINDOW),
        twin=twin,
        no_crl_sign=no_crl_sign,
        leaf_of_no_crl_sign=issue(
            "CN=SEP00112233AABB", issuer=no_crl_sign, key=new_key("ec256"), **WINDOW
        ),
    )


def crl(
    issuer: Issued,
    revoked: Iterable[tuple[Issued, x509.ReasonFlags | None]] = (),
    *,
    this_update: datetime = AT - 10 * DAY,
    next_update: datetime = AT + 20 * DAY,
    number: int = 1,
    revoked_on: datetime | None = None,
    extensions: Iterable[tuple[x509.ExtensionType, bool]] = (),
    signer: Issued | None = None,
    key_id: bool = True,
) -> bytes:
    """A DER CRL of ``issuer`` listing ``revoked`` (certificate, reason), signed by ``signer``
    (default: the issuer), with an authorityKeyIdentifier of the signer's key if ``key_id``."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), False)
    )
    if key_id:
        signer_key = (signer or issuer).key.public_key()
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key)
        builder = builder.add_extension(aki, False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    for cert, reason in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(cert.cert.serial_number)
            .revocation_date(revoked_on or this_update - DAY)
        )
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), False)
        builder = builder.add_revoked_certificate(entry.build())
    signed = builder.sign((signer or issuer).key, hashes.SHA256())
    return signed.public_bytes(serialization.Encoding.DER)


def delta(
    issuer: Issued,
    base_number: int,
    number: int,
    revoked: Iterable[tuple[Issued, x509.ReasonFlags | None]],
) -> bytes:
    return crl(
        issuer,
        revoked,
        number=number,
        extensions=[(x509.DeltaCRLIndicator(base_number), True)],
    )


def base(
    issuer: Issued, number: int, revoked: Iterable[tuple[Issued, x509.ReasonFlags | None]] = ()
) -> bytes:
    """A base CRL whose freshestCRL points to delta CRLs (OpenSSL uses deltas only then)."""
    point = x509.DistributionPoint(
        [x509.UniformResourceIdentifier("http://pki/delta.crl")], None, None, None
    )
    return crl(issuer, revoked, number=number, extensions=[(x509.FreshestCRL([point]), False)])


@dataclass(frozen=True)
class Case:
    store: tuple[Issued, ...]
    chain: tuple[Issued, ...]
    crls: tuple[bytes, ...]
    expected: str
    codes: frozenset[ReasonCode] = field(default_factory=frozenset)


KEY_COMPROMISE = x509.ReasonFlags.key_compromise
HOLD = x509.ReasonFlags.certificate_hold
REMOVE = x509.ReasonFlags.remove_from_crl


def _cases(p: Pki) -> dict[str, Case]:
    store, chain = (p.root,), (p.leaf, p.issuing)
    root_crl = crl(p.root)
    odd = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.9.99.3"), b"\x05\x00")
    ca_only = x509.IssuingDistributionPoint(None, None, False, True, None, False, False)

    def case(crls: tuple[bytes, ...], expected: str, *codes: ReasonCode) -> Case:
        return Case(store, chain, (root_crl, *crls), expected, frozenset(codes))

    return {
        "nothing revoked": case((crl(p.issuing),), "trusted"),
        "leaf revoked": case(
            (crl(p.issuing, [(p.leaf, KEY_COMPROMISE)]),), "revoked", ReasonCode.REVOKED
        ),
        "leaf on hold": case((crl(p.issuing, [(p.leaf, HOLD)]),), "revoked", ReasonCode.REVOKED),
        "leaf revoked, no reason code": case(
            (crl(p.issuing, [(p.leaf, None)]),), "revoked", ReasonCode.REVOKED
        ),
        "intermediate revoked by the root": Case(
            store,
            chain,
            (crl(p.root, [(p.issuing, KEY_COMPROMISE)]), crl(p.issuing)),
            "revoked",
            frozenset({ReasonCode.REVOKED}),
        ),
        "stale CRL": case(
            (crl(p.issuing, next_update=AT - DAY, this_update=AT - 30 * DAY),),
            "invalid",
            ReasonCode.CRL_EXPIRED,
        ),
        "stale CRL listing the leaf": case(
            (crl(p.issuing, [(p.leaf, None)], next_update=AT - DAY, this_update=AT - 30 * DAY),),
            "revoked",
            ReasonCode.REVOKED,
            ReasonCode.CRL_EXPIRED,
        ),
        "CRL issued after the capture": case(
            (crl(p.issuing, this_update=AT + DAY, next_update=AT + 30 * DAY),),
            "invalid",
            ReasonCode.CRL_NOT_YET_VALID,
        ),
        "stale and current CRLs: the current one is used": case(
            (
                crl(p.issuing, next_update=AT - DAY, this_update=AT - 30 * DAY),
                crl(p.issuing, number=2),
            ),
            "trusted",
        ),
        "CRL of the same name signed by another key": case(
            (crl(p.issuing, [(p.leaf, None)], signer=p.twin),),
            "invalid",
            ReasonCode.CRL_SIGNATURE_INVALID,
        ),
        "CRL of the same name signed by another key, no key identifier": case(
            (crl(p.issuing, [(p.leaf, None)], signer=p.twin, key_id=False),),
            "invalid",
            ReasonCode.CRL_SIGNATURE_INVALID,
        ),
        "CRL with an unknown critical extension": case(
            (crl(p.issuing, [(p.leaf, None)], extensions=[(odd, True)]),),
            "invalid",
            ReasonCode.CRL_UNSUPPORTED_CRITICAL_EXTENSION,
        ),
        "CRL with an unknown extension, not critical": case(
            (crl(p.issuing, extensions=[(odd, False)]),), "trusted"
        ),
        "CRL of an issuer without cRLSign": Case(
            store,
            (p.leaf_of_no_crl_sign, p.no_crl_sign),
            (root_crl, crl(p.no_crl_sign)),
            "invalid",
            frozenset({ReasonCode.CRL_ISSUER_NO_CRL_SIGN}),
        ),
        "delta CRL revokes the leaf": case(
            (base(p.issuing, 5), delta(p.issuing, 5, 6, [(p.leaf, KEY_COMPROMISE)])),
            "revoked",
            ReasonCode.REVOKED,
        ),
        "delta CRL, but the base points to none": case(
            (crl(p.issuing, number=5), delta(p.issuing, 5, 6, [(p.leaf, KEY_COMPROMISE)])),
            "trusted",
        ),
        "delta CRL on another base is not used": case(
            (base(p.issuing, 5), delta(p.issuing, 7, 8, [(p.leaf, KEY_COMPROMISE)])),
            "trusted",
        ),
        "delta removeFromCRL lifts the base's hold": case(
            (base(p.issuing, 5, [(p.leaf, HOLD)]), delta(p.issuing, 5, 6, [(p.leaf, REMOVE)])),
            "trusted",
        ),
        "delta silent on a base's revocation": case(
            (base(p.issuing, 5, [(p.leaf, HOLD)]), delta(p.issuing, 5, 6, [])), "revoked"
        ),
        "CRL for CA certificates only": case(
            (crl(p.issuing, [(p.leaf, None)], extensions=[(ca_only, True)]),),
            "invalid",
            ReasonCode.CRL_OUT_OF_SCOPE,
        ),
    }


@pytest.fixture(scope="module")
def cases(pki: Pki) -> dict[str, Case]:
    return _cases(pki)


CASE_NAMES = [
    "nothing revoked",
    "leaf revoked",
    "leaf on hold",
    "leaf revoked, no reason code",
    "intermediate revoked by the root",
    "stale CRL",
    "stale CRL listing the leaf",
    "CRL issued after the capture",
    "stale and current CRLs: the current one is used",
    "CRL of the same name signed by another key",
    "CRL of the same name signed by another key, no key identifier",
    "CRL with an unknown critical extension",
    "CRL with an unknown extension, not critical",
    "CRL of an issuer without cRLSign",
    "delta CRL revokes the leaf",
    "delta CRL, but the base points to none",
    "delta CRL on another base is not used",
    "delta removeFromCRL lifts the base's hold",
    "delta silent on a base's revocation",
    "CRL for CA certificates only",
]


def _validate(case: Case, at: datetime = AT):
    store = TrustStore("test", tuple(parse_certificate(c.der) for c in case.store), ("test",))
    store = with_crls(store, [parse_crl(der) for der in case.crls])
    return validate_chain([parse_certificate(c.der) for c in case.chain], store, at)


def test_every_case_is_listed(cases: dict[str, Case]) -> None:
    assert sorted(cases) == sorted(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_capana_verdict(name: str, cases: dict[str, Case]) -> None:
    case = cases[name]
    result = _validate(case)
    assert result.status == case.expected, result.reasons
    assert case.codes <= result.codes, result.reasons


@needs_openssl
@pytest.mark.parametrize("name", CASE_NAMES)
def test_status_agrees_with_openssl(name: str, cases: dict[str, Case], tmp_path: Path) -> None:
    case = cases[name]
    store = b"".join(c.pem for c in case.store)
    chain = b"".join(c.pem for c in case.chain)
    oracle = openssl_statuses(store, chain, AT, tmp_path, crls=case.crls)
    assert oracle == {case.expected}
    assert _validate(case).status == case.expected


def test_a_later_crl_does_not_revoke_back_in_time(pki: Pki) -> None:
    """A CRL issued after the capture, listing a revocation after the capture: the verdict is
    invalid (the CRL postdates the capture), not revoked; later, revoked."""
    late = crl(
        pki.issuing, [(pki.leaf, KEY_COMPROMISE)], revoked_on=AT + DAY, this_update=AT + 2 * DAY
    )
    case = Case((pki.root,), (pki.leaf, pki.issuing), (crl(pki.root), late), "invalid")
    result = _validate(case)
    assert result.status == "invalid" and ReasonCode.REVOKED not in result.codes
    assert ReasonCode.CRL_NOT_YET_VALID in result.codes
    assert _validate(case, AT + 3 * DAY).status == "revoked"


def test_an_issuer_without_crl_is_not_checked(pki: Pki) -> None:
    """Soft fail: the root's CRL alone says nothing of the leaf; no reason is invented."""
    case = Case((pki.root,), (pki.leaf, pki.issuing), (crl(pki.root),), "trusted")
    result = _validate(case)
    assert result.status == "trusted" and not result.reasons


def test_a_lone_delta_crl_is_a_reason(pki: Pki) -> None:
    lone = delta(pki.issuing, 5, 6, [])
    case = Case((pki.root,), (pki.leaf, pki.issuing), (crl(pki.root), lone), "invalid")
    assert ReasonCode.CRL_OUT_OF_SCOPE in _validate(case).codes


def test_store_folder_and_crl_files(pki: Pki, tmp_path: Path) -> None:
    revoking = crl(pki.issuing, [(pki.leaf, KEY_COMPROMISE)])
    (tmp_path / "root.pem").write_bytes(pki.root.pem + pem(crl(pki.root), "X509 CRL"))
    (tmp_path / "voice.crl").write_bytes(revoking)
    store = load_trust_store(tmp_path, "callmanager")
    assert len(store.certificates) == 1 and len(store.crls) == 2
    chain = [parse_certificate(c.der) for c in (pki.leaf, pki.issuing)]
    assert validate_chain(chain, store, AT).status == "revoked"
    (tmp_path / "extra.crl").write_bytes(pem(revoking, "X509 CRL") * 2)
    assert load_crl_file(tmp_path / "extra.crl") == (parse_crl(revoking),)
    assert len(with_crls(store, load_crl_file(tmp_path / "extra.crl")).crls) == 2


@pytest.mark.parametrize(
    "content", [b"", b"not a crl", b"-----BEGIN X509 CRL-----\n!!\n-----END X509 CRL-----\n"]
)
def test_unreadable_crl_files_name_the_file(content: bytes, tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "root.pem").write_bytes(pki.root.pem)
    (tmp_path / "bad.crl").write_bytes(content)
    with pytest.raises(TrustStoreError, match=r"bad\.crl"):
        load_trust_store(tmp_path)
    with pytest.raises(TrustStoreError, match=r"bad\.crl"):
        load_crl_file(tmp_path / "bad.crl")


def test_crl_reading(pki: Pki) -> None:
    der = crl(pki.issuing, [(pki.leaf, HOLD)], number=9)
    read = load_crls(pem(der, "X509 CRL") * 2)
    assert read == [parse_crl(der)] * 2 and load_crls(der) == read[:1]
    assert (read[0].number, read[0].delta_base, read[0].issuer) == (9, None, "CN=Voice CA")
    assert read[0].revoked[format(pki.leaf.cert.serial_number, "x")].reason == "certificate_hold"
    with pytest.raises(CrlError):
        load_crls(b"\x30\x03\x02\x01\x01")
    with pytest.raises(CrlError):
        parse_crl(_extension_twice(der))


def _extension_twice(der: bytes) -> bytes:
    """``der`` with its first CRL extension repeated (the signature no longer matters)."""
    parsed = asn1_crl.CertificateList.load(der)
    tbs = asn1_crl.TbsCertList.load(parsed["tbs_cert_list"].dump())
    extensions = list(tbs["crl_extensions"])
    tbs["crl_extensions"] = asn1_crl.TBSCertListExtensions([*extensions, extensions[0]])
    return asn1_crl.CertificateList(
        {
            "tbs_cert_list": tbs,
            "signature_algorithm": parsed["signature_algorithm"],
            "signature": parsed["signature"],
        }
    ).dump(force=True)
