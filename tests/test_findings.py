"""Each finding code, triggered by a capture of real OpenSSL handshakes that really shows it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from samplegen import pki, scenarios
from samplegen.scenarios import KeyRing, Layout, build_cluster
from samplegen.wire import write_pcap
from test_devices import phone_handshake

from capana import analyze
from capana.certificates import parse_certificate
from capana.judging import judge
from capana.model import Report
from capana.truststore import TrustStore


@pytest.fixture(scope="module")
def keys() -> KeyRing:
    return KeyRing()


def codes(report: Report) -> set[str]:
    return {finding.code for finding in report.findings}


def serious(report: Report) -> set[str]:
    return {f.code for f in report.findings if f.severity in ("warning", "error")}


def run(scenario: scenarios.Scenario, trust: object = "default") -> Report:
    store = {"callmanager": scenario.trust_dir} if trust == "default" else trust
    return analyze(scenario.capture, trust=store)


def test_clean_lsc_and_mic_captures_have_no_warnings_or_errors(tmp_path: Path, keys: KeyRing):
    for make in (scenarios.lsc_accepted, scenarios.mic_accepted):
        report = run(make(tmp_path / make.__name__, keys=keys))
        assert report.handshakes and serious(report) == set(), make.__name__


def test_moved_cluster(tmp_path: Path, keys: KeyRing) -> None:
    report = run(scenarios.moved_cluster(tmp_path, keys=keys))
    assert {"lsc-from-other-cluster", "issuer-not-requested"} <= codes(report)
    finding = next(f for f in report.findings if f.code == "lsc-from-other-cluster")
    assert "non-secure profile" in finding.advice and "CAPF-5b1e77a3" in finding.message


def test_moved_cluster_without_a_store_still_says_what_the_capture_shows(
    tmp_path: Path, keys: KeyRing
) -> None:
    report = run(scenarios.moved_cluster(tmp_path, keys=keys), trust=None)
    assert {"server-rejected-certificate", "issuer-not-requested"} <= codes(report)


def test_capf_regenerated(tmp_path: Path, keys: KeyRing) -> None:
    report = run(scenarios.capf_regenerated(tmp_path, keys=keys))
    assert "capf-regenerated" in codes(report)
    finding = next(f for f in report.findings if f.code == "capf-regenerated")
    assert "old" in finding.advice and "CallManager-trust" in finding.advice


def test_lsc_issuer_not_trusted_when_the_server_accepted_it(tmp_path: Path, keys: KeyRing):
    """The store given to capana lacks the CAPF the server trusts: both findings say so."""
    scenario = scenarios.lsc_accepted(tmp_path / "capture", keys=keys)
    store = tmp_path / "mic-only.pem"
    store.write_bytes(b"".join(i.pem for i in build_cluster(keys).callmanager_trust()[1:]))
    report = run(scenario, trust={"callmanager": store})
    assert {"lsc-issuer-not-trusted", "verdict-disagrees-with-server"} <= codes(report)


def test_mic_ca_missing(tmp_path: Path, keys: KeyRing) -> None:
    scenario = scenarios.mic_accepted(tmp_path / "capture", keys=keys)
    store = tmp_path / "capf-only.pem"
    store.write_bytes(build_cluster(keys).capf.pem)
    report = run(scenario, trust={"callmanager": store})
    assert "mic-ca-missing" in codes(report)
    finding = next(f for f in report.findings if f.code == "mic-ca-missing")
    assert "Cisco Manufacturing CA SHA2" in finding.advice and "LSC" in finding.advice


def test_forged_manufacturing_ca_is_never_advised_into_the_store(
    tmp_path: Path, keys: KeyRing
) -> None:
    """A MIC from a look-alike 'Cisco Manufacturing CA SHA2' (other key) against the real store."""
    forger = build_cluster(KeyRing())
    scenario = scenarios.mic_accepted(tmp_path / "capture", cluster=forger)
    genuine = tmp_path / "genuine.pem"
    genuine.write_bytes(b"".join(i.pem for i in build_cluster(keys).callmanager_trust()))
    report = run(scenario, trust={"callmanager": genuine})
    assert report.handshakes[0].validation.status == "untrusted"
    assert "forged-manufacturing-ca" in codes(report)
    finding = next(f for f in report.findings if f.code == "forged-manufacturing-ca")
    assert "do not add" in finding.advice


def test_expired_sha1_mic(tmp_path: Path, keys: KeyRing) -> None:
    report = run(scenarios.mic_expired(tmp_path, keys=keys))
    assert {"certificate-expired", "weak-signature"} <= codes(report)
    finding = next(f for f in report.findings if f.code == "certificate-expired")
    assert "cannot be renewed" in finding.advice


def test_not_yet_valid_at_capture_time(tmp_path: Path, keys: KeyRing) -> None:
    """The same valid LSC, captured before its notBefore: the capture's clock decides."""
    early = datetime(2019, 6, 1, tzinfo=timezone.utc)
    report = run(scenarios.lsc_accepted(tmp_path, keys=keys, capture_time=early))
    assert "certificate-not-yet-valid" in codes(report)


def test_chain_invalid_when_the_capf_is_not_a_ca(tmp_path: Path, keys: KeyRing) -> None:
    """A CAPF without CA:TRUE or keyCertSign (pre-14SU2 style) signed the LSC: rules broken."""
    cluster = build_cluster(keys)
    old_style = pki.issue(
        cluster.capf.cert.subject,
        key=keys.get("capf:not-a-ca"),
        not_before=cluster.capf.cert.not_valid_before_utc,
        not_after=cluster.capf.cert.not_valid_after_utc,
        ca=False,
        key_usage=("digital_signature", "key_encipherment"),
    )
    scenario = scenarios.lsc_accepted(tmp_path, cluster=replace(cluster, capf=old_style))
    report = run(scenario)
    assert report.handshakes[0].validation.status == "invalid"
    assert "chain-invalid" in codes(report)
    finding = next(f for f in report.findings if f.code == "chain-invalid")
    assert "keyCertSign" in finding.advice


def test_not_requested_and_no_client_certificate(tmp_path: Path, keys: KeyRing) -> None:
    assert "certificate-not-requested" in codes(
        run(scenarios.not_requested(tmp_path / "a", keys=keys))
    )
    assert "no-client-certificate" in codes(
        run(scenarios.no_client_cert(tmp_path / "b", keys=keys))
    )


def test_tls13_certificate_encrypted(tmp_path: Path, keys: KeyRing) -> None:
    report = run(scenarios.tls13_client_cert(tmp_path, keys=keys))
    assert report.handshakes[0].handshake.client_cert_status == "encrypted"
    assert "tls13-certificate-encrypted" in codes(report)


def test_mic_without_eku_or_san_is_informational(tmp_path: Path, keys: KeyRing) -> None:
    report = run(scenarios.mic_accepted(tmp_path, keys=keys))
    assert "mic-without-eku-or-san" in codes(report)


def test_capture_gap(tmp_path: Path, keys: KeyRing) -> None:
    report = run(scenarios.lsc_accepted(tmp_path, keys=keys, layout=Layout(drop=True)))
    assert report.handshakes[0].handshake.gaps > 0
    assert "capture-gap" in codes(report)


def test_capture_snaplen(tmp_path: Path, keys: KeyRing) -> None:
    """Packets cut, the phone's certificate whole: a warning about the capture only."""
    report = run(scenarios.lsc_accepted(tmp_path, keys=keys, snaplen=1200))
    assert "capture-snaplen" in codes(report)
    assert report.handshakes[0].handshake.client_cert_status == "present"


def test_capture_truncated_says_how_to_capture_in_full(tmp_path: Path, keys: KeyRing) -> None:
    """CUCM's default capture (128 bytes a packet): the handshake is there, the certificate
    is not; the error names the commands that capture whole packets."""
    report = run(scenarios.lsc_accepted(tmp_path, keys=keys, snaplen=128))
    (record,) = report.handshakes
    assert record.handshake.client_cert_status == "truncated"
    (finding,) = [f for f in record.findings if f.code == "capture-truncated"]
    assert finding.severity == "error"
    for how in ("utils network capture eth0 file NAME count 100000 size all", "-s 0", "SPAN"):
        assert how in finding.advice
    assert "Span to PC Port" in finding.advice
    assert "capture-snaplen" not in codes(report)


def test_short_rsa_key_on_a_real_capture(shared_data: Path) -> None:
    report = analyze(shared_data / "pcaps" / "arkime_ssl-selfsign.pcap")
    assert "short-rsa-key" in codes(report)


def test_handshake_incomplete(tmp_path: Path, keys: KeyRing) -> None:
    """The capture stops right after the phone's certificate, before the server's answer."""
    scenario = scenarios.lsc_accepted(tmp_path, keys=keys)
    # Handshake, ClientHello, ack, server flight (2 segments), ack, the phone's flight.
    cut = write_pcap(tmp_path / "cut.pcap", scenario.packets[:9])
    report = analyze(cut, trust={"callmanager": scenario.trust_dir})
    assert report.handshakes[0].handshake.outcome == "incomplete"
    assert report.handshakes[0].handshake.client_cert_status == "present"
    assert "handshake-incomplete" in codes(report)


def test_forged_manufacturing_ca_in_other_letter_case_is_still_forged(tmp_path: Path) -> None:
    """Names compare without case (as classify and OpenSSL do): 'CISCO MANUFACTURING CA SHA2'
    signed by another key is the forged-MIC case, never 'restore it to the store'."""
    window = {"not_before": datetime(2020, 1, 1), "not_after": datetime(2030, 1, 1)}
    genuine = pki.issue("O=Cisco,CN=Cisco Manufacturing CA SHA2", ca=True, **window)
    forger = pki.issue("O=Cisco,CN=CISCO MANUFACTURING CA SHA2", ca=True, **window)
    mic = pki.issue("CN=SEP001122334455", issuer=forger, **window)
    store = TrustStore("callmanager", (parse_certificate(genuine.der),), ("genuine.pem",))
    handshake = phone_handshake("10.1.1.20:51234", mic.der, outcome="incomplete")
    record = judge(handshake, {"callmanager": store}, None)
    assert record.client_leaf.kind == "MIC"
    assert record.validation.status == "untrusted"
    found = {f.code: f for f in record.findings}
    assert "forged-manufacturing-ca" in found and "mic-ca-missing" not in found
