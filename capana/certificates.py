"""X.509 parsing and distinguished names: DER in, :class:`~capana.model.Certificate` out.

cryptography parses. Where it refuses, asn1crypto rewrites a copy without the two things that
are tolerated, and cryptography parses that copy: fractional seconds in a GeneralizedTime (a
real quirk of Cisco's ECC CAs, kept: those CAs must validate) and an extension present twice
(kept as a defect, so that no path through it is ever trusted: OpenSSL will not use it). Anything
else cryptography refuses stays refused, so the fallback never widens what is accepted. A DER blob
that cannot be read is kept as an :class:`UnparsedCertificate` with its hash and the reason.
Names are compared in asn1crypto's RFC 5280 comparison form, never as rendered text.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import TypeVar

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from capana.model import AnyCertificate, Certificate, Reason, ReasonCode, UnparsedCertificate

# Attribute names cryptography leaves as dotted OIDs in RFC 4514 strings; phones use both.
_NAME_OVERRIDES = {NameOID.SERIAL_NUMBER: "serialNumber", NameOID.EMAIL_ADDRESS: "emailAddress"}

_CURVE_NAMES = {
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
    "prime256v1": "P-256",
}


@lru_cache(maxsize=4096)
def parse_certificate(der: bytes) -> AnyCertificate:
    """Parse DER bytes; never raises. Results are cached: phones repeat the same chains."""
    digest = hashlib.sha256(der).hexdigest()
    if not _signature_algorithms_agree(der):
        # Unsigned bytes that change the certificate's hash but not its signature: OpenSSL
        # refuses it ("certificate signature failure"), so must capana, or a copy of a trusted
        # certificate with another fingerprint would pass.
        reason = "signatureAlgorithm differs from the signed one (RFC 5280, 4.1.1.2)"
        return UnparsedCertificate(digest, f"unparseable certificate: {reason}", der)
    try:
        return _from_cryptography(der, digest)
    except Exception as crypto_error:
        try:
            return _from_tolerated(der, digest, f"cryptography refused it: {crypto_error}")
        except Exception as error:
            return UnparsedCertificate(digest, f"unparseable certificate: {error}", der)


def _signature_algorithms_agree(der: bytes) -> bool:
    """Are the AlgorithmIdentifiers inside the TBSCertificate and after it the same bytes?

    True when the DER is too malformed to tell: the parsers then refuse it themselves.
    """
    try:
        body, _ = _der_element(der, 0, content=True)
        tbs_start, after_tbs = _der_element(der, body, content=True)
        inner = tbs_start
        if der[inner] == 0xA0:  # [0] version
            inner = _der_element(der, inner)[1]
        inner = _der_element(der, inner)[1]  # serialNumber
        signed = der[inner : _der_element(der, inner)[1]]
        outer = der[after_tbs : _der_element(der, after_tbs)[1]]
    except IndexError:
        return True
    return signed == outer


def _der_element(der: bytes, at: int, content: bool = False) -> tuple[int, int]:
    """(where the element at ``at`` starts, or its content with ``content``; where it ends)."""
    size, start = der[at + 1], at + 2
    if size & 0x80:
        count = size & 0x7F
        if not 0 < count <= 4 or start + count > len(der):
            raise IndexError(at)
        size, start = int.from_bytes(der[start : start + count], "big"), start + count
    if start + size > len(der):
        raise IndexError(at)
    return (start if content else at), start + size


def load_pem_or_der(data: bytes) -> list[AnyCertificate]:
    """Every certificate in a PEM bundle, or the single one in a DER blob."""
    if b"-----BEGIN" in data:
        return [parse_certificate(der) for der in _pem_blocks(data)]
    return [parse_certificate(data)]


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----(.*?)-----END", re.S)


def _pem_blocks(data: bytes) -> list[bytes]:
    return [base64.b64decode(b"".join(body.split())) for body in _PEM_CERTIFICATE.findall(data)]


def describe_public_key(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {_CURVE_NAMES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def _from_cryptography(
    der: bytes, digest: str, tolerated: tuple[Reason, ...] = (), note: str | None = None
) -> Certificate:
    """Fields of ``der``; ``tolerated``/``note``: what the fallback rewrote to get here."""
    cert = x509.load_der_x509_certificate(der)
    extensions = cert.extensions  # raises on malformed or repeated extensions
    constraints = extension_value(extensions, x509.BasicConstraints)
    key_usage = extension_value(extensions, x509.KeyUsage)
    eku = extension_value(extensions, x509.ExtendedKeyUsage)
    san = extension_value(extensions, x509.SubjectAlternativeName)
    ski = extension_value(extensions, x509.SubjectKeyIdentifier)
    aki = extension_value(extensions, x509.AuthorityKeyIdentifier)
    public_key = cert.public_key()
    hash_algorithm = cert.signature_hash_algorithm
    subject = cert.subject.rfc4514_string(_NAME_OVERRIDES)
    defects = tolerated + _defects(cert, key_usage, public_key, subject)
    return Certificate(
        sha256=digest,
        subject=cert.subject.rfc4514_string(_NAME_OVERRIDES),
        issuer=cert.issuer.rfc4514_string(_NAME_OVERRIDES),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        signature_algorithm=oid_name(cert.signature_algorithm_oid),
        signature_hash=hash_algorithm.name if hash_algorithm else None,
        public_key=describe_public_key(public_key),
        is_ca=constraints.ca if constraints else None,
        path_length=constraints.path_length if constraints else None,
        key_usage=_key_usage_names(key_usage) if key_usage else frozenset(),
        extended_key_usage=tuple(oid_name(oid) for oid in eku) if eku else (),
        subject_alt_names=tuple(str(name.value) for name in san) if san else (),
        subject_key_id=ski.digest if ski else None,
        authority_key_id=aki.key_identifier if aki else None,
        critical_extensions=frozenset(e.oid.dotted_string for e in extensions if e.critical),
        subject_der=cert.subject.public_bytes(),
        issuer_der=cert.issuer.public_bytes(),
        tbs_der=cert.tbs_certificate_bytes,
        signature=cert.signature,
        public_key_der=public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        der=der,
        subject_cn=_first(cert.subject, NameOID.COMMON_NAME),
        issuer_cn=_first(cert.issuer, NameOID.COMMON_NAME),
        subject_serial_number=_first(cert.subject, NameOID.SERIAL_NUMBER),
        extensions=frozenset(e.oid.dotted_string for e in extensions),
        version=1 if cert.version == x509.Version.v1 else 3,
        parsed_by="asn1crypto" if note else "cryptography",
        notes=(note,) if note else (),
        defects=defects,
    )


def _defects(
    cert: x509.Certificate, key_usage: x509.KeyUsage | None, key: object, subject: str
) -> tuple[Reason, ...]:
    """What makes OpenSSL refuse the certificate although cryptography reads it."""
    found = []
    if key_usage is not None and not _key_usage_names(key_usage):
        text = f"{subject} has a keyUsage extension with no bit set (RFC 5280 4.2.1.3)"
        found.append(Reason(ReasonCode.EMPTY_KEY_USAGE, text))
    if isinstance(key, ec.EllipticCurvePublicKey) and _explicit_curve(cert.tbs_certificate_bytes):
        text = f"{subject} has an EC key with explicit curve parameters (RFC 5480 2.1.1)"
        found.append(Reason(ReasonCode.EXPLICIT_EC_PARAMETERS, text))
    return tuple(found)


def _explicit_curve(tbs: bytes) -> bool:
    """Does the subject key name its curve by parameters rather than by OID (namedCurve)?

    cryptography maps parameters of a known curve to its name, so the DER must be asked.
    """
    spki = asn1_x509.TbsCertificate.load(tbs)["subject_public_key_info"]
    return bool(spki["algorithm"]["parameters"].name != "named")


def _from_tolerated(der: bytes, digest: str, note: str) -> Certificate:
    """The certificate read from a copy without the tolerated quirks (module docstring).

    Raises when the copy is refused too. The copy only serves to read the fields: hash, DER,
    signed bytes and dates are the original's.
    """
    original = asn1_x509.Certificate.load(der, strict=True)
    tbs = asn1_x509.TbsCertificate.load(original["tbs_certificate"].dump())
    validity = tbs["validity"]
    for end in ("not_before", "not_after"):
        if validity[end].name == "general_time":
            whole = validity[end].native.replace(microsecond=0)
            validity[end] = asn1_x509.Time(name="general_time", value=whole)
    seen: set[str] = set()
    kept: list[asn1_x509.Extension] = []
    duplicates: list[asn1_x509.Extension] = []
    for extension in tbs["extensions"]:
        oid = extension["extn_id"].dotted
        (duplicates if oid in seen else kept).append(extension)
        seen.add(oid)
    if duplicates:
        tbs["extensions"] = asn1_x509.Extensions(kept)
    copy = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": original["signature_algorithm"],
            "signature_value": original["signature_value"],
        }
    ).dump(force=True)
    subject = _asn1_name(original.subject).rfc4514_string(_NAME_OVERRIDES)
    tolerated = tuple(
        Reason(
            ReasonCode.DUPLICATE_EXTENSION,
            f"{subject} has extension {extension['extn_id'].dotted} more than once (RFC 5280 4.2)",
        )
        for extension in duplicates
    )
    parsed = _from_cryptography(copy, digest, tolerated, note)
    times = original["tbs_certificate"]["validity"]
    return dataclasses.replace(
        parsed,
        der=der,
        tbs_der=original["tbs_certificate"].dump(),
        not_before=_utc(times["not_before"].native),
        not_after=_utc(times["not_after"].native),
    )


_Extension = TypeVar("_Extension", bound=x509.ExtensionType)


def _first(name: x509.Name, oid: ObjectIdentifier) -> str | None:
    """The first value of attribute ``oid`` in certificate order, as text."""
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def extension_value(extensions: x509.Extensions, kind: type[_Extension]) -> _Extension | None:
    """The value of the extension of that class, or None."""
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _key_usage_names(usage: x509.KeyUsage) -> frozenset[str]:
    names = {
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    }
    present = {name for name in names if getattr(usage, name)}
    if usage.key_agreement:
        present |= {n for n in ("encipher_only", "decipher_only") if getattr(usage, n)}
    return frozenset(present)


def oid_name(oid: ObjectIdentifier) -> str:
    """cryptography's name for an OID ("sha256WithRSAEncryption"), else the dotted form."""
    name = oid._name
    return oid.dotted_string if name == "Unknown OID" else name


def _asn1_name(name: asn1_x509.Name) -> x509.Name:
    """An asn1crypto name as cryptography's, so that its text is formatted alike."""
    rdns = [
        x509.RelativeDistinguishedName(
            [
                x509.NameAttribute(
                    ObjectIdentifier(attribute["type"].dotted),
                    str(attribute["value"].native),
                )
                for attribute in rdn
            ]
        )
        for rdn in name.chosen
    ]
    return x509.Name(rdns)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def utc_text(moment: datetime | None) -> str:
    """A moment as reasons print it: ``2024-03-01T09:00:00Z``."""
    if moment is None:
        return "?"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=4096)
def name_from_der(der: bytes) -> str:
    """RFC 4514 text of a DER-encoded distinguished name (as a CertificateRequest lists them).

    Raises ValueError when the DER is not a name.
    """
    return _asn1_name(asn1_x509.Name.load(der, strict=True)).rfc4514_string(_NAME_OVERRIDES)


@lru_cache(maxsize=8192)
def name_key(der: bytes) -> str:
    """The RFC 5280 (7.1) comparison form of a DER-encoded name: case, inner spacing and
    string types do not matter. Unreadable DER compares as itself."""
    try:
        return str(asn1_x509.Name.load(der).hashable)
    except Exception:  # a hostile name still needs a key; it can only equal itself
        return "der:" + der.hex()


def self_issued(cert: Certificate) -> bool:
    """Subject and issuer are the same name (a root, or a self-signed leaf)."""
    return cert.subject_der == cert.issuer_der or name_key(cert.subject_der) == name_key(
        cert.issuer_der
    )
