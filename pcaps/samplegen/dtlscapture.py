"""Real DTLS handshakes, captured off the loopback: ``openssl s_server -dtls`` and ``s_client
-dtls`` with client certificates, recorded by ``tcpdump -i lo``.

An access point joining its controller, in synthetic look-alikes: the controller (server) and
the access point (client) both present chains under a "Cisco Manufacturing CA" look-alike. The
MTU is set low so that every Certificate message travels in fragments, as a real AP's MIC chain
does over a 1,500-byte path. :func:`capwap_control` re-wraps the datagrams as CAPWAP control
(UDP 5246, RFC 5415's DTLS preamble before each record), which is how a controller sees them.

Needs ``openssl`` and ``tcpdump`` on PATH and the right to capture (root in CI); callers skip
with :func:`missing_tools`' reason otherwise.

    capture = capture_dtls(tmp_path, "1.2")
    assert capture.client_chain  # SHA-256 of each DER the access point sent
"""

from __future__ import annotations

import hashlib
import os
import selectors
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from samplegen import pki
from samplegen.loopback import CAPTURE_OPTIONS, settle

CAPWAP_CONTROL_PORT = 5246
CAPWAP_DTLS_PREAMBLE = b"\x01\x00\x00\x00"  # version 0, type 1 (DTLS follows), reserved
_PROCESS_TIMEOUT = 30.0
_VERSIONS = {"1.0": "-dtls1", "1.2": "-dtls1_2"}
# OpenSSL 3 refuses DTLS 1.0 above security level 0; access points of its era still use it.
_CIPHERS = "ALL:@SECLEVEL=0"


@dataclass(frozen=True)
class DtlsCapture:
    """A capture of one DTLS handshake, and what each side sent (SHA-256 of each DER)."""

    path: Path
    client: tuple[str, int]
    server: tuple[str, int]
    client_chain: tuple[str, ...]
    server_chain: tuple[str, ...]


def missing_tools() -> str | None:
    """Why a DTLS capture cannot be made here, or None when it can."""
    for tool in ("openssl", "tcpdump"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "capturing on the loopback needs root"
    return None


def capture_dtls(
    folder: Path, version: str, *, mtu: int = 600, expired: bool = False
) -> DtlsCapture:
    """One real DTLS ``version`` ("1.0" or "1.2") handshake with client certificates, each
    Certificate message fragmented to fit ``mtu``, captured with tcpdump on the loopback.
    ``expired``: the access point's certificate expired yesterday (the controller, like
    ``s_server`` without ``-verify_return_error``, lets it join all the same)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = _write_pki(folder, expired)
    port = _free_udp_port()
    path = folder / f"dtls{version}.pcap"
    common = [_VERSIONS[version], "-mtu", str(mtu), "-cipher", _CIPHERS, "-4"]
    server_command = ["openssl", "s_server", *common, "-accept", f"127.0.0.1:{port}"]
    server_command += ["-cert", files["server"], "-key", files["server_key"]]
    server_command += ["-cert_chain", files["ca"], "-CAfile", files["ca"]]
    server_command += ["-Verify", "2", "-naccept", "1"]
    client_command = ["openssl", "s_client", *common, "-connect", f"127.0.0.1:{port}"]
    client_command += ["-cert", files["client"], "-key", files["client_key"]]
    client_command += ["-cert_chain", files["ca"], "-CAfile", files["ca"]]
    tcpdump = ["tcpdump", "-i", "lo", *CAPTURE_OPTIONS, "-w", str(path)]
    tcpdump.append(f"udp port {port}")
    with _Process(tcpdump, ready=b"listening on", stream="stderr") as capture:
        with _Process(server_command, ready=b"ACCEPT") as server:
            with _Process(client_command) as client:
                client.send(b"join request\n")
                client.wait_for(b"Verify return code")
                server.wait_for(b"join request")
                client.close_input()
                client.finish()
            server.finish()
        settle(path)  # the last datagrams through tcpdump
        capture.stop()
    return DtlsCapture(
        path=path,
        client=("127.0.0.1", _client_port(path, port)),
        server=("127.0.0.1", port),
        client_chain=(files["client_sha"], files["ca_sha"]),
        server_chain=(files["server_sha"], files["ca_sha"]),
    )


def capwap_control(capture: DtlsCapture, path: Path) -> Path:
    """The same datagrams as CAPWAP control: the server on UDP 5246, and before the DTLS
    records of each datagram the 4-byte CAPWAP DTLS header (RFC 5415 4.2)."""
    server_port = capture.server[1]
    frames = []
    for frame in rdpcap(str(capture.path)):
        udp = frame[UDP]
        sport = CAPWAP_CONTROL_PORT if udp.sport == server_port else udp.sport
        dport = CAPWAP_CONTROL_PORT if udp.dport == server_port else udp.dport
        ip = frame[IP]
        rebuilt = (
            Ether(src=frame.src, dst=frame.dst)
            / IP(src=ip.src, dst=ip.dst, id=ip.id, ttl=ip.ttl)
            / UDP(sport=sport, dport=dport)
            / Raw(CAPWAP_DTLS_PREAMBLE + bytes(udp.payload))
        )
        rebuilt.time = frame.time
        frames.append(rebuilt)
    wrpcap(str(path), frames)
    return path


def _write_pki(folder: Path, expired: bool = False) -> dict[str, str]:
    """A manufacturing CA look-alike, a controller and an access point certificate (PEM)."""
    window = {"not_before": pki.EPOCH, "not_after": pki.EPOCH + timedelta(days=20 * 365)}
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    ap_window = {"not_before": pki.EPOCH, "not_after": yesterday} if expired else window
    ca = pki.issue("O=Cisco Systems,CN=Cisco Manufacturing CA", ca=True, **window)
    controller = pki.issue(
        "O=Cisco Systems,CN=AIR-CT5520-K9-00a2891c7a10",
        issuer=ca,
        key=pki.new_key("rsa4096"),
        **window,
    )
    access_point = pki.issue(
        "C=US,ST=California,L=San Jose,O=Cisco Systems,CN=AP3G2-b83861f305ac",
        issuer=ca,
        key=pki.new_key("rsa4096"),
        **ap_window,
    )
    files = {}
    for name, issued in (("ca", ca), ("server", controller), ("client", access_point)):
        (folder / f"{name}.pem").write_bytes(issued.pem)
        (folder / f"{name}.key").write_bytes(issued.key_pem)
        files[name] = str(folder / f"{name}.pem")
        files[f"{name}_key"] = str(folder / f"{name}.key")
        files[f"{name}_sha"] = hashlib.sha256(issued.der).hexdigest()
    return files


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _client_port(path: Path, server_port: int) -> int:
    for frame in rdpcap(str(path)):
        if UDP in frame and frame[UDP].dport == server_port:
            return int(frame[UDP].sport)
    raise RuntimeError(f"{path}: the client sent nothing to port {server_port}")


class _Process:
    """A child process whose output is watched for markers; killed (by its own PID) on exit."""

    def __init__(self, command: list[str], ready: bytes | None = None, stream: str = "stdout"):
        self.command = command
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if stream == "stderr" else subprocess.STDOUT,
        )
        self._stream = self.process.stderr if stream == "stderr" else self.process.stdout
        self._seen = b""
        if ready is not None:
            self.wait_for(ready)

    def __enter__(self) -> _Process:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def close_input(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def wait_for(self, marker: bytes) -> None:
        """Read the output until ``marker`` appears; fail after _PROCESS_TIMEOUT seconds."""
        assert self._stream is not None
        deadline = time.monotonic() + _PROCESS_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(self._stream, selectors.EVENT_READ)
            while marker not in self._seen:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise RuntimeError(f"{self.command[:2]}: no {marker!r} in {self._seen!r}")
                chunk = os.read(self._stream.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"{self.command[:2]} ended: {self._seen!r}")
                self._seen += chunk

    def finish(self) -> None:
        """Wait for the process to end by itself."""
        self.process.wait(timeout=_PROCESS_TIMEOUT)

    def stop(self) -> None:
        """Ask the process to end (SIGTERM to its own PID) and wait."""
        self.process.terminate()
        self.process.wait(timeout=_PROCESS_TIMEOUT)
