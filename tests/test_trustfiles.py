"""capana.trustfiles against usecallmanager.nz's certutils: files built by tlvfile, sgnfile and
enccnf (separate processes), held field by field to what ``-p`` prints; the real ITLFile.tlv
from the shared data; EC signatures made by the openssl CLI; damaged files.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from certutils_oracle import printed, run, verdict
from cryptography.hazmat.primitives.asymmetric import ec
from samplegen import pki

from capana.certificates import Certificate
from capana.trustfiles import (
    MAX_PARSED_BYTES,
    MAX_TRUST_LIST_SIZE,
    PhoneFile,
    cert_hash_matches,
    check_signature,
    parse_file,
)

NOW = datetime.now(timezone.utc).replace(microsecond=0)
WINDOW = {"not_before": NOW - timedelta(days=30), "not_after": NOW + timedelta(days=3650)}
MAC = "2C3124C9F8E1"
# As CUCM writes it: undeclared xsi/axl prefixes (the oracle's lxml refuses those, so enccnf
# gets the prefix-free form below).
CUCM_CONFIG = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<device xsi:type="axl:XIPPhone" ctiid="94" uuid="{7fe8bd6e}">\n'
    "<fullConfig>true</fullConfig>\n<deviceProtocol>SIP</deviceProtocol>\n"
    "<TVS>\n<members>\n"
    '<member priority="0">\n<port>2445</port>\n<address>cucm-pub.example.com</address>\n</member>\n'
    '<member priority="1">\n<port>2445</port>\n<address>cucm-sub.example.com</address>\n</member>\n'
    "</members>\n</TVS>\n"
    "<deviceSecurityMode>3</deviceSecurityMode>\n"
    "<transportLayerProtocol>3</transportLayerProtocol>\n"
    "<capfAuthMode>0</capfAuthMode>\n"
    "<capfList>\n<capf>\n<phonePort>3804</phonePort>\n"
    "<processNodeName>cucm-pub.example.com</processNodeName>\n</capf>\n</capfList>\n"
    "<certHash></certHash>\n<encrConfig>false</encrConfig>\n</device>\n"
)
PLAIN_CONFIG = CUCM_CONFIG.replace(' xsi:type="axl:XIPPhone"', "")


@dataclass(frozen=True)
class Cluster:
    """A cluster's certificates, each as cert.pem (with its key: the oracle signs with it)."""

    folder: Path
    issued: dict[str, pki.Issued]

    def pem(self, name: str, key: bool = False) -> str:
        suffix = ".pem" if key else ".crt"
        return str(self.folder / f"{name}{suffix}")

    def der(self, name: str) -> bytes:
        return self.issued[name].der


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    folder = tmp_path_factory.mktemp("cluster")
    capf = pki.capf(**WINDOW)
    issued = {
        "sast": pki.issue(pki.dn("O=Example,OU=VTG,CN=ITLRECOVERY_cucm-pub"), ca=True, **WINDOW),
        "ccm": pki.server_cert(None, "cucm-pub.example.com", **WINDOW),
        "tvs": pki.server_cert(None, "cucm-pub.example.com-TVS", **WINDOW),
        "capf": capf,
        "lsc": pki.phone_lsc(capf, mac=MAC, **WINDOW),
        "ec_sast": pki.issue(
            pki.dn("O=Example,CN=ITLRECOVERY_ec"), key=pki.new_key("ec256"), ca=True, **WINDOW
        ),
    }
    for name, item in issued.items():
        (folder / f"{name}.crt").write_bytes(item.pem)
        (folder / f"{name}.pem").write_bytes(item.pem + item.key_pem)
    return Cluster(folder, issued)


def build_itl(cluster: Cluster, name: str, *options: str) -> tuple[bytes, str]:
    """An ITL/CTL built by tlvfile; its bytes and what ``tlvfile -p`` prints of it."""
    out = cluster.folder / name
    records = ["-s", cluster.pem("sast", key=True), "-C", cluster.pem("ccm")]
    records += ["-A", cluster.pem("capf"), "-T", cluster.pem("tvs")]
    run("tlvfile", "-b", str(out), *records, *options, cwd=cluster.folder)
    return out.read_bytes(), run("tlvfile", "-p", str(out), cwd=cluster.folder)


def assert_header_matches(file: PhoneFile, header: dict[str, str]) -> None:
    """The header facts equal what the oracle printed, label by label."""
    assert file.header is not None
    assert file.header.version == header["Version"]
    assert f"{file.header.header_length} bytes" == header["Header Length"]
    assert file.header.signer_version == header.get("Signer Version")
    assert file.header.signer_name == header["Signer Name"]
    assert file.header.signer_issuer == header["Issuer Name"]
    assert file.header.signer_serial == header["Serial Number"]
    assert file.header.digest_algorithm.replace("-", "") == header["Digest Algorithm"]
    assert f"{len(file.signature)} bytes" == header["Signature"]
    assert file.header.file_name == header["Filename"]
    assert file.header.timestamp is not None
    assert file.header.timestamp.strftime("%Y-%m-%d %H:%M:%S") == header["Timestamp"]


def assert_records_match(file: PhoneFile, blocks: list[dict[str, str]]) -> None:
    assert len(file.records) == len(blocks)
    for record, block in zip(file.records, blocks, strict=True):
        assert record.subject == block["Subject Name"]
        assert record.issuer == block["Issuer Name"]
        assert record.serial == block["Serial Numer"]  # sic: tlvfile's label
        assert record.role == block["Role"]
        assert isinstance(record.certificate, Certificate)
        assert f"{len(record.certificate.der)} bytes" == block["Certificate"]
        assert hashlib.sha1(record.certificate.der).hexdigest() == block["Certificate Hash"]


@pytest.mark.parametrize(
    ("name", "options", "kind"),
    [
        (f"ITLSEP{MAC}.tlv", (), "itl"),
        ("ITLFile.tlv", ("-d", "sha512", "-v", "1.1"), "itl"),
        (f"CTLSEP{MAC}.tlv", ("-d", "sha512"), "ctl"),
    ],
)
def test_trust_list_matches_tlvfile(
    cluster: Cluster, name: str, options: tuple[str, ...], kind: str
) -> None:
    data, output = build_itl(cluster, name, *options)
    file = parse_file(data, name=name)

    header, *records = printed(output)
    assert file.kind == kind
    assert file.problems == ()
    assert_header_matches(file, header)
    assert_records_match(file, records)
    assert [r.role for r in file.records] == ["SAST", "CCM+TFTP", "CAPF", "TVS"]
    assert verdict(output) == "Valid signature"
    assert file.signature_check is not None
    assert (file.signature_check.status, file.signature_check.reason) == ("valid", "verified")
    assert file.signature_check.signer == file.records[0].certificate
    assert not file.too_large


def test_kind_comes_from_the_header_name_without_a_requested_name(cluster: Cluster) -> None:
    data, _ = build_itl(cluster, "CTLFile.tlv")
    assert parse_file(data).kind == "ctl"
    assert parse_file(data, name="/ITLSEP001122334455.tlv").kind == "ctl"  # header says CTL


def test_real_itl_parses_and_verifies(shared_data: Path) -> None:
    path = shared_data / "itl" / "ITLFile.tlv"
    output = run("tlvfile", "-p", str(path), cwd=path.parent)
    file = parse_file(path.read_bytes(), name="ITLFile.tlv")

    header, *records = printed(output)
    assert file.kind == "itl"
    assert file.problems == ()
    assert_header_matches(file, header)
    assert_records_match(file, records)
    assert [r.role for r in file.records] == ["SAST", "CCM", "CCM", "APP-SERVER", "APP-SERVER"]
    assert verdict(output) == "Valid signature"
    assert file.signature_check is not None
    assert file.signature_check.status == "valid"
    assert isinstance(file.signature_check.signer, Certificate)
    assert file.signature_check.signer.subject == "OU=SAST,O=SAST,CN=SAST"


def test_any_changed_byte_breaks_the_signature(cluster: Cluster) -> None:
    data, _ = build_itl(cluster, "ITLFile.tlv")
    rng = random.Random(13)
    for position in sorted(rng.sample(range(len(data)), 120)):
        damaged = bytearray(data)
        damaged[position] ^= 1 << rng.randrange(8)
        file = parse_file(bytes(damaged), name="ITLFile.tlv")
        assert file.signature_check is not None
        assert file.signature_check.status != "valid", position


def test_signed_config_matches_sgnfile(cluster: Cluster) -> None:
    source = cluster.folder / f"SEP{MAC}.cnf.xml"
    source.write_text(CUCM_CONFIG)
    run("sgnfile", "-b", str(source), "-t", cluster.pem("ccm", key=True), cwd=cluster.folder)
    signed = Path(f"{source}.sgn")
    output = run("sgnfile", "-p", str(signed), "-t", cluster.pem("ccm"), cwd=cluster.folder)
    file = parse_file(signed.read_bytes(), name=signed.name)

    assert file.kind == "config-signed"
    assert file.problems == ()
    assert_header_matches(file, printed(output)[0])
    assert file.content == CUCM_CONFIG.encode()
    assert file.signature_check is not None
    assert file.signature_check.reason == "signer-not-given"
    certificates = [pki_cert(cluster, name) for name in ("sast", "capf", "ccm")]
    check = check_signature(file, certificates)
    assert verdict(output) == "Valid signature"
    assert (check.status, check.reason, check.signer) == ("valid", "verified", certificates[2])
    assert check_signature(file, certificates[:2]).reason == "signer-not-found"

    config = file.config
    assert config is not None
    assert (config.device_security_mode, config.security_mode) == (3, "encrypted")
    assert (config.transport_layer_protocol, config.transport) == (3, "tls")
    assert [(m.address, m.port) for m in config.tvs] == [
        ("cucm-pub.example.com", 2445),
        ("cucm-sub.example.com", 2445),
    ]
    assert [(m.address, m.port) for m in config.capf] == [("cucm-pub.example.com", 3804)]
    assert (config.capf_auth_mode, config.cert_hash, config.encrypted) == (0, None, False)


def test_tampered_config_is_invalid_for_both(cluster: Cluster) -> None:
    source = cluster.folder / "SEPTAMPERED.cnf.xml"
    source.write_text(CUCM_CONFIG)
    run("sgnfile", "-b", str(source), "-t", cluster.pem("ccm", key=True), cwd=cluster.folder)
    signed = Path(f"{source}.sgn")
    signed.write_bytes(
        signed.read_bytes().replace(b">3</deviceSecurityMode", b">1</deviceSecurityMode")
    )
    output = run("sgnfile", "-p", str(signed), "-t", cluster.pem("ccm"), cwd=cluster.folder)
    file = parse_file(signed.read_bytes())

    assert verdict(output) == "Invalid signature"
    check = check_signature(file, [pki_cert(cluster, "ccm")])
    assert (check.status, check.reason) == ("invalid", "signature-mismatch")
    assert file.config is not None and file.config.device_security_mode == 1


def test_encrypted_config_matches_enccnf(cluster: Cluster, tmp_path: Path) -> None:
    source = tmp_path / f"SEP{MAC}.cnf.xml"
    source.write_text(PLAIN_CONFIG)
    tftp = cluster.pem("ccm", key=True)
    run("enccnf", "-b", str(source), "-t", tftp, "-c", cluster.pem("lsc"), cwd=tmp_path)
    encrypted = tmp_path / f"SEP{MAC}.cnf.xml.enc.sgn"
    output = run("enccnf", "-p", str(encrypted), "-t", cluster.pem("ccm"), cwd=tmp_path)
    file = parse_file(encrypted.read_bytes(), name=encrypted.name)
    companion = parse_file((tmp_path / f"SEP{MAC}.cnf.xml.sgn").read_bytes())

    header = printed(output)[0]
    assert file.kind == "config-encrypted"
    assert file.problems == ()
    assert_header_matches(file, header)
    assert verdict(output) == "Valid signature"
    assert check_signature(file, [pki_cert(cluster, "ccm")]).status == "valid"
    encryption = file.encryption
    assert encryption is not None
    assert f"{len(encryption.iv)} bytes" == header["Encryption IV"]
    assert f"{len(encryption.wrapped_key)} bytes" == header["Encryption Key"]
    assert (
        encryption.content_digest_algorithm
        == "SHA-1"
        == "SHA-" + header["Encryption Digest Algorithm"].removeprefix("SHA")
    )
    assert encryption.content_digest == header["Encryption Digest"]
    assert encryption.wrapped_key_bits == 2048  # the LSC's RSA key
    # The companion .sgn says the configuration is encrypted, and to which certificate.
    assert companion.kind == "config-signed"
    assert companion.config is not None and companion.config.encrypted
    assert companion.config.cert_hash is not None
    assert cert_hash_matches(companion.config.cert_hash, cluster.der("lsc"))
    assert not cert_hash_matches(companion.config.cert_hash, cluster.der("capf"))
    # enccnf decrypts it with the phone's key; the digest in the header is of that plain text.
    key = tmp_path / "lsc.key"
    key.write_bytes(cluster.issued["lsc"].key_pem)
    run("enccnf", "-r", str(encrypted), "-k", str(key), cwd=tmp_path)
    plain = source.read_bytes()
    assert hashlib.sha1(plain).hexdigest() == encryption.content_digest


def test_cert_hash_forms(cluster: Cluster) -> None:
    der = cluster.der("lsc")
    printed_hash = run("certhash", cluster.pem("lsc"), cwd=cluster.folder).strip()
    assert cert_hash_matches(printed_hash, der)  # certhash: base64 SHA-1
    assert cert_hash_matches(hashlib.md5(der).hexdigest().upper(), der)
    assert not cert_hash_matches(hashlib.md5(b"other").hexdigest(), der)


def test_ec_signer_verifies_with_ecdsa(cluster: Cluster, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    signer = cluster.issued["ec_sast"]
    assert isinstance(signer.key, ec.EllipticCurvePrivateKey)
    data = ec_signed_itl(signer, tmp_path)
    file = parse_file(data, name="ITLFile.tlv")

    assert file.problems == ()
    assert file.header is not None and file.header.signer_version == "1.1"
    assert file.signature_check is not None
    assert (file.signature_check.status, file.signature_check.reason) == ("valid", "verified")
    damaged = parse_file(data[:-1] + bytes([data[-1] ^ 1]), name="ITLFile.tlv")
    assert damaged.signature_check is not None
    assert damaged.signature_check.status == "invalid"


def test_too_large_trust_list(cluster: Cluster) -> None:
    extra = []
    for _ in range(40):
        extra += ["-a", cluster.pem("tvs")]
    data, output = build_itl(cluster, "ITLFile.tlv", *extra)
    file = parse_file(data)
    assert len(data) > MAX_TRUST_LIST_SIZE
    assert file.too_large and file.kind == "itl"
    assert len(file.records) == len(printed(output)) - 1 == 44
    assert file.signature_check is not None and file.signature_check.status == "valid"


# -- damaged files ----------------------------------------------------------------------------


def test_every_truncation_keeps_what_was_read(cluster: Cluster) -> None:
    data, _ = build_itl(cluster, "ITLFile.tlv")
    full = parse_file(data)
    assert full.header is not None
    cuts = {*range(1, len(data), 41), *range(full.header.header_length - 3, len(data), 997)}
    for cut in sorted(cuts):
        file = parse_file(data[:cut], name="ITLFile.tlv")
        assert file.size == cut
        assert file.problems, cut
        assert file.signature_check is None or file.signature_check.status != "valid"
        assert len(file.records) <= len(full.records)
        if cut > full.header.header_length + 5:
            assert file.header == full.header
            whole = file.records[:-1]  # the last one may be cut: its cut element is dropped
            assert whole == full.records[: len(whole)]


def test_malformed_elements_are_named(cluster: Cluster) -> None:
    from capana.dissectors.cisco_trust_files import HeaderElement

    data, _ = build_itl(cluster, "ITLFile.tlv")
    file = parse_file(data)
    assert file.header is not None
    length = file.header.header_length
    unknown = bytes(HeaderElement(tag=99, value=b"\x00"))
    longer = (length + len(unknown)).to_bytes(2, "big")
    cases = {
        "unknown-header-element": data[:8] + longer + data[10:length] + unknown + data[length:],
        "bad-record": data[:length] + b"\x07" + data[length + 1 :],
        "header-overrun": data[:8] + (length - 100).to_bytes(2, "big") + data[10:],
        "bad-header-element": data[:8] + (length + 2).to_bytes(2, "big") + data[10:],
        "truncated-header": data[:8] + (len(data) + 10).to_bytes(2, "big") + data[10:],
    }
    for problem, damaged in cases.items():
        assert problem in parse_file(damaged).problems, problem
    short_version = data.replace(b"\x1c\x00\x02\x01\x00", b"\x1c\x00\x01\x01\x0d", 1)
    assert "bad-header-element" in parse_file(short_version).problems


def test_unreadable_signer_certificate(cluster: Cluster) -> None:
    data, _ = build_itl(cluster, "ITLFile.tlv")
    der = cluster.der("sast")
    damaged = parse_file(data.replace(der, b"\x31" + der[1:], 1))
    assert "unparsed-certificate" in damaged.problems
    assert damaged.signature_check is not None
    assert (damaged.signature_check.status, damaged.signature_check.reason) == (
        "unknown",
        "signer-unparsed",
    )


def test_too_many_records_are_cut_not_dissected() -> None:
    from capana.dissectors.cisco_trust_files import MAX_RECORDS, ITLFile

    header = bytes(ITLFile(header=[]))
    file = parse_file(header + b"\x01\x00\x02\x00\x05" * (MAX_RECORDS + 10), name="ITLFile.tlv")
    assert len(file.records) == MAX_RECORDS
    assert "too-many-records" in file.problems
    assert {r.role for r in file.records} == {"role_none"}


def test_a_huge_file_is_counted_not_read(cluster: Cluster) -> None:
    data, _ = build_itl(cluster, "ITLFile.tlv")
    started = time.perf_counter()
    file = parse_file(data + b"\x01\x00\x02\x00\x05" * (MAX_PARSED_BYTES // 5), name="x.tlv")
    assert time.perf_counter() - started < 5  # about 0.3 s here; unbounded it took 9 s per MB
    assert file.size == len(data) + MAX_PARSED_BYTES // 5 * 5
    assert {"unread-bytes", "too-many-records"} <= set(file.problems)
    assert file.too_large and file.header is not None
    assert file.signature_check is not None
    assert (file.signature_check.status, file.signature_check.reason) == (
        "unknown",
        "not-read-whole",
    )


@pytest.mark.parametrize(
    ("data", "problems"),
    [
        (b"", ()),
        (bytes(range(256)), ()),
        (b"\x01", ("truncated-header",)),
        (b"\x01\x00\x02\x01", ("truncated-header",)),
        (b"\x01\x00\x02\x01\x02\x02\x00\x02\xff", ("truncated-header",)),
    ],
)
def test_short_and_foreign_bytes(data: bytes, problems: tuple[str, ...]) -> None:
    file = parse_file(data)
    assert (file.kind, file.problems, file.signature_check) == ("other", problems, None)


def test_plain_config_and_other_xml() -> None:
    config = parse_file(CUCM_CONFIG.encode(), name=f"SEP{MAC}.cnf.xml")
    assert config.kind == "config" and config.signature_check is None
    assert config.config is not None and config.config.device_security_mode == 3
    other = parse_file(b"<Default><callManagerGroup/></Default>", name="XMLDefault.cnf.xml")
    assert other.kind == "other"


# -- helpers ----------------------------------------------------------------------------------


def pki_cert(cluster: Cluster, name: str) -> Certificate:
    from capana.certificates import parse_certificate

    cert = parse_certificate(cluster.der(name))
    assert isinstance(cert, Certificate)
    return cert


def ec_signed_itl(signer: pki.Issued, folder: Path) -> bytes:
    """An ITL built with the scapy layers, signed with ECDSA-SHA256 by the openssl CLI.

    The header length covers the signature, whose DER length varies: sign until it is 71 bytes.
    """
    from capana.dissectors import cisco_trust_files as layers

    serial = signer.cert.serial_number.to_bytes(20, "big").lstrip(b"\x00")
    name = b"O=Example,CN=ITLRECOVERY_ec\x00"
    record = layers.TrustListRecord(
        elements=[
            layers.RecordString(tag=3, text=name),
            layers.RecordString(tag=5, text=name),
            layers.RecordSerial(serial=serial),
            layers.RecordRole(role=0),
            layers.RecordCertificate(certificate=signer.der),
        ]
    )
    key = folder / "ec.key"
    key.write_bytes(signer.key_pem)
    for _attempt in range(64):
        header = [
            layers.HeaderVersion(tag=28, major=1, minor=1),
            layers.HeaderGroup(
                tag=3,
                elements=[
                    layers.HeaderString(tag=4, text=name),
                    layers.HeaderString(tag=6, text=name),
                    layers.HeaderSerial(serial=serial),
                ],
            ),
            layers.HeaderGroup(tag=7, elements=[layers.HeaderHashAlgorithm(algorithm=2)]),
            layers.HeaderBytes(tag=12, data=b"\x00" * 71),
            layers.HeaderString(tag=14, text=b"ITLFile.tlv\x00"),
            layers.HeaderTimestamp(timestamp=int(NOW.timestamp())),
        ]
        unsigned = bytes(layers.ITLFile(header=header) / layers.TrustListRecords(records=[record]))
        at = unsigned.index(b"\x0c\x00\x47" + b"\x00" * 71)
        (folder / "signed.bin").write_bytes(unsigned[:at] + unsigned[at + 74 :])
        subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(key), "-out", "sig.bin", "signed.bin"],
            cwd=folder,
            check=True,
            capture_output=True,
        )
        signature = (folder / "sig.bin").read_bytes()
        if len(signature) == 71:
            return unsigned[: at + 3] + signature + unsigned[at + 74 :]
    raise AssertionError("openssl never made a 71-byte ECDSA signature")
