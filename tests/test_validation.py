"""Chain validation at capture time: a matrix of built chains, each checked against openssl verify.

Every case states capana's expected status; the oracle (``openssl verify -partial_chain``, which
like CUCM accepts any store certificate as an anchor, see ``openssl_oracle``) must give the same
status: its error codes are mapped to capana's statuses in ``openssl_oracle.OPENSSL_STATUS``.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from openssl_oracle import needs_openssl, openssl_accepts, openssl_statuses
from samplegen.pki import (
    Issued,
    capf,
    cisco_manufacturing_pki,
    issue,
    new_key,
    phone_lsc,
    phone_mic,
)

from capana.certificates import load_pem_or_der, parse_certificate
from capana.model import AnyCertificate, Reason, ReasonCode, Validation
from capana.truststore import TrustStore, load_trust_store
from capana.validation import MAX_SIGNATURE_CHECKS, validate_chain
from capana.views.records import validation_record

CAPTURE = datetime(2021, 6, 1, 12, 0, tzinfo=timezone.utc)
TODAY = datetime(2026, 11, 27, tzinfo=timezone.utc)


def utc(year: int, month: int = 1, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=timezone.utc)


@dataclass(frozen=True)
class World:
    """Synthetic PKIs shared by the matrix; keys are generated once per session."""

    root_m2: Issued
    mfg_sha2: Issued
    root_2048: Issued
    mfg_sha1: Issued
    mic_sha2: Issued
    mic_sha1: Issued
    capf_old: Issued
    capf_new: Issued
    lsc_old: Issued
    lsc_new: Issued
    offline_root: Issued
    offline_int: Issued
    offline_sub: Issued
    lsc_offline: Issued
    lsc_deep: Issued
    forged_root: Issued
    forged_mfg: Issued
    forged_mic: Issued
    stranger: Issued
    key: Callable[[str], object]


@pytest.fixture(scope="session")
def world() -> World:
    keys = {name: new_key("rsa2048") for name in "abcdefghijklmn"}
    keys["ec"] = new_key("ec256")
    root_m2, mfg_sha2 = cisco_manufacturing_pki(True, root_key=keys["a"], ca_key=keys["b"])
    root_2048, mfg_sha1 = cisco_manufacturing_pki(False, root_key=keys["c"], ca_key=keys["d"])
    forged_root, forged_mfg = cisco_manufacturing_pki(True, root_key=keys["e"], ca_key=keys["f"])
    capf_old = capf(key=keys["g"], not_before=utc(2019), not_after=utc(2029))
    capf_new = capf(key=keys["h"], not_before=utc(2020), not_after=utc(2030))
    window = {"not_before": utc(2020), "not_after": utc(2030)}
    offline_root = issue("O=Example,CN=Example Root CA", key=keys["i"], ca=True, **window)
    offline_int = issue(
        "O=Example,CN=Example Issuing CA", issuer=offline_root, key=keys["j"], ca=True, **window
    )
    offline_sub = issue(
        "O=Example,CN=Example Voice CA", issuer=offline_int, key=keys["k"], ca=True, **window
    )
    return World(
        root_m2=root_m2,
        mfg_sha2=mfg_sha2,
        root_2048=root_2048,
        mfg_sha1=mfg_sha1,
        mic_sha2=phone_mic(mfg_sha2, key=keys["l"]),
        mic_sha1=phone_mic(mfg_sha1, key=keys["l"], hash_name="sha1"),
        capf_old=capf_old,
        capf_new=capf_new,
        lsc_old=phone_lsc(capf_old, key=keys["m"]),
        lsc_new=phone_lsc(capf_new, key=keys["m"]),
        offline_root=offline_root,
        offline_int=offline_int,
        offline_sub=offline_sub,
        lsc_offline=phone_lsc(offline_int, key=keys["m"], org="C=US,O=Example,OU=Voice"),
        lsc_deep=phone_lsc(offline_sub, key=keys["m"], org="C=US,O=Example,OU=Voice"),
        forged_root=forged_root,
        forged_mfg=forged_mfg,
        forged_mic=phone_mic(forged_mfg, key=keys["l"]),
        stranger=issue("CN=stranger", key=keys["n"], ca=True, **window),
        key=lambda name: keys[name],
    )


@dataclass(frozen=True)
class Case:
    """store certificates, chain as sent (leaf first), capture time, expected status."""

    store: tuple[Issued, ...]
    chain: tuple[Issued, ...]
    expected: str
    at: datetime = CAPTURE
    reason: str | None = None  # a substring one of the reasons must hold


def _cases(w: World) -> dict[str, Case]:
    lsc = w.lsc_new
    k = w.key
    valid_later = phone_lsc(w.capf_new, key=k("m"), not_before=utc(2022), not_after=utc(2030))
    valid_until = phone_lsc(w.capf_new, key=k("m"), not_before=utc(2019), not_after=utc(2022))
    leaf_ca_false = phone_lsc(w.capf_new, key=k("l"))
    leaf_of_leaf = phone_lsc(leaf_ca_false, key=k("m"), mac="001122334455")
    pathlen0 = issue(
        "CN=Tight Root",
        key=k("i"),
        ca=True,
        path_length=0,
        not_before=utc(2020),
        not_after=utc(2030),
    )
    under_pathlen0 = issue(
        "CN=Too Deep CA",
        issuer=pathlen0,
        key=k("j"),
        ca=True,
        not_before=utc(2020),
        not_after=utc(2030),
    )
    no_certsign_ca = issue(
        "C=MX,O=Cisco,OU=Voice,CN=CAPF-00000bad",
        key=k("g"),
        ca=True,
        key_usage=("digital_signature",),
        not_before=utc(2020),
        not_after=utc(2030),
    )
    server_only = phone_lsc(
        w.capf_new, key=k("m"), extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH,)
    )
    self_signed = issue("CN=SEP001122334455", key=k("n"), not_before=utc(2020), not_after=utc(2030))
    odd_critical = phone_lsc(w.capf_new, key=k("m"))
    odd_critical = issue(
        odd_critical.cert.subject,
        issuer=w.capf_new,
        key=k("m"),
        not_before=utc(2020),
        not_after=utc(2030),
        extra_extensions=[
            (x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.9.99.1"), b"\x05\x00"), True)
        ],
    )
    ec_capf = capf("CAPF-0000ecec", key=k("ec"))
    ec_lsc = phone_lsc(ec_capf, key=new_key("ec256"))
    pss_lsc = issue(
        lsc.cert.subject,
        issuer=w.capf_new,
        key=k("m"),
        pss=True,
        not_before=utc(2020),
        not_after=utc(2030),
    )
    expired_int = issue(
        "O=Example,CN=Example Issuing CA",
        issuer=w.offline_root,
        key=k("j"),
        ca=True,
        not_before=utc(2020),
        not_after=utc(2021),
    )
    return {
        "mic sha2, manufacturing CA as anchor": Case((w.mfg_sha2,), (w.mic_sha2,), "trusted"),
        "mic sha2 via root": Case((w.root_m2,), (w.mic_sha2, w.mfg_sha2), "trusted"),
        "mic sha1 via root": Case(
            (w.root_2048,), (w.mic_sha1, w.mfg_sha1), "trusted", reason="weak signature: sha1"
        ),
        "mic sha1, manufacturing CA as anchor": Case(
            (w.mfg_sha1,), (w.mic_sha1,), "trusted", reason="weak signature: sha1"
        ),
        "mic, intermediate not sent": Case((w.root_m2,), (w.mic_sha2,), "untrusted"),
        "lsc from capf": Case((w.capf_new,), (lsc,), "trusted"),
        "lsc from capf, ec": Case((ec_capf,), (ec_lsc,), "trusted"),
        "lsc from capf, rsa-pss": Case((w.capf_new,), (pss_lsc,), "trusted"),
        "lsc via offline ca and intermediate": Case(
            (w.offline_root,), (w.lsc_offline, w.offline_int), "trusted"
        ),
        "lsc, offline intermediate as anchor": Case((w.offline_int,), (w.lsc_offline,), "trusted"),
        "not yet valid at capture, valid now": Case((w.capf_new,), (valid_later,), "not_yet_valid"),
        "valid at capture, expired now": Case((w.capf_new,), (valid_until,), "trusted"),
        "valid now, expired at a later capture": Case(
            (w.capf_new,), (valid_until,), "expired", at=utc(2023)
        ),
        "intermediate expired at capture": Case(
            (w.offline_root,), (w.lsc_offline, expired_int), "expired", at=utc(2021, 6)
        ),
        "anchor expired at capture": Case((w.capf_old,), (w.lsc_old,), "expired", at=utc(2029, 6)),
        "regenerated capf, only old in store": Case(
            (w.capf_old,), (w.lsc_new,), "untrusted", reason="another key"
        ),
        "regenerated capf, both in store (new lsc)": Case(
            (w.capf_old, w.capf_new), (w.lsc_new,), "trusted"
        ),
        "regenerated capf, both in store (old lsc)": Case(
            (w.capf_new, w.capf_old), (w.lsc_old,), "trusted"
        ),
        "forged manufacturing ca name, leaf only": Case(
            (w.root_m2, w.mfg_sha2), (w.forged_mic,), "untrusted", reason="another key"
        ),
        "forged manufacturing ca sent in chain": Case(
            (w.root_m2,), (w.forged_mic, w.forged_mfg), "untrusted"
        ),
        "leaf signing a leaf (CA:FALSE)": Case(
            (w.capf_new,), (leaf_of_leaf, leaf_ca_false), "invalid", reason="not a CA"
        ),
        "pathLen exceeded": Case(
            (pathlen0,),
            (phone_lsc(under_pathlen0, key=k("m")), under_pathlen0),
            "invalid",
            reason="pathLen",
        ),
        "issuer without keyCertSign": Case(
            (no_certsign_ca,),
            (phone_lsc(no_certsign_ca, key=k("m")),),
            "invalid",
            reason="keyCertSign",
        ),
        "wrong eku, serverAuth only": Case(
            (w.capf_new,), (server_only,), "trusted", reason="lacks clientAuth"
        ),
        "chain sent out of order": Case(
            (w.offline_root,), (w.lsc_deep, w.offline_int, w.offline_sub), "trusted"
        ),
        "extra unrelated certs": Case(
            (w.root_m2,), (w.mic_sha2, w.stranger, w.lsc_new, w.mfg_sha2, w.forged_mfg), "trusted"
        ),
        "self-signed leaf, not in store": Case(
            (w.capf_new,), (self_signed,), "untrusted", reason="self-signed"
        ),
        "self-signed leaf in store": Case((self_signed,), (self_signed,), "trusted"),
        "unknown critical extension": Case(
            (w.capf_new,), (odd_critical,), "invalid", reason="critical extension"
        ),
    }


CASE_NAMES = [
    "mic sha2, manufacturing CA as anchor",
    "mic sha2 via root",
    "mic sha1 via root",
    "mic sha1, manufacturing CA as anchor",
    "mic, intermediate not sent",
    "lsc from capf",
    "lsc from capf, ec",
    "lsc from capf, rsa-pss",
    "lsc via offline ca and intermediate",
    "lsc, offline intermediate as anchor",
    "not yet valid at capture, valid now",
    "valid at capture, expired now",
    "valid now, expired at a later capture",
    "intermediate expired at capture",
    "anchor expired at capture",
    "regenerated capf, only old in store",
    "regenerated capf, both in store (new lsc)",
    "regenerated capf, both in store (old lsc)",
    "forged manufacturing ca name, leaf only",
    "forged manufacturing ca sent in chain",
    "leaf signing a leaf (CA:FALSE)",
    "pathLen exceeded",
    "issuer without keyCertSign",
    "wrong eku, serverAuth only",
    "chain sent out of order",
    "extra unrelated certs",
    "self-signed leaf, not in store",
    "self-signed leaf in store",
    "unknown critical extension",
]


@pytest.fixture(scope="session")
def cases(world: World) -> dict[str, Case]:
    built = _cases(world)
    assert sorted(built) == sorted(CASE_NAMES)
    return built


def _store(items: tuple[Issued, ...], name: str | None = "callmanager") -> TrustStore:
    certs = tuple(parse_certificate(item.der) for item in items)
    return TrustStore(name, certs, ("<test>",))


def _chain(items: tuple[Issued, ...]) -> list[AnyCertificate]:
    return [parse_certificate(item.der) for item in items]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_matrix(name: str, cases: dict[str, Case]) -> None:
    case = cases[name]
    result = validate_chain(_chain(case.chain), _store(case.store), case.at, role="client")
    assert result.status == case.expected, result.reasons
    if case.reason:
        assert any(case.reason in reason.text for reason in result.reasons), result.reasons
    if result.status in ("trusted", "expired", "not_yet_valid"):
        assert result.path[0] == parse_certificate(case.chain[0].der).sha256
        assert result.path[-1] in {parse_certificate(c.der).sha256 for c in case.store}
        assert result.anchor is not None
    else:
        assert result.anchor is None or result.status == "invalid"


@needs_openssl
@pytest.mark.parametrize("name", CASE_NAMES)
def test_matrix_agrees_with_openssl(name: str, cases: dict[str, Case], tmp_path: Path) -> None:
    case = cases[name]
    result = validate_chain(_chain(case.chain), _store(case.store), case.at)
    store_pem = b"".join(item.pem for item in case.store)
    chain_pem = b"".join(item.pem for item in case.chain)
    assert openssl_statuses(store_pem, chain_pem, case.at, tmp_path) == {result.status}, result


def test_capture_time_decides_not_the_clock(cases: dict[str, Case]) -> None:
    case = cases["valid at capture, expired now"]
    chain, store = _chain(case.chain), _store(case.store)
    assert validate_chain(chain, store, CAPTURE).status == "trusted"
    assert validate_chain(chain, store, TODAY).status == "expired"


def test_the_report_shape(cases: dict[str, Case]) -> None:
    case = cases["mic sha1 via root"]
    result = validate_chain(_chain(case.chain), _store(case.store), CAPTURE)
    assert validation_record(result) == {
        "store": "callmanager",
        "status": "trusted",
        "anchor": "CN=Cisco Root CA 2048,O=Cisco Systems",
        "path": [parse_certificate(item.der).sha256 for item in (*case.chain, *case.store)],
        "reasons": ["weak signature: sha1"],
        "reason_codes": ["weak-signature"],
    }


def test_not_checked_without_store_or_certificate(world: World) -> None:
    chain = _chain((world.mic_sha2,))
    assert validate_chain(chain, None, CAPTURE) == Validation(
        None, "not_checked", reasons=(Reason(ReasonCode.NO_TRUST_STORE, "no trust store given"),)
    )
    assert validate_chain([], _store((world.mfg_sha2,)), CAPTURE).status == "not_checked"


def test_unparseable_leaf_is_invalid(world: World) -> None:
    garbage = parse_certificate(b"\x30\x03\x02\x01\x01")
    result = validate_chain([garbage], _store((world.mfg_sha2,)), CAPTURE)
    assert result.status == "invalid"


def test_tampered_signature_is_never_trusted(world: World) -> None:
    der = bytearray(world.lsc_new.der)
    der[-1] ^= 0x01
    result = validate_chain([parse_certificate(bytes(der))], _store((world.capf_new,)), CAPTURE)
    assert result.status == "untrusted"
    assert any("key identifiers match" in reason.text for reason in result.reasons)


def test_search_work_is_bounded(world: World) -> None:
    """Many same-name impostors cost a bounded number of signature checks."""
    impostors = tuple(
        issue(
            world.capf_new.cert.subject,
            key=world.key("n"),
            ca=True,
            serial=n,
            not_before=utc(2020),
            not_after=utc(2030),
        )
        for n in range(1, 2 * MAX_SIGNATURE_CHECKS)
    )
    started = time.perf_counter()
    result = validate_chain(_chain((world.lsc_new, *impostors)), _store((world.capf_old,)), CAPTURE)
    assert result.status == "untrusted"
    assert time.perf_counter() - started < 2


def test_mutually_signing_impostors_cannot_blow_up_the_search(world: World) -> None:
    """Same-name CAs that all sign each other: many paths, none anchored; the search stops."""
    name = world.capf_new.cert.subject
    keys = [world.key(letter) for letter in "abcdefghij"]
    window = {"not_before": utc(2020), "not_after": utc(2030)}
    issuers = [issue(name, key=key, ca=True, **window) for key in keys]
    mesh = [
        issue(name, issuer=signer, key=key, ca=True, serial=n, **window)
        for n, (key, signer) in enumerate(itertools.product(keys, issuers), start=1)
    ]
    started = time.perf_counter()
    result = validate_chain(_chain((world.lsc_new, *mesh)), _store((world.stranger,)), CAPTURE)
    assert result.status == "untrusted"
    assert time.perf_counter() - started < 2


def test_duplicates_in_chain_are_harmless(world: World) -> None:
    chain = _chain((world.mic_sha2, world.mfg_sha2, world.mfg_sha2, world.mic_sha2))
    assert validate_chain(chain, _store((world.root_m2,)), CAPTURE).status == "trusted"


# --- real Cisco certificates -------------------------------------------------------------------

AP_MIC = "certs/mic_cisco_ap_AP3G2-b83861f305ac_from_capwap_pcap.pem"
MFG_CA = "certs/cisco_manufacturing_ca.pem"
ROOT_2048 = "certs/cisco_root_ca_2048.pem"


def _real(shared: Path, *names: str) -> list[AnyCertificate]:
    return [cert for name in names for cert in load_pem_or_der((shared / name).read_bytes())]


def test_real_ap_mic_judged_at_capture_time(shared_data: Path) -> None:
    store = load_trust_store(shared_data / "certs/cisco_public_ca_bundle.pem", "callmanager")
    chain = _real(shared_data, AP_MIC)
    at_2020 = validate_chain(chain, store, utc(2020, 6, 1))
    assert at_2020.status == "trusted"
    assert at_2020.anchor == "CN=Cisco Manufacturing CA,O=Cisco Systems"
    assert ReasonCode.WEAK_SIGNATURE in at_2020.codes
    assert validate_chain(chain, store, TODAY).status == "expired"


def test_real_manufacturing_ca_sha1_link_verifies(shared_data: Path, tmp_path: Path) -> None:
    store = load_trust_store(shared_data / ROOT_2048)
    chain = _real(shared_data, AP_MIC, MFG_CA)
    result = validate_chain(chain, store, utc(2020, 6, 1))
    assert result.status == "trusted"
    assert result.anchor == "CN=Cisco Root CA 2048,O=Cisco Systems"
    assert len(result.path) == 3
    if shutil.which("openssl"):
        store_pem = (shared_data / ROOT_2048).read_bytes()
        chain_pem = b"".join((shared_data / name).read_bytes() for name in (AP_MIC, MFG_CA))
        assert openssl_accepts(store_pem, chain_pem, utc(2020, 6, 1), tmp_path)


def test_real_ecc_ca_is_a_usable_anchor(shared_data: Path) -> None:
    store = load_trust_store(shared_data / "certs/cisco_ecc_root_ca.pem")
    assert store.certificates[0].parsed_by == "asn1crypto"
    result = validate_chain(_real(shared_data, "certs/act2_ecc_sudi_ca.pem"), store, TODAY)
    assert result.status == "trusted"
    assert result.anchor == "CN=Cisco ECC Root CA,O=Cisco"


def test_real_switch_sudi_chains_to_act2(shared_data: Path) -> None:
    store = load_trust_store(shared_data / ROOT_2048)
    chain = _real(
        shared_data, "certs/sudi_cisco_C9300-24U_FCW2131L0JE.pem", "certs/act2_sudi_ca.pem"
    )
    assert validate_chain(chain, store, utc(2020, 6, 1)).status == "trusted"


@pytest.mark.parametrize("copy_key_id", [False, True])
def test_real_manufacturing_ca_look_alike_is_untrusted(
    shared_data: Path, world: World, copy_key_id: bool, tmp_path: Path
) -> None:
    store = load_trust_store(shared_data / "certs/cisco_public_ca_bundle.pem")
    real_ca = _real(shared_data, MFG_CA)[0]
    fake_ca = issue(
        x509.load_der_x509_certificate(real_ca.der).subject,
        key=world.key("f"),
        ca=True,
        not_before=utc(2005),
        not_after=utc(2029),
    )
    extra = []
    if copy_key_id:  # a forger can copy the real CA's key identifier as easily as its name
        aki = x509.AuthorityKeyIdentifier(real_ca.subject_key_id, None, None)
        extra = [(aki, False)]
    fake_mic = issue(
        "CN=AP3G2-b83861f305ac,O=Cisco Systems",
        issuer=fake_ca,
        key=world.key("l"),
        not_before=utc(2014),
        not_after=utc(2024),
        authority_key_id=not copy_key_id,
        extra_extensions=extra,
        hash_name="sha1",
    )
    for chain in ([fake_mic], [fake_mic, fake_ca]):
        result = validate_chain(_chain(tuple(chain)), store, utc(2020, 6, 1))
        assert result.status == "untrusted", result.reasons
    bundle = (shared_data / "certs/cisco_manufacturing_ca.pem").read_bytes()
    bundle += (shared_data / ROOT_2048).read_bytes()
    assert not openssl_accepts(bundle, fake_mic.pem + fake_ca.pem, utc(2020, 6, 1), tmp_path)
