"""Certificates from the files an admin has: a PEM or DER certificate, a PEM bundle, a PKCS#7
bundle (``.p7b``), or any text with PEM blocks in it (a CAPF trace, a mail). Bytes in,
certificates out, in the file's order; nothing is guessed and nothing is dropped: a certificate
no parser reads stays an :class:`~capana.model.UnparsedCertificate`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms

from capana.certificates import load_pem_or_der, name_key, parse_certificate
from capana.model import AnyCertificate, Certificate

PKCS7_SUFFIXES = frozenset({".p7b", ".p7c"})
# A certificate, bundle, trace or CRL file is read whole, up to this size (large public CRLs
# run to tens of MiB); a larger file is refused, not read.
MAX_FILE_BYTES = 128 << 20

_PKCS7_PEM = re.compile(rb"-----BEGIN (?:PKCS7|CERTIFICATE CHAIN)-----(.*?)-----END", re.S)
# signedData, OID 1.2.840.113549.1.7.2, as DER
_SIGNED_DATA = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02"


class CertificateFileError(ValueError):
    """A damaged PEM block or PKCS#7 bundle; the message says which."""


@dataclass(frozen=True)
class CertificateFile:
    """The certificates of one file; ``ordered`` is False for a PKCS#7 bundle (a SET)."""

    certificates: tuple[AnyCertificate, ...]
    ordered: bool = True


def read_file(path: Path) -> bytes:
    """The bytes of a certificate, trace or CRL file; raises CertificateFileError naming it."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise CertificateFileError(f"{path}: cannot read: {error.strerror or error}") from error
    if len(data) > MAX_FILE_BYTES:
        raise CertificateFileError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB, not read")
    return data


def read_certificates(data: bytes, *, pkcs7: bool = False) -> CertificateFile:
    """Every certificate in ``data``; ``pkcs7``: the file is named as a PKCS#7 bundle.

    Raises CertificateFileError for a PEM block whose base64 does not decode or a PKCS#7 bundle
    that cannot be read.
    """
    if b"-----BEGIN" in data:  # PEM text: certificate blocks and any PKCS#7 blocks
        bundles = [_pkcs7(_unbase64(body)) for body in _PKCS7_PEM.findall(data)]
        try:
            blocks = load_pem_or_der(data)
        except ValueError as error:
            raise CertificateFileError(f"unreadable PEM: {error}") from error
        unpacked = [cert for bundle in bundles for cert in bundle]
        return CertificateFile((*unpacked, *blocks), ordered=not bundles)
    if pkcs7 or _looks_like_pkcs7(data):
        return CertificateFile(tuple(_pkcs7(data)), ordered=False)
    if data[:1] != b"\x30":  # neither PEM nor a DER SEQUENCE: text without a certificate
        return CertificateFile(())
    return CertificateFile((parse_certificate(data),))


def leaf_first(found: CertificateFile) -> tuple[AnyCertificate, ...]:
    """The chain, leaf first: the first certificate, unless the file says otherwise.

    It does when it is a PKCS#7 bundle (no order), or when its first certificate issued another
    one in it (a bundle written root first): the leaf is then the first certificate that issued
    none of the others. The rest keep the file's order.
    """
    chain = found.certificates
    if len(chain) < 2 or (found.ordered and not _issued_another(chain[0], chain)):
        return chain
    leaves = [cert for cert in chain if not _issued_another(cert, chain)]
    if not leaves:
        return chain
    return (leaves[0], *(cert for cert in chain if cert is not leaves[0]))


def _issued_another(cert: AnyCertificate, chain: Sequence[AnyCertificate]) -> bool:
    """Does another certificate of ``chain`` name ``cert``'s subject as its issuer?"""
    if not isinstance(cert, Certificate):
        return False
    subject = name_key(cert.subject_der)
    return any(
        isinstance(other, Certificate)
        and other.sha256 != cert.sha256
        and name_key(other.issuer_der) == subject
        and name_key(other.subject_der) != subject
        for other in chain
    )


def _pkcs7(der: bytes) -> list[AnyCertificate]:
    try:
        info = cms.ContentInfo.load(der)
        certificates = info["content"]["certificates"]
        blobs = [choice.chosen.dump() for choice in certificates] if certificates else []
    except Exception as error:
        raise CertificateFileError(f"not a readable PKCS#7 bundle: {error}") from error
    return [parse_certificate(blob) for blob in blobs]


def _looks_like_pkcs7(data: bytes) -> bool:
    return data[:1] == b"\x30" and _SIGNED_DATA in data[:32]


def _unbase64(body: bytes) -> bytes:
    try:
        return base64.b64decode(b"".join(body.split()))
    except ValueError as error:
        raise CertificateFileError(f"unreadable PEM: {error}") from error
