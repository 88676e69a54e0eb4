"""The capture generator against an independent oracle: tshark must see what the facts claim.

For every scenario and wire knob, tshark (out-of-order reassembly on) lists the certificates of
each Certificate message; they must be exactly the chains the generator says each side sent, by
SHA-256 of the DER. Alerts, CertificateRequest CA names and checksums are checked on the way.
tshark starts slowly, so each test reads one capture once (variants share one pcapng).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from samplegen import scenarios
from samplegen.scenarios import KeyRing, Layout, Scenario
from samplegen.tlsrun import run_handshake
from samplegen.wire import Link, TcpConversation, merge, write_pcapng

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

SAMPLES = Path(__file__).resolve().parent.parent / "pcaps"
FIELDS = (
    "frame.interface_id",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
    "tcp.dstport",
    "udp.srcport",
    "tls.handshake.type",
    "tls.handshake.certificate",
    "tls.alert_message.desc",
    "tls.handshake.dname_len",
    "ip.checksum.status",
    "tcp.checksum.status",
    "udp.checksum.status",
)
ALERT_CODES = {"unknown_ca": 48, "certificate_expired": 45, "handshake_failure": 40}

Chain = tuple[str, ...]


@dataclass(frozen=True)
class TsharkView:
    """What tshark decoded in one capture."""

    certificates: Counter[tuple[str, str, Chain]]  # sender, receiver ("ip:port"), chain
    alerts: list[tuple[str, str, int]]  # sender, receiver, description of each readable alert
    ca_name_counts: list[tuple[str, str, int]]  # sender, receiver, names in a CertificateRequest
    interfaces: set[str]
    udp_packets: int
    bad_checksums: int

    def about(self, scenario: Scenario) -> TsharkView:
        """Only what concerns the scenario's connections (captures may hold several)."""
        pairs = {(c.client, c.server) for c in scenario.connections}
        pairs |= {(server, client) for client, server in pairs}
        return TsharkView(
            Counter({k: n for k, n in self.certificates.items() if k[:2] in pairs}),
            [alert for alert in self.alerts if alert[:2] in pairs],
            [names for names in self.ca_name_counts if names[:2] in pairs],
            self.interfaces,
            self.udp_packets,
            self.bad_checksums,
        )


def tshark(path: Path, keylog: Path | None = None) -> TsharkView:
    command = ["tshark", "-n", "-r", str(path), "-o", "tcp.reassemble_out_of_order:TRUE"]
    command += ["-d", "tcp.port==3804,tls", "-T", "fields", "-E", "occurrence=a"]
    for proto in ("ip", "tcp", "udp"):
        command += ["-o", f"{proto}.check_checksum:TRUE"]
    if keylog:
        command += ["-o", f"tls.keylog_file:{keylog}"]
    for name in FIELDS:
        command += ["-e", name]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    certificates: Counter[tuple[str, str, Chain]] = Counter()
    alerts, names, interfaces, udp, bad = [], [], set(), 0, 0
    for line in done.stdout.splitlines():
        iface, v4, v6, sport, v4_to, v6_to, dport, uport, types, certs, alert, dnames, *sums = (
            line.split("\t")
        )
        interfaces.add(iface)
        udp += bool(uport)
        bad += sum("0" in value.split(",") for value in sums)
        sender, receiver = _address(v4, v6, sport), _address(v4_to, v6_to, dport)
        if "11" in types.split(","):
            certificates[(sender, receiver, _chain(certs))] += 1
        if "13" in types.split(","):
            names.append((sender, receiver, len(dnames.split(",")) if dnames else 0))
        alerts += [(sender, receiver, int(code)) for code in alert.split(",") if code]
    return TsharkView(certificates, alerts, names, interfaces, udp, bad)


def _address(v4: str, v6: str, port: str) -> str:
    return f"[{v6}]:{port}" if v6 else f"{v4}:{port}"


def _chain(certs: str) -> Chain:
    return tuple(
        hashlib.sha256(bytes.fromhex(cert.replace(":", ""))).hexdigest()
        for cert in certs.split(",")
        if cert
    )


def expected(scenario: Scenario, *, decrypted: bool = False) -> Counter[tuple[str, str, Chain]]:
    """The Certificate messages the facts say tshark can read."""
    readable = {"present", "absent"} | ({"encrypted"} if decrypted else set())
    messages: Counter[tuple[str, str, Chain]] = Counter()
    for conn in scenario.connections:
        if conn.tls_version == "TLS 1.2" or decrypted:
            messages[(conn.server, conn.client, conn.server_chain)] += 1
        if conn.client_cert_status in readable:
            messages[(conn.client, conn.server, conn.client_chain)] += 1
    return messages


@pytest.fixture(scope="session")
def cluster() -> scenarios.Cluster:
    """One cluster (one key ring) for the session: RSA key generation is the real cost."""
    return scenarios.build_cluster(KeyRing())


@pytest.fixture(scope="session")
def domain(cluster, tmp_path_factory) -> tuple[dict[str, Scenario], TsharkView]:
    """Every single-connection scenario, and tshark's view of all of them in one capture."""
    out = tmp_path_factory.mktemp("domain")
    built = {build.__name__: build(out, cluster=cluster) for build in scenarios.SINGLE_SCENARIOS}
    combined = write_pcapng(
        out / "all.pcapng", [(Link(), merge(*(s.packets for s in built.values())))]
    )
    return built, tshark(combined)


# --- every DOMAIN.md scenario --------------------------------------------------------------------


@pytest.mark.parametrize("name", [f.__name__ for f in scenarios.SINGLE_SCENARIOS])
def test_scenario_capture_matches_its_facts(name, domain):
    built, everything = domain
    scenario = built[name]
    view = everything.about(scenario)
    assert view.certificates == expected(scenario)
    (conn,) = scenario.connections
    server_to_client = (conn.server, conn.client)
    if conn.tls_version == "TLS 1.2":  # TLS 1.3 alerts and CertificateRequest are encrypted
        wanted = [(*server_to_client, ALERT_CODES[conn.alert])] if conn.alert else []
        assert view.alerts == wanted
        names = conn.requested_ca_names
        assert view.ca_name_counts == ([] if names is None else [(*server_to_client, len(names))])
    assert conn.outcome == ("rejected" if conn.alert else "established")
    assert scenario.capture.stat().st_size > 2000
    assert len(scenario.trust) == len(list(scenario.trust_dir.glob("*.pem"))) >= 5


@pytest.mark.parametrize(
    ("name", "alert"),
    [
        ("lsc_accepted", None),
        ("mic_accepted", None),
        ("moved_cluster", "unknown_ca"),
        ("capf_regenerated", "unknown_ca"),
        ("mic_expired", "certificate_expired"),
        ("no_client_cert", "handshake_failure"),
    ],
)
def test_openssl_decides_the_outcome(name, alert, domain):
    (conn,) = domain[0][name].connections
    assert conn.alert == alert
    assert conn.alert_from == ("server" if alert else None)


def test_generated_checksums_are_right(domain):
    assert domain[1].bad_checksums == 0


def test_tls13_client_certificate_needs_the_key_log(tmp_path, cluster):
    scenario = scenarios.tls13_client_cert(tmp_path, cluster=cluster)
    (conn,) = scenario.connections
    assert (conn.tls_version, conn.client_cert_status) == ("TLS 1.3", "encrypted")
    assert scenario.keylog is not None
    assert tshark(scenario.capture, scenario.keylog).certificates == expected(
        scenario, decrypted=True
    )


def test_key_log_in_a_pcapng_decryption_secrets_block(tmp_path, cluster):
    scenario = scenarios.tls13_client_cert(tmp_path, cluster=cluster)
    embedded = tmp_path / "with-dsb.pcapng"
    write_pcapng(embedded, [(Link(), scenario.packets)], keylog=scenario.keylog.read_text())
    assert tshark(embedded).certificates == expected(scenario, decrypted=True)


# --- wire knobs: each variant is one connection of a shared capture -----------------------------

LAYOUTS = {
    "plain": Layout(),
    "reorder": Layout(reorder=True),
    "retransmit": Layout(retransmit=True),
    "duplicate": Layout(duplicate=True),
    "overlap-same": Layout(overlap="same"),
    "odd-splits": Layout(odd_splits=True),
    "tiny-mss": Layout(mss=64),
    "wraparound": Layout(wraparound=True, mss=200),
    "midstream": Layout(midstream=True),
    "reset": Layout(reset=True),
    "ipv6-ext": Layout(ipv6=True, ipv6_ext=True),
    "all-at-once": Layout(reorder=True, retransmit=True, duplicate=True, odd_splits=True),
    "drop": Layout(drop=True),
}


def test_damaged_streams_still_carry_the_certificates(tmp_path, cluster):
    built = {
        name: scenarios.lsc_accepted(
            tmp_path / name, cluster=cluster, layout=layout, client_port=40000 + 10 * n
        )
        for n, (name, layout) in enumerate(LAYOUTS.items())
    }
    combined = tmp_path / "damage.pcapng"
    write_pcapng(combined, [(Link(), merge(*(s.packets for s in built.values())))])
    seen = tshark(combined).certificates
    for name, scenario in built.items():
        want = expected(scenario)
        got = Counter({key: n for key, n in seen.items() if key in want})
        assert got == want, name
    (dropped,) = built["drop"].connections
    assert (dropped.gaps, dropped.client_cert_status) == (1, "unknown")
    assert not [key for key in seen if key[0] == dropped.client]


LINKS = {
    "ethernet": Link(),
    "dot1q": Link(vlans=(100,)),
    "qinq": Link(vlans=(200, 100)),
    "sll": Link("sll", capture_host=scenarios.CUCM_V4),
    "sll2": Link("sll2"),
    "raw": Link("raw"),
    "null": Link("null"),
}


def test_several_interfaces_with_different_link_types(tmp_path, cluster):
    built = [
        scenarios.mic_accepted(
            tmp_path / name, cluster=cluster, client_port=41000 + n, layout=Layout(ipv6=n % 2)
        )
        for n, name in enumerate(LINKS)
    ]
    combined = tmp_path / "links.pcapng"
    write_pcapng(
        combined,
        [(link, s.packets) for link, s in zip(LINKS.values(), built, strict=True)],
        nanosecond=True,
    )
    view = tshark(combined)
    assert view.interfaces == {str(n) for n in range(len(LINKS))}
    assert view.certificates == sum((expected(s) for s in built), Counter())


@pytest.mark.parametrize(
    ("suffix", "link", "writer"),
    [
        (".pcap", Link("sll2"), {"nanosecond": True}),
        (".pcap", Link("null", vlans=()), {"nanosecond": True, "big_endian": True}),
        (".pcap.gz", Link(vlans=(100,)), {}),
        (".pcapng", Link("raw"), {"big_endian": True}),
    ],
    ids=["pcap-ns", "pcap-big-endian", "gzip", "pcapng-big-endian"],
)
def test_file_formats(suffix, link, writer, tmp_path, cluster):
    scenario = scenarios.mic_accepted(
        tmp_path, cluster=cluster, suffix=suffix, link=link, layout=Layout(ipv6=True), **writer
    )
    assert tshark(scenario.capture).certificates == expected(scenario)


# --- the reboot capture and the shipped samples --------------------------------------------------


def test_phone_reboot(tmp_path, cluster):
    scenario = scenarios.phone_reboot(tmp_path, cluster=cluster)
    view = tshark(scenario.capture)
    assert view.certificates == expected(scenario)
    kinds = Counter(conn.client_cert_kind for conn in scenario.connections)
    assert kinds["LSC"] >= 2 and kinds["MIC"] >= 2
    assert {conn.service for conn in scenario.connections} == {"sccp-tls", "sip-tls"}
    refused = [conn for conn in scenario.connections if conn.alert]
    assert [conn.alert for conn in refused] == ["unknown_ca", "unknown_ca"]
    assert [code for *_, code in view.alerts] == [48, 48]
    assert view.udp_packets > 100  # RTP, DNS and TFTP around the handshakes
    assert view.bad_checksums == 0


def test_shipped_samples_hold_real_handshakes():
    reboot = SAMPLES / "phone-reboot.pcapng"
    if not reboot.exists():
        pytest.skip("samples not generated (python pcaps/make_samples.py)")
    view = tshark(reboot)
    senders = [sender.rsplit(":", 1)[0] for sender, _, _ in view.certificates.elements()]
    assert len(senders) == 12 and senders.count(scenarios.CUCM_V4) == 6
    assert [code for *_, code in view.alerts] == [48, 48]
    assert (SAMPLES / "phone-reboot-trust" / f"{scenarios.CLUSTER_CAPF}.pem").exists()
    tls13 = tshark(SAMPLES / "tls13-client-cert.pcap", SAMPLES / "tls13-client-cert.keys")
    assert sum(tls13.certificates.values()) == 2
    shipped = [
        path for path in SAMPLES.rglob("*") if path.is_file() and "samplegen" not in str(path)
    ]
    assert sum(path.stat().st_size for path in shipped) < 300_000


# --- the building blocks alone -------------------------------------------------------------------


def test_tcp_sequence_numbers_wrap_around():
    conv = TcpConversation(
        ("10.0.0.1", 1000), ("10.0.0.2", 2443), scenarios.CAPTURE_TIME, client_isn=2**32 - 10
    )
    conv.open()
    conv.send("client", bytes(range(100)) * 40)
    seqs = [seg.seq for seg in conv.segments if seg.sender == "client" and seg.payload]
    assert seqs[0] == 2**32 - 9 and seqs[1] == 1460 - 9
    assert conv.sent("client") == bytes(range(100)) * 40


def test_run_handshake_keeps_openssl_verdict_and_keys(cluster):
    result = run_handshake(
        server_chain=[cluster.callmanager],
        client_chain=[cluster.lsc("CP-8861", "00AABBCCDDEE")],
        trust=[cluster.mfg_ca.cert],  # the CAPF is missing: OpenSSL must refuse
        verify_time=scenarios.CAPTURE_TIME,
    )
    assert not result.established
    assert result.fatal_alert is not None and result.fatal_alert.name == "unknown_ca"
    assert result.keylog and result.keylog[0].startswith("CLIENT_RANDOM ")
    assert [flight.sender for flight in result.flights] == ["client", "server", "client", "server"]


def test_overlap_with_different_bytes():
    conv = TcpConversation(("10.0.0.1", 1000), ("10.0.0.2", 2443), scenarios.CAPTURE_TIME, mss=100)
    conv.open()
    data = bytes(range(250))
    conv.send("client", data)
    first = conv.data_indices("client")[0]
    conv.overlap(first, back=10, length=30, same=False)
    extra = conv.segments[first + 1]
    assert extra.offset == 90 and extra.seq == conv.segments[first].seq + 90
    assert extra.payload[:10] != data[90:100] and extra.payload[10:] == data[100:120]
    assert conv.sent("client") == data  # the stream itself is unchanged


def test_a_site_sized_reboot(tmp_path, cluster):
    scenario = scenarios.phone_reboot(tmp_path, cluster=cluster, phones=8, background=False)
    devices = {conn.device for conn in scenario.connections}
    assert len(devices) == 8 and len(scenario.connections) == 9
