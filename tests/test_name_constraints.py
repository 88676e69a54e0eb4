"""Name constraints (RFC 5280 4.2.1.10): each case judged by capana and by ``openssl verify``.

A CA with nameConstraints signs a phone certificate; the status must be OpenSSL's, case by case:
dNSName (label boundaries, case), iPAddress (v4, v6, masks), rfc822Name (host, domain, mailbox,
the subject's emailAddress), directoryName (RDN prefix in RFC 5280 form), URI, a commonName that
looks like a host name when the leaf has no dNSName, self-issued intermediates (exempt), the
anchor's own constraints, and the subtrees capana refuses rather than guess (minimum/maximum,
types it does not match).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier
from openssl_oracle import needs_openssl, openssl_statuses
from samplegen.pki import Issued, issue, new_key, rebuild

from capana.certificates import parse_certificate
from capana.model import ReasonCode
from capana.name_constraints import MAX_NAME_CHECKS, NAME_CONSTRAINTS
from capana.truststore import TrustStore
from capana.validation import validate_chain

AT = datetime(2024, 3, 1, tzinfo=timezone.utc)
WINDOW = {
    "not_before": datetime(2020, 1, 1, tzinfo=timezone.utc),
    "not_after": datetime(2030, 1, 1, tzinfo=timezone.utc),
}
CA_KEY, LEAF_KEY = new_key("ec256"), new_key("ec256")

GeneralNames = list[x509.GeneralName]


@dataclass(frozen=True)
class Case:
    """permitted/excluded subtrees of the CA, the leaf's names, capana's expected status."""

    expected: str
    permitted: GeneralNames | None = None
    excluded: GeneralNames | None = None
    alt_names: GeneralNames = field(default_factory=list)
    subject: str = "CN=SEP001122334455,OU=Voice,O=Example"
    code: ReasonCode | None = None  # the reason capana must give when not trusted


def dns(name: str) -> x509.DNSName:
    return x509.DNSName(name)


def ip(text: str) -> x509.IPAddress:
    value = ipaddress.ip_network(text) if "/" in text else ipaddress.ip_address(text)
    return x509.IPAddress(value)


def email(text: str) -> x509.RFC822Name:
    return x509.RFC822Name(text)


def directory(text: str) -> x509.DirectoryName:
    return x509.DirectoryName(x509.Name.from_rfc4514_string(text))


def uri(text: str) -> x509.UniformResourceIdentifier:
    return x509.UniformResourceIdentifier(text)


NOT_PERMITTED, EXCLUDED = ReasonCode.NAME_NOT_PERMITTED, ReasonCode.NAME_EXCLUDED
UNSUPPORTED = ReasonCode.NAME_CONSTRAINT_UNSUPPORTED
EXAMPLE = [dns("example.com")]

CASES: dict[str, Case] = {
    "dns below the permitted domain": Case("trusted", EXAMPLE, alt_names=[dns("a.example.com")]),
    "dns equal to the permitted domain": Case("trusted", EXAMPLE, alt_names=[dns("example.com")]),
    "dns in another letter case": Case("trusted", EXAMPLE, alt_names=[dns("PHONE.Example.COM")]),
    "dns sharing a suffix, not a label": Case(
        "invalid", EXAMPLE, alt_names=[dns("badexample.com")], code=NOT_PERMITTED
    ),
    "dns outside": Case("invalid", EXAMPLE, alt_names=[dns("phone.evil.org")], code=NOT_PERMITTED),
    "dns, one of two outside": Case(
        "invalid", EXAMPLE, alt_names=[dns("a.example.com"), dns("b.evil.org")]
    ),
    "leading dot: the domain itself is outside": Case(
        "invalid", [dns(".example.com")], alt_names=[dns("example.com")]
    ),
    "leading dot: below is inside": Case(
        "trusted", [dns(".example.com")], alt_names=[dns("a.b.example.com")]
    ),
    "dns excluded below a permitted domain": Case(
        "invalid",
        EXAMPLE,
        [dns("lab.example.com")],
        alt_names=[dns("x.lab.example.com")],
        code=EXCLUDED,
    ),
    "dns constraint, only an ip name": Case("trusted", EXAMPLE, alt_names=[ip("192.0.2.7")]),
    "ipv4 inside": Case("trusted", [ip("10.0.0.0/8")], alt_names=[ip("10.20.1.21")]),
    "ipv4 outside": Case(
        "invalid", [ip("10.0.0.0/8")], alt_names=[ip("192.168.1.1")], code=NOT_PERMITTED
    ),
    "ipv6 name, only an ipv4 subtree": Case(
        "invalid", [ip("10.0.0.0/8")], alt_names=[ip("2001:db8::1")]
    ),
    "ipv6 inside": Case("trusted", [ip("2001:db8::/32")], alt_names=[ip("2001:db8::1")]),
    "ipv4 excluded": Case(
        "invalid", None, [ip("192.168.0.0/16")], alt_names=[ip("192.168.7.7")], code=EXCLUDED
    ),
    "mailbox at the permitted host": Case(
        "trusted", [email("example.com")], alt_names=[email("phone@example.com")]
    ),
    "mailbox at a host below a host constraint": Case(
        "invalid", [email("example.com")], alt_names=[email("phone@voice.example.com")]
    ),
    "mailbox below a domain constraint": Case(
        "trusted", [email(".example.com")], alt_names=[email("phone@voice.example.com")]
    ),
    "mailbox constraint, local part in another case": Case(
        "invalid", [email("phone@example.com")], alt_names=[email("Phone@example.com")]
    ),
    "subject emailAddress outside": Case(
        "invalid",
        [email("example.com")],
        subject="CN=SEP001122334455,emailAddress=phone@evil.org",
        code=NOT_PERMITTED,
    ),
    "subject emailAddress inside": Case(
        "trusted",
        [email("example.com")],
        subject="CN=SEP001122334455,emailAddress=phone@EXAMPLE.com",
    ),
    "subject within a directoryName": Case("trusted", [directory("O=Example")]),
    "subject within a directoryName in other case and spacing": Case(
        "trusted",
        [
            x509.DirectoryName(
                x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, " EXAMPLE ")])
            )
        ],
    ),
    "subject outside a directoryName": Case(
        "invalid",
        [directory("O=Example")],
        subject="CN=SEP001122334455,O=Other",
        code=NOT_PERMITTED,
    ),
    "subject in an excluded directoryName": Case(
        "invalid", None, [directory("OU=Voice,O=Example")], code=EXCLUDED
    ),
    "directoryName alt name outside": Case(
        "invalid",
        [directory("O=Example")],
        alt_names=[directory("CN=x,O=Other")],
    ),
    "host-like commonName outside, no dns alt name": Case(
        "invalid", EXAMPLE, subject="CN=phone.evil.org", code=NOT_PERMITTED
    ),
    "host-like commonName, an ip alt name only": Case(
        "invalid", EXAMPLE, subject="CN=phone.evil.org", alt_names=[ip("10.0.0.1")]
    ),
    "host-like commonName outside, dns alt name inside": Case(
        "trusted", EXAMPLE, subject="CN=phone.evil.org", alt_names=[dns("phone.example.com")]
    ),
    "device commonName is not a host name": Case(
        "trusted", EXAMPLE, subject="CN=CP-8861-SEP2C3124C9F8E1,O=Cisco"
    ),
    "commonName with a trailing dot is not a host name": Case(
        "trusted", EXAMPLE, subject="CN=phone.evil.org."
    ),
    "uri host inside": Case(
        "trusted", [uri(".example.com")], alt_names=[uri("https://cucm.example.com:8443/x")]
    ),
    "uri host outside": Case(
        "invalid", [uri(".example.com")], alt_names=[uri("https://evil.org/")]
    ),
    "registeredID meets a registeredID subtree": Case(
        "invalid",
        [x509.RegisteredID(ObjectIdentifier("1.3.6.1.4.1.9.1"))],
        alt_names=[x509.RegisteredID(ObjectIdentifier("1.3.6.1.4.1.9.1"))],
        code=UNSUPPORTED,
    ),
}


def _constrained_ca(case: Case, name: str = "CN=Constrained CA") -> Issued:
    constraints = x509.NameConstraints(case.permitted, case.excluded)
    return issue(name, key=CA_KEY, ca=True, extra_extensions=[(constraints, True)], **WINDOW)


def _leaf(issuer: Issued, case: Case) -> Issued:
    names = [(x509.SubjectAlternativeName(case.alt_names), False)] if case.alt_names else []
    # emailAddress is written as an IA5String, as RFC 5280 and OpenSSL want it.
    subject = x509.Name.from_rfc4514_string(case.subject, {"emailAddress": NameOID.EMAIL_ADDRESS})
    return issue(subject, issuer=issuer, key=LEAF_KEY, extra_extensions=names, **WINDOW)


def _verdict(store: tuple[Issued, ...], chain: tuple[Issued, ...], tmp: Path) -> str:
    """capana's status, once held to OpenSSL's."""
    trust = TrustStore("test", tuple(parse_certificate(c.der) for c in store), ("test",))
    result = validate_chain([parse_certificate(c.der) for c in chain], trust, AT)
    pems = b"".join(c.pem for c in store), b"".join(c.pem for c in chain)
    oracle = openssl_statuses(*pems, AT, tmp)
    assert result.status in oracle, (oracle, result.reasons)
    return result.status


@pytest.mark.parametrize("name", list(CASES))
def test_capana_verdict(name: str) -> None:
    case = CASES[name]
    ca = _constrained_ca(case)
    trust = TrustStore("test", (parse_certificate(ca.der),), ("test",))
    result = validate_chain([parse_certificate(_leaf(ca, case).der)], trust, AT)
    assert result.status == case.expected, result.reasons
    if case.code:
        assert case.code in result.codes, result.reasons
    if case.expected == "invalid":
        assert result.codes & {NOT_PERMITTED, EXCLUDED, UNSUPPORTED}, result.reasons


@needs_openssl
@pytest.mark.parametrize("name", list(CASES))
def test_status_agrees_with_openssl(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    ca = _constrained_ca(case)
    assert _verdict((ca,), (_leaf(ca, case),), tmp_path) == case.expected


def _self_issued_pair() -> tuple[Issued, Issued, Issued]:
    """A root constrained to O=Example whose own name is outside it, a self-issued rollover
    certificate (same name, new key) under it, and a CA of another name under it."""
    root = _constrained_ca(Case("trusted", [directory("O=Example")]), "CN=Constrained Root")
    rollover = issue(
        root.cert.subject, issuer=root, key=new_key("ec256"), ca=True, serial=2, **WINDOW
    )
    other = issue("CN=Other Name CA", issuer=root, key=new_key("ec256"), ca=True, **WINDOW)
    return root, rollover, other


@needs_openssl
def test_self_issued_intermediate_is_exempt_but_bound(tmp_path: Path) -> None:
    root, rollover, other = _self_issued_pair()
    inside = Case("trusted")
    outside = Case("invalid", subject="CN=SEP001122334455,O=Other")
    under_rollover = _leaf(rollover, inside)
    assert _verdict((root,), (under_rollover, rollover), tmp_path) == "trusted"
    escaping = _leaf(rollover, outside)
    assert _verdict((root,), (escaping, rollover), tmp_path) == "invalid"
    under_other = _leaf(other, inside)
    assert _verdict((root,), (under_other, other), tmp_path) == "invalid"


@needs_openssl
def test_constraints_of_an_intermediate_and_of_a_partial_anchor(tmp_path: Path) -> None:
    root = issue("CN=Plain Root", key=new_key("ec256"), ca=True, **WINDOW)
    case = Case("invalid", EXAMPLE, subject="CN=phone.evil.org")
    constrained = issue(
        "CN=Constrained CA",
        issuer=root,
        key=CA_KEY,
        ca=True,
        extra_extensions=[(x509.NameConstraints(EXAMPLE, None), False)],
        **WINDOW,
    )
    leaf = _leaf(constrained, case)
    assert _verdict((root,), (leaf, constrained), tmp_path) == "invalid"
    assert _verdict((constrained,), (leaf,), tmp_path) == "invalid"


def _with_bounded_subtree(case: Case) -> Issued:
    """The CA of ``case`` with minimum 1 on its first permitted subtree (RFC 5280: MUST be 0)."""
    ca = _constrained_ca(case)

    def bound(tbs: asn1_x509.TbsCertificate) -> None:
        for extension in tbs["extensions"]:
            if extension["extn_id"].dotted == NAME_CONSTRAINTS:
                value = extension["extn_value"].parsed
                value["permitted_subtrees"][0]["minimum"] = 1
                extension["extn_value"] = value

    return rebuild(ca, ca, bound)


@needs_openssl
def test_subtree_with_a_minimum_is_refused(tmp_path: Path) -> None:
    case = Case("invalid", EXAMPLE, alt_names=[dns("a.example.com")])
    ca = _with_bounded_subtree(case)
    assert _verdict((ca,), (_leaf(ca, case),), tmp_path) == "invalid"


def test_name_checks_are_bounded() -> None:
    """A CA with more subtrees than the bound allows is refused, quickly, not checked."""
    many = [dns(f"h{n}.example.com") for n in range(MAX_NAME_CHECKS // 2 + 1)]
    case = Case("invalid", many, alt_names=[dns("h1.example.com"), dns("h2.example.com")])
    ca = _constrained_ca(case)
    trust = TrustStore("test", (parse_certificate(ca.der),), ("test",))
    result = validate_chain([parse_certificate(_leaf(ca, case).der)], trust, AT)
    assert result.status == "invalid"
    assert UNSUPPORTED in result.codes
