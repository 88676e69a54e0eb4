"""capana.handshake: the events of both directions folded into one handshake's facts.

Every handshake is a real one (OpenSSL via ``test_tls.real_handshake``); the flights are fed
in the order they crossed the wire, as a connection would feed them.
"""

from __future__ import annotations

import contextlib
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pytest
from facts import ca_names, problem_texts, sha256s
from facts import ca_names as ca_names_of
from samplegen import pki
from test_tls import CA_NAME, SERVER_NAME, hello_retry_handshake, real_handshake, test_pki

from capana import tls
from capana.handshake import CLIENT, SERVER, HandshakeTracker
from capana.model import Handshake

START = 1_709_283_600.25  # 2024-03-01 09:00:00.25 UTC


def track(flights: Iterable[tuple[str, bytes]]) -> tuple[Handshake, HandshakeTracker]:
    """Feed (sender, bytes) flights, one second apart, and read the facts back."""
    directions = {CLIENT: tls.TlsDirection(), SERVER: tls.TlsDirection()}
    tracker = HandshakeTracker()
    for number, (sender, data) in enumerate(flights):
        for event in directions[sender].feed(data):
            tracker.on_event(sender, event, START + number)
    handshake = tracker.result(
        capture="test.pcap",
        client="10.1.1.20:51234",
        server="10.1.1.5:2443",
        server_port=2443,
        service="sccp-tls",
        gaps=0,
    )
    return handshake, tracker


def flights_of(result, count: int | None = None) -> list[tuple[str, bytes]]:
    return [(flight.sender, flight.data) for flight in result.flights[:count]]


@pytest.mark.parametrize(
    ("version", "name"),
    [("1.0", "TLS 1.0"), ("1.1", "TLS 1.1"), ("1.2", "TLS 1.2"), ("1.3", "TLS 1.3")],
)
def test_version_is_the_one_the_server_chose(version, name):
    handshake, _ = track(flights_of(real_handshake(version)))
    assert handshake.tls_version == name
    assert handshake.outcome == "established"


@pytest.mark.parametrize(
    ("version", "iana"),
    [
        ("1.0", "TLS_RSA_WITH_AES_256_CBC_SHA"),
        ("1.2", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
        ("1.3", "TLS_AES_256_GCM_SHA384"),
    ],
)
def test_cipher_suite_is_the_iana_name_of_what_openssl_chose(version, iana):
    result = real_handshake(version)
    handshake, _ = track(flights_of(result))
    assert handshake.cipher_suite == iana
    assert result.cipher in ("AES256-SHA", "ECDHE-RSA-AES256-GCM-SHA384", "TLS_AES_256_GCM_SHA384")


def test_tls12_phone_with_its_lsc():
    handshake, tracker = track(flights_of(real_handshake()))
    ca, server, phone = test_pki()
    assert handshake.sni == SERVER_NAME
    assert handshake.client_cert_status == "present"
    assert sha256s(handshake.client_chain) == [pki.fingerprint(phone)]
    assert sha256s(handshake.server_chain) == [pki.fingerprint(server), pki.fingerprint(ca)]
    assert ca_names(handshake) == (CA_NAME,)
    assert handshake.start.isoformat() == "2024-03-01T09:00:00.250000+00:00"
    assert handshake.alerts == ()  # the close_notify after the handshake is the session's
    assert handshake.problems == ()
    assert tracker.done


@pytest.mark.parametrize(
    ("options", "status", "ca_names"),
    [
        ({}, "present", (CA_NAME,)),
        ({"client_cert": False}, "absent", (CA_NAME,)),
        ({"request": False}, "not_requested", None),
        ({"version": "1.3"}, "encrypted", None),
        ({"version": "1.3", "client_cert": False}, "encrypted", None),
        ({"version": "1.3", "request": False}, "encrypted", None),
    ],
)
def test_client_certificate_status(options, status, ca_names):
    """TLS 1.3 hides the client's Certificate and the request: "encrypted", never "absent"."""
    handshake, _ = track(flights_of(real_handshake(**options)))
    assert handshake.client_cert_status == status
    assert ca_names_of(handshake) == ca_names
    if status != "present":
        assert handshake.client_chain == ()


def test_server_rejecting_the_phone_with_a_plaintext_unknown_ca():
    result = real_handshake(trusted=False)
    handshake, tracker = track(flights_of(result))
    assert handshake.outcome == "rejected"
    assert [(a.sender, a.level, a.description) for a in handshake.alerts] == [
        ("server", "fatal", "unknown_ca")
    ]
    assert handshake.client_cert_status == "present"
    assert tracker.done


def test_tls13_server_rejecting_the_phone_sends_an_encrypted_alert():
    result = real_handshake("1.3", trusted=False)
    assert result.fatal_alert.sender == "server"
    handshake, tracker = track(flights_of(result))
    assert handshake.outcome == "rejected"
    assert handshake.client_cert_status == "encrypted"
    assert [(a.sender, a.level) for a in handshake.alerts] == [("server", "encrypted")]
    assert tracker.done


def test_tls13_server_requiring_a_certificate_the_phone_lacks():
    result = real_handshake("1.3", client_cert=False, require=True)
    assert not result.established
    handshake, _ = track(flights_of(result))
    assert handshake.outcome == "rejected"
    assert handshake.client_cert_status == "encrypted"


def test_hello_retry_request_still_gives_tls13_and_its_cipher():
    handshake, _ = track(hello_retry_handshake())
    assert handshake.tls_version == "TLS 1.3"
    assert handshake.cipher_suite.startswith("TLS_AES_")
    assert handshake.sni == SERVER_NAME
    assert handshake.client_cert_status == "encrypted"
    assert handshake.problems == ()


@pytest.mark.parametrize(
    ("flights", "status"),
    [
        (1, "unknown"),  # only the ClientHello
        (2, "unknown"),  # the server asked; the capture ends before the phone answered
    ],
)
def test_capture_ending_mid_handshake_is_incomplete(flights, status):
    handshake, tracker = track(flights_of(real_handshake(), flights))
    assert handshake.outcome == "incomplete"
    assert handshake.client_cert_status == status
    assert not tracker.done


def test_server_chain_is_known_even_when_the_client_flight_is_missing():
    handshake, _ = track(flights_of(real_handshake(), 2))
    assert len(handshake.server_chain) == 2
    assert handshake.client_chain == ()


def test_done_once_both_finished_messages_went_by():
    result = real_handshake(app_data=False)
    directions = {CLIENT: tls.TlsDirection(), SERVER: tls.TlsDirection()}
    tracker = HandshakeTracker()
    seen = []
    for sender, data in flights_of(result):
        for event in directions[sender].feed(data):
            tracker.on_event(sender, event, START)
        seen.append(tracker.done)
    # ClientHello, server flight, client Certificate..Finished, server CCS+Finished, closes.
    assert seen[:4] == [False, False, False, True]


def test_a_record_stream_without_hellos_is_hopeless():
    """Joined mid-session: application data both ways, never a hello."""
    _, tracker = track([("client", tls_application_data())] * 6)
    assert tracker.hopeless


def tls_application_data() -> bytes:
    return bytes([tls.APPLICATION_DATA, 3, 3, 0, 40]) + bytes(40)


def test_hostile_certificate_list_is_a_problem_of_the_handshake():
    _, server, _ = test_pki()
    entries = len(server.der).to_bytes(3, "big") + server.der
    body = (len(entries) + 999).to_bytes(3, "big") + entries
    message = bytes([tls.CERTIFICATE]) + len(body).to_bytes(3, "big") + body
    certificate_record = bytes([tls.HANDSHAKE, 3, 3]) + len(message).to_bytes(2, "big") + message
    result = real_handshake()
    server_hello = result.flights[1].data[: tlsrun_record_end(result.flights[1].data)]
    handshake, _ = track(
        [("client", result.flights[0].data), ("server", server_hello + certificate_record)]
    )
    assert sha256s(handshake.server_chain) == [pki.fingerprint(server)]
    assert any("server Certificate: certificate list claims" in p for p in problem_texts(handshake))


def tlsrun_record_end(data: bytes) -> int:
    """Where the first record of ``data`` ends."""
    return 5 + int.from_bytes(data[3:5], "big")


def resumed_tls12_handshake() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """A phone's full TLS 1.2 handshake with its LSC, then one resuming that session.

    Python's ``ssl`` on memory BIOs; the resumed one is abbreviated (RFC 5246, 7.3): ServerHello,
    ChangeCipherSpec and Finished, no Certificate, CertificateRequest or ServerHelloDone.
    """
    ca, server, phone = test_pki()
    folder = Path(tempfile.mkdtemp())
    for name, data in {
        "server.pem": server.pem + ca.pem,
        "server-key.pem": server.key_pem,
        "phone.pem": phone.pem,
        "phone-key.pem": phone.key_pem,
        "ca.pem": ca.pem,
    }.items():
        (folder / name).write_bytes(data)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(folder / "server.pem", folder / "server-key.pem")
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    server_ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
    server_ctx.load_verify_locations(folder / "ca.pem")
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.load_cert_chain(folder / "phone.pem", folder / "phone-key.pem")
    for ctx in (server_ctx, client_ctx):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    def run(session: ssl.SSLSession | None) -> tuple[ssl.SSLObject, list[tuple[str, bytes]]]:
        bios = [ssl.MemoryBIO() for _ in range(4)]
        client = client_ctx.wrap_bio(bios[0], bios[1], server_hostname=SERVER_NAME, session=session)
        server_side = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
        flights = []
        for _ in range(6):
            for name, conn, outgoing, peer_incoming in (
                (CLIENT, client, bios[1], bios[2]),
                (SERVER, server_side, bios[3], bios[0]),
            ):
                with contextlib.suppress(ssl.SSLWantReadError):
                    conn.do_handshake()
                data = outgoing.read()
                if data:
                    flights.append((name, data))
                    peer_incoming.write(data)
        return client, flights

    first, full = run(None)
    second, abbreviated = run(first.session)
    assert not first.session_reused and second.session_reused
    return full, abbreviated


def test_resumed_tls12_session_does_not_claim_the_certificate_was_not_requested():
    """The phone's certificate went in the earlier full handshake; this one cannot show it."""
    full, abbreviated = resumed_tls12_handshake()
    assert track(full)[0].client_cert_status == "present"
    handshake, tracker = track(abbreviated)
    assert handshake.outcome == "established"
    assert handshake.client_cert_status == "unknown"
    assert any("session resumed" in problem for problem in problem_texts(handshake))
    assert tracker.done


def test_alert_of_unknown_level_keeps_to_the_contracts_levels():
    """JSON alerts[].level is warning, fatal or encrypted; a level byte of 7 ends the handshake."""
    flights = flights_of(real_handshake(), 2)
    handshake, tracker = track([*flights, ("server", bytes([tls.ALERT, 3, 3, 0, 2, 7, 48]))])
    assert [(a.sender, a.level, a.description) for a in handshake.alerts] == [
        ("server", "fatal", "unknown_ca")
    ]
    assert handshake.outcome == "rejected"
    assert "server alert with unknown level 7" in problem_texts(handshake)
    assert tracker.done
