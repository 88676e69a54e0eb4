"""Name constraints (RFC 5280 4.2.1.10) on a path, as OpenSSL 3 enforces them.

A CA's nameConstraints extension bounds the names of every certificate below it: each name of a
type the CA constrains must fall in one of its permitted subtrees of that type, and in none of its
excluded subtrees. OpenSSL's rules, which capana follows so that both give the same verdict:

- the names checked: the subject (a directoryName, when not empty), each emailAddress attribute
  of the subject (an rfc822Name; it must be an IA5String), and each subjectAltName; for the leaf
  without a dNSName in its subjectAltName, also each commonName that looks like a host name
  (two labels or more of letters, digits, ``-`` and ``_``) as a dNSName;
- self-issued intermediates are not checked (their constraints still bind what is below them);
  the leaf is checked even when self-issued; the anchor's constraints apply too;
- dNSName: the name ends with the constraint at a label boundary (``example.com`` matches
  ``example.com`` and ``a.example.com``; ``.example.com`` only names below it), ASCII case
  ignored; iPAddress: address and mask, IPv4 never matching IPv6; rfc822Name: a mailbox, a host
  (``example.com``) or a domain below it (``.example.com``), the local part case-sensitive;
  directoryName: the constraint is a prefix of the name's RDNs, compared in RFC 5280 form;
  URI: the host part, as dNSName without the label rule;
- a subtree with minimum other than 0 or any maximum, a name of a type capana does not match
  (otherName, x400Address, ediPartyName, registeredID) meeting a constraint of its type, or a
  malformed name meeting one: the path is refused (OpenSSL refuses those too, except SmtpUTF8
  mailboxes, which it matches and capana refuses).

Bound: at most MAX_NAME_CHECKS (name, subtree) pairs per certificate and CA; more is refused.
OpenSSL allows 2^20; Python is slower, and no real certificate comes near either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from asn1crypto import x509 as asn1_x509

from capana.certificates import self_issued
from capana.model import Certificate, Reason, ReasonCode

MAX_NAME_CHECKS = 1 << 16
NAME_CONSTRAINTS = "2.5.29.30"  # the extension's OID
_SMTP_UTF8_MAILBOX = "1.3.6.1.5.5.7.8.9"
# The types matched here; asn1crypto's names for the GeneralName choices.
_DNS, _EMAIL, _IP, _DIRECTORY, _URI = (
    "dns_name",
    "rfc822_name",
    "ip_address",
    "directory_name",
    "uniform_resource_identifier",
)
_MATCHED = frozenset({_DNS, _EMAIL, _IP, _DIRECTORY, _URI})

# A name: its GeneralName type (with the OID for an otherName) and its value: raw bytes for the
# IA5String and iPAddress types, the RDNs in comparison form for a directoryName.
_Kind = str
_Value = bytes | tuple[str, ...] | None
_Name = tuple[_Kind, _Value]


class _Unsupported(Exception):
    """A name or subtree capana will not judge: the path is refused."""


@dataclass(frozen=True)
class _Subtree:
    kind: _Kind
    value: _Value
    bounded: bool  # minimum other than 0, or a maximum (RFC 5280: MUST be absent)


@dataclass(frozen=True)
class _Constraints:
    permitted: tuple[_Subtree, ...]
    excluded: tuple[_Subtree, ...]


def check_name_constraints(path: Sequence[Certificate]) -> list[Reason]:
    """Why ``path`` (leaf first, anchor last) breaks the name constraints of its CAs."""
    constrained = [
        (depth, cert)
        for depth, cert in enumerate(path)
        if depth > 0 and NAME_CONSTRAINTS in cert.extensions
    ]
    if not constrained:
        return []
    broken = []
    for depth, cert in enumerate(path):
        if depth > 0 and self_issued(cert):
            continue
        for _, ca in (item for item in constrained if item[0] > depth):
            reason = _check(cert, ca, leaf=depth == 0)
            if reason is not None:
                broken.append(reason)
    return broken


def _check(cert: Certificate, ca: Certificate, *, leaf: bool) -> Reason | None:
    about = (cert.sha256, ca.sha256)
    try:
        constraints = _constraints(ca.der)
        names = _names(cert.der)
        if len(names) * (len(constraints.permitted) + len(constraints.excluded)) > MAX_NAME_CHECKS:
            raise _Unsupported(f"more than {MAX_NAME_CHECKS} name checks")
        for name in names:
            code = _violation(name, constraints)
            if code is not None:
                return _broken(code, name, cert, ca)
        if leaf and not any(kind == _DNS for kind, _ in names):
            for name in _common_names(cert.der):
                code = _violation(name, constraints)
                if code is not None:
                    return _broken(code, name, cert, ca)
    except _Unsupported as error:
        text = f"name constraints of {ca.subject} cannot be checked on {cert.subject}: {error}"
        return Reason(ReasonCode.NAME_CONSTRAINT_UNSUPPORTED, text, about)
    return None


def _broken(code: ReasonCode, name: _Name, cert: Certificate, ca: Certificate) -> Reason:
    where = "in the excluded" if code == ReasonCode.NAME_EXCLUDED else "outside the permitted"
    text = f"{_label(name)} of {cert.subject} is {where} names of {ca.subject}"
    return Reason(code, text, (cert.sha256, ca.sha256))


def _violation(name: _Name, constraints: _Constraints) -> ReasonCode | None:
    """NAME_NOT_PERMITTED, NAME_EXCLUDED or None; raises _Unsupported (OpenSSL's nc_match)."""
    kind, value = name
    permitted = [tree for tree in constraints.permitted if tree.kind == kind]
    if permitted:
        if any(tree.bounded for tree in permitted):
            raise _Unsupported("a subtree has a minimum or maximum")
        if not any(_matches(kind, value, tree.value) for tree in permitted):
            return ReasonCode.NAME_NOT_PERMITTED
    for tree in constraints.excluded:
        if tree.kind != kind:
            continue
        if tree.bounded:
            raise _Unsupported("a subtree has a minimum or maximum")
        if _matches(kind, value, tree.value):
            return ReasonCode.NAME_EXCLUDED
    return None


def _matches(kind: _Kind, name: _Value, base: _Value) -> bool:
    if kind not in _MATCHED or name is None or base is None:
        raise _Unsupported(f"{_label((kind, name))} meets a constraint of its type")
    if kind == _DIRECTORY:
        assert isinstance(name, tuple) and isinstance(base, tuple)
        return name[: len(base)] == base
    assert isinstance(name, bytes) and isinstance(base, bytes)
    if kind == _DNS:
        return _dns_matches(name, base)
    if kind == _EMAIL:
        return _email_matches(name, base)
    if kind == _IP:
        return _ip_matches(name, base)
    return _uri_matches(name, base)


def _dns_matches(name: bytes, base: bytes) -> bool:
    if not base:
        return True
    if len(name) < len(base):
        return False
    boundary = len(name) == len(base) or base[:1] == b"." or name[-len(base) - 1 :][:1] == b"."
    return boundary and name[-len(base) :].lower() == base.lower()


def _email_matches(name: bytes, base: bytes) -> bool:
    at = name.rfind(b"@")
    if at < 0:
        raise _Unsupported(f"mailbox {_text(name)!r} without @")
    base_at = base.rfind(b"@")
    if base_at < 0 and base[:1] == b".":  # a domain: any mailbox below it
        return len(name) > len(base) and name[-len(base) :].lower() == base.lower()
    host = base
    if base_at >= 0:
        local = base[:base_at]
        if local and (b"\0" in base or b"\0" in name):
            raise _Unsupported("NUL in a mailbox")
        if local and local != name[:at]:  # the local part is case-sensitive
            return False
        host = base[base_at + 1 :]
    return name[at + 1 :].lower() == host.lower()


def _ip_matches(name: bytes, base: bytes) -> bool:
    if len(name) not in (4, 16) or len(base) not in (8, 32):
        raise _Unsupported("an iPAddress of odd length")
    if 2 * len(name) != len(base):
        return False  # IPv4 never matches IPv6
    address, mask = base[: len(name)], base[len(name) :]
    return all(n & m == a & m for n, a, m in zip(name, address, mask, strict=True))


def _uri_matches(name: bytes, base: bytes) -> bool:
    scheme = name.find(b":")
    if scheme < 0 or name[scheme + 1 : scheme + 3] != b"//":
        raise _Unsupported(f"URI {_text(name)!r} without a host")
    rest = name[scheme + 3 :]
    end = rest.find(b":")
    if end < 0:
        end = rest.find(b"/")
    host = rest if end < 0 else rest[:end]
    if not host:
        raise _Unsupported(f"URI {_text(name)!r} without a host")
    if base[:1] == b".":
        return len(host) > len(base) and host[-len(base) :].lower() == base.lower()
    return host.lower() == base.lower()


@lru_cache(maxsize=256)
def _constraints(der: bytes) -> _Constraints:
    try:
        value = asn1_x509.Certificate.load(der).name_constraints_value
        permitted = value["permitted_subtrees"] if value else None
        excluded = value["excluded_subtrees"] if value else None
        return _Constraints(_subtrees(permitted), _subtrees(excluded))
    except _Unsupported:
        raise
    except Exception as error:  # a malformed extension: OpenSSL refuses the certificate too
        raise _Unsupported(f"unreadable nameConstraints ({error})") from error


def _subtrees(trees: asn1_x509.GeneralSubtrees | None) -> tuple[_Subtree, ...]:
    if trees is None or trees.native is None:
        return ()
    return tuple(
        _Subtree(
            *_general_name(tree["base"]),
            bounded=tree["minimum"].native != 0 or tree["maximum"].native is not None,
        )
        for tree in trees
    )


@lru_cache(maxsize=1024)
def _names(der: bytes) -> tuple[_Name, ...]:
    """The subject (when not empty), its emailAddress attributes, then the subjectAltNames."""
    try:
        cert = asn1_x509.Certificate.load(der)
        subject = cert.subject.chosen
        names: list[_Name] = []
        if len(subject):
            names.append((_DIRECTORY, tuple(rdn.hashable for rdn in subject)))
        for rdn in subject:
            for attribute in rdn:
                if attribute["type"].native == "email_address":
                    names.append((_EMAIL, _ia5(attribute["value"])))
        alt_names = cert.subject_alt_name_value
        names += [_general_name(name) for name in alt_names or ()]
        return tuple(names)
    except _Unsupported:
        raise
    except Exception as error:
        raise _Unsupported(f"unreadable names ({error})") from error


@lru_cache(maxsize=1024)
def _common_names(der: bytes) -> tuple[_Name, ...]:
    """The subject's commonNames that look like host names, as dNSNames (OpenSSL's cn2dnsid)."""
    try:
        subject = asn1_x509.Certificate.load(der).subject.chosen
        values = [
            str(attribute["value"].native).rstrip("\0")
            for rdn in subject
            for attribute in rdn
            if attribute["type"].native == "common_name"
        ]
    except Exception as error:
        raise _Unsupported(f"unreadable commonName ({error})") from error
    if any("\0" in value for value in values):
        raise _Unsupported("NUL in a commonName")
    return tuple((_DNS, value.encode("ascii")) for value in values if _looks_like_host(value))


def _looks_like_host(text: str) -> bool:
    """Letters, digits, ``_``, inner ``-``; two labels or more; no empty label, no ``.-``/``-.``."""
    if not text.isascii() or "." not in text[1:-1]:
        return False
    for i, char in enumerate(text):
        if char.isalnum() or char == "_":
            continue
        inner = 0 < i < len(text) - 1
        if inner and char == "-":
            continue
        if inner and char == "." and text[i + 1] not in ".-" and text[i - 1] != "-":
            continue
        return False
    return True


def _general_name(name: asn1_x509.GeneralName) -> _Name:
    kind = name.name
    if kind == "other_name":
        oid = name.chosen["type_id"].dotted
        # SmtpUTF8Mailbox is an rfc822Name to OpenSSL; capana does not match it: refused.
        return (_EMAIL, None) if oid == _SMTP_UTF8_MAILBOX else (f"other_name {oid}", None)
    if kind == _DIRECTORY:
        return kind, tuple(rdn.hashable for rdn in name.chosen.chosen)
    if kind in (_DNS, _EMAIL, _URI):
        return kind, _ia5(name.chosen)
    if kind == _IP:
        return kind, bytes(name.chosen.contents)
    return kind, None


def _ia5(value: object) -> bytes | None:
    """Raw IA5String bytes (DNSName, URI and EmailAddress are ones); None for another type."""
    return bytes(value.contents or b"") if isinstance(value, asn1_x509.IA5String) else None


def _label(name: _Name) -> str:
    kind, value = name
    if isinstance(value, bytes) and kind == _IP:
        return f"iPAddress {'.'.join(map(str, value)) if len(value) == 4 else value.hex()}"
    if isinstance(value, bytes):
        return f"{kind} {_text(value)!r}"
    return "directoryName" if kind == _DIRECTORY else kind


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace")
