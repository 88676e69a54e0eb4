"""capana.tls: one direction's bytes in, TLS events out, fed real OpenSSL handshakes.

The helpers at the top (``real_handshake``, ``hello_retry_handshake``, ``records``, ``reframe``)
also serve the handshake, connection and scan tests: every handshake here is run by OpenSSL.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
import struct
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from samplegen import pki, tlsrun

from capana import tls
from capana.model import ProblemCode

VERIFY_TIME = datetime(2024, 3, 1, tzinfo=timezone.utc)
CA_NAME = "CN=Test Phone CA,O=Test"
SERVER_NAME = "cucm.example.com"
# OpenSSL 3 refuses TLS 1.0/1.1 above security level 0; a 12.5-era phone still speaks them.
OLD_PHONE_CIPHERS = tlsrun.PHONE_CIPHERS + ":@SECLEVEL=0"


@functools.cache
def test_pki() -> tuple[pki.Issued, pki.Issued, pki.Issued]:
    """(CA, CUCM server certificate, phone LSC), all on one RSA key to keep the suite fast."""
    key = pki.new_key()
    window = {"not_before": pki.EPOCH, "not_after": pki.EPOCH + timedelta(days=20 * 365)}
    ca = pki.issue(pki.dn("O=Test,CN=Test Phone CA"), key=key, ca=True, **window)
    server = pki.server_cert(ca, SERVER_NAME, key=key, **window)
    phone = pki.phone_lsc(ca, key=key, **window)
    return ca, server, phone


test_pki.__test__ = False  # a helper, not a test


@functools.cache
def real_handshake(
    version: str = "1.2",
    *,
    client_cert: bool = True,
    trusted: bool = True,
    request: bool = True,
    require: bool = False,
    sni: str | None = SERVER_NAME,
    app_data: bool = True,
    tls13_ciphers: str | None = None,
) -> tlsrun.HandshakeBytes:
    """A phone (LSC) talking to CUCM, run by OpenSSL; ``trusted=False`` gets it rejected."""
    ca, server, phone = test_pki()
    return tlsrun.run_handshake(
        server_chain=[server],
        client_chain=[phone] if client_cert else [],
        trust=[ca.cert] if trusted else [],
        ca_names=[ca.cert],
        verify_time=VERIFY_TIME,
        request_client_cert=request,
        require_client_cert=require,
        min_version=version,
        max_version=version,
        client_ciphers=OLD_PHONE_CIPHERS if version in ("1.0", "1.1") else tlsrun.PHONE_CIPHERS,
        tls13_ciphers=tls13_ciphers,
        sni=sni,
        app_data=[("client", b"GET /config HTTP/1.1\r\n\r\n"), ("server", b"HTTP/1.1 200 OK\r\n")]
        if app_data
        else (),
    )


@functools.cache
def hello_retry_handshake() -> tuple[tuple[str, bytes], ...]:
    """A TLS 1.3 handshake with a HelloRetryRequest, as (sender, bytes) flights.

    Python's ``ssl`` on memory BIOs: the server accepts only secp384r1, the client's first
    key share is for another group, so the server asks again (RFC 8446, 4.1.4).
    """
    ca, server, _phone = test_pki()
    folder = Path(tempfile.mkdtemp())
    (folder / "chain.pem").write_bytes(server.pem + ca.pem)
    (folder / "key.pem").write_bytes(server.key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(folder / "chain.pem", folder / "key.pem")
    server_ctx.set_ecdh_curve("secp384r1")
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    return memory_handshake(client_ctx, server_ctx)


def memory_handshake(
    client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext
) -> tuple[tuple[str, bytes], ...]:
    """Run Python ``ssl`` client and server on memory BIOs; the (sender, bytes) flights."""
    bios = [ssl.MemoryBIO() for _ in range(4)]
    client = client_ctx.wrap_bio(bios[0], bios[1], server_hostname=SERVER_NAME)
    server_side = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
    flights: list[tuple[str, bytes]] = []
    for _ in range(8):
        for name, conn, outgoing, peer_incoming in (
            ("client", client, bios[1], bios[2]),
            ("server", server_side, bios[3], bios[0]),
        ):
            with contextlib.suppress(ssl.SSLWantReadError):
                conn.do_handshake()
            data = outgoing.read()
            if data:
                flights.append((name, data))
                peer_incoming.write(data)
    assert client.version() == "TLSv1.3"
    return tuple(flights)


def records(data: bytes) -> list[tuple[int, bytes]]:
    """(content type, body) of each TLS record in ``data``."""
    out = []
    for at in tlsrun.record_offsets(data):
        length = int.from_bytes(data[at + 3 : at + 5], "big")
        out.append((data[at], data[at + 5 : at + 5 + length]))
    return out


def record(content_type: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack(">BHH", content_type, version, len(body)) + body


def reframe(data: bytes, size: int) -> bytes:
    """The same plaintext handshake messages, cut into records of at most ``size`` bytes."""
    handshake = b"".join(body for kind, body in records(data) if kind == tls.HANDSHAKE)
    return b"".join(
        record(tls.HANDSHAKE, handshake[i : i + size]) for i in range(0, len(handshake), size)
    )


def events_of(data: bytes, chunk: int | None = None) -> list[tls.TlsEvent]:
    """Everything a fresh TlsDirection reports for ``data``, fed ``chunk`` bytes at a time."""
    direction = tls.TlsDirection()
    chunk = chunk or len(data) or 1
    events: list[tls.TlsEvent] = []
    for i in range(0, len(data), chunk):
        events += direction.feed(data[i : i + chunk])
    return events


def first(events: list[tls.TlsEvent], kind: type) -> tls.TlsEvent:
    return next(event for event in events if isinstance(event, kind))


def certificate_ders(*issued: pki.Issued) -> tuple[bytes, ...]:
    return tuple(item.der for item in issued)


# --- reassembly ------------------------------------------------------------------------------


def test_server_flight_gives_hello_chain_request_and_done():
    server_flight = real_handshake().flights[1]
    assert server_flight.sender == "server"
    events = events_of(server_flight.data)
    kinds = [type(event).__name__ for event in events]
    assert kinds == [
        "ServerHello",
        "CertificateMessage",
        "OtherHandshake",  # ServerKeyExchange
        "CertificateRequest",
        "OtherHandshake",  # ServerHelloDone
    ]
    ca, server, _ = test_pki()
    assert first(events, tls.CertificateMessage).certificates == certificate_ders(server, ca)


@pytest.mark.parametrize("chunk", [1, 3, 5, 6, 100, 1460])
def test_records_spanning_feeds_give_the_same_events(chunk):
    data = real_handshake().flights[1].data
    assert events_of(data, chunk) == events_of(data)


@pytest.mark.parametrize("size", [16384, 1000, 100, 7, 1])
def test_handshake_messages_reframed_into_any_record_size_give_the_same_events(size):
    """One record holding every message (16384), and the Certificate spread over many (100)."""
    data = real_handshake().flights[1].data
    reframed = reframe(data, size)
    assert all(len(body) <= size for _, body in records(reframed))
    assert (len(records(reframed)) == 1) == (size == 16384)
    assert events_of(reframed) == events_of(data)


def test_certificate_message_spanning_records_is_not_reported_before_its_last_byte():
    data = reframe(real_handshake().flights[1].data, 100)
    direction = tls.TlsDirection()
    cut = data.index(record(tls.HANDSHAKE, b"")[:3]) + 1000  # well inside the Certificate
    early = direction.feed(data[:cut])
    assert not any(isinstance(event, tls.CertificateMessage) for event in early)
    late = direction.feed(data[cut:])
    assert len(first(late, tls.CertificateMessage).certificates) == 2


# --- hellos ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "offered"),
    [("1.0", 0x0301), ("1.1", 0x0302), ("1.2", 0x0303), ("1.3", 0x0303)],
)
def test_client_hello_names_the_server_and_offers_versions(version, offered):
    hello = first(events_of(real_handshake(version).flights[0].data), tls.ClientHello)
    assert hello.server_name == SERVER_NAME
    assert hello.version == offered
    assert (tls.TLS13 in hello.supported_versions) == (version == "1.3")
    assert 0x002F in hello.cipher_suites or version == "1.3"  # AES128-SHA


def test_client_hello_without_sni():
    hello = first(events_of(real_handshake(sni=None).flights[0].data), tls.ClientHello)
    assert hello.server_name is None


def test_tls13_server_hello_selects_the_version_in_supported_versions():
    hello = first(events_of(real_handshake("1.3").flights[1].data), tls.ServerHello)
    assert hello.version == 0x0303  # the legacy field lies, by design
    assert hello.selected_version == tls.TLS13
    assert not hello.hello_retry


def sslv2_client_hello(suites: list[int], version: int = 0x0301) -> bytes:
    """An SSLv2-format ClientHello as old stacks sent it (RFC 5246, appendix E.2)."""
    specs = b"".join(suite.to_bytes(3, "big") for suite in suites) + bytes.fromhex("010080")
    challenge = bytes(range(16))
    body = struct.pack(">BHHHH", 1, version, len(specs), 0, len(challenge)) + specs + challenge
    return struct.pack(">H", 0x8000 | len(body)) + body


def test_sslv2_format_client_hello_is_read_and_recognised():
    data = sslv2_client_hello([0x002F, 0x0035, 0x000A])
    assert tls.looks_like_client_hello(data)
    (hello,) = events_of(data)
    assert hello == tls.ClientHello(0x0301, (0x002F, 0x0035, 0x000A), None, (), sslv2_format=True)


def test_sslv2_client_hello_followed_by_tls_records():
    """After an SSLv2 hello the same direction goes on in TLS records."""
    alert = record(tls.ALERT, bytes([2, 40]))
    events = events_of(sslv2_client_hello([0x002F]) + alert)
    assert isinstance(events[0], tls.ClientHello)
    assert events[1] == tls.Alert(2, 40)


def test_hello_retry_request_and_the_plaintext_hellos_after_its_change_cipher_spec():
    """Middlebox-compatible TLS 1.3 sends a CCS after the HRR; the hellos after it are plain."""
    flights = hello_retry_handshake()
    server = tls.TlsDirection()
    client = tls.TlsDirection()
    server_events = server.feed(flights[1][1]) + server.feed(flights[3][1])
    client_events = client.feed(flights[0][1]) + client.feed(flights[2][1])
    hellos = [event for event in server_events if isinstance(event, tls.ServerHello)]
    assert [hello.hello_retry for hello in hellos] == [True, False]
    assert hellos[1].selected_version == tls.TLS13
    client_hellos = [event for event in client_events if isinstance(event, tls.ClientHello)]
    assert len(client_hellos) == 2
    assert not any(isinstance(event, tls.ProtocolError) for event in server_events + client_events)


@pytest.mark.parametrize(
    ("name", "is_hello"),
    [
        ("tls12_client_hello", True),
        ("tls13_client_hello", True),
        ("server_hello", False),
        ("http", False),
        ("sccp", False),
        ("empty", False),
    ],
)
def test_looks_like_client_hello(name, is_hello):
    samples = {
        "tls12_client_hello": real_handshake().flights[0].data,
        "tls13_client_hello": real_handshake("1.3").flights[0].data,
        "server_hello": real_handshake().flights[1].data,
        "http": b"GET / HTTP/1.1\r\nHost: cucm\r\n\r\n",
        "sccp": struct.pack("<III", 12, 0, 0x0001) + b"SEP0011223344",
        "empty": b"",
    }
    assert bool(tls.looks_like_client_hello(samples[name])) == is_hello


# --- change cipher spec, encryption, alerts ------------------------------------------------


def test_change_cipher_spec_then_the_encrypted_finished():
    client_second_flight = real_handshake().flights[2].data
    events = events_of(client_second_flight)
    assert isinstance(first(events, tls.CertificateMessage), tls.CertificateMessage)
    at = events.index(tls.ChangeCipherSpec())
    finished = records(client_second_flight)[-1]
    assert finished[0] == tls.HANDSHAKE
    assert events[at + 1] == tls.EncryptedRecord(tls.HANDSHAKE, len(finished[1]))
    assert all(isinstance(event, tls.EncryptedRecord) for event in events[at + 1 :])


def test_plaintext_fatal_unknown_ca_from_a_server_that_rejects_the_phone():
    result = real_handshake(trusted=False)
    assert result.fatal_alert is not None and result.fatal_alert.name == "unknown_ca"
    server_events = events_of(result.sent_by("server"))
    assert server_events[-1] == tls.Alert(2, 48)
    assert tls.alert_name(48) == "unknown_ca"


def test_alert_after_encryption_is_reported_as_encrypted():
    """close_notify travels encrypted at the end of an established session."""
    result = real_handshake()
    events = events_of(result.sent_by("client"))
    assert events[-1] == tls.Alert(None, None)
    assert events[-1].encrypted


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x0300, "SSL 3.0"),
        (0x0301, "TLS 1.0"),
        (0x0302, "TLS 1.1"),
        (0x0303, "TLS 1.2"),
        (0x0304, "TLS 1.3"),
        (0x7F1C, "0x7f1c"),
        (None, None),
    ],
)
def test_version_names(code, name):
    assert tls.version_name(code) == name


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
        (0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA"),
        (0x1301, "TLS_AES_128_GCM_SHA256"),
        (0xFAFA, "0xfafa"),  # GREASE: no name, no crash
    ],
)
def test_cipher_suites_carry_iana_names(code, name):
    assert tls.cipher_suite_name(code) == name


# --- hostile and broken input ---------------------------------------------------------------


def test_bytes_that_are_not_tls_stop_the_direction_with_a_clear_error():
    direction = tls.TlsDirection()
    (error,) = direction.feed(b"GET / HTTP/1.1\r\n\r\n")
    assert isinstance(error, tls.ProtocolError)
    assert "not a TLS record" in error.message
    assert direction.feed(real_handshake().flights[0].data) == []


def test_record_claiming_0xffff_bytes_is_refused_without_waiting_for_them():
    direction = tls.TlsDirection()
    events = direction.feed(struct.pack(">BHH", tls.HANDSHAKE, 0x0303, 0xFFFF) + b"\x01" * 100)
    (error,) = events
    assert isinstance(error, tls.ProtocolError)
    assert "65535" in error.message
    assert direction.feed(b"\x00" * 70000) == []
    assert direction._records.size == 0


def test_handshake_message_claiming_2_to_the_24_bytes_is_refused():
    body = bytes([tls.CERTIFICATE_REQUEST]) + (2**24 - 1).to_bytes(3, "big") + b"\x00" * 100
    direction = tls.TlsDirection()
    (error,) = direction.feed(record(tls.HANDSHAKE, body))
    assert isinstance(error, tls.ProtocolError)
    assert "16777215" in error.message
    assert direction._messages.size == 0


def test_a_certificate_message_over_the_limit_is_cut_and_the_stream_read_on():
    """A Certificate claiming 2^24 - 1 bytes whose first entries are real certificates: those
    within MAX_CERTIFICATE_MESSAGE are kept with a LIMIT problem, the rest passed over without
    being buffered, and the next message read."""
    ca, server, _ = test_pki()
    length = 2**24 - 1
    entries = b"".join(len(c.der).to_bytes(3, "big") + c.der for c in (server, ca))
    body = (length - 3).to_bytes(3, "big") + entries
    body += bytes(length - len(body))
    stream = bytes([tls.CERTIFICATE]) + length.to_bytes(3, "big") + body
    stream += bytes([tls.SERVER_HELLO_DONE, 0, 0, 0])
    direction = tls.TlsDirection()
    events: list[tls.TlsEvent] = []
    for at in range(0, len(stream), 1 << 14):
        events += direction.feed(record(tls.HANDSHAKE, stream[at : at + (1 << 14)]))
        assert direction._messages.size <= tls.MAX_CERTIFICATE_MESSAGE + (1 << 14) + 4
    certificate, limit, done = events
    assert certificate == tls.CertificateMessage((server.der, ca.der))
    assert isinstance(limit, tls.ProtocolError) and limit.code == ProblemCode.LIMIT
    assert done == tls.OtherHandshake(tls.SERVER_HELLO_DONE)


def certificate_message(certificates: list[bytes], claimed_list: int | None = None) -> bytes:
    entries = b"".join(len(der).to_bytes(3, "big") + der for der in certificates)
    listed = len(entries) if claimed_list is None else claimed_list
    body = listed.to_bytes(3, "big") + entries
    return bytes([tls.CERTIFICATE]) + len(body).to_bytes(3, "big") + body


def test_certificate_list_claiming_more_than_it_holds_keeps_what_is_there():
    _, server, _ = test_pki()
    message = certificate_message([server.der], claimed_list=len(server.der) + 3 + 5000)
    (event,) = events_of(record(tls.HANDSHAKE, message))
    assert event.certificates == (server.der,)
    assert "claims" in event.problem and "holds" in event.problem


def test_certificate_entry_claiming_more_than_the_message_holds():
    _, server, _ = test_pki()
    entry = (len(server.der) + 5000).to_bytes(3, "big") + server.der
    body = len(entry).to_bytes(3, "big") + entry
    message = bytes([tls.CERTIFICATE]) + len(body).to_bytes(3, "big") + body
    (event,) = events_of(record(tls.HANDSHAKE, message))
    assert event.certificates == ()
    assert event.problem == "certificate list is truncated"


def test_truncated_client_hello_is_a_problem_not_an_exception():
    hello_record = records(real_handshake().flights[0].data)[0][1]
    short = bytes([tls.CLIENT_HELLO]) + (20).to_bytes(3, "big") + hello_record[4:24]
    (event,) = events_of(record(tls.HANDSHAKE, short))
    assert isinstance(event, tls.ProtocolError)
    assert "truncated" in event.message


def test_record_buffer_is_bounded_by_one_record():
    """Fed a stream of maximal records, the direction holds at most one record's bytes."""
    direction = tls.TlsDirection()
    body = b"\x17" * 16384
    stream = record(tls.APPLICATION_DATA, body) * 8
    for i in range(0, len(stream), 1000):
        direction.feed(stream[i : i + 1000])
        assert direction._records.size < 16384 + 5 + 1000
