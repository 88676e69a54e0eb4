"""What an analysis is given: capture files found from paths, trust stores from the ``trust``
argument, and a key log. Bad inputs raise errors that name the file."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from capana.domain import TRUST_STORE_NAMES
from capana.keylog import KeyLog
from capana.revocation import CrlError, RevocationList, load_crls
from capana.truststore import (
    TrustStore,
    TrustStoreError,
    load_crl_file,
    load_trust_store,
    parse_trust_option,
    with_crls,
)

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
PathArgument = str | Path | Iterable[str | Path]
# What ``crls=`` accepts: CRL files (PEM or DER), their bytes, or CRLs already read.
CrlArgument = str | Path | bytes | RevocationList | Iterable[str | Path | bytes | RevocationList]


def capture_files(paths: PathArgument) -> Iterator[Path]:
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


def load_stores(trust: TrustArgument, crls: CrlArgument = ()) -> dict[str | None, TrustStore]:
    """Trust stores by name (None: the default), each holding ``crls`` too (``--crl``). Raises
    TrustStoreError naming a bad file or CRL, an unknown name or port, a name given twice, a
    ``NAME=`` without a path, or CRLs given without a store to check them with."""
    stores = _stores(trust)
    extra = _crls(crls)
    if extra and not stores:
        raise TrustStoreError("CRLs given without a trust store: no chain would be checked")
    return {name: with_crls(store, extra) for name, store in stores.items()} if extra else stores


def _stores(trust: TrustArgument) -> dict[str | None, TrustStore]:
    if trust is None:
        return {}
    if isinstance(trust, Mapping):
        for name in trust:
            _check_name(name, str(name))
        return {name: _store(value, name) for name, value in trust.items()}
    if isinstance(trust, str | Path | TrustStore):
        trust = [trust]
    stores: dict[str | None, TrustStore] = {}
    for option in trust:
        if isinstance(option, TrustStore):
            _check_new(stores, option.name, str(option.name))
            stores[option.name] = option
            continue
        name, path = _trust_option(str(option))
        _check_new(stores, name, str(option))
        stores[name] = load_trust_store(path, name)
    return stores


def _crls(crls: CrlArgument) -> tuple[RevocationList, ...]:
    items = [crls] if isinstance(crls, str | Path | bytes | RevocationList) else list(crls)
    found: list[RevocationList] = []
    for item in items:
        if isinstance(item, RevocationList):
            found.append(item)
        elif isinstance(item, bytes):
            try:
                found += load_crls(item)
            except CrlError as error:
                raise TrustStoreError(f"CRL bytes given: {error}") from error
        else:
            found += load_crl_file(item)
    return tuple(found)


def _trust_option(option: str) -> tuple[str | None, Path]:
    """``NAME=PATH`` or ``PATH``, with the name checked and the path not empty."""
    name, path = parse_trust_option(option)
    if name is not None and not option.partition("=")[2].strip():
        raise TrustStoreError(f"{option}: no path after '{name}='")
    _check_name(name, option)
    return name, path


def _check_new(stores: Mapping[str | None, TrustStore], name: str | None, option: str) -> None:
    if name in stores:
        given = "the default store" if name is None else f"trust store '{name}'"
        raise TrustStoreError(f"{option}: {given} given twice")


def _check_name(name: str | None, option: str) -> None:
    """A store name is one of TRUST_STORE_NAMES or a TCP port (1-65535); None is the default."""
    if name is None or name in TRUST_STORE_NAMES:
        return
    if name.isdigit():
        if 1 <= int(name) <= 65535:
            return
        raise TrustStoreError(f"{option}: {name} is not a TCP port (1-65535)")
    known = ", ".join(sorted(TRUST_STORE_NAMES))
    raise TrustStoreError(f"{option}: unknown trust store name {name!r} (use {known} or a port)")


def load_keylog(keylog: str | Path | KeyLog | None) -> KeyLog | None:
    """A key log read from its file (raises KeyLogError naming it), or the one given."""
    return KeyLog.read(keylog) if isinstance(keylog, str | Path) else keylog


def _store(value: str | Path | TrustStore, name: str | None) -> TrustStore:
    return value if isinstance(value, TrustStore) else load_trust_store(value, name)
