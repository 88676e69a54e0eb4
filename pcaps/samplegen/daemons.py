"""The usecallmanager.nz CAPF and TVS daemons as real peers on lo, captured by tcpdump.

``capfd``/``capfc`` and ``tvsd``/``tvsc`` (``../shared/oracles/usecallmanager-daemons``) run as
separate processes with their own Python (:func:`oracle_python`); nothing of theirs is imported.
They use Python's ``ssl``, which writes no key log by itself: a ``sitecustomize.py`` put on their
``PYTHONPATH`` sets ``SSLContext.keylog_filename`` and caps the version at TLS 1.2, as a phone
talking to CAPF or TVS negotiates. Each connection's log lines come back with it: ``capfd`` and
``tvsd`` prefix every line with the client's ``ip:port``.

    run = capf_run(folder, daemons, python, capf=..., steps=[CapfStep(...), ...])
    run.capture, run.keylog, run.sessions[0].log
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from samplegen.loopback import free_port, tcpdump, wait_for
from samplegen.pki import Issued

ORACLE_CRYPTOGRAPHY = "cryptography==41.0.7"  # capfc fails on EC keys with 42 or later
_SITECUSTOMIZE = '''\
"""Makes a Python ssl program write an NSS key log (CAPANA_KEYLOG) and stay at TLS <= 1.2."""
import os
import ssl

_KEYLOG = os.environ.get("CAPANA_KEYLOG")
if _KEYLOG:
    _wrap_socket = ssl.SSLContext.wrap_socket

    def _logged_wrap_socket(self, *args, **kwargs):
        self.keylog_filename = _KEYLOG
        self.maximum_version = ssl.TLSVersion.TLSv1_2
        return _wrap_socket(self, *args, **kwargs)

    ssl.SSLContext.wrap_socket = _logged_wrap_socket
'''


def oracle_python(cache: Path) -> Path | None:
    """A Python with cryptography 41 for the daemons: /tmp/oracles if there, else a venv made in
    ``cache`` from the package index; None when neither can be had."""
    for candidate in (Path("/tmp/oracles/bin/python"), cache / "oracles" / "bin" / "python"):
        if candidate.exists() and _has_oracle_cryptography(candidate):
            return candidate
    venv = cache / "oracles"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True)
    python = venv / "bin" / "python"
    if made.returncode != 0:
        return None
    pip = [str(python), "-m", "pip", "install", "--quiet", ORACLE_CRYPTOGRAPHY]
    if subprocess.run(pip, capture_output=True, timeout=600).returncode != 0:
        return None
    return python if _has_oracle_cryptography(python) else None


def _has_oracle_cryptography(python: Path) -> bool:
    probe = "import cryptography; print(cryptography.__version__)"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == ORACLE_CRYPTOGRAPHY.split("==")[1]


@dataclass(frozen=True)
class DaemonSession:
    """One client run: the server's log lines for its connection, what the client printed."""

    client_port: int | None
    log: tuple[str, ...]  # without the "ip:port " prefix
    client_output: str
    client_returncode: int
    wrote: bytes | None = None  # the PEM file the client wrote (capfc: certificate + key)


@dataclass(frozen=True)
class DaemonRun:
    capture: Path
    keylog: Path
    port: int
    sessions: tuple[DaemonSession, ...]


@dataclass(frozen=True)
class CapfStep:
    """Schedule an operation with ``capfctl`` (none: leave the database as it is), then run
    ``capfc`` as the phone ``device`` with ``client`` options (``-p``, ``-l``, ``-s``...)."""

    device: str
    schedule: tuple[str, ...] = ()
    client: tuple[str, ...] = ()


@dataclass(frozen=True)
class TvsStep:
    """Ask tvsd about ``certificate`` as ``device`` (CP-<model>-SEP<MAC>)."""

    device: str
    certificate: Issued


def _environments(folder: Path, keylog: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(server, client) environments: only the server writes the key log."""
    (folder / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    client = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return {**client, "PYTHONPATH": str(folder), "CAPANA_KEYLOG": str(keylog)}, client


def capf_run(
    folder: Path,
    daemons: Path,
    python: Path,
    *,
    capf: Issued,
    steps: Sequence[CapfStep],
    verify: Sequence[Issued] = (),
    name: str = "capf",
    port: int | None = None,
) -> DaemonRun:
    """capfd with ``capf`` (its certificate and key; it signs the LSCs), one capfc per step;
    on ``port`` (e.g. 3804), else on a free one."""
    folder.mkdir(parents=True, exist_ok=True)
    keylog, database, issued = folder / f"{name}.keys", folder / "capf.sqlite3", folder / "issued"
    issued.mkdir(exist_ok=True)
    (folder / "capf.pem").write_bytes(capf.pem + capf.key_pem)
    (folder / "capf.crt").write_bytes(capf.pem)
    verify_options = []
    for number, certificate in enumerate(verify):
        path = folder / f"verify{number}.pem"
        path.write_bytes(certificate.pem)
        verify_options += ["-v", str(path)]
    server_env, env = _environments(folder, keylog)
    port = port or free_port()
    server = [str(python), str(daemons / "capfd"), "-A", "capf.pem", "-p", str(port)]
    server += [*verify_options, str(database), str(issued)]
    sessions = []
    capture = folder / f"{name}.pcap"
    with tcpdump(capture, [port]):
        with _running(server, folder, server_env, folder / "capfd.log", b"Listening Port"):
            for step in steps:
                if step.schedule:
                    capfctl = [str(python), str(daemons / "capfctl"), str(database), *step.schedule]
                    subprocess.run(capfctl, cwd=folder, env=env, check=True, capture_output=True)
                target = folder / f"{step.device}.pem"
                before = target.read_bytes() if target.exists() else None
                client = [str(python), str(daemons / "capfc"), "-A", "capf.crt"]
                client += ["-h", f"127.0.0.1:{port}", *step.client, step.device]
                done = subprocess.run(client, cwd=folder, env=env, capture_output=True, text=True)
                after = target.read_bytes() if target.exists() else None
                sessions.append((done, after if after != before else None))
        log = (folder / "capfd.log").read_text()
    return DaemonRun(capture, keylog, port, _sessions(log, sessions))


def tvs_run(
    folder: Path,
    daemons: Path,
    python: Path,
    *,
    tvs: Issued,
    trusted: Sequence[tuple[Issued, tuple[str, ...], int]],
    steps: Sequence[TvsStep],
    name: str = "tvs",
    port: int | None = None,
) -> DaemonRun:
    """tvsd with ``tvs``, its database holding ``trusted`` (certificate, tvsctl role options,
    TTL); one tvsc per step; on ``port`` (e.g. 2445), else on a free one."""
    folder.mkdir(parents=True, exist_ok=True)
    keylog, database = folder / f"{name}.keys", folder / "tvs.sqlite3"
    (folder / "tvs.pem").write_bytes(tvs.pem + tvs.key_pem)
    (folder / "tvs.crt").write_bytes(tvs.pem)
    server_env, env = _environments(folder, keylog)
    for number, (certificate, roles, ttl) in enumerate(trusted):
        path = folder / f"trusted{number}.pem"
        path.write_bytes(certificate.pem)
        tvsctl = [str(python), str(daemons / "tvsctl"), str(database), "-a", str(path)]
        tvsctl += [*roles, "-L", str(ttl)]
        subprocess.run(tvsctl, cwd=folder, env=env, check=True, capture_output=True)
    port = port or free_port()
    server = [str(python), str(daemons / "tvsd"), "-T", "tvs.pem", "-p", str(port), str(database)]
    sessions = []
    capture = folder / f"{name}.pcap"
    with tcpdump(capture, [port]):
        with _running(server, folder, server_env, folder / "tvsd.log", b"Listening Port"):
            for number, step in enumerate(steps):
                path = folder / f"query{number}.pem"
                path.write_bytes(step.certificate.pem)
                client = [str(python), str(daemons / "tvsc"), "-T", "tvs.crt"]
                client += ["-h", f"127.0.0.1:{port}", "-d", step.device, str(path)]
                done = subprocess.run(client, cwd=folder, env=env, capture_output=True, text=True)
                sessions.append((done, None))
        log = (folder / "tvsd.log").read_text()
    return DaemonRun(capture, keylog, port, _sessions(log, sessions))


class _running:
    """A server process for the duration of a with block, ready once ``ready`` is in its log."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], log: Path, ready: bytes):
        self._args = (command, cwd, env, log, ready)
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> None:
        command, cwd, env, log, ready = self._args
        with log.open("wb") as out:
            self._process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=out)
        process = self._process
        wait_for(lambda: ready in log.read_bytes() or process.poll() is not None, "the server")
        if process.poll() is not None:
            raise RuntimeError(f"{command[1]} exited: {log.read_text()}")

    def __exit__(self, *exc_info: object) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(timeout=10)


def _sessions(
    log: str, runs: list[tuple[subprocess.CompletedProcess[str], bytes | None]]
) -> tuple[DaemonSession, ...]:
    """Pair each client run with its connection's log lines, connections in order of appearance."""
    by_port: dict[int, list[str]] = {}
    for line in log.splitlines():
        prefix, _, text = line.partition(" ")
        address, _, port = prefix.rpartition(":")
        if address and port.isdigit():
            by_port.setdefault(int(port), []).append(text)
    ports = list(by_port)
    sessions = []
    for index, (done, wrote) in enumerate(runs):
        port = ports[index] if index < len(ports) else None
        lines = tuple(by_port.get(port, [])) if port is not None else ()
        output = done.stdout + done.stderr
        sessions.append(DaemonSession(port, lines, output, done.returncode, wrote))
    return tuple(sessions)
