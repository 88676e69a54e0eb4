"""Capture real 802.1X EAP-TLS: wpa_supplicant (the phone) against hostapd, in network namespaces.

    sudo python3 pcaps/make_eap_captures.py            # rewrites every capture next to it
    sudo python3 pcaps/make_eap_captures.py --out DIR  # somewhere else
    sudo python3 pcaps/make_eap_captures.py --only eapol-group

Needs root, iproute2, tcpdump, and Debian's ``hostapd`` and ``wpasupplicant``; ``freeradius`` for
the FreeRADIUS capture, ``gcc`` and libssl's headers for the TLS 1.3 one (``keylog-shim.c``), and
``editcap`` (with tshark) to put its keys in a pcapng. Everything runs in namespaces this script
creates and deletes (``capana-phone``, ``capana-switch``, ``capana-ise``); no traffic leaves
them. Certificates come from ``samplegen.pki`` (synthetic, fresh keys per run).

- ``eapol-eap-tls.pcap``: phone <-> switch (hostapd, wired driver, internal EAP server), EAPOL.
- ``radius-eap-tls.pcap``: the same phones, but the switch's hostapd relays to a second hostapd
  acting as RADIUS server (10.99.0.2:1812) in ``capana-ise``; captured on that link.
- ``eapol-group.pcap``: two switch ports (two hostapd, ``use_pae_group_addr=1``: the switch too
  sends to the PAE group address), one phone on each, authenticating at the same time; both
  ports captured and merged.
- ``eapol-tls13.pcapng``: EAP-TLS in TLS 1.3 (RFC 9190: hostapd ``tls_flags=[ENABLE-TLSv1.3]``,
  wpa_supplicant ``tls_disable_tlsv1_3=0``); hostapd runs under ``keylog-shim.so``, whose key log
  ``editcap --inject-secrets`` puts in the pcapng (Decryption Secrets Block). Also written:
  ``eapol-tls13.pcap`` (no keys in it) and ``eapol-tls13.keys``.
- ``radius-freeradius.pcap``: the switch's hostapd relays to FreeRADIUS (which sets the L flag on
  every EAP-TLS fragment, its ``include_length`` default), over an uplink with an MTU of 576 so
  that the kernel fragments the large RADIUS packets. Its default method is EAP-TLS: the LSC
  phone takes it, the MIC phone answers with a Nak for PEAP and authenticates with MSCHAPv2
  inside it.

Two phones each time: a CP-8861 presenting its LSC (issuer CAPF-0992727f, accepted) and a
CP-7841 presenting its MIC (issuer Cisco Manufacturing CA SHA2, which the server's CA list lacks:
the server refuses it with ``unknown_ca`` and EAP-Failure / Access-Reject).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from samplegen import pki

HERE = Path(__file__).resolve().parent
PHONE_NS, SWITCH_NS, ISE_NS = "capana-phone", "capana-switch", "capana-ise"
SWITCH_MAC = "00:1b:54:00:00:01"  # port0; port N is ...:0N+1
NAS_IP, RADIUS_IP, SECRET = "10.99.0.1", "10.99.0.2", "capana-secret"
TRUST_FOLDER = "eap-ise-trust"
FRAGMENT_SIZE = 600  # small, so certificates span several EAP-TLS fragments


@dataclass(frozen=True)
class Phone:
    model: str
    mac: str  # 12 hex digits, as in SEP<MAC>
    cert: pki.Issued

    @property
    def identity(self) -> str:
        return f"{self.model}-SEP{self.mac}"  # Cisco phones use their certificate CN

    @property
    def mac_text(self) -> str:
        return ":".join(self.mac[i : i + 2] for i in range(0, 12, 2)).lower()


@dataclass(frozen=True)
class Pki:
    phones: tuple[Phone, ...]
    server: pki.Issued  # ISE's EAP certificate
    server_ca: pki.Issued
    accepted_cas: tuple[pki.Issued, ...]  # ISE's trust: the CAPF only


def build_pki(now: datetime) -> Pki:
    """A CAPF-issued LSC and a manufacturing MIC; ISE trusts the CAPF only."""
    window = {"not_before": now - timedelta(days=30), "not_after": now + timedelta(days=365)}
    capf = pki.issue(  # as pki.capf, with clientAuth too: OpenSSL checks a CA's EKU as well
        pki.dn("C=MX,O=Cisco,OU=Voice,CN=CAPF-0992727f,ST=Mexico City,L=Mexico City"),
        ca=True,
        path_length=0,
        key_usage=("digital_signature", "key_encipherment", "key_cert_sign"),
        extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
        **window,
    )
    _root, mfg_ca = pki.cisco_manufacturing_pki()
    lsc = pki.phone_lsc(capf, model="CP-8861", mac="2C3124C9F8E1", **window)
    mic = pki.phone_mic(mfg_ca, model="CP-7841", mac="00AABBCC0011", serial_number="FCH2049A0A1")
    server_ca = pki.issue(pki.dn("O=Example,CN=Example Enterprise CA"), ca=True, **window)
    server = pki.server_cert(server_ca, "ise.example.com", org="O=Example", **window)
    phones = (Phone("CP-8861", "2C3124C9F8E1", lsc), Phone("CP-7841", "00AABBCC0011", mic))
    return Pki(phones, server, server_ca, (capf,))


def run(*command: str, ns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", ns] if ns else []
    subprocess.run([*prefix, *command], check=True)


class Daemon:
    """A process in a namespace whose output lines are collected by a thread."""

    def __init__(self, ns: str, *command: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", ns, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, words: tuple[str, ...], seconds: float) -> str:
        """Wait until an output line holds one of ``words``; that word."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            for word in words:
                if word in line:
                    return word
        raise RuntimeError(f"{self.process.args} printed none of {words} in {seconds} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def port_mac(number: int) -> str:
    return f"00:1b:54:00:00:{number + 1:02x}"


@contextlib.contextmanager
def namespaces(radius: bool, ports: int = 1, mtu: int | None = None) -> Iterator[None]:
    """phoneN --veth-- portN of the switch [--veth-- ise, of ``mtu``], IPv6 off so only 802.1X and
    RADIUS are on the wire."""
    names = [PHONE_NS, SWITCH_NS, *([ISE_NS] if radius else [])]
    try:
        for ns in names:
            run("ip", "netns", "add", ns)
            run("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", ns=ns)
            run("ip", "link", "set", "lo", "up", ns=ns)
        for number in range(ports):
            run("ip", "link", "add", f"phone{number}", "netns", PHONE_NS, "type", "veth",
                "peer", "name", f"port{number}", "netns", SWITCH_NS)  # fmt: skip
            run("ip", "link", "set", f"port{number}", "address", port_mac(number), "up",
                ns=SWITCH_NS)  # fmt: skip
        if radius:
            run("ip", "link", "add", "uplink0", "netns", SWITCH_NS, "type", "veth",
                "peer", "ise0", "netns", ISE_NS)  # fmt: skip
            run("ip", "addr", "add", f"{NAS_IP}/30", "dev", "uplink0", ns=SWITCH_NS)
            run("ip", "addr", "add", f"{RADIUS_IP}/30", "dev", "ise0", ns=ISE_NS)
            for ns, link in ((SWITCH_NS, "uplink0"), (ISE_NS, "ise0")):
                if mtu is not None:
                    run("ip", "link", "set", link, "mtu", str(mtu), ns=ns)
                run("ip", "link", "set", link, "up", ns=ns)
        yield
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "delete", ns], check=False)


def write_files(folder: Path, keys: Pki) -> None:
    (folder / "server.pem").write_bytes(keys.server.pem)
    (folder / "server.key").write_bytes(keys.server.key_pem)
    (folder / "server-ca.pem").write_bytes(keys.server_ca.pem)
    (folder / "trusted-cas.pem").write_bytes(pki.pem_bundle(*keys.accepted_cas))
    (folder / "eap_users").write_text("* TLS\n")
    (folder / "radius_clients").write_text(f"{NAS_IP}/32 {SECRET}\n")
    for phone in keys.phones:
        (folder / f"{phone.mac}.pem").write_bytes(phone.cert.pem)
        (folder / f"{phone.mac}.key").write_bytes(phone.cert.key_pem)


def eap_server_lines(folder: Path) -> list[str]:
    return [
        "eap_server=1",
        f"eap_user_file={folder}/eap_users",
        f"ca_cert={folder}/trusted-cas.pem",
        f"server_cert={folder}/server.pem",
        f"private_key={folder}/server.key",
        f"fragment_size={FRAGMENT_SIZE}",
    ]


def authenticator_conf(
    folder: Path, radius: bool, number: int, port: int = 0, extra: tuple[str, ...] = ()
) -> Path:
    lines = [f"interface=port{port}", "driver=wired", "ieee8021x=1", "eapol_version=2", *extra]
    if radius:
        lines += [
            f"own_ip_addr={NAS_IP}",
            f"nas_identifier=access-switch-{number}",
            f"auth_server_addr={RADIUS_IP}",
            "auth_server_port=1812",
            f"auth_server_shared_secret={SECRET}",
        ]
    else:
        lines += eap_server_lines(folder)
    path = folder / f"authenticator{port}.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def radius_server_conf(folder: Path) -> Path:
    lines = [
        "interface=ise0",
        "driver=none",
        f"radius_server_clients={folder}/radius_clients",
        "radius_server_auth_port=1812",
        *eap_server_lines(folder),
    ]
    path = folder / "radius.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def supplicant_conf(folder: Path, phone: Phone, method: tuple[str, ...] = ()) -> Path:
    """EAP-TLS with the phone's certificate, or the ``method`` lines given instead."""
    path = folder / f"{phone.mac}.conf"
    tls = (
        "eap=TLS",
        f'client_cert="{folder}/{phone.mac}.pem"',
        f'private_key="{folder}/{phone.mac}.key"',
    )
    lines = [
        "key_mgmt=IEEE8021X",
        *(method or tls),
        f'identity="{phone.identity}"',
        f'ca_cert="{folder}/server-ca.pem"',
        f"fragment_size={FRAGMENT_SIZE}",
        "eapol_flags=0",
    ]
    path.write_text("ap_scan=0\nnetwork={\n" + "".join(f"  {line}\n" for line in lines) + "}\n")
    return path


def authenticate(folder: Path, phone: Phone, method: tuple[str, ...] = ()) -> str:
    """One phone's 802.1X exchange; "SUCCESS" or "FAILURE" as wpa_supplicant saw it."""
    return authenticate_together(folder, [(phone, method)])[0]


def authenticate_together(folder: Path, phones: list[tuple[Phone, tuple[str, ...]]]) -> list[str]:
    """Phone N on interface phoneN, all at once; each outcome as wpa_supplicant saw it."""
    supplicants = []
    try:
        for number, (phone, method) in enumerate(phones):
            interface = f"phone{number}"
            run("ip", "link", "set", interface, "down", ns=PHONE_NS)
            run("ip", "link", "set", interface, "address", phone.mac_text, "up", ns=PHONE_NS)
            config = str(supplicant_conf(folder, phone, method))
            supplicants.append(
                Daemon(PHONE_NS, "wpa_supplicant", "-D", "wired", "-i", interface, "-c", config)
            )
        words = [
            supplicant.wait_for(("CTRL-EVENT-EAP-SUCCESS", "CTRL-EVENT-EAP-FAILURE"), 30)
            for supplicant in supplicants
        ]
    finally:
        for supplicant in supplicants:
            supplicant.stop()
    time.sleep(0.5)
    return [word.rsplit("-", 1)[1] for word in words]


def tcpdump(interface: str, target: Path, bpf: str) -> Daemon:
    dump = Daemon(
        SWITCH_NS, "tcpdump", "-U", "--immediate-mode", "-w", str(target), "-i", interface, bpf
    )
    dump.wait_for(("listening on",), 10)
    return dump


def capture(out: Path, keys: Pki, radius: bool) -> Path:
    """Run both phones through one setup; the capture written."""
    target = out / ("radius-eap-tls.pcap" if radius else "eapol-eap-tls.pcap")
    with tempfile.TemporaryDirectory() as scratch, namespaces(radius):
        folder = Path(scratch)
        write_files(folder, keys)
        interface, bpf = ("uplink0", "udp port 1812") if radius else ("port0", "ether proto 0x888e")
        dump = Daemon(
            SWITCH_NS, "tcpdump", "-U", "--immediate-mode", "-w", str(target), "-i", interface, bpf
        )
        daemons = [dump]
        try:
            dump.wait_for(("listening on",), 10)
            if radius:
                daemons.append(Daemon(ISE_NS, "hostapd", "-d", str(radius_server_conf(folder))))
                daemons[-1].wait_for(("AP-ENABLED",), 10)
            outcomes = []
            for number, phone in enumerate(keys.phones, 1):
                # Over RADIUS each phone comes through a fresh authenticator (a new UDP source
                # port): tshark loses EAP-TLS reassembly when two sessions share one.
                if number == 1 or radius:
                    config = str(authenticator_conf(folder, radius, number))
                    daemons.append(Daemon(SWITCH_NS, "hostapd", "-d", config))
                    daemons[-1].wait_for(("AP-ENABLED",), 10)
                outcomes.append(authenticate(folder, phone))
                if radius:
                    daemons.pop().stop()
            time.sleep(1)  # let tcpdump write the last frames
        finally:
            for daemon in reversed(daemons):
                daemon.stop()
        print(
            f"{target.name}: {dict(zip([p.identity for p in keys.phones], outcomes, strict=True))}"
        )
        if outcomes != ["SUCCESS", "FAILURE"]:
            raise RuntimeError(f"expected the LSC accepted and the MIC refused, got {outcomes}")
    return target


def capture_group(out: Path, keys: Pki) -> Path:
    """Two ports whose switch sends to the PAE group address, a phone on each, at once."""
    target = out / "eapol-group.pcap"
    with tempfile.TemporaryDirectory() as scratch, namespaces(False, ports=2):
        folder = Path(scratch)
        write_files(folder, keys)
        parts = [folder / f"port{number}.pcap" for number in range(2)]
        daemons = []
        try:
            for number, part in enumerate(parts):
                daemons.append(tcpdump(f"port{number}", part, "ether proto 0x888e"))
            for number in range(2):
                extra = ("use_pae_group_addr=1",)
                config = str(authenticator_conf(folder, False, 1, port=number, extra=extra))
                daemons.append(Daemon(SWITCH_NS, "hostapd", "-d", config))
                daemons[-1].wait_for(("AP-ENABLED",), 10)
            outcomes = authenticate_together(folder, [(phone, ()) for phone in keys.phones])
            time.sleep(1)
        finally:
            for daemon in reversed(daemons):
                daemon.stop()
        run("mergecap", "-F", "pcap", "-w", str(target), *map(str, parts))
    _expect(target, keys, outcomes, ["SUCCESS", "FAILURE"])
    return target


def capture_tls13(out: Path, keys: Pki) -> Path:
    """EAP-TLS in TLS 1.3, hostapd's secrets logged by keylog-shim.so into the pcapng."""
    target, keylog = out / "eapol-tls13.pcap", out / "eapol-tls13.keys"
    keylog.unlink(missing_ok=True)
    tls13 = (
        "eap=TLS",
        'phase1="tls_disable_tlsv1_3=0"',
    )
    with tempfile.TemporaryDirectory() as scratch, namespaces(False):
        folder = Path(scratch)
        write_files(folder, keys)
        shim = folder / "keylog-shim.so"
        run("gcc", "-shared", "-fPIC", "-o", str(shim), str(HERE / "keylog-shim.c"), "-ldl")
        env = {"LD_PRELOAD": str(shim), "CAPANA_KEYLOG": str(keylog)}
        daemons = [tcpdump("port0", target, "ether proto 0x888e")]
        try:
            extra = ("tls_flags=[ENABLE-TLSv1.3]",)
            config = str(authenticator_conf(folder, False, 1, extra=extra))
            daemons.append(Daemon(SWITCH_NS, "hostapd", "-d", config, env=env))
            daemons[-1].wait_for(("AP-ENABLED",), 10)
            outcomes = [
                authenticate(folder, phone, (*tls13, *_client_tls(folder, phone)))
                for phone in keys.phones
            ]
            time.sleep(1)
        finally:
            for daemon in reversed(daemons):
                daemon.stop()
    _expect(target, keys, outcomes, ["SUCCESS", "FAILURE"])
    with_keys = target.with_suffix(".pcapng")
    run("editcap", "--inject-secrets", f"tls,{keylog}", str(target), str(with_keys))
    return with_keys


def _client_tls(folder: Path, phone: Phone) -> tuple[str, ...]:
    return (f'client_cert="{folder}/{phone.mac}.pem"', f'private_key="{folder}/{phone.mac}.key"')


PEAP_PASSWORD = "phone-secret"


def freeradius_conf(folder: Path) -> Path:
    """Debian's FreeRADIUS configuration, copied: EAP-TLS by default with the test PKI, the NAS
    as a client, and a user for PEAP's inner MSCHAPv2."""
    raddb = folder / "raddb"
    shutil.copytree("/etc/freeradius/3.0", raddb, symlinks=True)
    eap = raddb / "mods-available" / "eap"
    text = eap.read_text()
    text = text.replace("default_eap_type = md5", "default_eap_type = tls", 1)
    for old, new in (
        ("/etc/ssl/private/ssl-cert-snakeoil.key", f"{folder}/server.key"),
        ("/etc/ssl/certs/ssl-cert-snakeoil.pem", f"{folder}/server.pem"),
        ("/etc/ssl/certs/ca-certificates.crt", f"{folder}/trusted-cas.pem"),
    ):
        text = text.replace(old, new)
    eap.write_text(text)
    with (raddb / "clients.conf").open("a") as clients:
        clients.write(f"client nas {{\n\tipaddr = {NAS_IP}\n\tsecret = {SECRET}\n}}\n")
    users = raddb / "mods-config" / "files" / "authorize"
    peap_user = f'"CP-7841-SEP00AABBCC0011" Cleartext-Password := "{PEAP_PASSWORD}"\n'
    users.write_text(peap_user + users.read_text())
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)  # FreeRADIUS drops to freerad
    return raddb


def capture_freeradius(out: Path, keys: Pki) -> Path:
    """Through hostapd to FreeRADIUS over an MTU of 576: the LSC phone in EAP-TLS, the MIC
    phone with a Nak for PEAP."""
    target = out / "radius-freeradius.pcap"
    peap = ("eap=PEAP", f'password="{PEAP_PASSWORD}"', 'phase2="auth=MSCHAPV2"')
    lsc, mic = keys.phones
    with tempfile.TemporaryDirectory() as scratch, namespaces(True, mtu=576):
        folder = Path(scratch)
        write_files(folder, keys)
        raddb = freeradius_conf(folder)
        daemons = [tcpdump("uplink0", target, "ip")]  # "udp port 1812" misses later fragments
        try:
            daemons.append(Daemon(ISE_NS, "freeradius", "-X", "-d", str(raddb)))
            daemons[-1].wait_for(("Ready to process requests",), 20)
            outcomes = []
            for number, (phone, method) in enumerate(((lsc, ()), (mic, peap)), 1):
                config = str(authenticator_conf(folder, True, number))
                daemons.append(Daemon(SWITCH_NS, "hostapd", "-d", config))
                daemons[-1].wait_for(("AP-ENABLED",), 10)
                outcomes.append(authenticate(folder, phone, method))
                daemons.pop().stop()
            time.sleep(1)
        finally:
            for daemon in reversed(daemons):
                daemon.stop()
    _expect(target, keys, outcomes, ["SUCCESS", "SUCCESS"])
    return target


def _expect(target: Path, keys: Pki, outcomes: list[str], expected: list[str]) -> None:
    print(f"{target.name}: {dict(zip([p.identity for p in keys.phones], outcomes, strict=True))}")
    if outcomes != expected:
        raise RuntimeError(f"{target.name}: expected {expected}, got {outcomes}")


def write_trust(out: Path, keys: Pki) -> Path:
    """ISE's trust as a folder for ``--trust ise=...``: the CAs hostapd was given."""
    folder = out / TRUST_FOLDER
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.pem"):
        old.unlink()
    for ca in keys.accepted_cas:
        name = ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        (folder / f"{name}.pem").write_bytes(ca.pem)
    return folder


CAPTURES = {
    "eapol-eap-tls": lambda out, keys: capture(out, keys, radius=False),
    "radius-eap-tls": lambda out, keys: capture(out, keys, radius=True),
    "eapol-group": capture_group,
    "eapol-tls13": capture_tls13,
    "radius-freeradius": capture_freeradius,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--only", choices=sorted(CAPTURES), action="append")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    keys = build_pki(datetime.now(timezone.utc).replace(microsecond=0))
    for name in args.only or CAPTURES:
        CAPTURES[name](args.out, keys)
    write_trust(args.out, keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
