"""Trust stores as CUCM exports them: PEM bundles, PEM/DER files, folders of them, PKCS#7.

A store is what a server (CallManager, CAPF, ISE, an ASA) trusts; ``store_for`` picks the store
that judges a handshake from its service and port. Loading never guesses: a file that cannot be
read, or that holds no certificate, is a :class:`TrustStoreError` naming the file.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms

from capana.certificates import load_pem_or_der
from capana.domain import TRUST_STORE_BY_PORT, TRUST_STORE_BY_SERVICE, TRUST_STORE_NAMES
from capana.model import Certificate, UnparsedCertificate
from capana.revocation import RevocationList

# Files read from a folder; anything else there (a README, a CSR) is ignored.
CERTIFICATE_SUFFIXES = frozenset({".pem", ".der", ".cer", ".crt", ".p7b", ".p7c"})

_PKCS7_PEM = re.compile(rb"-----BEGIN (?:PKCS7|CERTIFICATE CHAIN)-----(.*?)-----END", re.S)


class TrustStoreError(ValueError):
    """A trust store path that cannot be used; the message names the file."""


@dataclass(frozen=True)
class TrustStore:
    """The certificates one server trusts. ``name`` is None for the default store."""

    name: str | None
    certificates: tuple[Certificate, ...]
    sources: tuple[str, ...]
    problems: tuple[str, ...] = ()
    crls: tuple[RevocationList, ...] = ()  # checked at the capture time (capana.revocation)

    def __len__(self) -> int:
        return len(self.certificates)

    def __contains__(self, item: object) -> bool:
        return item in self.certificates


def load_trust_store(path: str | Path, name: str | None = None) -> TrustStore:
    """Read a file or a folder of certificate files into a store (duplicates kept once).

    >>> load_trust_store("CallManager-trust/", name="callmanager")  # doctest: +SKIP
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in CERTIFICATE_SUFFIXES)
        if not files:
            raise TrustStoreError(f"{root}: no certificate files (.pem .der .cer .crt .p7b) in it")
    else:
        files = [root]
    certificates: dict[str, Certificate] = {}
    problems: list[str] = []
    for file in files:
        parsed, skipped = _read_file(file)
        problems += [f"{file}: {reason}" for reason in skipped]
        for cert in parsed:
            certificates.setdefault(cert.sha256, cert)
    return TrustStore(name, tuple(certificates.values()), tuple(map(str, files)), tuple(problems))


def parse_trust_option(option: str) -> tuple[str | None, Path]:
    """``"callmanager=cm.pem"`` -> ("callmanager", cm.pem); ``"cm.pem"`` -> (None, cm.pem)."""
    name, sep, rest = option.partition("=")
    if not sep or Path(option).exists():
        return None, Path(option)
    key = name.strip().lower()
    if key in TRUST_STORE_NAMES or key.isdigit():
        return key, Path(rest)
    known = ", ".join(sorted(TRUST_STORE_NAMES))
    raise TrustStoreError(f"{option}: unknown trust store name {name!r} (use {known} or a port)")


def store_for(
    service: str, port: int, stores: Mapping[str | None, TrustStore]
) -> TrustStore | None:
    """The store that judges a handshake: a store named for the port, then the service's
    store (2443/5061 callmanager, 3804 capf, EAP ise, 443 asa), else the default (None key).
    """
    for key in (str(port), TRUST_STORE_BY_SERVICE.get(service), TRUST_STORE_BY_PORT.get(port)):
        if key is not None and key in stores:
            return stores[key]
    return stores.get(None)


def _read_file(file: Path) -> tuple[list[Certificate], list[str]]:
    """The parsed certificates of one file and the reasons for any that were skipped."""
    try:
        data = file.read_bytes()
    except OSError as error:
        raise TrustStoreError(f"{file}: cannot read: {error.strerror or error}") from error
    try:
        found = [cert for der in _der_blobs(file, data) for cert in load_pem_or_der(der)]
    except TrustStoreError:
        raise
    except ValueError as error:  # base64 that does not decode inside a PEM block
        raise TrustStoreError(f"{file}: unreadable PEM: {error}") from error
    parsed = [cert for cert in found if isinstance(cert, Certificate)]
    skipped = [cert.error for cert in found if isinstance(cert, UnparsedCertificate)]
    if not parsed:
        detail = f" ({skipped[0]})" if skipped else ""
        raise TrustStoreError(f"{file}: holds no certificate{detail}")
    return parsed, skipped


def _der_blobs(file: Path, data: bytes) -> list[bytes]:
    """Certificate DER blobs, or whole PEM text, unpacking PKCS#7 bundles."""
    if b"-----BEGIN" in data:  # PEM text: certificate blocks and any PKCS#7 blocks
        bodies = _PKCS7_PEM.findall(data)
        unpacked = [der for body in bodies for der in _pkcs7_certificates(file, _unbase64(body))]
        return [*unpacked, data]
    if file.suffix.lower() in {".p7b", ".p7c"} or _looks_like_pkcs7(data):
        return _pkcs7_certificates(file, data)
    return [data]


def _pkcs7_certificates(file: Path, der: bytes) -> list[bytes]:
    try:
        info = cms.ContentInfo.load(der)
        certificates = info["content"]["certificates"]
        return [choice.chosen.dump() for choice in certificates] if certificates else []
    except Exception as error:
        raise TrustStoreError(f"{file}: not a readable PKCS#7 bundle: {error}") from error


def _looks_like_pkcs7(data: bytes) -> bool:
    # signedData OID 1.2.840.113549.1.7.2 near the start of a DER SEQUENCE
    return data[:1] == b"\x30" and b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02" in data[:32]


def _unbase64(body: bytes) -> bytes:
    return base64.b64decode(b"".join(body.split()))
