"""The scapy extension, used the way a scapy user does: a fresh interpreter per check.

The captures are real: a TLS 1.2 handshake with a client certificate run in memory by
Python's ``ssl`` (OpenSSL), and a public capture from the shared data.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import ssl
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from conftest import PROJECT
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from scapy.config import ExtsManager
from scapy.layers.inet import IP, TCP
from scapy.packet import Raw
from scapy.utils import wrpcap

import capana

CISCO_PORTS = (2443, 5061, 3804, 2445, 8443, 9443, 9444)
ALERT_RECORD = bytes.fromhex("15030300020228")  # TLS 1.2 fatal handshake_failure alert


@pytest.fixture(scope="session")
def installed() -> None:
    """capana is installed (editable, from this tree) so scapy can find it; install it if not."""
    probe = "import capana.dissectors as d; print(d.__file__)"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/")
    if found.returncode == 0 and found.stdout.strip() == str(PROJECT / "dissectors/__init__.py"):
        return
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(PROJECT)]
    done = subprocess.run(pip, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"pip install -e {PROJECT} failed:\n{done.stderr}")
    importlib.invalidate_caches()


def scapy_run(script: str, *args: str, cwd: Path) -> str:
    """Run ``script`` after ``from scapy.all import *`` in a fresh interpreter; its stdout."""
    code = "from scapy.all import *\n" + textwrap.dedent(script)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr  # scapy logs a refused extension so
    return done.stdout


def test_ports_are_tls_only_after_load_contrib(installed: None, tmp_path: Path) -> None:
    script = f"""
    import json, sys

    def layers():
        found = {{}}
        for port in {CISCO_PORTS!r}:
            for field, other in (("dport", "sport"), ("sport", "dport")):
                tcp = TCP(**{{field: port, other: 50000}})
                pkt = IP(bytes(IP(src="10.10.0.20", dst="10.10.0.1") / tcp / Raw({ALERT_RECORD!r})))
                found[f"{{field}}={{port}}"] = type(pkt[TCP].payload).__name__
        return found

    stages = {{"scapy": layers()}}
    import capana.dissectors
    stages["import capana.dissectors"] = layers()
    conf.exts.load("capana")
    stages["conf.exts.load"] = layers()
    registered = "scapy.contrib.cisco_phone_tls" in conf.exts.all_specs
    loaded_early = "scapy.contrib.cisco_phone_tls" in sys.modules
    load_contrib("cisco_phone_tls")
    stages["load_contrib"] = layers()
    print(json.dumps([stages, registered, loaded_early]))
    """
    stages, registered, loaded_early = json.loads(scapy_run(script, cwd=tmp_path))
    assert registered and not loaded_early
    for stage in ("scapy", "import capana.dissectors", "conf.exts.load"):
        assert set(stages[stage].values()) == {"Raw"}, (stage, stages[stage])
    assert set(stages["load_contrib"].values()) == {"TLS"}, stages["load_contrib"]


def test_lists_client_and_server_certificates(installed: None, tmp_path: Path) -> None:
    pcap = tmp_path / "phones.pcap"
    lsc_phone = handshake("SEP001122334455", "CAPF-1a2b3c4d", ("10.10.0.20", 50000, 2443))
    mic_phone = handshake(
        "SEP00AABBCCDDEE", "Cisco Manufacturing CA SHA2", ("10.10.0.21", 50001, 5061)
    )
    wrpcap(str(pcap), lsc_phone + mic_phone)

    certs = listed_certificates(pcap, tmp_path)

    seen = [(c["role"], c["sender"], c["position"], c["kind"], c["device"]) for c in certs]
    assert seen == [
        ("server", "10.10.0.1:2443", 0, "other", None),
        ("server", "10.10.0.1:2443", 1, "CA", None),
        ("client", "10.10.0.20:50000", 0, "LSC", "SEP001122334455"),
        ("client", "10.10.0.20:50000", 1, "CAPF", None),
        ("server", "10.10.0.1:5061", 0, "other", None),
        ("server", "10.10.0.1:5061", 1, "CA", None),
        ("client", "10.10.0.21:50001", 0, "MIC", "SEP00AABBCCDDEE"),
        ("client", "10.10.0.21:50001", 1, "CA", None),
    ]
    assert certs[2]["subject"] == "CN=SEP001122334455,O=Cisco"
    assert certs[2]["issuer"] == "CN=CAPF-1a2b3c4d,O=Cisco"
    assert certs[2]["receiver"] == "10.10.0.1:2443"


def test_lists_certificates_of_a_public_capture(
    installed: None, shared_data: Path, tmp_path: Path
) -> None:
    # zeek's client-certificate trace: TLS 1.2 on 443 with a real client chain.
    certs = listed_certificates(shared_data / "pcaps/zeek_tls_client-certificate.pcap", tmp_path)

    clients = [c["subject"] for c in certs if c["role"] == "client"]
    servers = [c["subject"] for c in certs if c["role"] == "server"]
    assert clients[0] == "CN=johanna@corelight.com"
    assert clients[1].startswith("CN=Actalis Client Authentication CA G3")
    assert servers[0] == "CN=certauth.idrix.fr"
    assert {c["sender"] for c in certs if c["role"] == "client"} == {"192.168.0.64:49480"}


def test_phone_certificates_is_capana_scan(installed: None, tmp_path: Path) -> None:
    """On the reboot sample (a retransmitted LSC segment, a server segment captured twice) the
    helper lists exactly what capana's analysis does: each certificate of each handshake once."""
    sample = PROJECT / "pcaps" / "phone-reboot.pcapng"
    report = capana.analyze(sample)
    expected = [
        (role, sender, cert.sha256)
        for record in report.handshakes
        for role, sender, chain in (
            ("server", record.handshake.server, record.server_chain),
            ("client", record.handshake.client, record.client_chain),
        )
        for cert in chain
    ]
    certs = listed_certificates(sample, tmp_path)
    assert [(c["role"], c["sender"], c["sha256"]) for c in certs] == expected
    lsc = [c for c in certs if c["sender"] == "10.20.1.22:50244" and c["kind"] == "LSC"]
    assert len(lsc) == 1  # its segment was retransmitted: still one certificate
    servers = {c["sender"] for c in certs if c["role"] == "server"}
    assert servers == {"10.10.1.5:2443", "10.10.1.5:5061"}


def test_scapy_accepts_the_license_it_reads(installed: None) -> None:
    # What ExtsManager.load reads. setuptools writes License-Expression only from version 77,
    # which pyproject's build-system asks for (build isolation fetches it if the venv's is older).
    metadata = importlib.metadata.metadata("capana")
    assert metadata["License-Expression"] in ExtsManager.GPLV2_LICENCES
    assert metadata["License-Expression"] == "GPL-2.0-or-later"
    # The layers install as capana.dissectors: capana is the distribution's only top-level name.
    top_level = importlib.metadata.distribution("capana").read_text("top_level.txt")
    assert top_level is not None and top_level.split() == ["capana"]
    assert 'requires = ["setuptools>=77"]' in (PROJECT / "pyproject.toml").read_text()


def listed_certificates(pcap: Path, cwd: Path) -> list[dict[str, object]]:
    """``phone_certificates(rdpcap(pcap))`` in a scapy session, as dicts without the DER."""
    script = """
    import dataclasses, json, sys
    conf.exts.load("capana")
    load_contrib("cisco_phone_tls")
    certs = phone_certificates(rdpcap(sys.argv[1]))
    print(json.dumps([{**dataclasses.asdict(c), "der": None} for c in certs]))
    """
    return json.loads(scapy_run(script, str(pcap), cwd=cwd))


# A real TLS 1.2 handshake with client authentication, written as the TCP segments a capture
# would hold. Segments are short so each Certificate message spans several.

SERVER = "10.10.0.1"
MSS = 536


def handshake(phone_cn: str, issuer_cn: str, phone: tuple[str, int, int]) -> list[IP]:
    """Packets of one phone's handshake: ``phone`` is (ip, port, server port)."""
    phone_ca_key, phone_ca = _certificate(issuer_cn, None, None)
    phone_key, phone_cert = _certificate(phone_cn, issuer_cn, phone_ca_key)
    server_ca_key, server_ca = _certificate("CallManager-CA", None, None)
    server_key, server_cert = _certificate("cucm-pub.example", "CallManager-CA", server_ca_key)
    cas = [phone_ca, server_ca]
    flights = _tls12_flights(cas, (server_cert, server_key), (phone_cert, phone_key))
    return _tcp_packets(flights, phone)


def _certificate(
    cn: str, issuer_cn: str | None, issuer_key: ec.EllipticCurvePrivateKey | None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA (no issuer) or a leaf it issues."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cisco"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )

    cert = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(name(issuer_cn or cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=issuer_cn is None, path_length=None), True)
        .sign(issuer_key or key, hashes.SHA256())
    )
    return key, cert


def _tls12_flights(
    cas: list[x509.Certificate],
    server: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    client: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> list[tuple[bool, bytes]]:
    """(from_client, bytes) flights of an OpenSSL TLS 1.2 handshake that requires a client cert."""
    server_ctx = _context(ssl.PROTOCOL_TLS_SERVER, cas, *server)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = _context(ssl.PROTOCOL_TLS_CLIENT, cas, *client)
    client_ctx.check_hostname = False
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_out, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    ends = [
        (True, client_ctx.wrap_bio(to_client, client_out), client_out, to_server),
        (
            False,
            server_ctx.wrap_bio(to_server, server_out, server_side=True),
            server_out,
            to_client,
        ),
    ]
    flights: list[tuple[bool, bytes]] = []
    finished: set[bool] = set()
    while len(finished) < 2 or any(out.pending for _, _, out, _ in ends):
        assert len(flights) < 10, "handshake did not finish"
        for from_client, end, out, peer in ends:
            try:
                end.do_handshake()
                finished.add(from_client)
            except ssl.SSLWantReadError:
                pass
            if out.pending:
                data = out.read()
                flights.append((from_client, data))
                peer.write(data)
    return flights


def _context(
    protocol: int,
    cas: list[x509.Certificate],
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
) -> ssl.SSLContext:
    context = ssl.SSLContext(protocol)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    for ca in cas:
        context.load_verify_locations(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with tempfile.TemporaryDirectory() as folder:  # load_cert_chain reads files only
        path = Path(folder) / "identity.pem"
        path.write_bytes(pem)
        context.load_cert_chain(path)
    return context


def _tcp_packets(flights: list[tuple[bool, bytes]], phone: tuple[str, int, int]) -> list[IP]:
    """A three-way handshake, then the flights in MSS-sized segments, in order."""
    phone_ip, phone_port, server_port = phone
    seq = {True: 1000, False: 5000}
    packets = [
        IP(src=phone_ip, dst=SERVER) / TCP(sport=phone_port, dport=server_port, flags="S", seq=999),
        IP(src=SERVER, dst=phone_ip)
        / TCP(sport=server_port, dport=phone_port, flags="SA", seq=4999, ack=1000),
    ]
    for from_client, data in flights:
        src, dst = (phone_ip, SERVER) if from_client else (SERVER, phone_ip)
        sport, dport = (phone_port, server_port) if from_client else (server_port, phone_port)
        for offset in range(0, len(data), MSS):
            segment = data[offset : offset + MSS]
            tcp = TCP(sport=sport, dport=dport, flags="PA", seq=seq[from_client])
            tcp.ack = seq[not from_client]
            packets.append(IP(src=src, dst=dst) / tcp / Raw(segment))
            seq[from_client] += len(segment)
    return packets
