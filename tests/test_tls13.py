"""TLS 1.3 handshakes read with a key log: real OpenSSL handshakes and real captures, tshark agrees.

Every handshake here is run by OpenSSL (pyOpenSSL via ``samplegen.tlsrun``, or Python's ``ssl``
with ``keylog_filename``), its NSS key log kept; the two public captures come with theirs.
"""

from __future__ import annotations

import functools
import hashlib
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from facts import ca_names, problem_texts, sha256s
from samplegen import scenarios, tlsrun, wire
from test_scan import tls_packets
from test_tls import CA_NAME, VERIFY_TIME, memory_handshake, real_handshake, test_pki
from tshark_oracle import TSHARK, tshark_certificates

from capana import analyze, tls, tls13
from capana.keylog import KeyLog
from capana.scan import scan_capture

SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "TLS_AES_128_CCM_SHA256": 0x1304,
}
REAL_CAPTURES = {
    "scapy_tls_nss_example.pcap": "scapy_tls_nss_example.keys.txt",
    "mercury_test_decrypt_tls13.pcap": "mercury_test_decrypt_tls13.sslkeylogfile.log",
}
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def tls13_handshake(
    suite: str = "TLS_AES_128_GCM_SHA256",
    *,
    client_cert: bool = True,
    trusted: bool = True,
    request: bool = True,
    require: bool = False,
) -> tlsrun.HandshakeBytes:
    """A phone (LSC) and CUCM in TLS 1.3 with one cipher suite, by OpenSSL, with its key log."""
    return real_handshake(
        "1.3",
        client_cert=client_cert,
        trusted=trusted,
        request=request,
        require=require,
        tls13_ciphers=suite,
    )


def capture(folder: Path, result: tlsrun.HandshakeBytes, *, keys_inside: bool = False) -> Path:
    """The handshake as one TCP connection in a pcap, or in a pcapng with its key log in a DSB."""
    packets = tls_packets(result)
    if keys_inside:
        return wire.write_pcapng(
            folder / "tls13.pcapng", [(wire.Link(), packets)], keylog=result.keylog_text()
        )
    return wire.write_pcap(folder / "tls13.pcap", packets)


def key_file(folder: Path, text: str) -> Path:
    path = folder / "keys.log"
    path.write_text(text)
    return path


def read(folder: Path, result: tlsrun.HandshakeBytes, keylog: str | None = None):
    """The one handshake in a capture of ``result``, read with ``keylog`` (default: its own)."""
    text = result.keylog_text() if keylog is None else keylog
    summary, handshakes = scan_capture(capture(folder, result), keylog=key_file(folder, text))
    assert summary.errors == ()
    assert len(handshakes) == 1
    return handshakes[0]


def chain_hashes(chain) -> list[str]:
    return [hashlib.sha256(issued.der).hexdigest() for issued in chain]


# --- the record layer -------------------------------------------------------------------------


def test_key_and_iv_from_a_traffic_secret_match_rfc_8448():
    """RFC 8448, section 3: the server handshake traffic keys of the simple 1-RTT handshake."""
    secret = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    key = tls13.hkdf_expand_label(secret, "key", b"", 16, hashes.SHA256)
    iv = tls13.hkdf_expand_label(secret, "iv", b"", 12, hashes.SHA256)
    assert key.hex() == "3fce516009c21727d0f2e4e86ee403bc"
    assert iv.hex() == "5d313eb2671276ee13000b30"


def server_flight_events(result: tlsrun.HandshakeBytes) -> list[tls.TlsEvent]:
    """The server's first flight, decrypted with the key log's server handshake secret."""
    log = KeyLog()
    log.add_text(result.keylog_text())
    client_hello = tls.TlsDirection().feed(result.flights[0].data)[0]
    secrets = log.secrets(client_hello.random)
    server = tls.TlsDirection()
    server.on_hello = lambda hello: setattr(
        server,
        "decryptor",
        tls13.HandshakeDecryptor(
            hello.cipher_suite, secrets.get("SERVER_HANDSHAKE_TRAFFIC_SECRET")
        ),
    )
    return server.feed(result.sent_by("server"))


@pytest.mark.parametrize("suite", SUITES)
def test_server_flight_decrypts_to_its_handshake_messages(suite):
    events = server_flight_events(tls13_handshake(suite))
    kinds = [type(event).__name__ for event in events]
    assert kinds[:2] == ["ServerHello", "ChangeCipherSpec"]
    assert events[0].cipher_suite == SUITES[suite]
    handshake_types = [
        11
        if isinstance(e, tls.CertificateMessage)
        else 13
        if isinstance(e, tls.CertificateRequest)
        else e.message_type
        for e in events
        if isinstance(e, tls.OtherHandshake | tls.CertificateMessage | tls.CertificateRequest)
    ]
    # EncryptedExtensions, CertificateRequest, Certificate, CertificateVerify, Finished.
    assert handshake_types == [8, 13, 11, 15, 20]
    request = next(e for e in events if isinstance(e, tls.CertificateRequest))
    assert len(request.ca_names) == 1
    # After its Finished, no application keys were given: the rest stays encrypted.
    assert not any(isinstance(e, tls.DecryptionFailed) for e in events)


def test_a_wrong_secret_gives_one_failure_then_plain_encrypted_records():
    result = tls13_handshake()
    server = tls.TlsDirection()
    server.on_hello = lambda hello: setattr(
        server, "decryptor", tls13.HandshakeDecryptor(hello.cipher_suite, bytes(32))
    )
    events = server.feed(result.sent_by("server"))
    failures = [e for e in events if isinstance(e, tls.DecryptionFailed)]
    assert len(failures) == 1 and "authentication" in failures[0].message
    assert isinstance(events[events.index(failures[0]) + 1], tls.EncryptedRecord)
    assert server.decryptor is None


def test_tls13_certificate_message_forms_and_hostile_lengths():
    cert_a, cert_b = b"\x30\x03\x02\x01\x01", b"\x30\x03\x02\x01\x02"
    entries = b"".join(len(c).to_bytes(3, "big") + c + b"\x00\x00" for c in (cert_a, cert_b))
    body = b"\x00" + len(entries).to_bytes(3, "big") + entries
    parsed = tls.parse_handshake_message(tls.CERTIFICATE, body, tls13=True)
    assert parsed == tls.CertificateMessage((cert_a, cert_b))
    empty = tls.parse_handshake_message(tls.CERTIFICATE, b"\x00\x00\x00\x00", tls13=True)
    assert empty == tls.CertificateMessage(())
    cut = tls.parse_handshake_message(tls.CERTIFICATE, body[:-4], tls13=True)
    assert cut.certificates == (cert_a,) and cut.problem
    claims_more = b"\x00\xff\xff\xff" + entries
    assert tls.parse_handshake_message(tls.CERTIFICATE, claims_more, tls13=True).problem


def test_tls13_certificate_request_reads_certificate_authorities():
    names = b"".join(len(n).to_bytes(2, "big") + n for n in (b"\x30\x00", b"\x30\x01\x00"))
    ext = (47).to_bytes(2, "big") + (len(names) + 2).to_bytes(2, "big")
    ext += len(names).to_bytes(2, "big") + names
    body = b"\x00" + len(ext).to_bytes(2, "big") + ext
    request = tls.parse_handshake_message(tls.CERTIFICATE_REQUEST, body, tls13=True)
    assert request == tls.CertificateRequest((b"\x30\x00", b"\x30\x01\x00"))
    truncated = tls.parse_handshake_message(tls.CERTIFICATE_REQUEST, body[:-3], tls13=True)
    assert isinstance(truncated, tls.ProtocolError)


# --- whole handshakes from captures ------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_client_certificate_is_present_once_decrypted(tmp_path, suite):
    result = tls13_handshake(suite)
    handshake = read(tmp_path, result)
    _ca, server, phone = test_pki()
    assert (handshake.tls_version, handshake.cipher_suite) == ("TLS 1.3", suite)
    assert handshake.client_cert_status == "present"
    assert sha256s(handshake.client_chain) == chain_hashes([phone])
    assert sha256s(handshake.server_chain[:1]) == chain_hashes([server])
    assert ca_names(handshake) == (CA_NAME,)
    assert (handshake.outcome, handshake.decryption) == ("established", "decrypted")
    # The application data, decrypted too, is HTTP, not the SCCP of port 2443: said, once a side.
    assert [problem.text for problem in handshake.problems] == [
        "phone: not SCCP (header 474554202f636f6e); the rest was not read",
        "server: not SCCP (header 485454502f312e31); the rest was not read",
    ]


def test_without_keys_nothing_changes(tmp_path):
    path = capture(tmp_path, tls13_handshake())
    (handshake,) = scan_capture(path)[1]
    assert (handshake.client_cert_status, handshake.outcome) == ("encrypted", "established")
    assert (handshake.client_chain, handshake.server_chain, handshake.decryption) == ((), (), None)


def test_empty_certificate_is_absent(tmp_path):
    handshake = read(tmp_path, tls13_handshake(client_cert=False))
    assert (handshake.client_cert_status, handshake.outcome) == ("absent", "established")


def test_certificate_required_but_absent_shows_the_decrypted_alert(tmp_path):
    result = tls13_handshake(client_cert=False, require=True)
    handshake = read(tmp_path, result)
    assert (handshake.client_cert_status, handshake.outcome) == ("absent", "rejected")
    alert = result.fatal_alert
    assert [(a.sender, a.level, a.description) for a in handshake.alerts] == [
        (alert.sender, "fatal", alert.name)
    ]


def test_rejected_client_certificate_shows_the_real_alert(tmp_path):
    result = tls13_handshake(trusted=False)
    assert result.fatal_alert.sender == "server"
    handshake = read(tmp_path, result)
    assert (handshake.client_cert_status, handshake.outcome) == ("present", "rejected")
    assert [(a.sender, a.level, a.description) for a in handshake.alerts] == [
        ("server", "fatal", result.fatal_alert.name)
    ]


def test_not_requested_is_known_once_the_server_flight_is_read(tmp_path):
    handshake = read(tmp_path, tls13_handshake(request=False))
    assert (handshake.client_cert_status, handshake.requested_ca_names) == ("not_requested", None)
    assert handshake.outcome == "established"


def test_key_log_in_a_pcapng_decryption_secrets_block(tmp_path):
    result = tls13_handshake()
    summary, (handshake,) = scan_capture(capture(tmp_path, result, keys_inside=True))
    assert summary.keylog and summary.warnings == ()
    assert (handshake.client_cert_status, handshake.decryption) == ("present", "decrypted")


def test_wrong_keys_stay_encrypted_with_a_note(tmp_path):
    result = tls13_handshake()
    wrong = "".join(
        f"{label} {random} {'00' * (len(secret) // 2)}\n"
        for label, random, secret in (line.split() for line in result.keylog)
    )
    handshake = read(tmp_path, result, keylog=wrong)
    assert (handshake.client_cert_status, handshake.outcome) == ("encrypted", "established")
    assert handshake.decryption == "failed"
    assert any("did not decrypt" in problem for problem in problem_texts(handshake))


def test_keys_of_another_session_change_nothing(tmp_path):
    other = tls13_handshake("TLS_AES_256_GCM_SHA384")
    handshake = read(tmp_path, tls13_handshake(), keylog=other.keylog_text())
    assert (handshake.client_cert_status, handshake.decryption) == ("encrypted", None)


def test_key_log_missing_the_client_secret_reads_the_server_side_only(tmp_path):
    result = tls13_handshake()
    server_only = "".join(line + "\n" for line in result.keylog if "CLIENT_" not in line)
    handshake = read(tmp_path, result, keylog=server_only)
    assert handshake.client_cert_status == "encrypted"
    assert ca_names(handshake) == (CA_NAME,)
    assert handshake.server_chain
    assert any("CLIENT_HANDSHAKE_TRAFFIC_SECRET" in p for p in problem_texts(handshake))


@functools.cache
def hello_retry_with_key_log() -> tuple[tuple[tuple[str, bytes], ...], str]:
    """Python's ``ssl`` with ``keylog_filename``: a HelloRetryRequest, then a client certificate.

    The server accepts only secp384r1 and the client's first key share is for another group.
    """
    ca, server, phone = test_pki()
    folder = Path(tempfile.mkdtemp())
    for name, data in {
        "server.pem": server.pem + ca.pem,
        "server.key": server.key_pem,
        "phone.pem": phone.pem,
        "phone.key": phone.key_pem,
        "ca.pem": ca.pem,
    }.items():
        (folder / name).write_bytes(data)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(folder / "server.pem", folder / "server.key")
    server_ctx.set_ecdh_curve("secp384r1")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(folder / "ca.pem")
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.load_cert_chain(folder / "phone.pem", folder / "phone.key")
    client_ctx.keylog_filename = str(folder / "keys.log")
    flights = memory_handshake(client_ctx, server_ctx)
    return flights, (folder / "keys.log").read_text()


def test_hello_retry_request_then_decrypted_client_certificate(tmp_path):
    flights, keylog = hello_retry_with_key_log()
    first_reply = tls.TlsDirection().feed(next(data for who, data in flights if who == "server"))
    assert first_reply[0].hello_retry
    conv = wire.TcpConversation(("10.1.1.20", 51234), ("10.1.1.5", 5061), VERIFY_TIME)
    conv.open()
    for sender, data in flights:
        conv.send(sender, data)
    conv.close()
    path = wire.write_pcap(tmp_path / "hrr.pcap", conv.packets())
    (handshake,) = scan_capture(path, keylog=key_file(tmp_path, keylog))[1]
    _ca, _server, phone = test_pki()
    assert handshake.client_cert_status == "present"
    assert sha256s(handshake.client_chain) == chain_hashes([phone])
    assert (handshake.decryption, handshake.problems) == ("decrypted", ())


def test_analyze_classifies_and_validates_the_decrypted_lsc(tmp_path):
    scenario = scenarios.tls13_client_cert(tmp_path, keys=scenarios.KeyRing())
    trust = {"callmanager": scenario.trust_dir}
    hidden = analyze(scenario.capture, trust=trust).handshakes[0]
    assert hidden.client_leaf is None
    record = analyze(scenario.capture, trust=trust, keylog=scenario.keylog).handshakes[0]
    assert record.handshake.client_cert_status == "present"
    assert record.client_leaf.kind == "LSC"
    assert record.client_leaf.classification.device == scenario.connections[0].device
    assert record.validation.status == "trusted"
    assert "tls13-certificate-encrypted" not in {f.code for f in record.findings}


# --- tshark as the oracle ---------------------------------------------------------------------


def capana_certificates(path: Path, keylog: Path | None) -> set[tuple[str, str]]:
    seen = set()
    for record in analyze(path, keylog=keylog).handshakes:
        handshake = record.handshake
        seen |= {(handshake.client, cert.sha256) for cert in record.client_chain}
        seen |= {(handshake.server, cert.sha256) for cert in record.server_chain}
    return seen


@needs_tshark
def test_generated_tls13_capture_agrees_with_tshark(tmp_path):
    scenario = scenarios.tls13_client_cert(tmp_path, keys=scenarios.KeyRing())
    expected = tshark_certificates(scenario.capture, scenario.keylog)
    assert {sender for sender, _ in expected} == {
        scenario.connections[0].client,
        scenario.connections[0].server,
    }
    assert capana_certificates(scenario.capture, scenario.keylog) == expected


@needs_tshark
@pytest.mark.parametrize("name", REAL_CAPTURES)
def test_real_tls13_capture_agrees_with_tshark_given_the_key_log(shared_data, name):
    path, keylog = shared_data / "pcaps" / name, shared_data / "pcaps" / REAL_CAPTURES[name]
    assert capana_certificates(path, keylog) == tshark_certificates(path, keylog)
    assert capana_certificates(path, None) == tshark_certificates(path)


@pytest.mark.parametrize("name", REAL_CAPTURES)
def test_real_tls13_handshakes_all_decrypt(shared_data, name):
    path, keylog = shared_data / "pcaps" / name, shared_data / "pcaps" / REAL_CAPTURES[name]
    handshakes = scan_capture(path, keylog=keylog)[1]
    tls13_handshakes = [h for h in handshakes if h.tls_version == "TLS 1.3"]
    assert tls13_handshakes
    hidden = [h for h in scan_capture(path)[1] if h.tls_version == "TLS 1.3"]
    assert len(hidden) == len(tls13_handshakes)
    assert all(not h.server_chain and h.decryption is None for h in hidden)
    for handshake in tls13_handshakes:
        assert (handshake.decryption, handshake.outcome) == ("decrypted", "established")
        assert handshake.server_chain and handshake.client_cert_status == "not_requested"
        assert handshake.problems == ()
