"""Feed mutated real captures to ``capana.analyze`` and check it never crashes, hangs or lies.

Seeds are the captures in ``pcaps/`` and the public ones in ``../shared/data/pcaps/`` (read, never
copied), each with its key log when one lies beside it (so the decryption and what is decoded
inside the sessions are fuzzed too). Each input is written to a scratch folder, analysed against
a trust store, rendered to JSON, and checked: no exception, at most ``timeout`` seconds, and no
``trusted`` verdict that the unmutated capture did not have (a path that only had a date problem
may become trusted when a mutated timestamp moves the capture time into its window). Failing
inputs are kept in ``out``.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from capana import analyze
from capana.analyzer import load_stores
from capana.model import Report
from capana.truststore import TrustStore
from capana.views.json import render_json

from .mutate import mutate

PROJECT = Path(__file__).resolve().parents[2]
SEED_FOLDERS = (PROJECT / "pcaps", PROJECT.parent / "shared" / "data" / "pcaps")
TRUST = PROJECT / "pcaps" / "phone-reboot-trust"
CAPTURE_SUFFIXES = (".pcap", ".pcapng")

# A verdict: which chain (role and path by SHA-256) came out with which status, and when.
VerdictKey = tuple[str, tuple[str, ...]]


class _Timeout(Exception):
    """The analysis of one input took longer than its bound."""


@dataclass
class Seed:
    name: str
    data: bytes
    trusted: set[VerdictKey]
    dated: dict[VerdictKey, set[datetime]]  # signature-valid paths with a date problem
    keylog: Path | None = None


@dataclass
class Summary:
    seed: int
    captures: int = 0  # seed captures found: a replay needs the same ones
    first: int = 0
    inputs: int = 0
    failures: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    slowest: float = 0.0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"seed {self.seed}, inputs {self.first}..{self.first + self.inputs - 1} "
            f"from {self.captures} captures: {self.inputs} in {self.seconds:.0f} s, "
            f"{len(self.failures)} failures, slowest input {self.slowest:.2f} s; "
            f"mutations: {dict(self.kinds)}"
        )


def replay_command(seed: int, index: int) -> str:
    return f"python -m tests.fuzz --seed {seed} --first {index} --count 1"


def input_random(seed: int, index: int) -> random.Random:
    """The generator of input ``index`` of run ``seed``, so that any input replays on its own.

    Seeded from a string (hashed with SHA-512 by ``random``): the same on every machine and run,
    whatever PYTHONHASHSEED is.
    """
    return random.Random(f"capana-fuzz/{seed}/{index}")


def seed_files() -> list[Path]:
    """The real captures to mutate, in a fixed order."""
    found = []
    for folder in SEED_FOLDERS:
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if p.suffix in CAPTURE_SUFFIXES)
    return found


def trust_stores() -> dict[str | None, TrustStore]:
    return load_stores({None: TRUST})


def verdicts(report: Report) -> Iterator[tuple[VerdictKey, str, datetime | None]]:
    """Every chain verdict of a report: (role, path), status, the moment it was judged at."""
    for record in report.handshakes:
        moment = record.handshake.start
        yield ("client", record.validation.path), record.validation.status, moment
        yield ("server", record.server_validation.path), record.server_validation.status, moment


def key_log_of(capture: Path) -> Path | None:
    """The key log beside a capture (``x.keys``, ``x.keys.txt``, ``x.sslkeylogfile.log``)."""
    names = (
        f"{capture.stem}.keys",
        f"{capture.stem}.keys.txt",
        f"{capture.stem}.sslkeylogfile.log",
    )
    return next((capture.with_name(n) for n in names if capture.with_name(n).exists()), None)


def load_seed(path: Path, stores: dict[str | None, TrustStore], scratch: Path) -> Seed:
    data = path.read_bytes()
    keylog = key_log_of(path)
    report = _analyze(data, path.name, stores, scratch, keylog)
    trusted: set[VerdictKey] = set()
    dated: dict[VerdictKey, set[datetime]] = {}
    for key, status, moment in verdicts(report):
        if status == "trusted":
            trusted.add(key)
        elif status in ("expired", "not_yet_valid") and moment is not None:
            dated.setdefault(key, set()).add(moment)
    return Seed(path.name, data, trusted, dated, keylog)


def _analyze(
    data: bytes,
    name: str,
    stores: dict[str | None, TrustStore],
    scratch: Path,
    keylog: Path | None = None,
) -> Report:
    target = scratch / name
    target.write_bytes(data)
    try:
        report = analyze(target, trust=stores, keylog=keylog)
        render_json(report)  # the views read every field: they must cope with any report
        return report
    finally:
        target.unlink()


def check(
    seed: Seed,
    data: bytes,
    stores: dict[str | None, TrustStore],
    scratch: Path,
    timeout: float,
) -> tuple[str | None, float]:
    """What went wrong with one mutated input (None: nothing) and how long it took."""
    started = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        report = _analyze(data, seed.name, stores, scratch, seed.keylog)
    except _Timeout:
        return f"hang: more than {timeout:.0f} s", time.perf_counter() - started
    except Exception as error:
        where = traceback.extract_tb(error.__traceback__)[-1]
        return f"{type(error).__name__}: {error} at {where.filename}:{where.lineno}", 0.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - started
    for key, status, moment in verdicts(report):
        if status != "trusted" or key in seed.trusted:
            continue
        if moment is not None and seed.dated.get(key, {moment}) - {moment}:
            continue  # a path with a date problem, judged at another (mutated) time
        return f"trusted verdict the original did not have: {key}", elapsed
    return None, elapsed


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout


def make_input(seeds: Sequence[Seed], seed: int, index: int) -> tuple[Seed, bytes, str]:
    """Input ``index`` of run ``seed``: the capture it mutates, its bytes, the mutations made."""
    rng = input_random(seed, index)
    original = seeds[rng.randrange(len(seeds))]
    data, how = mutate(rng, original.data)
    return original, data, how


def run(
    *,
    seed: int,
    count: int | None = None,
    seconds: float | None = None,
    first: int = 0,
    timeout: float = 20.0,
    out: Path | None = None,
    log: bool = False,
) -> Summary:
    """Mutate and analyse inputs ``first``, ``first + 1``, ... of run ``seed``.

    Stops after ``count`` inputs or ``seconds``, whichever comes first. Input ``i`` depends on
    ``seed``, ``i`` and the seed captures only, never on the machine's speed or earlier inputs.
    """
    if count is None and seconds is None:
        raise ValueError("give count, seconds or both")
    stores = trust_stores()
    summary = Summary(seed=seed, first=first)
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="capana-fuzz-") as folder:
        scratch = Path(folder)
        seeds = [load_seed(path, stores, scratch) for path in seed_files()]
        summary.captures = len(seeds)
        for index in itertools.count(first):
            if count is not None and index >= first + count:
                break
            if seconds is not None and time.perf_counter() - begun >= seconds:
                break
            original, data, how = make_input(seeds, seed, index)
            for step in how.split("; "):
                summary.kinds[step.split(" ")[0]] += 1
            failure, elapsed = check(original, data, stores, scratch, timeout)
            summary.inputs += 1
            summary.slowest = max(summary.slowest, elapsed)
            if failure is None:
                continue
            line = (
                f"seed {seed} input {index} ({original.name}: {how}): {failure}; "
                f"replay: {replay_command(seed, index)}"
            )
            summary.failures.append(line)
            if log:
                print(line, flush=True)
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                stem = f"{seed}-{index}-{original.name}"
                (out / stem).write_bytes(data)
                (out / f"{stem}.json").write_text(json.dumps({"mutation": how, "failure": failure}))
    summary.seconds = time.perf_counter() - begun
    return summary
