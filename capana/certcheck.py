"""A certificate without a capture: ``verify`` (the Python door) and ``check_files`` (``capana
cert``). The admin has the phone's certificate (from a CAPF trace, the phone's web page, ISE) and
no capture: the chain is read from files or bytes, judged against the trust stores at a moment
(now, unless told), and given the findings that need no handshake.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from capana.certfiles import (
    PKCS7_SUFFIXES,
    CertificateFileError,
    leaf_first,
    read_certificates,
    read_file,
)
from capana.findings import certificate_findings
from capana.inputs import CrlArgument, TrustArgument, load_stores
from capana.judging import certificate_report
from capana.model import AnyCertificate, CertificateCheck, StoreVerdict, Validation
from capana.truststore import TrustStore
from capana.validation import validate_chain

# What ``chain`` accepts: a file, PEM or DER bytes (PEM text as str too), or several, leaf first.
Source = str | Path | bytes
ChainArgument = Source | Sequence[Source]


def verify(
    chain: ChainArgument,
    trust: TrustArgument = None,
    *,
    at: datetime | None = None,
    crls: CrlArgument = (),
) -> Validation:
    """Would the store trust this chain at ``at`` (default: now, UTC)? Leaf first.

    ``chain``: a certificate file (PEM, DER, a bundle, a ``.p7b``, any text with PEM blocks), PEM
    or DER bytes, or a sequence of them, leaf first (in one file, the first certificate is the
    leaf unless the file is a PKCS#7 bundle or written root first). ``trust``: what ``analyze``
    takes; one store, or a default (unnamed) one among several. ``crls``: CRL files or bytes
    (PEM or DER) checked with the store's own. The result has ``status`` (``trusted``,
    ``expired``, ``not_yet_valid``, ``revoked``, ``untrusted``, ``invalid``, ``not_checked``),
    ``reasons`` (codes and text), ``path`` (SHA-256, leaf to anchor) and ``anchor``.

    Raises CertificateFileError (no certificate, unreadable file), TrustStoreError (a bad store
    or CRL) or ValueError (several named stores and no default).

    >>> import capana
    >>> capana.verify("phone.pem", trust="CallManager-trust/").status  # doctest: +SKIP
    'trusted'
    """
    certificates = read_chain(chain)
    stores = load_stores(trust, crls)
    if len(stores) > 1 and None not in stores:
        names = ", ".join(sorted(str(name) for name in stores))
        raise ValueError(f"verify judges against one trust store; got {names} and no default")
    store = stores.get(None) or next(iter(stores.values()), None)
    return validate_chain(certificates, store, _moment(at))


def check_files(
    paths: Iterable[str | Path],
    trust: TrustArgument = None,
    *,
    at: datetime | None = None,
    crls: CrlArgument = (),
) -> tuple[CertificateCheck, ...]:
    """Each file's chain, classified and judged against every store (``capana cert``).

    A file that cannot be read is a check with ``errors`` and no chain; the others are judged.
    Raises TrustStoreError for a bad store or CRL, before any file is read.
    """
    stores = load_stores(trust, crls)
    moment = _moment(at)
    return tuple(_check(Path(path), stores, moment) for path in paths)


def read_chain(chain: ChainArgument) -> tuple[AnyCertificate, ...]:
    """The certificates of ``chain`` (see :func:`verify`), leaf first. Raises
    CertificateFileError when there is none or a file cannot be read."""
    sources = [chain] if isinstance(chain, str | Path | bytes) else list(chain)
    certificates = tuple(cert for source in sources for cert in _read_source(source))
    if not certificates:
        raise CertificateFileError(f"no certificate in {_label(chain)}")
    return certificates


def _check(path: Path, stores: Mapping[str | None, TrustStore], at: datetime) -> CertificateCheck:
    try:
        certificates = read_chain(path)
    except CertificateFileError as error:
        return CertificateCheck(str(path), at, (), errors=(str(error),))
    all_stores = tuple(stores.values())
    chain = tuple(certificate_report(cert.der, all_stores) for cert in certificates)
    verdicts = []
    for store in all_stores or (None,):
        validation = validate_chain(certificates, store, at)
        findings = certificate_findings(chain[0], validation, store, at=at)
        verdicts.append(StoreVerdict(validation, findings))
    return CertificateCheck(str(path), at, chain, tuple(verdicts))


def _read_source(source: Source) -> tuple[AnyCertificate, ...]:
    if isinstance(source, bytes):
        return leaf_first(read_certificates(source))
    if isinstance(source, str) and "-----BEGIN" in source:
        return leaf_first(read_certificates(source.encode("ascii", "replace")))
    path = Path(source)
    data = read_file(path)
    try:
        found = read_certificates(data, pkcs7=path.suffix.lower() in PKCS7_SUFFIXES)
    except CertificateFileError as error:
        raise CertificateFileError(f"{path}: {error}") from error
    return leaf_first(found)


def _moment(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(timezone.utc)
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at


def _label(chain: ChainArgument) -> str:
    if isinstance(chain, bytes):
        return "the bytes given"
    if isinstance(chain, str | Path):
        return "the PEM text given" if "-----BEGIN" in str(chain) else str(chain)
    return "the chain given"
