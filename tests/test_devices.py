"""The per-device view of a site reboot: one entry per phone, every connection under it."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from samplegen import scenarios
from samplegen.scenarios import KeyRing

from capana import analyze
from capana.devices import group_devices
from capana.judging import judge
from capana.model import Handshake, Outcome


def test_thirty_phones_rebooting_group_by_device(tmp_path: Path) -> None:
    scenario = scenarios.phone_reboot(tmp_path, keys=KeyRing(), phones=30)
    report = analyze(scenario.capture, trust={"callmanager": scenario.trust_dir})

    expected = Counter(c.device for c in scenario.connections if c.device)
    assert Counter({d.name: len(d.handshakes) for d in report.devices}) == expected
    for device in report.devices:
        facts = [c for c in scenario.connections if c.device == device.name]
        assert {r.handshake.client for r in device.handshakes} == {c.client for c in facts}
        assert set(device.kinds) == {c.client_cert_kind for c in facts}
        assert device.model and device.name.startswith("SEP")
        assert not device.switched


def test_the_moved_phone_is_the_only_one_with_an_error(tmp_path: Path) -> None:
    scenario = scenarios.phone_reboot(tmp_path, keys=KeyRing())
    report = analyze(scenario.capture, trust={"callmanager": scenario.trust_dir})
    failing = {d.name for d in report.devices if d.worst and d.worst.severity == "error"}
    rejected = {c.device for c in scenario.connections if c.outcome == "rejected"}
    assert failing == rejected and len(failing) == 1
    moved = next(d for d in report.devices if d.name in failing)
    assert len(moved.handshakes) == 2  # it retried once
    assert moved.worst.code == "lsc-from-other-cluster"


def test_a_phone_that_switched_from_lsc_to_mic() -> None:
    """The quick test from DOMAIN.md: delete the LSC and the phone uses its MIC next time."""
    cluster = scenarios.build_cluster(KeyRing())
    lsc, mic = cluster.lsc("CP-8861", "2C3124C9F8E1"), cluster.mic("CP-8861", "2C3124C9F8E1")
    records = [
        judge(phone_handshake("10.1.1.20:50000", lsc.der), {}, None),
        judge(phone_handshake("10.1.1.20:50001", mic.der), {}, None),
    ]
    (device,) = group_devices(records)
    assert device.name == "SEP2C3124C9F8E1" and device.model == "CP-8861"
    assert device.kinds == ("LSC", "MIC") and device.switched


def phone_handshake(client: str, leaf: bytes, outcome: Outcome = "established") -> Handshake:
    """A TLS 1.2 handshake on SCCP-TLS in which the phone at ``client`` presented ``leaf``."""
    return Handshake(
        capture="reboot.pcap",
        transport="tcp",
        client=client,
        server="10.1.1.5:2443",
        server_port=2443,
        service="sccp-tls",
        start=datetime(2024, 3, 1, tzinfo=timezone.utc),
        tls_version="TLS 1.2",
        cipher_suite=None,
        sni=None,
        client_cert_status="present",
        client_chain=(leaf,),
        server_chain=(),
        requested_ca_names=None,
        alerts=(),
        outcome=outcome,
        gaps=0,
    )
