"""Named capture scenarios from DOMAIN.md: build a capture into a folder and say what is in it.

Each scenario runs real OpenSSL handshakes (``tlsrun``) between a synthetic phone and a synthetic
CUCM (``pki``), lays them on the wire (``wire``) and returns a :class:`Scenario`: the capture
path, the CallManager-trust the server used (a folder of PEM files, as CUCM exports it) and one
:class:`ConnectionFacts` per TLS connection, which tests compare with what capana reports.

RSA key generation dominates the cost, so keys come from a :class:`KeyRing` that callers share
(a pytest session fixture): the same label always gives the same key within one ring.

    ring = KeyRing()
    scenario = moved_cluster(tmp_path, keys=ring)
    assert scenario.connections[0].alert == "unknown_ca"
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from samplegen import pki
from samplegen.pki import Issued
from samplegen.tlsrun import HandshakeBytes, Sender, record_offsets, run_handshake
from samplegen.wire import (
    Endpoint,
    Link,
    Packet,
    TcpConversation,
    dns_exchange,
    merge,
    plain_tcp,
    rtp_stream,
    to_ns,
    udp_packet,
    write_pcap,
    write_pcapng,
)

CAPTURE_TIME = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)
CUCM_V4, CUCM_V6 = "10.10.1.5", "fd00:10:10:1::5"
SERVICES = {2443: "sccp-tls", 5061: "sip-tls", 3804: "capf", 2445: "tvs", 443: "https"}
SCCP_TLS, SIP_TLS, CAPF_PORT = 2443, 5061, 3804
CLUSTER_CAPF = "CAPF-0992727f"
OTHER_CLUSTER_CAPF = "CAPF-5b1e77a3"


class KeyRing:
    """Private keys by label, generated once: share one ring to keep test suites fast.

    ``shared_phone_key``: every phone certificate (labels "mic:…", "lsc:…") gets one key, so
    that a site of hundreds of phones is built in seconds (the certificates still differ).
    """

    def __init__(self, shared_phone_key: bool = False) -> None:
        self._keys: dict[str, pki.PrivateKey] = {}
        self._shared = shared_phone_key

    def get(self, label: str, kind: str = "rsa2048") -> pki.PrivateKey:
        if self._shared and label.startswith(("mic:", "lsc:")):
            label = "phone"
        if label not in self._keys:
            self._keys[label] = pki.new_key(kind)
        return self._keys[label]


@dataclass(frozen=True)
class Cluster:
    """One CUCM cluster's PKI: Cisco manufacturing CAs, its CAPF, its CallManager certificate."""

    mfg_root: Issued
    mfg_ca: Issued
    mfg_root_sha1: Issued
    mfg_ca_sha1: Issued
    capf: Issued
    callmanager: Issued
    keys: KeyRing = field(repr=False, compare=False)

    def callmanager_trust(self) -> tuple[Issued, ...]:
        """CallManager-trust: the CAPF, the default manufacturing CAs and the node's own cert."""
        return (
            self.capf,
            self.mfg_ca,
            self.mfg_root,
            self.mfg_ca_sha1,
            self.mfg_root_sha1,
            self.callmanager,
        )

    def capf_trust(self) -> tuple[Issued, ...]:
        """CAPF-trust: the manufacturing CAs and the CAPF (for LSC upgrades)."""
        return (self.capf, self.mfg_ca, self.mfg_root, self.mfg_ca_sha1, self.mfg_root_sha1)

    def mic(self, model: str, mac: str, *, sha1: bool = False, **window: datetime) -> Issued:
        """The phone's factory certificate (SHA-1 era under "Cisco Manufacturing CA")."""
        issuer = self.mfg_ca_sha1 if sha1 else self.mfg_ca
        return pki.phone_mic(
            issuer,
            model=model,
            mac=mac,
            serial_number=_serial(mac),
            key=self.keys.get(f"mic:{mac}"),
            hash_name="sha1" if sha1 else "sha256",
            **window,
        )

    def lsc(self, model: str, mac: str, *, capf: Issued | None = None) -> Issued:
        """An LSC for the phone, signed by this cluster's CAPF (or by ``capf``)."""
        signer = capf or self.capf
        return pki.phone_lsc(
            signer,
            model=model,
            mac=mac,
            serial_number=_serial(mac),
            key=self.keys.get(f"lsc:{mac}:{_fingerprint(signer)[:16]}"),
        )


def build_cluster(
    keys: KeyRing,
    *,
    capf_name: str = CLUSTER_CAPF,
    capf_generation: int = 0,
    cucm: str = "cucm-pub.example.com",
) -> Cluster:
    """A cluster; ``capf_generation`` > 0 is the same CAPF name regenerated with a new key."""
    mfg_root, mfg_ca = pki.cisco_manufacturing_pki(
        root_key=keys.get("mfg-root-m2"), ca_key=keys.get("mfg-ca-sha2")
    )
    mfg_root_sha1, mfg_ca_sha1 = pki.cisco_manufacturing_pki(
        sha2=False, root_key=keys.get("mfg-root-2048"), ca_key=keys.get("mfg-ca")
    )
    issued_on = pki.EPOCH + timedelta(days=1400 * capf_generation)  # regenerated in late 2023
    capf = pki.capf(
        capf_name,
        key=keys.get(f"capf:{capf_name}:{capf_generation}"),
        not_before=issued_on,
        not_after=issued_on + timedelta(days=5 * 365),
    )
    callmanager = pki.server_cert(None, cucm, key=keys.get(f"cm:{cucm}"))
    return Cluster(mfg_root, mfg_ca, mfg_root_sha1, mfg_ca_sha1, capf, callmanager, keys)


# --- facts ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionFacts:
    """What one TLS connection in a scenario capture holds, as the generator knows it."""

    client: str  # "10.20.1.11:50012" / "[fd00::11]:50012"
    server: str
    service: str
    device: str | None  # "SEP2C3124C9F8E1" when the phone's certificate names it
    client_cert_kind: str | None  # "LSC" | "MIC" | None
    client_chain: tuple[str, ...]  # SHA-256 of the DER the client put in its Certificate
    server_chain: tuple[str, ...]
    client_cert_status: str  # "present" | "absent" | "encrypted" | "not_requested" | "unknown"
    tls_version: str  # "TLS 1.2" | "TLS 1.3"
    outcome: str  # "established" | "rejected"
    alert: str | None  # RFC 8446 name of the fatal alert, e.g. "unknown_ca"
    alert_from: Sender | None
    requested_ca_names: tuple[str, ...] | None  # RFC 4514, None when no cert was requested
    gaps: int = 0


@dataclass(frozen=True)
class Scenario:
    """A capture built into a folder, the trust its server used, and the facts to assert."""

    name: str
    capture: Path
    capture_time: datetime
    connections: tuple[ConnectionFacts, ...]
    trust_dir: Path
    trust: tuple[str, ...]  # SHA-256 of each certificate in trust_dir
    keylog: Path | None = None
    issued: Mapping[str, Issued] = field(default_factory=dict, repr=False)
    packets: tuple[Packet, ...] = field(default=(), repr=False)  # unframed, to re-write elsewhere


@dataclass(frozen=True)
class Layout:
    """How one TLS connection is laid on the wire, and how the capture damages it.

    The damage knobs act on the flight that carries the phone's Certificate (its second
    flight): ``reorder`` swaps its two halves (and the server's first two segments),
    ``retransmit`` repeats its first segment after an RTO, ``overlap`` adds a segment
    overlapping it ("same" or "different" bytes), ``drop`` loses its first segment (a gap).
    """

    ipv6: bool = False
    ipv6_ext: bool = False
    mss: int = 1460
    wraparound: bool = False
    odd_splits: bool = False
    reorder: bool = False
    retransmit: bool = False
    duplicate: bool = False
    overlap: str | None = None
    drop: bool = False
    midstream: bool = False
    reset: bool = False


@dataclass(frozen=True)
class Phone:
    """A phone on the wire: name parts and address."""

    model: str
    mac: str
    ip: str
    port: int

    @property
    def device(self) -> str:
        return f"SEP{self.mac.upper()}"


# --- the DOMAIN.md cases, one connection each ----------------------------------------------------


def lsc_accepted(
    out: Path, *, keys: KeyRing | None = None, cluster: Cluster | None = None, **options
) -> Scenario:
    """Phone with an LSC from the cluster's CAPF, TLS for SCCP on 2443: accepted."""
    cluster = cluster or build_cluster(keys or KeyRing())
    phone = _phone(0)
    lsc = cluster.lsc(phone.model, phone.mac)
    return _single(
        out, "lsc-accepted", cluster, phone, [lsc], "LSC", SCCP_TLS, {"lsc": lsc}, **options
    )


def mic_accepted(
    out: Path, *, keys: KeyRing | None = None, cluster: Cluster | None = None, **options
) -> Scenario:
    """Phone without an LSC presents its MIC, TLS for SIP on 5061: accepted."""
    cluster = cluster or build_cluster(keys or KeyRing())
    phone = _phone(1, model="CP-7841")
    mic = cluster.mic(phone.model, phone.mac)
    return _single(
        out, "mic-accepted", cluster, phone, [mic], "MIC", SIP_TLS, {"mic": mic}, **options
    )


def moved_cluster(
    out: Path, *, keys: KeyRing | None = None, cluster: Cluster | None = None, **options
) -> Scenario:
    """Phone moved from another cluster: its LSC's CAPF is not trusted, server says unknown_ca."""
    cluster = cluster or build_cluster(keys or KeyRing())
    old_capf = _other_cluster_capf(cluster.keys)
    phone = _phone(2, model="CP-8865")
    lsc = cluster.lsc(phone.model, phone.mac, capf=old_capf)
    issued = {"lsc": lsc, "old_capf": old_capf}
    return _single(out, "moved-cluster", cluster, phone, [lsc], "LSC", SCCP_TLS, issued, **options)


def capf_regenerated(
    out: Path, *, keys: KeyRing | None = None, cluster: Cluster | None = None, **options
) -> Scenario:
    """CAPF regenerated (same name, new key) and the old one removed: the old LSC is refused."""
    old = cluster or build_cluster(keys or KeyRing())
    cluster = build_cluster(old.keys, capf_name=_common_name(old.capf.cert), capf_generation=1)
    phone = _phone(3, model="CP-8845")
    lsc = old.lsc(phone.model, phone.mac)
    issued = {"lsc": lsc, "old_capf": old.capf, "new_capf": cluster.capf}
    return _single(
        out, "capf-regenerated", cluster, phone, [lsc], "LSC", SCCP_TLS, issued, **options
    )


def mic_expired(
    out: Path, *, keys: KeyRing | None = None, cluster: Cluster | None = None, **options
) -> Scenario:
    """An old phone's SHA-1 MIC that expired before the capture: certificate_expired."""
    cluster = cluster or build_cluster(keys or KeyRing())
    phone = _phone(4, model="CP-7965")
    mic = cluster.mic(
        phone.model,
        phone.mac,
        sha1=True,
        not_before=datetime(2013, 6, 1, tzinfo=timezone.utc),
        not_after=datetime(2023, 6, 1, tzinfo=timezone.utc),
    )
    return _single(
        out, "mic-expired", cluster, phone, [mic], "MIC", SIP_TLS, {"mic": mic}, **options
    )


def not_requested(
    out: Path, *, keys: KeyRing | None = None, cluster: Cluster | None = None, **options
) -> Scenario:
    """The server never asked for a client certificate (no CertificateRequest)."""
    cluster = cluster or build_cluster(keys or KeyRing())
    phone = _phone(5)
    lsc = cluster.lsc(phone.model, phone.mac)
    options.setdefault("handshake", {})["request_client_cert"] = False
    return _single(
        out, "not-requested", cluster, phone, [lsc], "LSC", SIP_TLS, {"lsc": lsc}, **options
    )


def no_client_cert(
    out: Path, *, keys: KeyRing | None = None, cluster: Cluster | None = None, **options
) -> Scenario:
    """The server asked, the phone sent an empty Certificate; the server ends it."""
    cluster = cluster or build_cluster(keys or KeyRing())
    phone = _phone(6)
    options.setdefault("handshake", {})["require_client_cert"] = True
    return _single(out, "no-client-cert", cluster, phone, [], None, SCCP_TLS, {}, **options)


def tls13_client_cert(
    out: Path, *, keys: KeyRing | None = None, cluster: Cluster | None = None, **options
) -> Scenario:
    """TLS 1.3 (CUCM 15SU2 default): the phone's certificate travels encrypted; a key log."""
    cluster = cluster or build_cluster(keys or KeyRing())
    phone = _phone(7, model="CP-8851")
    lsc = cluster.lsc(phone.model, phone.mac)
    handshake = options.setdefault("handshake", {})
    handshake.update(max_version="1.3", min_version="1.2", client_ciphers="ECDHE+AESGCM:AES256-SHA")
    return _single(
        out, "tls13-client-cert", cluster, phone, [lsc], "LSC", SIP_TLS, {"lsc": lsc}, **options
    )


def capf_session(
    out: Path, *, keys: KeyRing | None = None, cluster: Cluster | None = None, **options
) -> Scenario:
    """Phone <-> CAPF on 3804, authenticating with its MIC; CSR and LSC as application data."""
    cluster = cluster or build_cluster(keys or KeyRing())
    phone = _phone(8)
    mic = cluster.mic(phone.model, phone.mac)
    options.setdefault("handshake", {}).setdefault(
        "app_data",
        [("client", b"CAPF\x01" + b"\x00" * 300), ("server", b"CAPF\x02" + b"\x00" * 900)],
    )
    return _single(
        out,
        "capf-session",
        cluster,
        phone,
        [mic],
        "MIC",
        CAPF_PORT,
        {"mic": mic},
        server_chain=[cluster.capf],
        trust=cluster.capf_trust(),
        **options,
    )


def nonstandard_port(
    out: Path,
    *,
    keys: KeyRing | None = None,
    cluster: Cluster | None = None,
    port: int = 15061,
    **options,
) -> Scenario:
    """TLS for SIP moved to a port capana must recognise by content, not by number."""
    cluster = cluster or build_cluster(keys or KeyRing())
    phone = _phone(9)
    lsc = cluster.lsc(phone.model, phone.mac)
    return _single(
        out, "nonstandard-port", cluster, phone, [lsc], "LSC", port, {"lsc": lsc}, **options
    )


SINGLE_SCENARIOS = (
    lsc_accepted,
    mic_accepted,
    moved_cluster,
    capf_regenerated,
    mic_expired,
    not_requested,
    no_client_cert,
    tls13_client_cert,
    capf_session,
    nonstandard_port,
)


# --- the reboot capture ---------------------------------------------------------------------------


def phone_reboot(
    out: Path,
    *,
    keys: KeyRing | None = None,
    cluster: Cluster | None = None,
    name: str = "phone-reboot.pcapng",
    start: datetime = CAPTURE_TIME,
    background: bool = True,
    trust_dir: Path | None = None,
    phones: int = 5,
) -> Scenario:
    """A few phones rebooting against one CUCM, as a SPAN of the publisher's port shows it.

    Two LSC phones (SCCP, SIP), two MIC phones (SIP, SCCP), and a phone moved from another
    cluster whose LSC is refused with unknown_ca (it retries once); TFTP/HTTP config downloads,
    DNS and RTP around them; one handshake reordered, one retransmitted. ``phones`` > 5 adds
    well-behaved LSC and MIC phones (SCCP and SIP) for a site-sized reboot (at most 200).
    """
    cluster = cluster or build_cluster(keys or KeyRing())
    old_capf = _other_cluster_capf(cluster.keys)
    plan = [
        (_phone(11, "CP-8861"), "LSC", SCCP_TLS, Layout(reorder=True)),
        (_phone(12, "CP-8845"), "LSC", SIP_TLS, Layout(retransmit=True)),
        (_phone(13, "CP-7841"), "MIC", SIP_TLS, Layout(odd_splits=True)),
        (_phone(14, "CP-8851"), "MIC", SCCP_TLS, Layout(duplicate=True)),
        (_phone(15, "CP-8865"), "moved", SCCP_TLS, Layout()),
    ]
    models = ("CP-8861", "CP-8845", "CP-7841", "CP-8851", "CP-8865")
    plan += [
        (
            _phone(11 + n, models[n % 5]),
            ("MIC", "LSC")[n % 2],
            (SIP_TLS, SCCP_TLS)[n % 3 > 0],
            Layout(),
        )
        for n in range(5, phones)
    ]
    server_ip = CUCM_V4
    trust = cluster.callmanager_trust()
    packets: list[list[Packet]] = []
    facts: list[ConnectionFacts] = []
    issued: dict[str, Issued] = {"old_capf": old_capf}
    for n, (phone, kind, port, layout) in enumerate(plan):
        boot = start + timedelta(seconds=1.5 * n + 0.2)
        if kind == "LSC":
            chain, cert_kind = [cluster.lsc(phone.model, phone.mac)], "LSC"
        elif kind == "MIC":
            chain, cert_kind = [cluster.mic(phone.model, phone.mac)], "MIC"
        else:
            chain, cert_kind = [cluster.lsc(phone.model, phone.mac, capf=old_capf)], "LSC"
        issued[phone.device] = chain[0]
        if background:
            packets.append(_config_download(phone, server_ip, boot))
        attempts = 2 if kind == "moved" else 1
        for attempt in range(attempts):
            when = boot + timedelta(seconds=0.8 + 4.0 * attempt)
            client = (phone.ip, phone.port + attempt)
            result = _handshake(cluster, chain, trust, start, app_data=_app_data(port))
            conn_packets, gaps = _lay(client, (server_ip, port), when, result, layout)
            packets.append(conn_packets)
            facts.append(
                _facts(
                    client,
                    (server_ip, port),
                    result,
                    chain=chain,
                    server_chain=[cluster.callmanager],
                    kind=cert_kind,
                    device=phone.device,
                    requested_from=trust,
                    gaps=gaps,
                )
            )
    if background:
        packets.append(_background(plan[0][0], plan[1][0], start))
    trust_folder = trust_dir or out / "phone-reboot-trust"
    everything = merge(*packets)
    capture = _write(out / name, [(Link(macs=_macs(p for p, *_ in plan)), everything)])
    return Scenario(
        "phone-reboot",
        capture,
        start,
        tuple(facts),
        write_trust_dir(trust_folder, trust),
        tuple(_fingerprint(item) for item in trust),
        issued=issued,
        packets=tuple(everything),
    )


# --- a site-sized reboot --------------------------------------------------------------------------

# What each phone of a site reboot does, by its number modulo 50 (the rest: LSC or MIC, trusted).
SITE_MOVED, SITE_OLD_FIRMWARE, SITE_EXPIRING, SITE_CLEARTEXT, SITE_FALLBACK, SITE_PC = (
    7,
    13,
    21,
    33,
    41,
    45,
)


def site_reboot(
    out: Path,
    *,
    keys: KeyRing | None = None,
    phones: int = 500,
    name: str = "site-reboot.pcapng",
    start: datetime = CAPTURE_TIME,
    spacing: float = 0.05,
) -> Scenario:
    """A site's phones rebooting together against one CUCM, with mixed verdicts.

    By number modulo 50: 7 an LSC from another cluster (unknown_ca, one retry), 13 old firmware
    whose suites the server refuses (handshake_failure), 21 an LSC expiring 12 days after the
    capture, 33 cleartext SCCP only (non-secure profile), 41 refused like 7 then falling back to
    cleartext SCCP, 45 a PC on the voice VLAN doing HTTPS (a host, not a phone); the others
    present an LSC (two in three) or a MIC, over SCCP-TLS or SIP-TLS, and are trusted. Use a
    ``KeyRing(shared_phone_key=True)`` to build 500 phones in seconds.
    """
    cluster = build_cluster(keys or KeyRing(shared_phone_key=True))
    old_capf = _other_cluster_capf(cluster.keys)
    trust = cluster.callmanager_trust()
    models = ("CP-8861", "CP-8845", "CP-7841", "CP-8851", "CP-8865")
    packets: list[list[Packet]] = []
    facts: list[ConnectionFacts] = []
    issued: dict[str, Issued] = {"old_capf": old_capf}
    site = [_phone(n, models[n % 5]) for n in range(phones)]
    for n, phone in enumerate(site):
        role = n % 50
        when = start + timedelta(seconds=spacing * n + 0.5)
        port = (SIP_TLS, SCCP_TLS)[n % 3 > 0]
        if role == SITE_PC:
            pc = (f"10.30.{1 + n // 240}.{10 + n % 240}", 51000 + n % 1000)
            result = _handshake(cluster, [], trust, start, request_client_cert=False)
            conn, gaps = _lay(pc, (CUCM_V4, 443), when, result, Layout())
            packets.append(conn)
            facts.append(_facts(pc, (CUCM_V4, 443), result, chain=[], kind=None, device=None,
                                server_chain=[cluster.callmanager], requested_from=None,
                                gaps=gaps))  # fmt: skip
            continue
        if role == SITE_CLEARTEXT:
            packets.append(_cleartext_sccp(phone, when))
            continue
        options: dict = {"app_data": _app_data(port)}
        kind = (
            "MIC"
            if n % 3 == 2 and role not in (SITE_MOVED, SITE_FALLBACK, SITE_EXPIRING)
            else "LSC"
        )
        if role in (SITE_MOVED, SITE_FALLBACK):
            chain = [cluster.lsc(phone.model, phone.mac, capf=old_capf)]
        elif role == SITE_EXPIRING:
            chain = [_expiring_lsc(cluster, phone, start + timedelta(days=12))]
        elif kind == "MIC":
            chain = [cluster.mic(phone.model, phone.mac)]
        else:
            chain = [cluster.lsc(phone.model, phone.mac)]
        if role == SITE_OLD_FIRMWARE:
            options.update(client_ciphers="AES256-SHA:AES128-SHA", server_ciphers=STRONG_ONLY)
        issued[phone.device] = chain[0]
        packets.append(_config_download(phone, CUCM_V4, when - timedelta(seconds=0.4)))
        attempts = 2 if role == SITE_MOVED else 1
        for attempt in range(attempts):
            client = (phone.ip, phone.port + attempt)
            at = when + timedelta(seconds=4.0 * attempt)
            result = _handshake(cluster, chain, trust, start, **options)
            conn, gaps = _lay(client, (CUCM_V4, port), at, result, Layout())
            packets.append(conn)
            facts.append(
                _facts(client, (CUCM_V4, port), result, chain=chain, kind=kind,
                       server_chain=[cluster.callmanager], device=phone.device,
                       requested_from=trust, gaps=gaps)
            )  # fmt: skip
        if role == SITE_FALLBACK:
            packets.append(_cleartext_sccp(phone, when + timedelta(seconds=2)))
    capture = _write(out / name, [(Link(macs=_macs(site)), merge(*packets))])
    return Scenario(
        "site-reboot",
        capture,
        start,
        tuple(facts),
        write_trust_dir(out / "site-reboot-trust", trust),
        tuple(_fingerprint(item) for item in trust),
        issued=issued,
    )


# The server side of a CUCM whose 'TLS Ciphers' parameter allows only the strongest suite.
STRONG_ONLY = "ECDHE-RSA-AES256-GCM-SHA384"


def _expiring_lsc(cluster: Cluster, phone: Phone, not_after: datetime) -> Issued:
    return pki.phone_lsc(
        cluster.capf,
        model=phone.model,
        mac=phone.mac,
        serial_number=_serial(phone.mac),
        key=cluster.keys.get(f"lsc:{phone.mac}:expiring"),
        not_after=not_after,
    )


def _cleartext_sccp(phone: Phone, when: datetime) -> list[Packet]:
    """A phone registering in clear: an SCCP RegisterMessage to TCP 2000 and the answer."""
    name = phone.device.encode().ljust(16, b"\0")
    register = (28).to_bytes(4, "little") + bytes(4) + (1).to_bytes(4, "little") + name
    register += bytes(12)
    ack = (20).to_bytes(4, "little") + bytes(4) + (0x81).to_bytes(4, "little") + bytes(16)
    return plain_tcp(
        (phone.ip, phone.port + 300), (CUCM_V4, 2000), when, [("client", register), ("server", ack)]
    )


# --- building blocks ------------------------------------------------------------------------------


def write_trust_dir(folder: Path, certificates: Sequence[Issued]) -> Path:
    """The certificates as CUCM's trust export: one ``<CN>.pem`` file each."""
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for item in certificates:
        stem = _common_name(item.cert).replace(" ", "_")
        name, count = f"{stem}.pem", 1
        while name in used:
            count += 1
            name = f"{stem}-{count}.pem"
        used.add(name)
        (folder / name).write_bytes(item.pem)
    return folder


def _single(
    out: Path,
    name: str,
    cluster: Cluster,
    phone: Phone,
    chain: Sequence[Issued],
    kind: str | None,
    port: int,
    issued: Mapping[str, Issued],
    *,
    server_chain: Sequence[Issued] | None = None,
    trust: Sequence[Issued] | None = None,
    layout: Layout | None = None,
    link: Link | None = None,
    suffix: str = ".pcap",
    handshake: Mapping | None = None,
    capture_time: datetime = CAPTURE_TIME,
    client_port: int | None = None,
    **writer_options,
) -> Scenario:
    """One phone, one TLS connection, one capture file (``name`` + ``suffix``).

    Options common to the single-connection scenarios: ``layout``, ``link``, ``suffix``
    (".pcap", ".pcapng", ".pcap.gz"), ``handshake`` (passed to ``run_handshake``),
    ``capture_time``, ``client_port``; the rest go to the file writer (``nanosecond``,
    ``big_endian``, ``snaplen``).
    """
    layout = layout or Layout()
    handshake = dict(handshake or {})
    handshake.setdefault("app_data", _app_data(port))
    server_chain = list(server_chain or [cluster.callmanager])
    trust = tuple(trust or cluster.callmanager_trust())
    server_ip = CUCM_V6 if layout.ipv6 else CUCM_V4
    client_ip = _v6(phone.ip) if layout.ipv6 else phone.ip
    result = _handshake(
        cluster,
        chain,
        trust,
        capture_time,
        server_chain=server_chain,
        **handshake,
    )
    client, server = (client_ip, client_port or phone.port), (server_ip, port)
    packets, gaps = _lay(client, server, capture_time + timedelta(seconds=1), result, layout)
    facts = _facts(
        client,
        server,
        result,
        chain=chain,
        server_chain=server_chain,
        kind=kind,
        device=phone.device if chain else None,
        requested_from=trust if handshake.get("request_client_cert", True) else None,
        gaps=gaps,
    )
    capture = out / f"{name}{suffix}"
    keylog = None
    if result.version == "TLSv1.3":
        keylog = out / f"{name}.keys"
        keylog.parent.mkdir(parents=True, exist_ok=True)
        keylog.write_text(result.keylog_text())
    link = link or Link(macs=_macs([phone]))
    _write(capture, [(link, packets)], **writer_options)
    return Scenario(
        name,
        capture,
        capture_time,
        (facts,),
        write_trust_dir(out / f"{name}-trust", trust),
        tuple(_fingerprint(item) for item in trust),
        keylog,
        {**issued, "callmanager": server_chain[0], "capf": cluster.capf},
        tuple(packets),
    )


def _handshake(
    cluster: Cluster,
    chain: Sequence[Issued],
    trust: Sequence[Issued],
    when: datetime,
    *,
    server_chain: Sequence[Issued] | None = None,
    **options,
) -> HandshakeBytes:
    """``run_handshake`` with the server trusting ``trust`` as of ``when``."""
    return run_handshake(
        server_chain=list(server_chain or [cluster.callmanager]),
        client_chain=list(chain),
        trust=[item.cert for item in trust],
        verify_time=when,
        **options,
    )


def _lay(
    client: Endpoint,
    server: Endpoint,
    when: datetime,
    result: HandshakeBytes,
    layout: Layout,
) -> tuple[list[Packet], int]:
    """The handshake as packets of one TCP connection, and the number of gaps made."""
    wrap = 2**32 - 700
    conv = TcpConversation(
        client,
        server,
        when,
        client_isn=wrap if layout.wraparound else 0x1A2B0000 + client[1],
        server_isn=wrap - 900 if layout.wraparound else 0x6C000000 + client[1],
        mss=layout.mss,
        ipv6_ext=layout.ipv6_ext,
    )
    conv.open()
    cert_range = (0, 0)
    client_flights = 0
    for flight in result.flights:
        cuts = record_offsets(flight.data)[1:] if layout.odd_splits else []
        cuts = [cut + 3 for cut in cuts] + ([len(flight.data) // 2] if layout.odd_splits else [])
        if flight.sender == "client":
            client_flights += 1
            if client_flights == 2:
                begin = len(conv.sent("client"))
                cert_range = (begin, begin + len(flight.data))
                if layout.reorder or layout.overlap:
                    cuts.append(len(flight.data) // 2)
        conv.send(flight.sender, flight.data, cuts=cuts)
    if layout.reset or not result.established:
        conv.reset("server" if not result.established else "client")
    else:
        conv.close()
    gaps = _damage(conv, layout, cert_range)
    return conv.packets(), gaps


def _damage(conv: TcpConversation, layout: Layout, cert_range: tuple[int, int]) -> int:
    """Apply the layout's damage to the phone's Certificate flight; return the gaps made."""

    def cert_segments() -> list[int]:
        return conv.indices_in("client", *cert_range)

    if layout.reorder:
        first, second = cert_segments()[:2]
        conv.swap(first, second)
        server = conv.data_indices("server")
        conv.swap(server[0], server[1])
    if layout.retransmit:
        conv.retransmit(cert_segments()[0])
    if layout.duplicate:
        conv.duplicate(conv.data_indices("server")[0])
    if layout.overlap:
        first = cert_segments()[0]
        back = min(100, len(conv.segments[first].payload))
        conv.overlap(first, back=back, length=back + 60, same=layout.overlap == "same")
    gaps = 0
    if layout.drop:
        conv.drop(cert_segments()[0])
        gaps = 1
    if layout.midstream:
        conv.midstream()
    return gaps


def _facts(
    client: Endpoint,
    server: Endpoint,
    result: HandshakeBytes,
    *,
    chain: Sequence[Issued],
    server_chain: Sequence[Issued],
    kind: str | None,
    device: str | None,
    requested_from: Sequence[Issued] | None,
    gaps: int,
) -> ConnectionFacts:
    """What the connection holds; ``requested_from`` is the trust the server named (or None)."""
    tls13 = result.version == "TLSv1.3"
    sent = tuple(_fingerprint(item) for item in chain) if requested_from is not None else ()
    if requested_from is None:
        status = "not_requested"
    elif gaps:
        status = "unknown"
    elif tls13:
        status = "encrypted"
    else:
        status = "present" if chain else "absent"
    fatal = result.fatal_alert
    return ConnectionFacts(
        client=_address(client),
        server=_address(server),
        service=SERVICES.get(server[1], "tls"),
        device=device,
        client_cert_kind=kind if sent else None,
        client_chain=sent,
        server_chain=tuple(_fingerprint(item) for item in server_chain),
        client_cert_status=status,
        tls_version="TLS 1.3" if tls13 else "TLS 1.2",
        outcome="established" if result.established else "rejected",
        alert=fatal.name if fatal else None,
        alert_from=fatal.sender if fatal else None,
        requested_ca_names=None
        if requested_from is None
        else tuple(item.cert.subject.rfc4514_string() for item in requested_from),
        gaps=gaps,
    )


def _write(path: Path, interfaces: list[tuple[Link, list[Packet]]], **options) -> Path:
    if ".pcapng" in path.suffixes:
        return write_pcapng(path, interfaces, **options)
    ((link, packets),) = interfaces
    return write_pcap(path, packets, link=link, **options)


def _app_data(port: int) -> list[tuple[Sender, bytes]]:
    """A first exchange that looks like the service: a SIP REGISTER or an SCCP register."""
    if port == SIP_TLS or port not in SERVICES:
        register = (
            b"REGISTER sip:10.10.1.5 SIP/2.0\r\nVia: SIP/2.0/TLS\r\nContent-Length: 0\r\n\r\n"
        )
        return [("client", register), ("server", b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")]
    return [("client", bytes(12) + b"SEP" + bytes(29)), ("server", bytes(28))]


def _config_download(phone: Phone, server_ip: str, when: datetime) -> list[Packet]:
    """TFTP read request for the ITL, then the config file over HTTP 6970."""
    tftp = b"\x00\x01ITL" + phone.device.encode() + b".tlv\x00octet\x00"
    request = f"GET /{phone.device}.cnf.xml.sgn HTTP/1.1\r\nHost: {server_ip}:6970\r\n\r\n"
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2200\r\n\r\n" + b"<device>" * 275
    return [
        udp_packet((phone.ip, 51000 + phone.port % 1000), (server_ip, 69), tftp, to_ns(when)),
        *plain_tcp(
            (phone.ip, phone.port + 100),
            (server_ip, 6970),
            when + timedelta(milliseconds=200),
            [("client", request.encode()), ("server", answer)],
        ),
    ]


def _background(caller: Phone, callee: Phone, start: datetime) -> list[Packet]:
    """A call between two phones (RTP both ways) and some DNS, after they registered."""
    call = start + timedelta(seconds=9)
    return merge(
        rtp_stream((caller.ip, 24580), (callee.ip, 30220), call, count=60, ssrc=0x11AA22BB),
        rtp_stream((callee.ip, 30220), (caller.ip, 24580), call, count=60, ssrc=0x33CC44DD),
        dns_exchange(("10.10.1.9", 53001), ("10.10.1.2", 53), start, "cucm-pub.example.com"),
    )


def _other_cluster_capf(keys: KeyRing) -> Issued:
    """The CAPF of the cluster a moved phone came from."""
    return pki.capf(OTHER_CLUSTER_CAPF, key=keys.get(f"capf:{OTHER_CLUSTER_CAPF}:0"))


def _phone(n: int, model: str = "CP-8861") -> Phone:
    mac = f"2C3124{0xC9F800 + n:06X}"  # 2C3124C9F800 and up, unique past 2,048 phones
    return Phone(model, mac, f"10.20.{1 + n // 240}.{10 + n % 240}", 49800 + 37 * (n % 400))


def _macs(phones) -> dict[str, str]:
    return {phone.ip: phone.mac for phone in phones}


def _v6(ipv4: str) -> str:
    return f"fd00:20:1::{ipv4.rsplit('.', 1)[1]}"


def _address(endpoint: Endpoint) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _serial(mac: str) -> str:
    return f"FCH{int(mac[-6:], 16) % 10**8:08d}"[:11]


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else "certificate"


def _fingerprint(item: Issued) -> str:
    return hashlib.sha256(item.der).hexdigest()
