"""A device is "ok" only when every one of its connections really completed its handshake with a
certificate the store trusts. Held to independent oracles on every shipped and shared capture
and on a site reboot: tshark shows the phone's Certificate carrying exactly that chain, no fatal
alert, and the handshake finished (both ChangeCipherSpecs, a TLS 1.3 client Finished, or
EAP-Success / Access-Accept); ``openssl verify -attime`` accepts the chain against the store."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from samplegen import scenarios
from test_validation import openssl_accepts
from tshark_oracle import TSHARK, tshark_reading

from capana import analyze
from capana.model import Device, HandshakeReport, Report
from capana.views.pem import pem
from capana.views.summary import device_verdict

PROJECT = Path(__file__).resolve().parent.parent
PCAPS = PROJECT / "pcaps"
SHARED = PROJECT.parent / "shared" / "data"
FIELDS = ("tcp.srcport", "eth.src", "udp.dstport", "tls.record.content_type")
FIELDS += ("tls.handshake.type", "tls.alert_message.level", "tls.handshake.certificate", "eap.code")
FIELDS += ("radius.code",)

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def tshark(capture: Path, display_filter: str, keylog: Path | None) -> list[dict[str, list]]:
    command = tshark_reading(capture)
    if keylog is not None:
        command += ["-o", f"tls.keylog_file:{keylog}"]
    command += ["-Y", display_filter, "-T", "fields", "-E", "occurrence=a"]
    for field in FIELDS:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    return [
        {f: (v.split(",") if v else []) for f, v in zip(FIELDS, line.split("\t"), strict=True)}
        for line in output.stdout.splitlines()
    ]


def from_client(record: HandshakeReport, row: dict[str, list]) -> bool:
    handshake = record.handshake
    if handshake.transport == "tcp":
        return row["tcp.srcport"][:1] == [handshake.client.rsplit(":", 1)[1]]
    if handshake.transport == "eapol":
        return row["eth.src"][:1] == [handshake.client]
    return row["udp.dstport"][:1] in (["1812"], ["1645"])


def check_ok_device(device: Device, capture: Path, store: bytes, keylog: Path | None, tmp: Path):
    for record in device.handshakes:
        handshake = record.handshake
        rows = tshark(capture, handshake.wireshark_filter or "frame", keylog)
        client = [row for row in rows if from_client(record, row)]
        server = [row for row in rows if not from_client(record, row)]
        sent = [
            hashlib.sha256(bytes.fromhex(der.replace(":", ""))).hexdigest()
            for row in client
            if "11" in row["tls.handshake.type"]
            for der in row["tls.handshake.certificate"]
        ]
        assert sent and sent == [c.sha256 for c in record.client_chain], (device.name, sent)
        assert not any("2" in row["tls.alert_message.level"] for row in rows), device.name
        if handshake.transport != "tcp":
            success = [r for r in rows if "3" in r["eap.code"] or "2" in r["radius.code"]]
            assert success, device.name  # EAP-Success, or RADIUS Access-Accept
        elif handshake.tls_version == "TLS 1.3":
            assert any("20" in row["tls.handshake.type"] for row in client), device.name
        else:
            assert all(
                any("20" in row["tls.record.content_type"] for row in side)
                for side in (client, server)
            ), device.name
        chain = "".join(pem(cert.certificate.der) for cert in record.client_chain).encode()
        assert handshake.start is not None
        assert openssl_accepts(store, chain, handshake.start, tmp), device.name


def store_pem(folder_or_file: Path) -> bytes:
    files = sorted(folder_or_file.glob("*.pem")) if folder_or_file.is_dir() else [folder_or_file]
    return b"".join(path.read_bytes() for path in files)


SHIPPED = [
    ("phone-reboot.pcapng", "callmanager", "phone-reboot-trust", None),
    ("reordered-cert.pcap", "callmanager", "phone-reboot-trust", None),
    ("ipv6-vlan.pcap", "callmanager", "phone-reboot-trust", None),
    ("tls13-client-cert.pcap", "callmanager", "phone-reboot-trust", "tls13-client-cert.keys"),
    ("eapol-eap-tls.pcap", "ise", "eap-ise-trust", None),
    ("radius-eap-tls.pcap", "ise", "eap-ise-trust", None),
]


def ok_devices(report: Report) -> list[Device]:
    return [device for device in report.devices if device_verdict(device) == "ok"]


@pytest.mark.parametrize(("name", "store", "trust", "keys"), SHIPPED, ids=[s[0] for s in SHIPPED])
def test_ok_devices_of_the_shipped_captures(name, store, trust, keys, tmp_path: Path) -> None:
    capture, keylog = PCAPS / name, PCAPS / keys if keys else None
    report = analyze(capture, trust={store: PCAPS / trust}, keylog=keylog)
    devices = ok_devices(report)
    assert devices, name  # every shipped capture has a phone that did everything right
    for device in devices:
        check_ok_device(device, capture, store_pem(PCAPS / trust), keylog, tmp_path)


def test_ok_devices_of_the_real_captures(shared_data: Path, tmp_path: Path) -> None:
    """Against Cisco's public CAs: the real captures hold no Cisco phone, so nothing there may
    come out ok; the failure and cleartext captures least of all."""
    bundle = shared_data / "certs" / "cisco_public_ca_bundle.pem"
    keylogs = {
        "mercury_test_decrypt_tls13.pcap": "mercury_test_decrypt_tls13.sslkeylogfile.log",
        "scapy_tls_nss_example.pcap": "scapy_tls_nss_example.keys.txt",
    }
    checked = 0
    for capture in sorted((shared_data / "pcaps").glob("*.pcap*")):
        keylog = shared_data / "pcaps" / keylogs[capture.name] if capture.name in keylogs else None
        report = analyze(capture, trust=bundle, keylog=keylog)
        for device in ok_devices(report):
            check_ok_device(device, capture, store_pem(bundle), keylog, tmp_path)
        checked += len(report.devices)
    assert checked > 5
    for name in ("zeek_tls_tls-1.2-handshake-failure.pcap", "ndpi_skinny_sccp_plaintext.pcap"):
        report = analyze(shared_data / "pcaps" / name, trust=bundle)
        assert report.devices and not ok_devices(report), name


def test_ok_devices_of_a_site_reboot(tmp_path: Path) -> None:
    site = scenarios.site_reboot(tmp_path, phones=60)
    report = analyze(site.capture, trust={"callmanager": site.trust_dir})
    devices = ok_devices(report)
    accepted = {c.device for c in site.connections if c.outcome == "established" and c.device}
    refused = {c.device for c in site.connections if c.outcome == "rejected" and c.device}
    soon = site.capture_time + timedelta(days=30)
    expiring = {name for name, item in site.issued.items() if item.cert.not_valid_after_utc < soon}
    assert expiring and {d.name for d in devices} == accepted - refused - expiring
    for device in devices[::7]:  # a sample: tshark runs once per connection
        check_ok_device(device, site.capture, store_pem(site.trust_dir), None, tmp_path)
