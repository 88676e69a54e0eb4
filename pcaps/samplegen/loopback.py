"""Real peers on the loopback interface, captured by tcpdump: every byte from a real program.

Unlike ``tlsrun`` + ``wire`` (bytes laid out by hand), here two separate processes talk over
127.0.0.1 and ``tcpdump -i lo`` writes what the kernel carried:

    port = free_port()
    with tcpdump(folder / "run.pcap", [port]):
        ... start a server on 127.0.0.1:port, run its client ...

:func:`openssl_pair` does this for OpenSSL's ``s_server -rev`` (which answers each line reversed)
and ``s_client -keylogfile``, with one TLS version and cipher, optionally renegotiating midway;
:func:`openssl_server_renegotiation` has s_server ask for the client's certificate in a
renegotiation.
Only processes started here are stopped here, by their handle.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from samplegen.pki import Issued

TCPDUMP = shutil.which("tcpdump")
OPENSSL = shutil.which("openssl")
_WAIT = 10.0  # seconds to wait for a program to get ready or answer


# Packets to the file as they come (--immediate-mode, -U), whole (-s 0), and a 64 MiB ring: in
# immediate mode each slot of the kernel's ring is snaplen-sized, so the default 2 MiB holds 8
# packets and a busy machine (tests in parallel) saw "36 packets dropped by kernel".
CAPTURE_OPTIONS = ("--immediate-mode", "-U", "-n", "-s", "0", "-B", "65536")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def tcpdump(path: Path, ports: Iterable[int]) -> Iterator[Path]:
    """Capture TCP on ``ports`` on lo into ``path`` (pcap) while the block runs."""
    if TCPDUMP is None:
        raise RuntimeError("tcpdump is not installed")
    expression = " or ".join(f"tcp port {port}" for port in ports)
    process = subprocess.Popen(
        [TCPDUMP, "-i", "lo", *CAPTURE_OPTIONS, "-w", str(path), expression],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # "listening on lo, ..." once it captures
        if "listening" not in line:
            raise RuntimeError(f"tcpdump did not start: {line.strip()}")
        yield path
        settle(path)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=_WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    dropped = re.search(r"(\d+) packets? dropped by kernel", process.stderr.read())
    if dropped and int(dropped.group(1)):
        raise RuntimeError(f"tcpdump: {dropped.group(0)}: {path} lacks packets")


def settle(path: Path, quiet: float = 0.5, longest: float = 10.0) -> None:
    """Wait for the last packets' way through the kernel to tcpdump (busy when tests run in
    parallel): until ``path`` has not grown for ``quiet`` seconds, at most ``longest``."""
    deadline = time.monotonic() + longest
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = path.stat().st_size if path.exists() else 0
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def wait_for(condition, what: str, timeout: float = _WAIT) -> None:
    """Poll ``condition()`` until true; RuntimeError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass(frozen=True)
class OpenSslRun:
    """One s_client <-> s_server session on lo: the capture, its key log, what was said."""

    capture: Path
    keylog: Path
    port: int
    sent: tuple[bytes, ...]  # the client's lines, in order; the server sent each reversed

    @property
    def client_bytes(self) -> bytes:
        return b"".join(self.sent)

    @property
    def server_bytes(self) -> bytes:
        return b"".join(line[:-1][::-1] + b"\n" for line in self.sent)


_VERSION_OPTIONS = {"1.0": "-tls1", "1.1": "-tls1_1", "1.2": "-tls1_2"}


def openssl_pair(
    folder: Path,
    server: Issued,
    *,
    version: str,
    cipher: str,
    lines: Sequence[bytes] = (b"hello from the phone\n", b"second line, longer " * 20 + b"\n"),
    renegotiate_after: int | None = None,
    encrypt_then_mac: bool = True,
    name: str = "session",
) -> OpenSslRun:
    """Run s_server -rev and s_client with ``version`` and ``cipher``; capture and key log.

    Each line is sent once the previous answer came back, so each travels in its own records.
    ``renegotiate_after=n`` has the client renegotiate (its ``R`` command) after line n. No
    line may start with a letter s_client takes as a command (Q, R, k, K).
    """
    if OPENSSL is None:
        raise RuntimeError("openssl is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    cert, keylog = folder / f"{name}.server.pem", folder / f"{name}.keys"
    cert.write_bytes(server.pem + server.key_pem)
    keylog.unlink(missing_ok=True)
    port = free_port()
    common = [_VERSION_OPTIONS[version], "-cipher", f"{cipher}:@SECLEVEL=0"]
    if not encrypt_then_mac:
        common.append("-no_etm")
    server_command = [OPENSSL, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert)]
    server_command += ["-rev", "-naccept", "1", "-client_renegotiation", *common]
    client_command = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-no_ign_eof"]
    client_command += ["-keylogfile", str(keylog), *common]
    capture = folder / f"{name}.pcap"
    with tcpdump(capture, [port]):
        server_out = folder / f"{name}.server.out"
        with server_out.open("wb") as out:
            server_process = subprocess.Popen(server_command, stdout=out, stderr=out)
        try:
            wait_for(lambda: b"ACCEPT" in server_out.read_bytes(), "s_server")
            _run_client(client_command, lines, renegotiate_after, folder / f"{name}.client.out")
        finally:
            if server_process.poll() is None:
                server_process.terminate()
            server_process.wait(timeout=_WAIT)
    return OpenSslRun(capture, keylog, port, tuple(lines))


def _run_client(
    command: list[str], lines: Sequence[bytes], renegotiate_after: int | None, output: Path
) -> None:
    with output.open("wb") as out:
        client = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=out, stderr=out)
        assert client.stdin is not None
        try:
            for number, line in enumerate(lines, 1):
                client.stdin.write(line)
                client.stdin.flush()
                answer = line[:-1][::-1]
                wait_for(lambda answer=answer: answer in output.read_bytes(), "s_server's answer")
                if renegotiate_after == number:
                    client.stdin.write(b"R\n")
                    client.stdin.flush()
                    wait_for(lambda: b"RENEGOTIATING" in output.read_bytes(), "renegotiation")
                    time.sleep(0.2)
            client.stdin.close()
            client.wait(timeout=_WAIT)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()


def openssl_server_renegotiation(
    folder: Path,
    server: Issued,
    *,
    client: Issued,
    client_ca: Issued,
    cipher: str,
    port: int | None = None,
    name: str = "renegotiation",
) -> OpenSslRun:
    """An s_server that asks for the client's certificate only once the session is up, as some
    servers do: no CertificateRequest in the first handshake; after the client's first line,
    s_server's ``R`` command renegotiates and requests it, so the client's Certificate travels
    inside the session. TLS 1.2 with ``cipher``; the client writes the key log."""
    if OPENSSL is None:
        raise RuntimeError("openssl is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    files = {role: folder / f"{name}.{role}.pem" for role in ("server", "client", "ca")}
    files["server"].write_bytes(server.pem + server.key_pem)
    files["client"].write_bytes(client.pem + client.key_pem)
    files["ca"].write_bytes(client_ca.pem)
    keylog, capture = folder / f"{name}.keys", folder / f"{name}.pcap"
    keylog.unlink(missing_ok=True)
    port = port or free_port()
    common = ["-tls1_2", "-cipher", f"{cipher}:@SECLEVEL=0"]
    server_command = [OPENSSL, "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "1"]
    server_command += ["-cert", str(files["server"]), "-CAfile", str(files["ca"]), *common]
    server_command += ["-no_cache", "-no_ticket"]  # a full handshake, not a resumption
    client_command = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-no_ign_eof"]
    client_command += ["-cert", str(files["client"]), "-keylogfile", str(keylog), *common]
    lines = (b"hello from the phone\n", b"after the renegotiation\n")
    server_out, client_out = folder / f"{name}.server.out", folder / f"{name}.client.out"
    with tcpdump(capture, [port]), server_out.open("wb") as out, client_out.open("wb") as log:
        processes = [
            subprocess.Popen(server_command, stdin=subprocess.PIPE, stdout=out, stderr=out)
        ]
        try:
            wait_for(lambda: b"ACCEPT" in server_out.read_bytes(), "s_server")
            processes.append(
                subprocess.Popen(client_command, stdin=subprocess.PIPE, stdout=log, stderr=log)
            )
            server_process, client_process = processes
            assert server_process.stdin is not None and client_process.stdin is not None
            _say(client_process.stdin, lines[0], server_out)
            server_process.stdin.write(b"R\n")  # renegotiate, requesting the client certificate
            server_process.stdin.flush()
            wait_for(lambda: b"SSL_do_handshake -> 1" in server_out.read_bytes(), "R")
            time.sleep(0.2)
            _say(client_process.stdin, lines[1], server_out)
            client_process.stdin.close()
            client_process.wait(timeout=_WAIT)
            server_process.wait(timeout=_WAIT)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=_WAIT)
    return OpenSslRun(capture, keylog, port, lines)


def _say(stdin: IO[bytes], line: bytes, heard: Path) -> None:
    """Write ``line`` to a program; return once ``heard`` (the peer's output) shows it."""
    stdin.write(line)
    stdin.flush()
    wait_for(lambda: line.strip() in heard.read_bytes(), "the line to arrive")
