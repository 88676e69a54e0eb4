"""X.509 certificates as capana sees them: parsed once, immutable, keyed by SHA-256.

cryptography parses first; where it refuses a real certificate (Cisco's ECC CAs carry a
GeneralizedTime with fractional seconds) asn1crypto reads it instead. A DER blob neither can
read is kept as an :class:`UnparsedCertificate` with its hash and the reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

# Attribute names cryptography leaves as dotted OIDs in RFC 4514 strings; phones use both.
_NAME_OVERRIDES = {NameOID.SERIAL_NUMBER: "serialNumber", NameOID.EMAIL_ADDRESS: "emailAddress"}

_CURVE_NAMES = {
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
    "prime256v1": "P-256",
}


@dataclass(frozen=True, eq=False)
class Certificate:
    """One parsed certificate; equal to another exactly when the DER bytes are equal."""

    sha256: str
    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    signature_algorithm: str
    signature_hash: str | None
    public_key: str
    is_ca: bool | None
    path_length: int | None
    key_usage: frozenset[str]
    extended_key_usage: tuple[str, ...]
    subject_alt_names: tuple[str, ...]
    subject_key_id: bytes | None
    authority_key_id: bytes | None
    critical_extensions: frozenset[str]
    subject_key: str = field(repr=False)
    issuer_key: str = field(repr=False)
    tbs_der: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    public_key_der: bytes = field(repr=False)
    der: bytes = field(repr=False)
    parsed_by: str = "cryptography"
    notes: tuple[str, ...] = ()
    extensions: frozenset[str] = frozenset()  # dotted OIDs of every extension, critical or not
    version: int = 3  # X.509 version: 1 or 3 (a v1 self-signed root is a CA without extensions)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and other.sha256 == self.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    @property
    def self_issued(self) -> bool:
        """Subject and issuer names are the same (a root or a self-signed leaf)."""
        return self.subject_key == self.issuer_key

    def valid_at(self, moment: datetime) -> bool:
        return self.not_before <= moment <= self.not_after

    def load_public_key(self):  # a cryptography public key of any type
        """The subject public key as a cryptography object (for signature checks)."""
        return serialization.load_der_public_key(self.public_key_der)


@dataclass(frozen=True, eq=False)
class UnparsedCertificate:
    """DER bytes that no parser accepted; kept so nothing the capture showed is lost."""

    sha256: str
    error: str
    der: bytes = field(repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnparsedCertificate) and other.sha256 == self.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)


AnyCertificate = Certificate | UnparsedCertificate


def name_key(rfc4514: str) -> str:
    """A comparison key for distinguished names: case and spacing do not matter."""
    return " ".join(rfc4514.casefold().split())


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
            return _from_asn1crypto(der, digest, f"cryptography refused it: {crypto_error}")
        except Exception as asn1_error:
            return UnparsedCertificate(digest, f"unparseable certificate: {asn1_error}", der)


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


def _pem_blocks(data: bytes) -> list[bytes]:
    import base64
    import re

    pattern = rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----(.*?)-----END"
    return [base64.b64decode(b"".join(body.split())) for body in re.findall(pattern, data, re.S)]


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


def _from_cryptography(der: bytes, digest: str) -> Certificate:
    cert = x509.load_der_x509_certificate(der)
    extensions = cert.extensions  # raises on malformed extensions: the fallback reads them
    constraints = _extension(extensions, x509.BasicConstraints)
    key_usage = _extension(extensions, x509.KeyUsage)
    eku = _extension(extensions, x509.ExtendedKeyUsage)
    san = _extension(extensions, x509.SubjectAlternativeName)
    ski = _extension(extensions, x509.SubjectKeyIdentifier)
    aki = _extension(extensions, x509.AuthorityKeyIdentifier)
    public_key = cert.public_key()
    hash_algorithm = cert.signature_hash_algorithm
    subject = cert.subject.rfc4514_string(_NAME_OVERRIDES)
    issuer = cert.issuer.rfc4514_string(_NAME_OVERRIDES)
    return Certificate(
        sha256=digest,
        subject=subject,
        issuer=issuer,
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        signature_algorithm=_oid_name(cert.signature_algorithm_oid),
        signature_hash=hash_algorithm.name if hash_algorithm else None,
        public_key=describe_public_key(public_key),
        is_ca=constraints.ca if constraints else None,
        path_length=constraints.path_length if constraints else None,
        key_usage=_key_usage_names(key_usage) if key_usage else frozenset(),
        extended_key_usage=tuple(_oid_name(oid) for oid in eku) if eku else (),
        subject_alt_names=tuple(str(name.value) for name in san) if san else (),
        subject_key_id=ski.digest if ski else None,
        authority_key_id=aki.key_identifier if aki else None,
        critical_extensions=frozenset(e.oid.dotted_string for e in extensions if e.critical),
        subject_key=name_key(subject),
        issuer_key=name_key(issuer),
        tbs_der=cert.tbs_certificate_bytes,
        signature=cert.signature,
        public_key_der=public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        der=der,
        extensions=frozenset(e.oid.dotted_string for e in extensions),
        version=1 if cert.version == x509.Version.v1 else 3,
    )


def _extension(extensions: x509.Extensions, kind: type) -> object | None:
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


def _oid_name(oid: ObjectIdentifier) -> str:
    name = oid._name
    return oid.dotted_string if name == "Unknown OID" else name


def _from_asn1crypto(der: bytes, digest: str, note: str) -> Certificate:
    cert = asn1_x509.Certificate.load(der, strict=True)
    tbs = cert["tbs_certificate"]
    subject = _asn1_name(cert.subject)
    issuer = _asn1_name(cert.issuer)
    constraints = cert.basic_constraints_value
    algorithm = cert["signature_algorithm"]
    public_key_der = cert.public_key.dump()
    public_key = serialization.load_der_public_key(public_key_der)
    aki = cert.authority_key_identifier_value
    return Certificate(
        sha256=digest,
        subject=subject,
        issuer=issuer,
        serial=format(cert.serial_number, "x"),
        not_before=_utc(cert.not_valid_before),
        not_after=_utc(cert.not_valid_after),
        signature_algorithm=algorithm["algorithm"].native,
        signature_hash=algorithm.hash_algo,
        public_key=describe_public_key(public_key),
        is_ca=bool(constraints["ca"].native) if constraints else None,
        path_length=constraints["path_len_constraint"].native if constraints else None,
        key_usage=frozenset(cert.key_usage_value.native) if cert.key_usage_value else frozenset(),
        extended_key_usage=tuple(cert.extended_key_usage_value.native)
        if cert.extended_key_usage_value
        else (),
        subject_alt_names=tuple(str(v) for v in cert.valid_domains + cert.valid_ips),
        subject_key_id=cert.key_identifier,
        authority_key_id=aki["key_identifier"].native if aki else None,
        critical_extensions=frozenset(
            extension["extn_id"].dotted
            for extension in tbs["extensions"]
            if extension["critical"].native
        ),
        subject_key=name_key(subject),
        issuer_key=name_key(issuer),
        tbs_der=tbs.dump(),
        signature=cert["signature_value"].native,
        public_key_der=public_key_der,
        der=der,
        parsed_by="asn1crypto",
        notes=(note,),
        extensions=frozenset(extension["extn_id"].dotted for extension in tbs["extensions"]),
        version=1 if tbs["version"].native == "v1" else 3,
    )


def _asn1_name(name: asn1_x509.Name) -> str:
    """RFC 4514 text for an asn1crypto name, formatted exactly as cryptography would."""
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
    return x509.Name(rdns).rfc4514_string(_NAME_OVERRIDES)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


@lru_cache(maxsize=4096)
def name_from_der(der: bytes) -> str:
    """RFC 4514 text of a DER-encoded distinguished name (as a CertificateRequest lists them)."""
    return _asn1_name(asn1_x509.Name.load(der, strict=True))
