"""Capture a phone boot's file downloads with real servers and clients on loopback.

    sudo python3 pcaps/make_boot_capture.py            # rewrites phone-boot-files.pcap here
    sudo python3 pcaps/make_boot_capture.py --out DIR  # somewhere else

Needs root (TFTP on UDP 69, tcpdump) and the test extras (``tftpy``; ``lxml`` for certutils).
The files are built by usecallmanager.nz's certutils from ``../shared/oracles/certutils`` (run
as separate processes); the certificates come from ``samplegen.pki`` (synthetic, fresh keys per
run, valid around the run's time). Servers: the standard library's HTTP server on 6970 (the
phone's TFTP-over-HTTP port) and tftpy's TFTP server on 69, on 127.0.0.1 (the cluster: tftpy
answers from the kernel's choice of address, which on lo is 127.0.0.1, so everything is there);
the phone is 127.13.0.21. ``tcpdump -i lo host 127.13.0.21`` captures the phone's traffic. In
order:

1. HTTP GET CTLSEP<MAC>.tlv: 404 (no CTL: the cluster is not in mixed mode);
2. TFTP read of CTLSEP<MAC>.tlv: error 1, "File not found";
3. HTTP GET ITLSEP<MAC>.tlv on the same connection: 200, the ITL (Content-Length);
4. HTTP GET ITLFile.tlv on the same connection: 503, and the phone falls back to
5. TFTP read of ITLFile.tlv with the blksize (1428) and tsize options: OACK, then DATA blocks;
6. HTTP GET SEP<MAC>.cnf.xml.sgn on a new connection: 200, chunked;
7. SIP-TLS to 5061 (TLS 1.2, OpenSSL through Python's ssl): CallManager presents a certificate
   regenerated since the ITL was built (same name, new key); the phone, trusting only the ITL's
   CCM+TFTP certificate, refuses it with a fatal alert before sending its LSC.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import logging
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import tftpy
from samplegen import pki
from samplegen.loopback import CAPTURE_OPTIONS, settle

HERE = Path(__file__).resolve().parent
CERTUTILS = HERE.parent.parent / "shared" / "oracles" / "certutils"
CLUSTER_IP, PHONE_IP = "127.0.0.1", "127.13.0.21"
HTTP_PORT, TFTP_PORT, SIP_TLS_PORT = 6970, 69, 5061
MAC, MODEL = "2C3124C9F8E1", "CP-8861"
SAMPLE = "phone-boot-files.pcap"
UNAVAILABLE = frozenset({"ITLFile.tlv"})  # HTTP answers 503 for these: the phone uses TFTP
CONFIG = f"""<?xml version="1.0" encoding="UTF-8"?>
<device xsi:type="axl:XIPPhone" ctiid="94" uuid="{{6d1c7e2a-0b59-4b7d-9c1e-2c3124c9f8e1}}">
<fullConfig>true</fullConfig>
<deviceProtocol>SIP</deviceProtocol>
<devicePool>
<callManagerGroup>
<members>
<member priority="0">
<callManager>
<name>cucm-pub.example.com</name>
<ports>
<ethernetPhonePort>2000</ethernetPhonePort>
<sipPort>5060</sipPort>
<securedSipPort>{SIP_TLS_PORT}</securedSipPort>
</ports>
<processNodeName>{CLUSTER_IP}</processNodeName>
</callManager>
</member>
</members>
</callManagerGroup>
</devicePool>
<TVS>
<members>
<member priority="0">
<port>2445</port>
<address>{CLUSTER_IP}</address>
</member>
</members>
</TVS>
<deviceSecurityMode>3</deviceSecurityMode>
<transportLayerProtocol>3</transportLayerProtocol>
<capfAuthMode>0</capfAuthMode>
<capfList>
<capf>
<phonePort>3804</phonePort>
<processNodeName>{CLUSTER_IP}</processNodeName>
</capf>
</capfList>
<certHash></certHash>
<encrConfig>false</encrConfig>
</device>
"""


class PhoneFileHandler(http.server.SimpleHTTPRequestHandler):
    """The TFTP service's HTTP side: keep-alive, 404 for a missing file, 503 for UNAVAILABLE,
    ``.sgn`` files chunked (the rest with Content-Length) so both framings appear."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        path = Path(self.directory) / name
        if name in UNAVAILABLE:
            self.send_error(503, "Service Unavailable")
        elif name.endswith(".sgn") and path.is_file():
            self._send_chunked(path.read_bytes())
        else:
            super().do_GET()

    def _send_chunked(self, data: bytes, chunk: int = 1000) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(data), chunk):
            piece = data[start : start + chunk]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the capture is the log."""


def build_files(folder: Path, now: datetime) -> dict[str, pki.Issued]:
    """The cluster's certificates and the files it serves, built by certutils in ``folder``."""
    window = {"not_before": now - timedelta(days=60), "not_after": now + timedelta(days=3650)}
    capf = pki.capf(**window)
    issued = {
        "sast": pki.issue(pki.dn("O=Example,OU=VTG,CN=ITLRECOVERY_cucm-pub"), ca=True, **window),
        "ccm": pki.server_cert(None, "cucm-pub.example.com", **window),
        "ccm-regenerated": pki.server_cert(None, "cucm-pub.example.com", **window),
        "tvs": pki.server_cert(None, "cucm-pub.example.com-TVS", **window),
        "capf": capf,
        "lsc": pki.phone_lsc(capf, model=MODEL, mac=MAC, **window),
    }
    for name, item in issued.items():
        (folder / f"{name}.crt").write_bytes(item.pem)
        (folder / f"{name}.pem").write_bytes(item.pem + item.key_pem)
    served = folder / "tftpboot"
    served.mkdir()
    records = ["-s", "sast.pem", "-C", "ccm.crt", "-A", "capf.crt", "-T", "tvs.crt"]
    for name in (f"ITLSEP{MAC}.tlv", "ITLFile.tlv"):
        certutils("tlvfile", "-b", f"tftpboot/{name}", *records, cwd=folder)
    config = served / f"SEP{MAC}.cnf.xml"
    config.write_text(CONFIG)
    certutils("sgnfile", "-b", str(config), "-t", "ccm.pem", cwd=folder)
    config.unlink()  # the phone asks for the signed one only
    return issued


def certutils(tool: str, *args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, str(CERTUTILS / tool), *args], cwd=cwd, check=True)


@contextlib.contextmanager
def tcpdump(target: Path) -> Iterator[None]:
    """Capture the phone's traffic on lo, until the block ends."""
    command = ["tcpdump", "-i", "lo", *CAPTURE_OPTIONS, "-w", str(target), "host", PHONE_IP]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    if "listening on" not in process.stderr.readline():
        process.kill()
        raise RuntimeError("tcpdump did not start")
    try:
        yield
        settle(target)  # let the last frames reach the file
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def servers(folder: Path, issued: dict[str, pki.Issued]) -> Iterator[None]:
    """HTTP on 6970, TFTP on 69 and SIP-TLS on 5061, all on the cluster's address."""
    served = str(folder / "tftpboot")
    handler = lambda *args: PhoneFileHandler(*args, directory=served)  # noqa: E731
    web = http.server.ThreadingHTTPServer((CLUSTER_IP, HTTP_PORT), handler)
    tftp = tftpy.TftpServer(served)
    tls = socket.create_server((CLUSTER_IP, SIP_TLS_PORT))
    threads = [
        threading.Thread(target=web.serve_forever, daemon=True),
        threading.Thread(target=tftp.listen, args=(CLUSTER_IP, TFTP_PORT), daemon=True),
        threading.Thread(target=callmanager, args=(tls, folder), daemon=True),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    try:
        yield
    finally:
        web.shutdown()
        tftp.stop(now=True)
        tls.close()


def callmanager(listener: socket.socket, folder: Path) -> None:
    """One SIP-TLS handshake: the regenerated certificate, the phone's certificate requested."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(folder / "ccm-regenerated.pem")
    context.load_verify_locations(folder / "capf.crt")
    context.verify_mode = ssl.CERT_OPTIONAL
    with contextlib.suppress(OSError):
        connection, _ = listener.accept()
        with contextlib.suppress(ssl.SSLError, OSError), connection:
            context.wrap_socket(connection, server_side=True).close()


def boot(folder: Path) -> list[str]:
    """The phone's side, in DOMAIN.md's order; one line per step, as the phone saw it."""
    seen = []
    first = http.client.HTTPConnection(CLUSTER_IP, HTTP_PORT, source_address=(PHONE_IP, 0))
    seen.append(http_get(first, f"CTLSEP{MAC}.tlv"))
    seen.append(tftp_get(folder, f"CTLSEP{MAC}.tlv"))
    seen.append(http_get(first, f"ITLSEP{MAC}.tlv"))
    seen.append(http_get(first, "ITLFile.tlv"))
    seen.append(tftp_get(folder, "ITLFile.tlv"))
    first.close()
    second = http.client.HTTPConnection(CLUSTER_IP, HTTP_PORT, source_address=(PHONE_IP, 0))
    seen.append(http_get(second, f"SEP{MAC}.cnf.xml.sgn"))
    second.close()
    seen.append(register(folder))
    return seen


def http_get(connection: http.client.HTTPConnection, name: str) -> str:
    connection.request("GET", f"/{name}", headers={"User-Agent": "Cisco-CP-8861/14.2"})
    response = connection.getresponse()
    body = response.read()
    return f"HTTP {name}: {response.status} ({len(body)} bytes)"


def tftp_get(folder: Path, name: str) -> str:
    client = tftpy.TftpClient(
        CLUSTER_IP, TFTP_PORT, options={"blksize": 1428, "tsize": 0}, localip=PHONE_IP
    )
    target = folder / "phone" / name
    target.parent.mkdir(exist_ok=True)
    try:
        client.download(name, str(target), timeout=2)
    except tftpy.TftpException as error:
        return f"TFTP {name}: {error}"
    return f"TFTP {name}: {target.stat().st_size} bytes"


def register(folder: Path) -> str:
    """SIP-TLS as the phone: its LSC offered, CallManager trusted only as the ITL says."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.load_verify_locations(folder / "ccm.crt")
    context.load_cert_chain(folder / "lsc.pem")
    with socket.create_connection((CLUSTER_IP, SIP_TLS_PORT), source_address=(PHONE_IP, 0)) as raw:
        try:
            context.wrap_socket(raw).close()
        except ssl.SSLCertVerificationError as error:
            return f"SIP-TLS: refused, {error.verify_message}"
    return "SIP-TLS: established"


def capture(out: Path) -> Path:
    target = out / SAMPLE
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        issued = build_files(folder, now)
        with servers(folder, issued), tcpdump(target):
            steps = boot(folder)
    for step in steps:
        print(step)
    expected = ["404", "File not found", "200", "503", "bytes", "200", "refused"]
    if not all(word in step for word, step in zip(expected, steps, strict=True)):
        raise RuntimeError(f"the boot did not go as planned: {steps}")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    if shutil.which("tcpdump") is None:
        parser.error("tcpdump is needed (apt-get install tcpdump)")
    logging.getLogger("tftpy").setLevel(logging.CRITICAL)
    args.out.mkdir(parents=True, exist_ok=True)
    print(capture(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
