"""Trust stores as CUCM exports them: PEM bundles, PEM/DER files, folders of them, PKCS#7.

A store is what a server (CallManager, CAPF, ISE, an ASA) trusts, and the CRLs it holds (``.crl``
files, or ``X509 CRL`` blocks in a PEM file); ``store_for`` picks the store that judges a
handshake from its service and port. Loading never guesses: a file that cannot be read, or that
holds neither certificate nor CRL, is a :class:`TrustStoreError` naming the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from capana.certfiles import PKCS7_SUFFIXES, CertificateFileError, read_certificates, read_file
from capana.domain import TRUST_STORE_BY_PORT, TRUST_STORE_BY_SERVICE, TRUST_STORE_NAMES
from capana.model import Certificate, UnparsedCertificate
from capana.revocation import CrlError, RevocationList, load_crls

# Files read from a folder; anything else there (a README, a CSR) is ignored.
CERTIFICATE_SUFFIXES = frozenset({".pem", ".der", ".cer", ".crt", ".p7b", ".p7c"})
CRL_SUFFIXES = frozenset({".crl"})


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
    """Read a file or a folder of certificate (and CRL) files into a store, each once.

    >>> load_trust_store("CallManager-trust/", name="callmanager")  # doctest: +SKIP
    """
    root = Path(path)
    if root.is_dir():
        suffixes = CERTIFICATE_SUFFIXES | CRL_SUFFIXES
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in suffixes)
        if not any(p.suffix.lower() in CERTIFICATE_SUFFIXES for p in files):
            raise TrustStoreError(f"{root}: no certificate files (.pem .der .cer .crt .p7b) in it")
    else:
        files = [root]
    certificates: dict[str, Certificate] = {}
    crls: dict[str, RevocationList] = {}
    problems: list[str] = []
    for file in files:
        parsed, revocations, skipped = _read_file(file)
        problems += [f"{file}: {reason}" for reason in skipped]
        for cert in parsed:
            certificates.setdefault(cert.sha256, cert)
        for crl in revocations:
            crls.setdefault(crl.sha256, crl)
    if not certificates:
        raise TrustStoreError(f"{root}: holds no certificate, only CRLs")
    return TrustStore(
        name,
        tuple(certificates.values()),
        tuple(map(str, files)),
        tuple(problems),
        tuple(crls.values()),
    )


def load_crl_file(path: str | Path) -> tuple[RevocationList, ...]:
    """The CRLs of one PEM or DER file (``--crl FILE``); raises TrustStoreError naming it."""
    file = Path(path)
    crls = {crl.sha256: crl for crl in _crls(file, _read_bytes(file))}
    if not crls:
        raise TrustStoreError(f"{file}: holds no CRL (PEM 'X509 CRL' or DER)")
    return tuple(crls.values())


def with_crls(store: TrustStore, crls: Iterable[RevocationList]) -> TrustStore:
    """``store`` holding ``crls`` too (each CRL once)."""
    held = {crl.sha256: crl for crl in (*store.crls, *crls)}
    return dataclasses.replace(store, crls=tuple(held.values()))


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


def _read_file(
    file: Path,
) -> tuple[list[Certificate], tuple[RevocationList, ...], list[str]]:
    """The certificates and CRLs of one file, and the reasons for certificates skipped."""
    data = _read_bytes(file)
    if file.suffix.lower() in CRL_SUFFIXES:
        crls = _crls(file, data)
        if not crls:
            raise TrustStoreError(f"{file}: holds no CRL")
        return [], crls, []
    crls = _crls(file, data) if b"-----BEGIN X509 CRL" in data else ()
    try:
        found = read_certificates(data, pkcs7=file.suffix.lower() in PKCS7_SUFFIXES).certificates
    except CertificateFileError as error:
        raise TrustStoreError(f"{file}: {error}") from error
    parsed = [cert for cert in found if isinstance(cert, Certificate)]
    skipped = [cert.error for cert in found if isinstance(cert, UnparsedCertificate)]
    if not parsed and not crls:
        detail = f" ({skipped[0]})" if skipped else ""
        raise TrustStoreError(f"{file}: holds no certificate{detail}")
    return parsed, crls, skipped


def _read_bytes(file: Path) -> bytes:
    try:
        return read_file(file)
    except CertificateFileError as error:
        raise TrustStoreError(str(error)) from error


def _crls(file: Path, data: bytes) -> tuple[RevocationList, ...]:
    try:
        return tuple(load_crls(data, str(file)))
    except CrlError as error:
        raise TrustStoreError(f"{file}: {error}") from error
