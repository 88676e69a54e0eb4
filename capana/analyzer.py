"""``analyze``: captures and trust stores in, a :class:`Report` out. The one door to capana."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path

from capana.certificates import AnyCertificate, Certificate, name_key
from capana.classify import Classification, classify
from capana.devices import group_devices
from capana.findings import diagnose
from capana.handshake import Handshake
from capana.keylog import KeyLog
from capana.report import CertificateReport, HandshakeReport, Report
from capana.scan import ProgressCallback, scan_capture
from capana.truststore import TrustStore, load_trust_store, parse_trust_option, store_for
from capana.validation import validate_chain

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")

# What ``trust=`` accepts: a path, "NAME=PATH" strings, a {name: path or store} mapping,
# or TrustStore objects; a None name is the default store.
TrustArgument = (
    str
    | Path
    | TrustStore
    | Iterable[str | Path | TrustStore]
    | Mapping[str | None, str | Path | TrustStore]
    | None
)


def analyze(
    paths: str | Path | Iterable[str | Path],
    trust: TrustArgument = None,
    *,
    progress: ProgressCallback | None = None,
    keylog: str | Path | KeyLog | None = None,
) -> Report:
    """Analyse capture files (folders are searched for captures) against trust stores.

    ``keylog``, an NSS key log file (``SSLKEYLOGFILE``), lets TLS 1.3 handshakes be read; key
    log lines in pcapng Decryption Secrets Blocks are always used. Raises KeyLogError if the
    file cannot be read.

    >>> report = analyze("pcaps/phone-reboot.pcapng", trust="pcaps/phone-reboot-trust")
    >>> [h.client_leaf.kind for h in report.handshakes if h.client_leaf]  # doctest: +SKIP
    ['LSC', 'MIC', ...]
    """
    stores = load_stores(trust)
    keys = KeyLog.read(keylog) if isinstance(keylog, str | Path) else keylog
    captures = []
    records = []
    for path in capture_files(paths):
        summary, handshakes = scan_capture(path, progress, keys)
        captures.append(summary)
        records.extend(judge(handshake, stores, summary.start) for handshake in handshakes)
    names = tuple(sorted(name or "default" for name in stores))
    return Report(tuple(captures), tuple(records), group_devices(records), names)


def capture_files(paths: str | Path | Iterable[str | Path]) -> Iterator[Path]:
    """The files named, and the captures (also gzip'd) found in the folders named."""
    if isinstance(paths, str | Path):
        paths = [paths]
    for path in map(Path, paths):
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and is_capture_name(p))
        else:
            yield path


def is_capture_name(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith(CAPTURE_SUFFIXES)


def load_stores(trust: TrustArgument) -> dict[str | None, TrustStore]:
    """Trust stores by name (None: the default). Raises TrustStoreError naming a bad file."""
    if trust is None:
        return {}
    if isinstance(trust, Mapping):
        items = [(name, _store(value, name)) for name, value in trust.items()]
    else:
        if isinstance(trust, str | Path | TrustStore):
            trust = [trust]
        items = []
        for option in trust:
            if isinstance(option, TrustStore):
                items.append((option.name, option))
            else:
                name, path = parse_trust_option(str(option))
                items.append((name, load_trust_store(path, name)))
    return dict(items)


def _store(value: str | Path | TrustStore, name: str | None) -> TrustStore:
    return value if isinstance(value, TrustStore) else load_trust_store(value, name)


def judge(
    handshake: Handshake, stores: Mapping[str | None, TrustStore], capture_start: datetime | None
) -> HandshakeReport:
    """Classify the certificates of one handshake and validate both chains at capture time."""
    store = store_for(handshake.service, handshake.server_port, stores)
    moment = handshake.start or capture_start or datetime.now(timezone.utc)
    all_stores = tuple(stores.values())
    client_chain = tuple(_certificate_report(c, all_stores) for c in handshake.client_chain)
    server_chain = tuple(_certificate_report(c, all_stores) for c in handshake.server_chain)
    validation = validate_chain(handshake.client_chain, store, moment, role="client")
    requested = issuer_requested(handshake)
    leaf = client_chain[0].classification if client_chain else None
    findings = diagnose(
        handshake,
        validation,
        issuer_requested=requested,
        kind=leaf.kind if leaf else None,
        device=leaf.device if leaf else None,
        store=store,
    )
    return HandshakeReport(
        handshake=handshake,
        client_chain=client_chain,
        server_chain=server_chain,
        validation=validation,
        server_validation=validate_chain(
            handshake.server_chain, stores.get(None), moment, role="server"
        ),
        issuer_requested=requested,
        findings=findings,
    )


def issuer_requested(handshake: Handshake) -> bool | None:
    """Is the client leaf's issuer among the CA names the server asked for? None: can't tell."""
    leaf = handshake.client_leaf
    # An empty list in a CertificateRequest means the server names no CA: any may do.
    if not handshake.requested_ca_names or not isinstance(leaf, Certificate):
        return None
    requested = {name_key(name) for name in handshake.requested_ca_names}
    return leaf.issuer_key in requested


def _certificate_report(cert: AnyCertificate, stores: tuple[TrustStore, ...]) -> CertificateReport:
    if isinstance(cert, Certificate):
        return CertificateReport(cert, classify(cert, stores))
    return CertificateReport(cert, Classification("other"))
