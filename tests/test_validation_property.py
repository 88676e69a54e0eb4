"""Random chains, each judged by capana and by ``openssl verify``: the statuses must be the same.

hypothesis draws a chain (a root, up to two intermediates, a leaf) with random basicConstraints,
keyUsage (empty included), extendedKeyUsage, subjectAltNames, subject names and emailAddress,
name constraints on the CAs, validity before, around or after the moment, unknown extensions
(critical or not), standard extensions twice, partial-chain anchors, chains sent incomplete or
out of order, and sometimes a CRL from every CA (current or stale, revoking some certificates;
with an unknown critical extension, a scope, another signer of the CA's name, or a delta).
cryptography's builder makes each certificate; ``openssl_oracle`` maps OpenSSL's error codes to
capana's statuses. No chain OpenSSL refuses may come out trusted, and every status must agree.

CI runs EXAMPLES (a fixed seed, a few seconds). A longer run, by hand, with another seed::

    CAPANA_PROPERTY_EXAMPLES=5000 CAPANA_PROPERTY_SEED=7 python -m pytest \
        tests/test_validation_property.py -q
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st
from openssl_oracle import needs_openssl, openssl_statuses
from samplegen.pki import Issued, issue, new_key
from test_revocation import base, crl, delta
from test_validation_adversarial import twice

from capana.certificates import parse_certificate
from capana.revocation import parse_crl
from capana.truststore import TrustStore, with_crls
from capana.validation import validate_chain

EXAMPLES = int(os.environ.get("CAPANA_PROPERTY_EXAMPLES", "200"))
SEED = os.environ.get("CAPANA_PROPERTY_SEED")  # another run than CI's fixed one
AT = datetime(2024, 3, 1, 12, tzinfo=timezone.utc)
DAY = timedelta(days=1)
KEYS = [new_key("ec256") for _ in range(6)]  # one per certificate of a chain (the last: a forger)

# What the names and constraints are drawn from: enough overlap that constraints bite.
DNS_NAMES = ("example.com", "a.example.com", "x.lab.example.com", "badexample.com", "evil.org")
IPS = ("10.1.2.3", "192.168.1.1", "2001:db8::1")
IP_NETWORKS = ("10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32")
MAILBOXES = ("phone@example.com", "Phone@a.example.com", "x@evil.org")
MAIL_CONSTRAINTS = ("example.com", ".example.com", "phone@example.com", "evil.org")
ORGANIZATIONS = ("Example", "Other")
COMMON_NAMES = ("SEP001122334455", "phone.example.com", "phone.evil.org")
KEY_USAGES = ("digital_signature", "key_encipherment", "key_cert_sign", "crl_sign")
# Extensions OpenSSL reads, so that it flags them present twice (an unknown one twice: only
# capana refuses it, a deliberate difference tested in test_validation_adversarial).
REPEATABLE = ("2.5.29.19", "2.5.29.15", "2.5.29.17", "2.5.29.37")
PURPOSES = {
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
}
# How each CA's CRL is made: mostly plain; or with an unknown critical extension, a scope of CA
# or end-entity certificates only, signed by another key of the CA's name, or a delta on a base.
CRL_KINDS = {"plain": 8, "critical": 1, "ca_only": 1, "user_only": 1, "foreign": 1, "delta": 2}
UNKNOWN = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.9.99.7"), b"\x05\x00")


@dataclass(frozen=True)
class CertSpec:
    """One certificate, as drawn."""

    ca: bool | None  # basicConstraints: CA:TRUE, CA:FALSE, absent
    path_length: int | None
    key_usage: tuple[str, ...] | None  # None: absent; (): present with no bit
    eku: tuple[str, ...] | None
    alt_names: tuple[tuple[str, str], ...]  # (kind, value)
    organization: str
    common_name: str
    email: str | None
    dates: str  # "valid", "expired", "not_yet_valid"
    unknown: bool | None  # an unknown extension: None absent, else its criticality
    twice: str | None  # an extension present twice
    permitted: tuple[tuple[str, str], ...] = ()  # name constraints (CAs)
    excluded: tuple[tuple[str, str], ...] = ()
    constraints_critical: bool = True
    self_issued: bool = False  # an intermediate named as its issuer (a key rollover)


@dataclass(frozen=True)
class ChainSpec:
    certificates: tuple[CertSpec, ...]  # root first, leaf last
    partial_anchor: bool  # the store holds the top intermediate instead of the root
    sent: tuple[int, ...]  # which intermediates the peer sends (indices), in that order
    crls: str | None  # None: no CRLs; "current"/"stale": every CA issues one
    revoked: tuple[int, ...]  # certificates the CRLs list (indices, never the root)
    crl_kinds: tuple[str, ...] = ()  # per CA, one of CRL_KINDS


def weighted(choices: dict[Any, int]) -> st.SearchStrategy[Any]:
    """One of the keys, as often as its weight."""
    return st.sampled_from([key for key, weight in choices.items() for _ in range(weight)])


def _names(kinds: tuple[str, ...]) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    choices = {
        "dns": st.sampled_from(DNS_NAMES),
        "ip": st.sampled_from(IPS),
        "email": st.sampled_from(MAILBOXES),
    }
    one = st.sampled_from(kinds).flatmap(lambda kind: choices[kind].map(lambda v: (kind, v)))
    return st.lists(one, max_size=2, unique=True).map(tuple)


def _constraints() -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    one = st.one_of(
        st.sampled_from(DNS_NAMES).map(lambda v: ("dns", v)),
        st.sampled_from(IP_NETWORKS).map(lambda v: ("ip", v)),
        st.sampled_from(MAIL_CONSTRAINTS).map(lambda v: ("email", v)),
        st.sampled_from(ORGANIZATIONS).map(lambda v: ("directory", v)),
    )
    return st.lists(one, max_size=2, unique=True).map(tuple)


@st.composite
def certificate_specs(draw: st.DrawFn, *, ca: bool) -> CertSpec:
    """Mostly what a real CA or phone certificate has, often one thing off."""
    basic = draw(weighted({True: 16, None: 1, False: 1} if ca else {False: 6, None: 3, True: 1}))
    usual = ("digital_signature", "key_cert_sign", "crl_sign") if ca else KEY_USAGES[:2]
    usage = draw(weighted({None: 8, usual: 8, (): 1, "any": 2}))
    if usage == "any":
        usage = tuple(draw(st.lists(st.sampled_from(KEY_USAGES), unique=True)))
    constrained = ca and draw(st.integers(0, 3)) == 0
    return CertSpec(
        ca=basic,
        path_length=draw(st.sampled_from([None, None, 0, 1])) if basic else None,
        key_usage=usage,
        eku=draw(st.one_of(st.none(), st.sampled_from([("clientAuth",), ("serverAuth",)]))),
        alt_names=() if ca else draw(_names(("dns", "ip", "email"))),
        organization=draw(st.sampled_from(ORGANIZATIONS)),
        common_name=draw(st.sampled_from(COMMON_NAMES)) if not ca else "",
        email=None if ca else draw(st.sampled_from([None, None, *MAILBOXES])),
        dates=draw(weighted({"valid": 12, "expired": 1, "not_yet_valid": 1})),
        unknown=draw(weighted({None: 16, True: 1, False: 2})),
        twice=draw(weighted({None: 40, **dict.fromkeys(REPEATABLE, 1)})),
        permitted=draw(_constraints()) if constrained else (),
        excluded=draw(_constraints()) if constrained else (),
        constraints_critical=draw(st.booleans()),
        self_issued=ca and draw(st.integers(0, 4)) == 0,
    )


@st.composite
def chain_specs(draw: st.DrawFn) -> ChainSpec:
    depth = draw(st.integers(0, 2))
    cas = [draw(certificate_specs(ca=True)) for _ in range(depth + 1)]
    leaf = draw(certificate_specs(ca=False))
    intermediates = list(range(1, depth + 1))
    with_crls = draw(st.integers(0, 2)) == 0
    partial = not with_crls and depth > 0 and draw(st.booleans())
    sent = draw(st.permutations(intermediates))
    if sent and not partial and draw(st.integers(0, 4)) == 0:
        sent = sent[1:]  # one intermediate not sent
    revoked = draw(st.lists(st.sampled_from([*intermediates, depth + 1]), unique=True))
    return ChainSpec(
        certificates=(*cas, leaf),
        partial_anchor=partial,
        sent=tuple(sent),
        crls=draw(st.sampled_from(["current", "current", "stale"])) if with_crls else None,
        revoked=tuple(revoked) if with_crls else (),
        crl_kinds=tuple(draw(weighted(CRL_KINDS)) for _ in cas) if with_crls else (),
    )


def _general_name(kind: str, value: str) -> x509.GeneralName:
    if kind == "dns":
        return x509.DNSName(value)
    if kind == "ip":
        return x509.IPAddress(
            ipaddress.ip_network(value) if "/" in value else ipaddress.ip_address(value)
        )
    if kind == "email":
        return x509.RFC822Name(value)
    return x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, value)]))


def _build(spec: ChainSpec) -> list[Issued]:
    """Root first; each certificate signed by the one before it."""
    built: list[Issued] = []
    for level, cert in enumerate(spec.certificates):
        window = {
            "valid": (AT - 400 * DAY, AT + 400 * DAY),
            "expired": (AT - 400 * DAY, AT - 10 * DAY),
            "not_yet_valid": (AT + 10 * DAY, AT + 400 * DAY),
        }[cert.dates]
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, cert.organization)]
        name = cert.common_name or f"Property CA {level}"
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, name))
        if cert.email:
            attributes.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, cert.email))
        if cert.self_issued and built:
            attributes = list(built[-1].cert.subject)
        extra: list[tuple[x509.ExtensionType, bool]] = []
        if cert.alt_names:
            alt = [_general_name(kind, value) for kind, value in cert.alt_names]
            extra.append((x509.SubjectAlternativeName(alt), False))
        if cert.permitted or cert.excluded:
            constraints = x509.NameConstraints(
                [_general_name(*c) for c in cert.permitted] or None,
                [_general_name(*c) for c in cert.excluded] or None,
            )
            extra.append((constraints, cert.constraints_critical))
        if cert.unknown is not None:
            extra.append((UNKNOWN, cert.unknown))
        issuer = built[-1] if built else None
        made = issue(
            x509.Name(attributes),
            issuer=issuer,
            key=KEYS[level],
            not_before=window[0],
            not_after=window[1],
            ca=cert.ca,
            path_length=cert.path_length,
            key_usage=cert.key_usage,
            extended_key_usage=[PURPOSES[u] for u in cert.eku] if cert.eku else None,
            extra_extensions=extra,
        )
        if cert.twice and any(e.oid.dotted_string == cert.twice for e in made.cert.extensions):
            made = twice(made, issuer or made, cert.twice)
        built.append(made)
    return built


def _crls(spec: ChainSpec, built: list[Issued]) -> tuple[bytes, ...]:
    if spec.crls is None:
        return ()
    dates = {"this_update": AT - 10 * DAY, "next_update": AT + 20 * DAY}
    if spec.crls == "stale":
        dates = {"this_update": AT - 40 * DAY, "next_update": AT - 10 * DAY}
    listed = [built[index] for index in spec.revoked]
    made: list[bytes] = []
    for ca, kind in zip(built[:-1], spec.crl_kinds, strict=True):
        entries = [(c, None) for c in listed if c.cert.issuer == ca.cert.subject]
        scope = {"ca_only": (False, True), "user_only": (True, False)}.get(kind)
        extensions: list[tuple[x509.ExtensionType, bool]] = []
        if kind == "critical":
            extensions.append((UNKNOWN, True))
        if scope:
            point = x509.IssuingDistributionPoint(None, None, *scope, None, False, False)
            extensions.append((point, True))
        if kind == "delta":
            made += [base(ca, 5), delta(ca, 5, 6, entries)]
            continue
        signer = Issued(ca.cert, KEYS[-1]) if kind == "foreign" else None
        made.append(crl(ca, entries, extensions=extensions, signer=signer, **dates))
    return tuple(made)


@needs_openssl
@settings(
    max_examples=EXAMPLES,
    derandomize=SEED is None,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@(seed(int(SEED)) if SEED else lambda test: test)
@given(spec=chain_specs())
def test_status_agrees_with_openssl(spec: ChainSpec) -> None:
    built = _build(spec)
    anchor = built[1] if spec.partial_anchor else built[0]
    chain = [built[-1], *(built[index] for index in spec.sent)]
    crls = _crls(spec, built)
    store = TrustStore("test", (parse_certificate(anchor.der),), ("test",))
    store = with_crls(store, [parse_crl(der) for der in crls])
    result = validate_chain([parse_certificate(c.der) for c in chain], store, AT)
    with TemporaryDirectory() as tmp:
        oracle = openssl_statuses(
            anchor.pem, b"".join(c.pem for c in chain), AT, Path(tmp), crls=crls
        )
    event(f"status {result.status}")  # pytest --hypothesis-show-statistics
    event(f"reason {result.reasons[0].code.value if result.reasons else None}")
    assert "trusted" in oracle or result.status != "trusted", (oracle, result)
    assert result.status in oracle, (oracle, spec, result.reasons)
