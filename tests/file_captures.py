"""Phone boots built from real programs, for the tests of capana's file judging.

A cluster's certificates come from ``samplegen.pki`` (fresh keys, valid around now); its trust
lists and configuration files are built by usecallmanager.nz's certutils (separate processes,
``certutils_oracle``); the standard library's HTTP server (the sample's TFTP-over-HTTP handler)
answers the phone's requests over loopback, and its bytes are what the capture carries; the
SIP-TLS handshake is OpenSSL's (``samplegen.tlsrun``). ``samplegen.wire`` lays it all into one
pcap for ``capana.analyze``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from certutils_oracle import run
from make_boot_capture import PhoneFileHandler
from samplegen import pki, tlsrun, wire

MAC = "2C3124C9F8E1"
PHONE, CLUSTER = "10.20.1.21", "10.10.1.5"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
WINDOW = {"not_before": NOW - timedelta(days=60), "not_after": NOW + timedelta(days=3650)}
CONFIG = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<device>\n<fullConfig>true</fullConfig>\n'
    "<deviceProtocol>SIP</deviceProtocol>\n"
    '<TVS>\n<members>\n<member priority="0">\n<port>2445</port>\n'
    f"<address>{CLUSTER}</address>\n</member>\n</members>\n</TVS>\n"
    "<deviceSecurityMode>{mode}</deviceSecurityMode>\n"
    "<transportLayerProtocol>3</transportLayerProtocol>\n<capfAuthMode>0</capfAuthMode>\n"
    f"<capfList>\n<capf>\n<phonePort>3804</phonePort>\n<processNodeName>{CLUSTER}"
    "</processNodeName>\n</capf>\n</capfList>\n<certHash></certHash>\n"
    "<encrConfig>false</encrConfig>\n</device>\n"
)


def config(mode: int = 3) -> str:
    """A phone configuration as enccnf's lxml reads it (no undeclared prefixes)."""
    return CONFIG.replace("{mode}", str(mode))


@dataclass
class Cluster:
    """A cluster's certificates (each as NAME.crt, and NAME.pem with its key) and the files its
    TFTP service serves (a name absent from ``served`` is answered 404)."""

    folder: Path
    certs: dict[str, pki.Issued] = field(default_factory=dict)
    served: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, issued: pki.Issued) -> pki.Issued:
        self.certs[name] = issued
        (self.folder / f"{name}.crt").write_bytes(issued.pem)
        (self.folder / f"{name}.pem").write_bytes(issued.pem + issued.key_pem)
        return issued

    def pem(self, name: str, key: bool = False) -> str:
        return str(self.folder / f"{name}.{'pem' if key else 'crt'}")

    def itl(
        self,
        name: str = f"ITLSEP{MAC}.tlv",
        *,
        sast: str = "sast",
        records: tuple[tuple[str, str], ...] = (("-C", "ccm"), ("-A", "capf"), ("-T", "tvs")),
    ) -> bytes:
        """A trust list signed by ``sast`` with these (tlvfile option, certificate) records."""
        options = [item for option, cert in records for item in (option, self.pem(cert))]
        out = self.folder / name
        run("tlvfile", "-b", str(out), "-s", self.pem(sast, key=True), *options, cwd=self.folder)
        return self.serve(name, out.read_bytes())

    def sgn(self, xml: str, *, signer: str = "ccm") -> bytes:
        """``SEP<MAC>.cnf.xml.sgn`` signed by ``signer`` (sgnfile)."""
        source = self.folder / f"SEP{MAC}.cnf.xml"
        source.write_text(xml)
        run("sgnfile", "-b", str(source), "-t", self.pem(signer, key=True), cwd=self.folder)
        return self.serve(source.name + ".sgn", (self.folder / (source.name + ".sgn")).read_bytes())

    def enc(self, xml: str, *, phone: str, signer: str = "ccm") -> bytes:
        """``SEP<MAC>.cnf.xml.enc.sgn`` encrypted to ``phone``'s certificate, with the signed
        companion ``.cnf.xml.sgn`` enccnf writes beside it (certHash, encrConfig)."""
        source = self.folder / f"SEP{MAC}.cnf.xml"
        source.write_text(xml)
        tftp = self.pem(signer, key=True)
        run("enccnf", "-b", str(source), "-t", tftp, "-c", self.pem(phone), cwd=self.folder)
        self.serve(source.name + ".sgn", (self.folder / (source.name + ".sgn")).read_bytes())
        return self.serve(
            source.name + ".enc.sgn", (self.folder / (source.name + ".enc.sgn")).read_bytes()
        )

    def serve(self, name: str, data: bytes) -> bytes:
        self.served[name] = data
        return data


def cluster(folder: Path) -> Cluster:
    """The usual certificates: ITLRecovery (SAST), CallManager, TVS, CAPF, the phone's LSC."""
    made = Cluster(folder)
    made.add(
        "sast", pki.issue(pki.dn("O=Example,OU=VTG,CN=ITLRECOVERY_cucm-pub"), ca=True, **WINDOW)
    )
    made.add("ccm", pki.server_cert(None, "cucm-pub.example.com", **WINDOW))
    made.add("tvs", pki.server_cert(None, "cucm-pub.example.com-TVS", **WINDOW))
    capf = made.add("capf", pki.capf(**WINDOW))
    made.add("lsc", pki.phone_lsc(capf, mac=MAC, **WINDOW))
    return made


def http_exchange(cluster: Cluster, names: list[str]) -> tuple[bytes, bytes]:
    """The phone's pipelined GETs for ``names`` and the real server's answer, until it closed."""
    served = cluster.folder / "tftpboot"
    served.mkdir(exist_ok=True)
    for name, data in cluster.served.items():
        (served / name).write_bytes(data)
    handler = functools.partial(PhoneFileHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    requests = b"".join(
        f"GET /{name} HTTP/1.1\r\nHost: {CLUSTER}:6970\r\n".encode()
        + (b"Connection: close\r\n" if name == names[-1] else b"")
        + b"\r\n"
        for name in names
    )
    try:
        with socket.create_connection(server.server_address[:2], timeout=5) as connection:
            connection.sendall(requests)
            answer = bytearray()
            with contextlib.suppress(TimeoutError):
                while chunk := connection.recv(65536):
                    answer += chunk
    finally:
        server.shutdown()
    return requests, bytes(answer)


def boot_capture(
    path: Path,
    cluster: Cluster,
    names: list[str],
    *,
    callmanager: str | None = "ccm",
    phone: str | None = "lsc",
) -> Path:
    """The phone fetching ``names`` over HTTP 6970, then (unless ``callmanager`` is None) a
    SIP-TLS handshake where CallManager presents that certificate and the phone ``phone``'s."""
    requests, answer = http_exchange(cluster, names)
    packets = wire.plain_tcp(
        (PHONE, 50100), (CLUSTER, 6970), NOW, [("client", requests), ("server", answer)]
    )
    if callmanager is not None:
        certs = cluster.certs
        result = tlsrun.run_handshake(
            server_chain=[certs[callmanager]],
            client_chain=[certs[phone]] if phone else [],
            trust=[certs["capf"].cert],
        )
        conversation = wire.TcpConversation(
            (PHONE, 50200), (CLUSTER, 5061), NOW + timedelta(seconds=1)
        )
        conversation.open()
        for flight in result.flights:
            conversation.send(flight.sender, flight.data)
        conversation.close()
        packets = wire.merge(packets, conversation.packets())
    return wire.write_pcap(path, packets)
