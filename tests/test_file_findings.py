"""Each finding on a phone's files, end to end through ``capana.analyze`` on a capture of real
bytes: trust lists and configurations built by certutils (separate processes), served by the
standard library's HTTP server, CallManager's TLS by OpenSSL. No trust store is given: the
trust lists in the capture are what the phone is judged by. Each case has its twin that must
stay quiet, so no test passes by a rule that always (or never) fires.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from certutils_oracle import certutils_python, printed, run, verdict
from file_captures import MAC, NOW, WINDOW, Cluster, boot_capture, cluster, config
from samplegen import pki

import capana
from capana.model import FileReport, Report

ITL = f"ITLSEP{MAC}.tlv"
SGN = f"SEP{MAC}.cnf.xml.sgn"
ENC = f"SEP{MAC}.cnf.xml.enc.sgn"


@pytest.fixture
def boot(tmp_path: Path) -> Cluster:
    certutils_python()  # skips, saying why, when the oracle cannot run
    return cluster(tmp_path)


def analyzed(boot: Cluster, names: list[str], **options: str | None) -> Report:
    return capana.analyze(boot_capture(boot.folder / "boot.pcap", boot, names, **options))


def file_named(report: Report, name: str) -> FileReport:
    return next(f for f in report.files if f.name == name)


def codes(report: Report) -> dict[str, list[str]]:
    return {f.name: [finding.code for finding in f.findings] for f in report.files}


def test_callmanager_certificate_in_the_itl_is_quiet(boot: Cluster) -> None:
    boot.itl()
    boot.sgn(config())
    report = analyzed(boot, [ITL, SGN])
    assert codes(report) == {ITL: [], SGN: []}
    itl, sgn = report.files
    assert (itl.signature and itl.signature.status, sgn.signature and sgn.signature.status) == (
        "valid",
        "valid",
    )
    assert [r.role for r in itl.records] == ["SAST", "CCM+TFTP", "CAPF", "TVS"]
    assert sgn.signer is not None and sgn.signer.sha256 == itl.records[1].certificate.sha256  # type: ignore[union-attr]
    (device,) = report.devices
    assert (device.name, device.security_mode, device.file_names) == (
        f"SEP{MAC}",
        "encrypted",
        (ITL, SGN),
    )
    assert device.kinds == ("LSC",) and len(device.handshakes) == 1


def test_regenerated_callmanager_certificate(boot: Cluster) -> None:
    boot.itl()
    boot.add("ccm-new", pki.server_cert(None, "cucm-pub.example.com", **WINDOW))
    report = analyzed(boot, [ITL], callmanager="ccm-new")
    (found,) = file_named(report, ITL).findings
    assert found.code == "server-certificate-not-in-trust-list" and found.severity == "error"
    assert "regenerated" in found.message and "utils itl reset localkey" in found.advice
    assert found.evidence["certificate"] == report.handshakes[0].server_chain[0].sha256
    assert report.devices[0].worst == found


def test_lsc_from_a_regenerated_or_foreign_capf(boot: Cluster) -> None:
    boot.itl()
    same_name = boot.add("capf-new", pki.capf(**WINDOW))  # same CN, new key
    boot.add("lsc-old", pki.phone_lsc(same_name, mac=MAC, **WINDOW))
    foreign = boot.add("capf-other", pki.capf("CAPF-5b1e77a3", **WINDOW))
    boot.add("lsc-foreign", pki.phone_lsc(foreign, mac=MAC, **WINDOW))

    regenerated = file_named(analyzed(boot, [ITL], phone="lsc-old"), ITL).findings
    assert [f.code for f in regenerated] == ["lsc-issuer-not-cluster-capf"]
    assert "regenerated" in regenerated[0].message
    other = file_named(analyzed(boot, [ITL], phone="lsc-foreign"), ITL).findings
    assert [f.code for f in other] == ["lsc-issuer-not-cluster-capf"]
    assert "another cluster" in other[0].message
    assert file_named(analyzed(boot, [ITL], phone="lsc"), ITL).findings == ()


def test_trust_list_whose_signature_fails(boot: Cluster) -> None:
    data = bytearray(boot.itl())
    at = data.index(b"cucm-pub.example.com-TVS")  # a record's subject, inside the signed bytes
    data[at] ^= 0x20
    tampered = boot.folder / "tampered.tlv"
    tampered.write_bytes(data)
    assert verdict(run("tlvfile", "-p", str(tampered), cwd=boot.folder)) == "Invalid signature"
    boot.serve(ITL, bytes(data))
    boot.sgn(config())
    report = analyzed(boot, [ITL, SGN])
    itl = file_named(report, ITL)
    assert itl.signature is not None and itl.signature.status == "invalid"
    assert [f.code for f in itl.findings] == ["trust-list-signature-invalid"]
    # A list that fails its signature judges nothing: the configuration's signer is unknown.
    sgn = file_named(report, SGN)
    assert sgn.signature is not None and sgn.signature.reason == "signer-not-given"
    assert sgn.findings == ()


def test_configuration_whose_signature_fails(boot: Cluster) -> None:
    boot.itl()
    data = bytearray(boot.sgn(config()))
    at = data.index(b"<deviceSecurityMode>3")
    data[at + len("<deviceSecurityMode>")] = ord("1")  # the content changed after signing
    tampered = boot.folder / "tampered.cnf.xml.sgn"
    tampered.write_bytes(data)
    output = run("sgnfile", "-p", str(tampered), "-t", boot.pem("ccm"), cwd=boot.folder)
    assert verdict(output) == "Invalid signature"
    boot.serve(SGN, bytes(data))
    report = analyzed(boot, [ITL, SGN])
    sgn = file_named(report, SGN)
    assert sgn.signature is not None and sgn.signature.status == "invalid"
    assert [f.code for f in sgn.findings] == ["config-signature-invalid"]


@pytest.mark.parametrize(("signer", "role"), [("tvs", "TVS"), ("stranger", None)])
def test_configuration_signed_by_no_tftp_record(
    boot: Cluster, signer: str, role: str | None
) -> None:
    boot.add("stranger", pki.server_cert(None, "tftp.other.example", **WINDOW))
    boot.itl()
    boot.sgn(config(), signer=signer)
    sgn = file_named(analyzed(boot, [ITL, SGN]), SGN)
    (found,) = sgn.findings
    assert (found.code, found.evidence["role"]) == ("config-signer-not-in-trust-list", role)
    # Only a TFTP record may vouch for a configuration: a TVS one is not tried.
    assert sgn.signature is not None
    assert (sgn.signature.status, sgn.signature.reason) == ("unknown", "signer-not-found")


def test_trust_list_over_64_kb(boot: Cluster) -> None:
    key = pki.new_key()
    tvs = [
        boot.add(
            f"tvs{n}", pki.server_cert(None, f"cucm-sub{n}.example.com-TVS", key=key, **WINDOW)
        )
        for n in range(48)
    ]
    records = (("-C", "ccm"), ("-A", "capf"), *(("-T", f"tvs{n}") for n in range(len(tvs))))
    data = boot.itl(records=records)
    assert len(data) > 64 * 1024
    blocks = printed(run("tlvfile", "-p", str(boot.folder / ITL), cwd=boot.folder))
    itl = file_named(analyzed(boot, [ITL], callmanager=None), ITL)
    assert len(itl.records) == len(blocks) - 1 == 51  # the oracle's header block, then records
    assert [f.code for f in itl.findings] == ["trust-list-too-large"]
    assert itl.findings[0].evidence["size"] == itl.transfer.size == len(data)


def test_trust_list_certificate_expired_when_fetched(boot: Cluster) -> None:
    expired = {"not_before": NOW - timedelta(days=400), "not_after": NOW - timedelta(days=30)}
    boot.add("tvs", pki.server_cert(None, "cucm-pub.example.com-TVS", **expired))
    boot.itl()
    itl = file_named(analyzed(boot, [ITL]), ITL)
    (found,) = itl.findings
    assert (found.code, found.severity) == ("trust-list-certificate-expired", "warning")
    assert found.evidence["certificates"] == [hashlib.sha256(boot.certs["tvs"].der).hexdigest()]


@pytest.mark.parametrize("mode", [2, 3])
def test_secure_profile_without_tls(boot: Cluster, mode: int) -> None:
    boot.itl()
    boot.sgn(config(mode))
    report = analyzed(boot, [ITL, SGN], callmanager=None)
    (found,) = file_named(report, SGN).findings
    assert (found.code, found.evidence["device_security_mode"]) == ("secure-profile-not-used", mode)


@pytest.mark.parametrize(("mode", "tls"), [(1, False), (3, True)])
def test_secure_profile_used_or_not_asked(boot: Cluster, mode: int, tls: bool) -> None:
    boot.itl()
    boot.sgn(config(mode))
    report = analyzed(boot, [ITL, SGN], callmanager="ccm" if tls else None)
    assert file_named(report, SGN).findings == ()


def test_configuration_encrypted_to_another_certificate(boot: Cluster) -> None:
    boot.add("lsc-new", pki.phone_lsc(boot.certs["capf"], mac=MAC, **WINDOW))
    boot.itl()
    boot.enc(config(), phone="lsc")  # CUCM encrypted to the LSC the phone had then
    stale = analyzed(boot, [ITL, SGN, ENC], phone="lsc-new")
    enc = file_named(stale, ENC)
    assert enc.kind == "config-encrypted" and enc.config is not None and enc.config.encrypted
    assert [f.code for f in enc.findings] == ["encrypted-config-for-other-certificate"]
    assert enc.signature is not None and enc.signature.status == "valid"
    current = file_named(analyzed(boot, [ITL, SGN, ENC], phone="lsc"), ENC)
    assert current.findings == ()


def test_files_of_another_phone_judge_nothing_here(boot: Cluster) -> None:
    """A trust list fetched for another device does not judge this phone's handshake."""
    boot.itl(name="ITLSEP00AABBCCDDEE.tlv")
    boot.add("ccm-new", pki.server_cert(None, "cucm-pub.example.com", **WINDOW))
    report = analyzed(boot, ["ITLSEP00AABBCCDDEE.tlv"], callmanager="ccm-new")
    assert codes(report) == {"ITLSEP00AABBCCDDEE.tlv": []}
    assert {d.name for d in report.devices} == {"SEP00AABBCCDDEE", f"SEP{MAC}"}
