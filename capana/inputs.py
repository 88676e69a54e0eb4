"""What an analysis is given: capture files found from paths, trust stores from the ``trust``
argument, and a key log. Bad inputs raise errors that name the file."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from capana.keylog import KeyLog
from capana.truststore import TrustStore, load_trust_store, parse_trust_option

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


def load_stores(trust: TrustArgument) -> dict[str | None, TrustStore]:
    """Trust stores by name (None: the default). Raises TrustStoreError naming a bad file."""
    if trust is None:
        return {}
    if isinstance(trust, Mapping):
        return {name: _store(value, name) for name, value in trust.items()}
    if isinstance(trust, str | Path | TrustStore):
        trust = [trust]
    items: list[tuple[str | None, TrustStore]] = []
    for option in trust:
        if isinstance(option, TrustStore):
            items.append((option.name, option))
        else:
            name, path = parse_trust_option(str(option))
            items.append((name, load_trust_store(path, name)))
    return dict(items)


def load_keylog(keylog: str | Path | KeyLog | None) -> KeyLog | None:
    """A key log read from its file (raises KeyLogError naming it), or the one given."""
    return KeyLog.read(keylog) if isinstance(keylog, str | Path) else keylog


def _store(value: str | Path | TrustStore, name: str | None) -> TrustStore:
    return value if isinstance(value, TrustStore) else load_trust_store(value, name)
