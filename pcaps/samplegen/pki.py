"""A test-side PKI: synthetic look-alikes of Cisco's manufacturing CAs, CAPFs, MICs and LSCs.

Everything here is generated; none of it carries Cisco's keys. Validity windows are parameters
because capana judges certificates at the time of the capture, and tests need both sides of a date.

cryptography refuses to sign with SHA-1, yet real MICs and Cisco's older CAs are SHA-1 signed.
``issue(..., hash_name="sha1")`` therefore builds with SHA-256, rewrites both signature algorithm
fields to the SHA-1 variant and re-signs the TBS with the raw primitive (PKCS#1 v1.5 or ECDSA over
SHA-1), so the result carries sha1WithRSAEncryption and OpenSSL verifies it.

Names: ``issue`` takes RFC 4514 strings (last RDN first) or an ``x509.Name``; the domain
conveniences take their ``org``/``name`` parts in certificate order, as OpenSSL and Cisco documents
print them (``C=MX,O=Cisco,OU=Voice``), via :func:`dn`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from asn1crypto import algos as asn1_algos
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_HASHES = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_KEY_USAGE_NAMES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)
_ATTRIBUTE_NAMES = {"serialNumber": NameOID.SERIAL_NUMBER, "emailAddress": NameOID.EMAIL_ADDRESS}
_CA_KEY_USAGE = ("digital_signature", "key_cert_sign", "crl_sign")
_LEAF_KEY_USAGE = ("digital_signature", "key_encipherment")
DEFAULT_BY_ROLE: tuple[str, ...] = ("default-by-role",)  # sentinel: KU chosen from the CA flag

# A fixed reference window so generated samples are reproducible in their dates.
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Issued:
    """A certificate together with its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def subject(self) -> x509.Name:
        return self.cert.subject


def new_key(kind: str = "rsa2048") -> PrivateKey:
    """A fresh private key: "rsa1024", "rsa2048", "rsa4096", "ec256", "ec384" or "ed25519"."""
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    curves = {"ec256": ec.SECP256R1, "ec384": ec.SECP384R1, "ec521": ec.SECP521R1}
    if kind in curves:
        return ec.generate_private_key(curves[kind]())
    raise ValueError(f"unknown key kind {kind!r}")


def issue(
    subject: str | x509.Name,
    *,
    issuer: Issued | None = None,
    key: PrivateKey | None = None,
    not_before: datetime,
    not_after: datetime,
    ca: bool | None = False,
    path_length: int | None = None,
    key_usage: Iterable[str] | None = DEFAULT_BY_ROLE,
    extended_key_usage: Iterable[ObjectIdentifier] | None = None,
    san: Iterable[str] = (),
    hash_name: str = "sha256",
    serial: int | None = None,
    extra_extensions: Iterable[tuple[x509.ExtensionType, bool]] = (),
    subject_key_id: bool = True,
    authority_key_id: bool = True,
    pss: bool = False,
) -> Issued:
    """Issue one certificate; ``issuer=None`` makes it self-signed.

    ``ca=None`` omits Basic Constraints; ``key_usage=None`` omits Key Usage; ``san`` entries are
    DNS names; ``pss`` signs RSA with RSASSA-PSS; an Ed25519 issuer ignores ``hash_name``.
    Example::

        root = issue("CN=Root", not_before=EPOCH, not_after=EPOCH + timedelta(days=9), ca=True)
    """
    key = key or new_key()
    name = _name(subject)
    signer_key = issuer.key if issuer else key
    signer_name = issuer.cert.subject if issuer else name
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(_utc(not_before))
        .not_valid_after(_utc(not_after))
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca, path_length if ca else None), True
        )
    usage = _key_usage(key_usage, bool(ca))
    if usage is not None:
        builder = builder.add_extension(usage, True)
    if extended_key_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)), False)
    if san:
        names = [x509.DNSName(entry) for entry in san]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    if subject_key_id:
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = builder.add_extension(ski, False)
    if authority_key_id:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key())
        builder = builder.add_extension(aki, False)
    for extension, critical in extra_extensions:
        builder = builder.add_extension(extension, critical)
    if isinstance(signer_key, ed25519.Ed25519PrivateKey):
        cert = builder.sign(signer_key, None)
    elif hash_name == "sha1":
        cert = _resign_sha1(builder.sign(signer_key, hashes.SHA256()), signer_key)
    elif pss:
        digest = _HASHES[hash_name]()
        pad = padding.PSS(padding.MGF1(digest), padding.PSS.DIGEST_LENGTH)
        cert = builder.sign(signer_key, digest, rsa_padding=pad)
    else:
        cert = builder.sign(signer_key, _HASHES[hash_name]())
    return Issued(cert, key)


# --- Domain conveniences: synthetic look-alikes of the Cisco PKI ---------------------------------


def cisco_manufacturing_pki(
    sha2: bool = True,
    *,
    root_key: PrivateKey | None = None,
    ca_key: PrivateKey | None = None,
    not_before: datetime = datetime(2012, 11, 12, tzinfo=timezone.utc),
    not_after: datetime = datetime(2037, 11, 12, tzinfo=timezone.utc),
) -> tuple[Issued, Issued]:
    """(root, manufacturing CA): "Cisco Root CA M2" / "Cisco Manufacturing CA SHA2" look-alikes.

    ``sha2=False`` gives "Cisco Root CA 2048" / "Cisco Manufacturing CA", SHA-1 signed like the
    real ones.
    """
    if sha2:
        root_name, ca_name, digest = (
            "O=Cisco,CN=Cisco Root CA M2",
            "O=Cisco,CN=Cisco Manufacturing CA SHA2",
            "sha256",
        )
    else:
        root_name = "O=Cisco Systems,CN=Cisco Root CA 2048"
        ca_name, digest = "O=Cisco Systems,CN=Cisco Manufacturing CA", "sha1"
    window = {"not_before": not_before, "not_after": not_after}
    root = issue(dn(root_name), key=root_key, ca=True, hash_name=digest, **window)
    ca = issue(
        dn(ca_name), issuer=root, key=ca_key, ca=True, path_length=0, hash_name=digest, **window
    )
    return root, ca


def capf(
    name: str = "CAPF-0992727f",
    *,
    key: PrivateKey | None = None,
    org: str = "C=MX,O=Cisco,OU=Voice",
    locality: str = "ST=Mexico City,L=Mexico City",
    issuer: Issued | None = None,
    not_before: datetime = EPOCH,
    not_after: datetime = EPOCH + timedelta(days=5 * 365),
    hash_name: str = "sha256",
    extended_key_usage: Iterable[ObjectIdentifier] = (ExtendedKeyUsageOID.SERVER_AUTH,),
) -> Issued:
    """A CAPF certificate as CUCM 14SU2+ makes it: CA:TRUE, pathlen:0, keyCertSign.

    Self-signed unless ``issuer`` is given (CAPF in online/offline CA mode). OpenSSL applies a
    CA's extendedKeyUsage to the chain: a server that verifies LSCs with it wants clientAuth too.
    """
    subject = f"{org},CN={name},{locality}" if locality else f"{org},CN={name}"
    return issue(
        dn(subject),
        issuer=issuer,
        key=key,
        not_before=not_before,
        not_after=not_after,
        ca=True,
        path_length=0,
        key_usage=("digital_signature", "key_encipherment", "key_cert_sign"),
        extended_key_usage=extended_key_usage,
        hash_name=hash_name,
    )


def phone_mic(
    issuer: Issued,
    *,
    model: str = "CP-8861",
    mac: str = "2C3124C9F8E1",
    serial_number: str = "FCH2133E8B9",
    key: PrivateKey | None = None,
    not_before: datetime = datetime(2018, 5, 30, tzinfo=timezone.utc),
    not_after: datetime | None = None,
    hash_name: str = "sha256",
) -> Issued:
    """A phone MIC: 10-year validity, no SAN and no EKU, like the real ones."""
    subject = (
        f"serialNumber=PID:{model} SN:{serial_number},O=Cisco Systems Inc.,OU=CTG,"
        f"CN={model}-SEP{mac.upper()}"
    )
    return issue(
        dn(subject),
        issuer=issuer,
        key=key,
        not_before=not_before,
        not_after=not_after or not_before + timedelta(days=3652),
        key_usage=_LEAF_KEY_USAGE,
        hash_name=hash_name,
    )


def phone_lsc(
    capf: Issued,
    *,
    model: str = "CP-8861",
    mac: str = "2C3124C9F8E1",
    serial_number: str = "FCH2133E8B9",
    org: str = "C=MX,O=Cisco,OU=Voice",
    key: PrivateKey | None = None,
    not_before: datetime = EPOCH,
    not_after: datetime = EPOCH + timedelta(days=5 * 365),
    extended_key_usage: Iterable[ObjectIdentifier] | None = (
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.SERVER_AUTH,
    ),
    hash_name: str = "sha256",
) -> Issued:
    """A phone LSC signed by ``capf`` (or by an online/offline CA): clientAuth+serverAuth EKU."""
    subject = f"serialNumber=PID:{model} SN:{serial_number},{org},CN={model}-SEP{mac.upper()}"
    return issue(
        dn(subject),
        issuer=capf,
        key=key,
        not_before=not_before,
        not_after=not_after,
        key_usage=_LEAF_KEY_USAGE,
        extended_key_usage=extended_key_usage,
        hash_name=hash_name,
    )


def server_cert(
    issuer: Issued | None,
    cn: str = "cucm-pub.example.com",
    *,
    org: str = "C=MX,O=Cisco,OU=Voice",
    key: PrivateKey | None = None,
    not_before: datetime = EPOCH,
    not_after: datetime = EPOCH + timedelta(days=5 * 365),
    hash_name: str = "sha256",
) -> Issued:
    """A CallManager (TLS server) certificate; ``issuer=None`` makes it self-signed like CUCM's."""
    return issue(
        dn(f"{org},CN={cn}"),
        issuer=issuer,
        key=key,
        not_before=not_before,
        not_after=not_after,
        key_usage=_LEAF_KEY_USAGE,
        extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
        san=(cn,),
        hash_name=hash_name,
    )


def pem_bundle(*items: Issued | x509.Certificate) -> bytes:
    """Concatenated PEM of certificates, in the given order."""
    certs = [item.cert if isinstance(item, Issued) else item for item in items]
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


# --- internals ------------------------------------------------------------------------------------


def _name(subject: str | x509.Name) -> x509.Name:
    if isinstance(subject, x509.Name):
        return subject
    return x509.Name.from_rfc4514_string(subject, _ATTRIBUTE_NAMES)


def dn(text: str) -> x509.Name:
    """A name written in certificate order, as OpenSSL prints it ("O=Cisco,CN=...").

    RFC 4514 strings list the last RDN first; real Cisco names are easier to copy in DER order.
    """
    return x509.Name(list(reversed(_name(text).rdns)))


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _key_usage(names: Iterable[str] | None, ca: bool) -> x509.KeyUsage | None:
    if names is None:
        return None
    if names is DEFAULT_BY_ROLE:
        names = _CA_KEY_USAGE if ca else _LEAF_KEY_USAGE
    chosen = set(names)
    unknown = chosen - set(_KEY_USAGE_NAMES)
    if unknown:
        raise ValueError(f"unknown key usage {sorted(unknown)}")
    return x509.KeyUsage(**{flag: flag in chosen for flag in _KEY_USAGE_NAMES})


def _resign_sha1(cert: x509.Certificate, signer: PrivateKey) -> x509.Certificate:
    """The same certificate with its signature algorithm switched to SHA-1 and re-signed."""
    algorithm = "sha1_rsa" if isinstance(signer, rsa.RSAPrivateKey) else "sha1_ecdsa"
    identifier = asn1_algos.SignedDigestAlgorithm({"algorithm": algorithm})

    def to_sha1(tbs: asn1_x509.TbsCertificate) -> None:
        tbs["signature"] = identifier

    return _rebuilt(cert, signer, to_sha1, identifier, hashes.SHA1())


def rebuild(
    item: Issued, signer: Issued | PrivateKey, change: Callable[[asn1_x509.TbsCertificate], None]
) -> Issued:
    """``item`` with its TBSCertificate changed by ``change``, signed again by ``signer``.

    For what cryptography's builder refuses to make: an extension twice, explicit EC curve
    parameters, an X.509 v1 root, another spelling of the issuer's name.
    """
    key = signer.key if isinstance(signer, Issued) else signer
    hash_algorithm = item.cert.signature_hash_algorithm
    algorithm = asn1_x509.Certificate.load(item.der)["signature_algorithm"]
    cert = _rebuilt(item.cert, key, change, algorithm, hash_algorithm)
    return Issued(cert, item.key)


def _rebuilt(
    cert: x509.Certificate,
    signer: PrivateKey,
    change: Callable[[asn1_x509.TbsCertificate], None],
    algorithm: asn1_algos.SignedDigestAlgorithm,
    digest: hashes.HashAlgorithm | None,
) -> x509.Certificate:
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    tbs = asn1_x509.TbsCertificate.load(parsed["tbs_certificate"].dump())
    change(tbs)
    tbs_der = tbs.dump(force=True)
    if isinstance(signer, rsa.RSAPrivateKey):
        assert digest is not None
        signature = signer.sign(tbs_der, padding.PKCS1v15(), digest)
    elif isinstance(signer, ec.EllipticCurvePrivateKey):
        assert digest is not None
        signature = signer.sign(tbs_der, ec.ECDSA(digest))
    else:
        signature = signer.sign(tbs_der)
    rebuilt = asn1_x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature}
    )
    return x509.load_der_x509_certificate(rebuilt.dump(force=True))


def fingerprint(item: Issued) -> str:
    """SHA-256 of the DER, as capana keys certificates."""
    return hashlib.sha256(item.der).hexdigest()
