"""TLS 1.0-1.2 decryption with a key log, held to OpenSSL and tshark on real loopback captures.

Every session here is OpenSSL's ``s_client`` talking to ``s_server -rev`` over 127.0.0.1, two
separate processes, captured by ``tcpdump -i lo`` (``samplegen.loopback``); the client writes the
NSS key log. capana's decrypted application bytes must equal what the programs sent, and equal
tshark's "Follow TLS stream" of the same capture with the same key log.
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from samplegen import loopback, pki
from session_capture import (
    CLIENT,
    SERVER,
    Session,
    read_sessions,
    service_port,
    tshark_tls_streams,
)
from tshark_oracle import TSHARK

from capana import analyze, tls, tls12
from capana.model import ProblemCode
from capana.tls12_keys import Tls12Keys
from capana.tls13 import DecryptionError

CAN_CAPTURE = loopback.TCPDUMP is not None and loopback.OPENSSL is not None and os.geteuid() == 0
needs_loopback = pytest.mark.skipif(
    not CAN_CAPTURE or TSHARK is None,
    reason="needs root, tcpdump, openssl and tshark to capture real sessions on lo",
)
NOW = datetime.now(timezone.utc)
WINDOW = {"not_before": NOW - timedelta(days=1), "not_after": NOW + timedelta(days=30)}

# (TLS version, OpenSSL cipher name, IANA code, encrypt-then-MAC offered, renegotiate midway)
FAMILIES = {
    "gcm128": ("1.2", "ECDHE-RSA-AES128-GCM-SHA256", 0xC02F, True, True),
    "gcm256-sha384-prf": ("1.2", "ECDHE-RSA-AES256-GCM-SHA384", 0xC030, True, False),
    "ccm": ("1.2", "AES128-CCM", 0xC09C, True, False),
    "ccm8": ("1.2", "AES256-CCM8", 0xC0A1, True, False),
    "chacha20": ("1.2", "ECDHE-RSA-CHACHA20-POLY1305", 0xCCA8, True, True),
    "cbc-sha1-etm": ("1.2", "AES128-SHA", 0x002F, True, False),
    "cbc-sha256": ("1.2", "AES256-SHA256", 0x003D, False, False),
    "cbc-sha384": ("1.2", "ECDHE-RSA-AES256-SHA384", 0xC028, False, True),
    "tls11-cbc": ("1.1", "AES128-SHA", 0x002F, False, False),
    "tls10-cbc-chained-iv": ("1.0", "AES256-SHA", 0x0035, False, True),
    "tls10-cbc-etm": ("1.0", "ECDHE-RSA-AES128-SHA", 0xC013, True, False),
    "null-sha": ("1.2", "NULL-SHA", 0x0002, True, True),
    "null-sha256": ("1.2", "NULL-SHA256", 0x003B, True, False),
    "null-md5": ("1.2", "NULL-MD5", 0x0001, True, False),
    "tls10-null-sha": ("1.0", "NULL-SHA", 0x0002, True, False),
}
VERSION_CODES = {"1.0": 0x0301, "1.1": 0x0302, "1.2": 0x0303}
BOTH_PURPOSES = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


@pytest.fixture(scope="module")
def server_certificate() -> pki.Issued:
    return pki.server_cert(None, **WINDOW)


@pytest.fixture(scope="module", params=FAMILIES)
def run(request, server_certificate, tmp_path_factory) -> tuple[str, loopback.OpenSslRun]:
    version, cipher, _code, etm, renegotiate = FAMILIES[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    result = loopback.openssl_pair(
        folder,
        server_certificate,
        version=version,
        cipher=cipher,
        encrypt_then_mac=etm,
        renegotiate_after=1 if renegotiate else None,
    )
    return request.param, result


def only_session(path: Path, keylog: Path | None) -> Session:
    (session,) = read_sessions(path, keylog)
    return session


# --- against tshark and the peers, per cipher family ------------------------------------------


@needs_loopback
def test_decrypted_bytes_equal_what_was_sent_and_what_tshark_reads(run):
    family, result = run
    version, _cipher, code, etm, _renegotiate = FAMILIES[family]
    session = only_session(result.capture, result.keylog)
    tshark = tshark_tls_streams(result.capture, result.keylog)[session.client_port]
    assert session.application_data(CLIENT) == result.client_bytes == tshark[0]
    assert session.application_data(SERVER) == result.server_bytes == tshark[1]
    decryption = session.keys.decryption
    assert decryption is not None
    assert (decryption.status, decryption.version, decryption.cipher_suite) == (
        "decrypted",
        VERSION_CODES[version],
        code,
    )
    assert decryption.mac_checked and not decryption.truncated
    assert decryption.extended_master_secret  # OpenSSL offers and accepts it by default
    # OpenSSL also accepts encrypt-then-MAC for NULL suites (RFC 7366 would not): same bytes.
    assert decryption.encrypt_then_mac == (etm and tls12.SUITES[code].mode in ("cbc", "null"))
    assert not session.of_type(tls.DecryptionFailed) and not session.of_type(tls.ProtocolError)
    # The close_notify alerts are read, not reported as encrypted.
    assert all(alert.level is not None for alert in session.of_type(tls.Alert))


@needs_loopback
def test_renegotiation_is_an_event_and_decryption_follows_it(run):
    family, result = run
    renegotiated = FAMILIES[family][4]
    session = only_session(result.capture, result.keylog)
    hellos = session.of_type(tls.ClientHello, CLIENT)
    events = session.of_type(tls.Renegotiation)
    if not renegotiated:
        assert (len(hellos), events) == (1, [])
        return
    # Both peers start a handshake inside the session; its hellos are read decrypted.
    assert len(session.of_type(tls.Renegotiation, CLIENT)) == 1
    assert len(session.of_type(tls.Renegotiation, SERVER)) == 1
    assert len(hellos) == 2 and hellos[0].random != hellos[1].random
    assert len(session.of_type(tls.ServerHello, SERVER)) == 2
    # The line sent after the renegotiation was decrypted with the second session's keys.
    assert session.application_data(CLIENT).endswith(result.sent[-1])


@needs_loopback
def test_without_the_key_log(run):
    """Encrypted suites stay encrypted (and renegotiation is still seen); NULL ones are read."""
    family, result = run
    code, renegotiated = FAMILIES[family][2], FAMILIES[family][4]
    session = only_session(result.capture, None)
    decryption = session.keys.decryption
    assert decryption is not None
    if tls12.is_null_suite(code):
        assert (decryption.status, decryption.mac_checked) == ("plaintext", False)
        assert session.application_data(CLIENT) == result.client_bytes
        assert session.application_data(SERVER) == result.server_bytes
    else:
        assert decryption.status == "no_keys"
        assert session.of_type(tls.ApplicationData) == []
        assert session.of_type(tls.EncryptedRecord)
    assert len(session.of_type(tls.Renegotiation, SERVER)) == (1 if renegotiated else 0)


@needs_loopback
def test_a_wrong_master_secret_fails_once_per_direction(run, tmp_path):
    _family, result = run
    wrong = tmp_path / "wrong.keys"
    lines = result.keylog.read_text().splitlines()
    wrong.write_text(
        "\n".join(
            " ".join([*line.split()[:2], "00" * 48]) if line.startswith("CLIENT_RANDOM") else line
            for line in lines
        )
    )
    session = only_session(result.capture, wrong)
    decryption = session.keys.decryption
    assert decryption is not None and decryption.status == "failed"
    for sender in (CLIENT, SERVER):
        assert len(session.of_type(tls.DecryptionFailed, sender)) == 1
    assert session.of_type(tls.ApplicationData) == []
    assert not session.of_type(tls.ProtocolError)


@needs_loopback
def test_application_data_is_bounded_per_direction(server_certificate, tmp_path):
    result = loopback.openssl_pair(
        tmp_path, server_certificate, version="1.2", cipher="ECDHE-RSA-AES128-GCM-SHA256"
    )
    # A bound below the second line: the first record is read, the rest stays encrypted.
    (session,) = read_sessions(result.capture, result.keylog, limit=len(result.sent[0]))
    opened = session.of_type(tls.ApplicationData, CLIENT)
    assert [e.content for e in opened] == [result.sent[0]]
    assert session.keys.decryption is not None and session.keys.decryption.truncated
    assert session.of_type(tls.EncryptedRecord, CLIENT)


# --- end to end, through capana.analyze ------------------------------------------------------


@needs_loopback
def test_analyze_reports_how_each_family_was_read(run, tmp_path):
    family, result = run
    _version, _cipher, code, etm, _renegotiate = FAMILIES[family]
    null = tls12.is_null_suite(code)
    (with_keys,) = analyze(result.capture, keylog=result.keylog).handshakes
    (without,) = analyze(result.capture).handshakes
    for record, expected in ((with_keys, "decrypted"), (without, "plaintext" if null else None)):
        handshake = record.handshake
        assert (handshake.decryption, handshake.outcome) == (expected, "established")
        assert handshake.extended_master_secret is True
        assert handshake.encrypt_then_mac == (etm and tls12.SUITES[code].mode in ("cbc", "null"))
        # The close_notify alerts, read or not, are the session's: not the handshake's.
        assert (handshake.alerts, handshake.problems) == ((), ())
    wrong = tmp_path / "wrong.keys"
    wrong.write_text(result.keylog.read_text().replace("CLIENT_RANDOM ", "CLIENT_RANDOM_X "))
    (unmatched,) = analyze(result.capture, keylog=wrong).handshakes
    assert unmatched.handshake.decryption == ("plaintext" if null else None)


@needs_loopback
@pytest.mark.parametrize("cipher", ["ECDHE-RSA-AES128-GCM-SHA256", "NULL-SHA"])
def test_a_renegotiation_carrying_the_phones_certificate_is_a_handshake_of_its_own(
    server_certificate, tmp_path, cipher
):
    """On SIP-TLS 5061, s_server asks for the phone's certificate only in a renegotiation: its
    Certificate travels inside the session (read with the key log, or in a NULL cipher without
    one). It is reported as a handshake of its own, judged like any, never merged into the
    first; tshark reads the same certificate."""
    capf = pki.capf(**WINDOW, extended_key_usage=BOTH_PURPOSES)
    lsc = pki.phone_lsc(capf, **WINDOW)
    result = loopback.openssl_server_renegotiation(
        tmp_path,
        server_certificate,
        client=lsc,
        client_ca=capf,
        cipher=cipher,
        port=service_port(5061),
    )
    trust = tmp_path / "callmanager-trust.pem"
    trust.write_bytes(capf.pem)
    null = cipher.startswith("NULL")
    for keylog in (result.keylog, None):
        records = analyze(result.capture, trust={"callmanager": trust}, keylog=keylog).handshakes
        first = records[0].handshake
        assert (first.client_cert_status, first.outcome) == ("not_requested", "established")
        if keylog is None and not null:  # the renegotiation is encrypted: not even seen
            assert len(records) == 1 and first.problems == ()
            continue
        assert len(records) == 2
        second = records[1].handshake
        assert (second.client_chain, second.outcome) == ((lsc.der,), "established")
        assert records[1].validation.status == "trusted"
        assert second.start > first.start and second.requested_ca_names is not None
        assert [p.code for p in first.problems] == [ProblemCode.RENEGOTIATED]
        assert "1 read and reported as handshakes of their own" in first.problems[0].text
        assert [p.code for p in second.problems] == [ProblemCode.RENEGOTIATED]
        assert f"opened at frame {first.frames.client_hello}" in second.problems[0].text
    if TSHARK is not None:
        command = [TSHARK, "-r", str(result.capture), "-o", f"tls.keylog_file:{result.keylog}"]
        command += ["-d", f"tcp.port=={result.port},tls", "-Y", "tls.handshake.type == 11"]
        command += ["-T", "fields", "-e", "tcp.srcport", "-e", "tls.handshake.certificate"]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        from_client = [
            line.split("\t")[1]
            for line in output.splitlines()
            if line.split("\t")[0] != str(result.port)
        ]
        assert from_client == [lsc.der.hex()]


# --- real public captures ---------------------------------------------------------------------


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_the_public_scapy_tls12_session_decrypts_like_tshark(shared_data):
    path = shared_data / "pcaps" / "scapy_tls_nss_example.pcap"
    keylog = shared_data / "pcaps" / "scapy_tls_nss_example.keys.txt"
    tshark = tshark_tls_streams(path, keylog)
    tls12_sessions = [s for s in read_sessions(path, keylog) if s.keys.decryption is not None]
    assert len(tls12_sessions) == 1
    session = tls12_sessions[0]
    assert session.keys.decryption.status == "decrypted"
    assert session.keys.decryption.cipher_suite == 0xC030
    assert session.application_data(CLIENT) == tshark[session.client_port][0]
    assert session.application_data(SERVER) == tshark[session.client_port][1]
    assert session.application_data(CLIENT).startswith(b"GET /pki/srv_key.pem HTTP/1.0")
    # Through the pipeline: the TLS 1.2 session reads as decrypted, its ServerHello's extensions
    # as tshark lists them (the TLS 1.3 one was read with its own secrets).
    records = analyze(path, keylog=keylog).handshakes
    assert [(r.handshake.tls_version, r.handshake.decryption) for r in records] == [
        ("TLS 1.2", "decrypted"),
        ("TLS 1.3", "decrypted"),
    ]
    command = [TSHARK, "-r", str(path), "-Y", "tls.handshake.type == 2", "-T", "fields"]
    command += ["-e", "tls.handshake.extension.type"]
    extensions = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    first = {int(t) for t in extensions.splitlines()[0].split(",")}
    assert records[0].handshake.extended_master_secret == (23 in first)
    assert records[0].handshake.encrypt_then_mac == (22 in first)


# --- the PRF and the suite table, against OpenSSL ---------------------------------------------


@pytest.mark.skipif(loopback.OPENSSL is None, reason="openssl is not installed")
@pytest.mark.parametrize(
    ("version", "digest", "secret_length"),
    [
        (0x0303, "SHA256", 48),
        (0x0303, "SHA384", 48),
        (0x0301, "MD5-SHA1", 48),
        (0x0302, "MD5-SHA1", 47),
    ],
)
def test_prf_matches_openssl_kdf(version, digest, secret_length):
    secret, seed = os.urandom(secret_length), os.urandom(64)
    label = b"key expansion"
    options = [f"digest:{digest}", f"hexsecret:{secret.hex()}", f"hexseed:{(label + seed).hex()}"]
    expected = subprocess.run(
        [loopback.OPENSSL, "kdf", "-keylen", "104", *_each("-kdfopt", options), "TLS1-PRF"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    hash_name = "SHA384" if digest == "SHA384" else "SHA256"
    ours = tls12.prf(version, secret, label, seed, 104, hash_name)
    assert ours.hex() == expected.replace(":", "").lower()


def _each(flag: str, values: list[str]) -> list[str]:
    return [item for value in values for item in (flag, value)]


def _openssl_suites() -> list[tuple[int, str, str, str]]:
    """(code, name, Enc=, Mac=) of every TLS <= 1.2 suite OpenSSL knows."""
    listing = subprocess.run(
        [loopback.OPENSSL, "ciphers", "-V", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    suites = []
    for line in listing.splitlines():
        parts = line.split()
        if "TLSv1.3" in parts:
            continue
        code = int(parts[0].replace("0x", "").replace(",", ""), 16)
        fields = dict(part.split("=", 1) for part in parts if "=" in part)
        suites.append((code, parts[2], fields["Enc"], fields["Mac"]))
    return suites


_OPENSSL_ENC = {
    ("gcm", 16): "AESGCM(128)",
    ("gcm", 32): "AESGCM(256)",
    ("ccm", 16): "AESCCM(128)",
    ("ccm", 32): "AESCCM(256)",
    ("ccm8", 16): "AESCCM8(128)",
    ("ccm8", 32): "AESCCM8(256)",
    ("chacha20", 32): "CHACHA20/POLY1305(256)",
    ("cbc", 16): "AES(128)",
    ("cbc", 32): "AES(256)",
    ("null", 0): "None",
}


@pytest.mark.skipif(loopback.OPENSSL is None, reason="openssl is not installed")
def test_suite_table_agrees_with_openssl():
    """Every suite OpenSSL builds: same cipher, key length and MAC, or refused as unsupported."""
    checked = 0
    for code, name, enc, mac in _openssl_suites():
        spec = tls12.SUITES.get(code)
        if spec is None:
            assert not enc.startswith(("AES", "CHACHA20", "None")), (name, enc)
            with pytest.raises(tls12.UnsupportedSuite):
                tls12.suite_spec(code)
            continue
        assert _OPENSSL_ENC[spec.mode, spec.key_length] == enc, name
        assert (spec.mac or "AEAD") == mac.strip(), name
        assert spec.prf_hash == ("SHA384" if name.endswith("SHA384") else "SHA256"), name
        checked += 1
    assert checked >= 80


def test_suite_table_agrees_with_the_iana_names():
    """The suites OpenSSL does not build (static DH, SRP, ...) are held to their IANA names."""
    from scapy.layers.tls.crypto.suites import _tls_cipher_suites

    ciphers = {
        "AES-128-CBC": "AES_128_CBC",
        "AES-256-CBC": "AES_256_CBC",
        "AES-128-GCM": "AES_128_GCM",
        "AES-256-GCM": "AES_256_GCM",
        "AES-128-CCM": "AES_128_CCM",
        "AES-256-CCM": "AES_256_CCM",
        "AES-128-CCM-8": "AES_128_CCM_8",
        "AES-256-CCM-8": "AES_256_CCM_8",
        "CHACHA20-POLY1305": "CHACHA20_POLY1305",
        "NULL": "NULL",
    }
    names = {  # RFC 8442, which scapy's table predates
        0xD001: "TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256",
        0xD002: "TLS_ECDHE_PSK_WITH_AES_256_GCM_SHA384",
        0xD003: "TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256",
        0xD005: "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256",
        **_tls_cipher_suites,
    }
    for code, spec in tls12.SUITES.items():
        name = names[code]
        cipher_and_mac = name.split("_WITH_", 1)[1]
        mac = {"SHA1": "SHA"}.get(spec.mac or "", spec.mac or spec.prf_hash)
        expected = [f"{ciphers[spec.cipher]}_{mac}"]
        if spec.mode in ("ccm", "ccm8"):  # e.g. TLS_RSA_WITH_AES_128_CCM, ECDHE_PSK_..._SHA256
            expected += [ciphers[spec.cipher]]
        assert cipher_and_mac in expected, (hex(code), name)


# --- record protection on hand-made bad input -------------------------------------------------


def _protection(code: int, version: int = 0x0303, etm: bool = False) -> tls12.RecordProtection:
    client, _server = tls12.protections(version, code, bytes(48), bytes(32), bytes(32), etm)
    return client


HEADER = bytes([tls.APPLICATION_DATA, 3, 3, 0, 0])


@pytest.mark.parametrize(
    ("code", "fragment", "message"),
    [
        (0x002F, bytes(40), "whole 16-byte blocks"),
        (0x002F, bytes(16), "whole 16-byte blocks"),  # an IV and nothing else
        (0x002F, bytes(48), "(padding|MAC)"),
        (0xC02F, bytes(20), "too short"),
        (0xC02F, bytes(40), "authentication"),
        (0xCCA8, bytes(10), "too short"),
        (0xC0A0, bytes(30), "authentication"),
        (0x0002, bytes(10), "cannot hold"),
        (0x0002, bytes(30), "bad record MAC"),
        (0xC02F, bytes(tls12.MAX_FRAGMENT + 1), "over"),
    ],
)
def test_damaged_records_raise_a_clear_error(code, fragment, message):
    with pytest.raises(DecryptionError, match=message):
        _protection(code).open(HEADER, fragment)


def test_a_null_suite_without_keys_strips_the_mac_unchecked():
    client, _server = tls12.protections(0x0303, 0x0002, None, bytes(32), bytes(32))
    assert not client.mac_checked
    assert client.open(HEADER, b"REGISTER sip:x" + bytes(20)) == b"REGISTER sip:x"
    with pytest.raises(tls12.UnsupportedSuite):
        tls12.protections(0x0303, 0xC02F, None, bytes(32), bytes(32))


def test_unsupported_suites_and_versions_are_named():
    with pytest.raises(tls12.UnsupportedSuite, match="0x000a"):
        tls12.suite_spec(0x000A)  # DES-CBC3-SHA: OpenSSL 3 no longer builds it, nor do we
    with pytest.raises(tls12.UnsupportedSuite, match="0x0300"):
        tls12.protections(0x0300, 0x002F, bytes(48), bytes(32), bytes(32))


def test_the_decryptor_stops_after_a_failure_and_after_its_bound():
    decryptor = tls12.Tls12Decryptor(_protection(0x0002), limit=10)
    with pytest.raises(DecryptionError):
        decryptor.open(HEADER, bytes(30))
    assert (decryptor.active, decryptor.failed) == (False, True)
    with pytest.raises(DecryptionError, match="no more"):
        decryptor.open(HEADER, bytes(30))
    keyless = tls12.protections(0x0303, 0x0002, None, b"", b"")[0]
    bounded = tls12.Tls12Decryptor(keyless, limit=10)
    assert bounded.open(HEADER, b"0123456789" + bytes(20)) == (tls.APPLICATION_DATA, b"0123456789")
    assert (bounded.active, bounded.truncated) == (False, True)


def test_a_server_hello_without_a_client_hello_cannot_name_the_session():
    client, server = tls.TlsDirection(), tls.TlsDirection()
    keys = Tls12Keys(None)
    keys.attach(client, server)
    server.on_hello(tls.ServerHello(0x0303, 0xC02F, None, False, bytes(32), ()))
    assert keys.decryption is not None
    assert (keys.decryption.status, keys.decryption.cipher_suite) == ("no_keys", 0xC02F)
    assert keys.decryption.problems == ()  # the status says it: common in mid-stream captures
    assert server.decryptor is None


def test_tls13_hellos_are_left_to_session_keys():
    client, server = tls.TlsDirection(), tls.TlsDirection()
    keys = Tls12Keys(None)
    keys.attach(client, server)
    client.on_hello(tls.ClientHello(0x0303, (0x1301,), None, (0x0304,), random=bytes(32)))
    server.on_hello(tls.ServerHello(0x0303, 0x1301, 0x0304, False, bytes(32), (43,)))
    assert keys.decryption is None and server.decryptor is None


def test_attach_keeps_the_hooks_already_there():
    seen = []
    client, server = tls.TlsDirection(on_hello=seen.append), tls.TlsDirection(on_hello=seen.append)
    Tls12Keys(None).attach(client, server)
    hello = tls.ServerHello(0x0303, 0x0002, None, False, bytes(32), ())
    server.on_hello(hello)
    assert seen == [hello]


def test_key_block_lengths_per_mode():
    for code, spec in tls12.SUITES.items():
        client, server = tls12.key_block(0x0303, spec, bytes(48), bytes(32), bytes(32))
        assert len(client.key) == len(server.key) == spec.key_length, hex(code)
        assert len(client.mac_key) == spec.mac_length
        assert len(client.iv) == spec.iv_length
