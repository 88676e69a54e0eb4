"""Each finding code, triggered by a capture of real OpenSSL handshakes that really shows it."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from samplegen import pki, scenarios
from samplegen.scenarios import STRONG_ONLY, KeyRing, Layout, build_cluster
from samplegen.wire import write_pcap
from test_devices import phone_handshake
from test_revocation import crl

from capana import analyze
from capana.certificates import parse_certificate
from capana.findings import certificate_findings
from capana.judging import certificate_report, judge
from capana.model import AlertSeen, CapfReason, CapfSession, ReasonCode, Registration, Report
from capana.revocation import parse_crl
from capana.truststore import TrustStore, with_crls
from capana.validation import validate_chain

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"


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


# --- failures that must never look fine, and advice that fits ---------------------------------


def test_tls_negotiation_failed_says_what_was_offered(tmp_path: Path, keys: KeyRing) -> None:
    """Old phone firmware offers AES-CBC only; CUCM's TLS Ciphers allow one GCM suite: OpenSSL
    on the server answers the ClientHello with handshake_failure."""
    old_firmware = {"client_ciphers": "AES256-SHA:AES128-SHA", "server_ciphers": STRONG_ONLY}
    scenario = scenarios.lsc_accepted(tmp_path, keys=keys, handshake=old_firmware)
    assert scenario.connections[0].alert == "handshake_failure"  # what OpenSSL sent
    report = run(scenario)
    (finding,) = [f for f in report.findings if f.code == "tls-negotiation-failed"]
    assert finding.severity == "error"
    assert finding.evidence["offered_cipher_suites"] == [
        "TLS_RSA_WITH_AES_256_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
    ]
    assert finding.evidence["server_version"] is None  # no ServerHello
    assert "TLS Ciphers" in finding.advice and "firmware" in finding.advice
    assert "no ServerHello" in finding.message
    assert report.has_finding("warning")


def test_certificate_expiring_within_the_window(tmp_path: Path, keys: KeyRing) -> None:
    """The LSCs are valid to 2025-01-01 minus a day: captured 20 days before, it is a warning
    with the default 30 days, and nothing with --expiry-days 10."""
    lsc_end = build_cluster(keys).lsc("CP-8861", "2C3124C9F800").cert.not_valid_after_utc
    scenario = scenarios.lsc_accepted(
        tmp_path, keys=keys, capture_time=lsc_end - timedelta(days=20)
    )
    report = run(scenario)
    (finding,) = [f for f in report.findings if f.code == "certificate-expiring"]
    assert finding.severity == "warning" and "19 days after the capture" in finding.message
    assert "Reissue the LSC" in finding.advice
    quiet = analyze(scenario.capture, trust={"callmanager": scenario.trust_dir}, expiry_days=10)
    assert "certificate-expiring" not in codes(quiet)


def test_site_reboot_roles(tmp_path: Path) -> None:
    """50 phones of scenarios.site_reboot: each special role gets its finding."""
    site = scenarios.site_reboot(tmp_path, phones=50)
    report = analyze(site.capture, trust={"callmanager": site.trust_dir})
    by_role = {
        role: next(d for d in report.devices if d.addresses[0].endswith(f".{10 + role}"))
        for role in (scenarios.SITE_CLEARTEXT, scenarios.SITE_FALLBACK)
    }
    cleartext = [f for f in by_role[scenarios.SITE_CLEARTEXT].findings]
    assert [(f.code, f.severity) for f in cleartext] == [("registered-non-secure", "info")]
    fallback = {f.code: f.severity for f in by_role[scenarios.SITE_FALLBACK].findings}
    assert fallback["registered-non-secure"] == "warning"  # it tried TLS, then fell back
    assert fallback["lsc-from-other-cluster"] == "error"
    hosts = [d for d in report.devices if d.services == ("https",)]
    assert len(hosts) == 1 and not any(f.severity != "info" for f in hosts[0].findings)


def test_eap_failure_after_the_certificate_is_a_rejection() -> None:
    """hostapd sends EAP-Failure (no TLS alert) after a MIC it does not trust: an error, as a
    fatal alert on 2443 would be; with the ISE store, the advice speaks ISE."""
    capture = PCAPS / "eapol-eap-tls.pcap"
    refused = next(r for r in analyze(capture).handshakes if r.handshake.outcome == "rejected")
    assert refused.handshake.alerts == ()
    finding = next(f for f in refused.findings if f.code == "server-rejected-certificate")
    assert finding.severity == "error" and "EAP-Failure" in finding.message
    report = analyze(capture, trust={"ise": PCAPS / "eap-ise-trust"})
    (missing,) = [f for f in report.findings if f.code == "mic-ca-missing"]
    assert "Trust for client authentication" in missing.advice
    assert "CallManager" not in missing.advice and "default-ca-list" not in missing.advice


def test_cucm_advice_names_the_store_and_the_services_to_restart(tmp_path: Path, keys: KeyRing):
    scenario = scenarios.lsc_accepted(tmp_path / "capture", keys=keys)
    store = tmp_path / "mic-only.pem"
    store.write_bytes(b"".join(i.pem for i in build_cluster(keys).callmanager_trust()[1:]))
    (finding,) = [f for f in run(scenario, {"callmanager": store}).findings
                  if f.code == "lsc-issuer-not-trusted"]  # fmt: skip
    assert "CallManager-trust" in finding.advice
    assert "Cisco CallManager and Cisco TFTP services" in finding.advice


def test_the_default_store_is_named_as_such(tmp_path: Path, keys: KeyRing) -> None:
    scenario = scenarios.mic_accepted(tmp_path / "capture", keys=keys)
    store = tmp_path / "capf-only.pem"
    store.write_bytes(build_cluster(keys).capf.pem)
    report = analyze(scenario.capture, trust=store)  # a store given without a name
    messages = " ".join(f.message for f in report.findings)
    assert "the default trust store" in messages and "no trust store" not in messages


def test_advice_never_speaks_of_lscs_for_other_certificates(shared_data: Path) -> None:
    """A PC's self-signed 1024-bit SHA-1 certificate: its notes ask to reissue *it*."""
    report = analyze(shared_data / "pcaps" / "arkime_ssl-selfsign.pcap")
    assert {"short-rsa-key", "weak-signature"} <= codes(report)
    for finding in report.findings:
        assert "LSC" not in finding.advice and "the phone" not in finding.message, finding


def test_a_refusal_is_never_silent() -> None:
    """The phone ends the handshake (it does not trust the server): handshake-rejected, an
    error, with trust-list advice; a server refusal no rule explains is one too."""
    lsc = build_cluster(KeyRing()).lsc("CP-8861", "2C3124C9F8E1")
    refused_by_phone = replace(
        phone_handshake("10.1.1.20:50000", lsc.der, outcome="rejected"),
        alerts=(AlertSeen("client", "fatal", "unknown_ca"),),
    )
    record = judge(refused_by_phone, {}, None)
    (finding,) = [f for f in record.findings if f.severity != "info"]
    assert finding.code == "handshake-rejected" and "trust list" in finding.advice
    encrypted = replace(
        phone_handshake("10.1.1.20:50001", lsc.der, outcome="rejected"),
        alerts=(AlertSeen("server", "encrypted", None),),
        client_cert_status="encrypted",
        client_chain=(),
    )
    codes_found = {f.code for f in judge(encrypted, {}, None).findings}
    assert "handshake-rejected" in codes_found


@pytest.mark.parametrize("sent_intermediate", [True, False])
def test_certificate_request_naming_only_the_root_requests_the_chain(
    sent_intermediate: bool,
) -> None:
    """A server that lists only its root CA (in another letter case) accepts the chain below it:
    no warning that the store lacks the phone's issuer. Naming a stranger still warns."""
    window = {"not_before": datetime(2020, 1, 1), "not_after": datetime(2030, 1, 1)}
    root = pki.issue("O=Example,CN=Example Root CA", ca=True, **window)
    issuing = pki.issue("O=Example,CN=Example Voice CA", issuer=root, ca=True, **window)
    lsc = pki.phone_lsc(issuing, org="C=US,O=Example,OU=Voice")
    stranger = pki.issue("CN=Stranger CA", ca=True, **window)
    anchors = (root,) if sent_intermediate else (root, issuing)
    store = TrustStore("callmanager", tuple(parse_certificate(c.der) for c in anchors), ("t",))
    chain = (lsc.der, issuing.der) if sent_intermediate else (lsc.der,)
    as_root = x509.Name.from_rfc4514_string("O=EXAMPLE,CN=example  root ca").public_bytes()
    for names, requested in (((as_root,), True), ((stranger.cert.subject.public_bytes(),), False)):
        handshake = replace(
            phone_handshake("10.1.1.20:51234", lsc.der),
            client_chain=chain,
            requested_ca_names=names,
        )
        record = judge(handshake, {"callmanager": store}, None)
        assert record.validation.status == "trusted"
        assert record.issuer_requested is requested
        assert ("issuer-not-requested" in {f.code for f in record.findings}) is not requested


def _lsc_world(**ca_options: object) -> tuple[pki.Issued, pki.Issued, TrustStore]:
    window = {"not_before": datetime(2020, 1, 1), "not_after": datetime(2030, 1, 1)}
    authority = pki.issue("C=MX,O=Cisco,OU=Voice,CN=CAPF-0992727f", ca=True, **window, **ca_options)
    lsc = pki.phone_lsc(authority)
    store = TrustStore("callmanager", (parse_certificate(authority.der),), ("capf.pem",))
    return authority, lsc, store


def test_revoked_lsc_is_an_error_with_advice_in_a_handshake_and_alone() -> None:
    authority, lsc, store = _lsc_world()
    at = datetime(2024, 3, 1, tzinfo=timezone.utc)
    store = with_crls(store, [parse_crl(crl(authority, [(lsc, None)], this_update=at))])
    record = judge(phone_handshake("10.1.1.20:51234", lsc.der), {"callmanager": store}, None)
    assert record.validation.status == "revoked"
    revoked = [f for f in record.findings if f.code == "certificate-revoked"]
    assert len(revoked) == 1 and revoked[0].severity == "error"
    assert "Install/Upgrade" in revoked[0].advice and "SEP2C3124C9F8E1" in revoked[0].message
    alone = certificate_findings(record.client_leaf, record.validation, store, at=at)
    assert [f.code for f in alone] == ["certificate-revoked"]


def test_a_stale_crl_is_not_a_broken_chain() -> None:
    """A CRL that cannot be used says so (crl-unusable), apart from faults of the path itself."""
    at = datetime(2024, 3, 1, tzinfo=timezone.utc)
    stale = {"this_update": at - timedelta(days=60), "next_update": at - timedelta(days=30)}
    for ca_options, expected in (
        ({}, ["crl-unusable"]),
        ({"key_usage": ("digital_signature", "crl_sign")}, ["chain-invalid", "crl-unusable"]),
    ):
        authority, lsc, store = _lsc_world(**ca_options)
        store = with_crls(store, [parse_crl(crl(authority, **stale))])
        leaf = certificate_report(lsc.der, (store,))
        validation = validate_chain([leaf.certificate], store, at)
        assert validation.status == "invalid"
        found = certificate_findings(leaf, validation, store, at=at)
        assert [f.code for f in found] == expected
        assert "nextUpdate" in found[-1].advice


def test_scan_with_a_crl_in_the_trust_folder(tmp_path: Path, keys: KeyRing) -> None:
    """A CAPF certificate carries no cRLSign: a CRL signed by the CAPF cannot be used, and the
    scan says so (crl-unusable) instead of trusting or revoking the LSC it lists."""
    cluster = build_cluster(keys)
    scenario = scenarios.lsc_accepted(tmp_path / "capture", cluster=cluster)
    folder = tmp_path / "CallManager-trust"
    shutil.copytree(scenario.trust_dir, folder)
    moment = scenario.capture_time
    listing = crl(cluster.capf, [(scenario.issued["lsc"], None)], this_update=moment - timedelta(1))
    (folder / "capf.crl").write_bytes(listing)
    (record,) = analyze(scenario.capture, trust={"callmanager": folder}).handshakes
    assert record.validation.status == "invalid"
    assert ReasonCode.CRL_ISSUER_NO_CRL_SIGN in record.validation.codes
    assert "crl-unusable" in {f.code for f in record.findings}


# --- inside the sessions: what the real peers in test_capf / test_registration cannot show -----


def test_a_capf_refusal_quotes_its_reason_info_and_fits_the_authentication() -> None:
    """capfd never sends reason_info; CUCM's CAPF does ("invalid LSC" after a regeneration)."""
    _root, manufacturing = pki.cisco_manufacturing_pki()
    lsc = pki.phone_lsc(pki.capf("CAPF-0992727f"))
    session = CapfSession(
        device="SEP2C3124C9F8E1",
        operation=None,
        auth="lsc",
        key=None,
        issued_certificate=None,
        presented_certificate=lsc.der,
        result="failed",
        reason=CapfReason(7, "invalid element", "invalid LSC"),
        messages=(),
    )
    handshake = replace(
        phone_handshake("10.20.1.21:50001", pki.phone_mic(manufacturing).der),
        server="10.1.1.5:3804",
        server_port=3804,
        service="capf",
        client_chain=(),
        client_cert_status="not_requested",
        capf=session,
    )
    record = judge(handshake, {}, None)
    (finding,) = [f for f in record.findings if f.code == "capf-request-refused"]
    assert finding.message.startswith("SEP2C3124C9F8E1: the CAPF refused its request")
    assert "reason 7 'invalid element': invalid LSC" in finding.message
    assert "its LSC issued by 'CAPF-0992727f'" in finding.message
    assert "CAPF-trust lacks 'CAPF-0992727f'" in finding.advice
    assert finding.evidence["reason_info"] == "invalid LSC"
    # The phone proved itself inside CAPF: "the server did not ask for a certificate" is moot.
    assert "certificate-not-requested" not in {f.code for f in record.findings}
    assert record.capf is not None and record.capf.presented.kind == "LSC"
    assert record.capf.presented_validation.status == "not_checked"  # no store given


@pytest.mark.parametrize(
    ("cleartext", "context"),
    [(False, "the server accepted it in the handshake"), (True, "in clear: no certificate")],
)
def test_a_rejected_registration_says_the_certificate_was_not_the_problem(
    cleartext: bool, context: str
) -> None:
    """No store given (a trusted one: test_registration's real SIP exchange)."""
    lsc = pki.phone_lsc(pki.capf("CAPF-0992727f"))
    handshake = replace(
        phone_handshake("10.20.1.21:50001", lsc.der),
        registration=Registration(
            "sccp", "rejected", "RegisterReject", None, "SEP2C3124C9F8E1", "Device not found", 1
        ),
    )
    if cleartext:
        handshake = replace(
            handshake,
            cleartext=True,
            client_chain=(),
            client_cert_status="not_requested",
            service="sccp",
            server_port=2000,
        )
    record = judge(handshake, {}, None)
    (finding,) = [f for f in record.findings if f.code == "registration-rejected"]
    assert finding.severity == "error"
    assert "SCCP registration rejected (RegisterReject: Device not found)" in finding.message
    assert context in finding.message
    accepted = replace(handshake, registration=replace(handshake.registration, result="unknown"))
    assert "registration-rejected" not in {f.code for f in judge(accepted, {}, None).findings}
