"""capana.dtls: real DTLS handshakes (openssl s_server/s_client -dtls, captured by tcpdump on
the loopback, also re-wrapped as CAPWAP control) give tshark's certificates and, through the
TLS fold, the same facts as a TLS handshake."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from decode_oracle import tshark_innermost_certificates
from facts import ca_names, sha256s
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samplegen.dtlscapture import (
    CAPWAP_CONTROL_PORT,
    DtlsCapture,
    capture_dtls,
    capwap_control,
    missing_tools,
)
from scapy.layers.inet import UDP
from scapy.utils import rdpcap, wrpcap
from test_tls import test_pki
from tshark_oracle import TSHARK

from capana import analyze, tls
from capana.capture import CaptureReader
from capana.certificates import parse_certificate
from capana.decode import Datagram, FrameDecoder
from capana.dtls import (
    DTLS12,
    MAX_BUFFERED,
    MAX_HOLES,
    VERSION_NAMES,
    DtlsDirection,
    capwap_dtls,
    looks_like_dtls_client_hello,
)
from capana.handshake import CLIENT, SERVER, Handshake, HandshakeTracker
from capana.inputs import load_stores
from capana.judging import judge
from capana.model import ProblemCode
from capana.packets import address_text, endpoint_text
from capana.views.records import handshake_record

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
WHY_NOT = missing_tools()
needs_capture = pytest.mark.skipif(WHY_NOT is not None, reason=f"no DTLS capture: {WHY_NOT}")


@pytest.fixture(scope="module", params=["1.0", "1.2"])
def dtls(request, tmp_path_factory) -> DtlsCapture:
    if WHY_NOT is not None:
        pytest.skip(f"no DTLS capture: {WHY_NOT}")
    return capture_dtls(tmp_path_factory.mktemp(f"dtls{request.param}"), request.param)


# --- capana's side: datagrams to directions to events -------------------------------------------

Flow = tuple[bytes, int, bytes, int]


def dtls_datagrams(capture: Path) -> list[tuple[float, Flow, bytes]]:
    """Every UDP payload of the capture, CAPWAP's DTLS header taken off on its control port."""
    decoder = FrameDecoder()
    out = []
    with CaptureReader(capture) as reader:
        for timestamp, linktype, frame, wire_length in reader:
            decoded = decoder.decode(linktype, frame, wire_length, timestamp)
            if not isinstance(decoded, Datagram):
                continue
            payload = decoded.payload
            if CAPWAP_CONTROL_PORT in (decoded.source_port, decoded.destination_port):
                payload = capwap_dtls(payload) or b""
            flow = (
                decoded.source,
                decoded.source_port,
                decoded.destination,
                decoded.destination_port,
            )
            out.append((timestamp, flow, payload))
    return out


def _sender(flow: Flow) -> str:
    return endpoint_text(address_text(flow[0]), flow[1])


class Sessions:
    """DTLS flows found by their first ClientHello; each with its two directions and a fold."""

    def __init__(self) -> None:
        self.directions: dict[Flow, DtlsDirection] = {}
        self.trackers: dict[Flow, tuple[HandshakeTracker, Flow]] = {}
        self.certificates: set[tuple[str, str]] = set()
        self.versions: set[str] = set()  # as the ServerHellos chose them

    def feed(self, timestamp: float, flow: Flow, payload: bytes) -> None:
        reverse = (flow[2], flow[3], flow[0], flow[1])
        if flow not in self.directions:
            if reverse not in self.directions and not looks_like_dtls_client_hello(payload):
                return
            tracker = HandshakeTracker()
            self.directions[flow], self.directions[reverse] = DtlsDirection(), DtlsDirection()
            self.trackers[flow] = self.trackers[reverse] = (tracker, flow)
        tracker, client_flow = self.trackers[flow]
        sender = CLIENT if flow == client_flow else SERVER
        for event in self.directions[flow].feed(payload):
            tracker.on_event(sender, event, timestamp)
            if isinstance(event, tls.ServerHello):
                self.versions.add(VERSION_NAMES[event.version])
            if isinstance(event, tls.CertificateMessage):
                for der in event.certificates:
                    self.certificates.add((_sender(flow), hashlib.sha256(der).hexdigest()))

    def handshakes(self) -> list[Handshake]:
        seen = {id(tracker): (tracker, flow) for tracker, flow in self.trackers.values()}
        return [
            tracker.result(
                capture="",
                client=_sender(flow),
                server=_sender((flow[2], flow[3], flow[0], flow[1])),
                server_port=flow[3],
                service="dtls",
                gaps=0,
            )
            for tracker, flow in seen.values()
        ]


def read(capture: Path, order: Callable[[list], list] = list) -> Sessions:
    sessions = Sessions()
    for timestamp, flow, payload in order(dtls_datagrams(capture)):
        sessions.feed(timestamp, flow, payload)
    return sessions


# --- real handshakes ----------------------------------------------------------------------------


@needs_tshark
def test_real_dtls_gives_tsharks_certificates(dtls: DtlsCapture):
    expected = tshark_innermost_certificates(dtls.path, dtls=True)
    client, server = endpoint_text(*dtls.client), endpoint_text(*dtls.server)
    assert expected == {(client, sha) for sha in dtls.client_chain} | {
        (server, sha) for sha in dtls.server_chain
    }
    assert read(dtls.path).certificates == expected


def test_real_dtls_certificates_travel_in_fragments(dtls: DtlsCapture):
    """The MTU of 600 splits every Certificate message: the test exercises reassembly."""
    fragmented = 0
    for _, _, payload in dtls_datagrams(dtls.path):
        at = 0
        while at + 25 <= len(payload):
            length = int.from_bytes(payload[at + 11 : at + 13], "big")
            is_certificate = payload[at] == tls.HANDSHAKE and payload[at + 13] == tls.CERTIFICATE
            if is_certificate and payload[at + 3 : at + 5] == b"\0\0":
                fragment_length = int.from_bytes(payload[at + 22 : at + 25], "big")
                message_length = int.from_bytes(payload[at + 14 : at + 17], "big")
                fragmented += fragment_length < message_length
            at += 13 + length
    assert fragmented >= 4


def test_real_dtls_becomes_the_facts_of_a_tls_handshake(dtls: DtlsCapture):
    sessions = read(dtls.path)
    assert sessions.versions == {f"DTLS {dtls.path.stem.removeprefix('dtls')}"}
    (handshake,) = sessions.handshakes()
    assert sha256s(handshake.client_chain) == list(dtls.client_chain)
    assert sha256s(handshake.server_chain) == list(dtls.server_chain)
    assert handshake.client_cert_status == "present"
    assert handshake.outcome == "established"
    assert ca_names(handshake) == ("O=Cisco Systems,CN=Cisco Manufacturing CA",)
    assert handshake.client == endpoint_text(*dtls.client)
    assert handshake.problems == ()


def test_datagrams_in_reverse_order_within_each_flight_give_the_same_certificates(dtls):
    """Fragments that arrive last first (UDP reorders) are reassembled all the same."""

    def reverse_runs(datagrams: list) -> list:
        runs: list[list] = []
        for item in datagrams:
            if runs and runs[-1][0][1] == item[1]:
                runs[-1].append(item)
            else:
                runs.append([item])
        return [item for run in runs for item in reversed(run)]

    assert read(dtls.path, reverse_runs).certificates == read(dtls.path).certificates


@needs_tshark
def test_capwap_control_wrapped_dtls_gives_tsharks_certificates(dtls: DtlsCapture, tmp_path):
    capture = capwap_control(dtls, tmp_path / "capwap.pcap")
    expected = tshark_innermost_certificates(capture, dtls=True)
    controller = endpoint_text(dtls.server[0], CAPWAP_CONTROL_PORT)
    assert {sender for sender, _ in expected} == {endpoint_text(*dtls.client), controller}
    assert read(capture).certificates == expected


def test_retransmitted_flights_are_reported_once(dtls: DtlsCapture, tmp_path: Path):
    """Each epoch-0 datagram sent again after the flight, its records renumbered as a peer
    retransmitting does (RFC 6347 4.2.4): the same messages, counted as repeated."""
    frames = rdpcap(str(dtls.path))
    again = []
    for frame in frames:
        payload = bytes(frame[UDP].payload)
        if payload[:1] == bytes([tls.HANDSHAKE]) and payload[3:5] == b"\0\0":
            copy = frame.copy()
            copy[UDP].remove_payload()
            copy[UDP].len = copy[UDP].chksum = None
            copy.time = frame.time
            again.append(copy / _renumbered(payload))
    capture = tmp_path / "again.pcap"
    wrpcap(str(capture), list(frames) + again)
    sessions = read(capture)
    assert sessions.certificates == read(dtls.path).certificates
    assert sum(d.repeated for d in sessions.directions.values()) == len(again)
    (handshake,) = sessions.handshakes()
    assert len(handshake.client_chain) == 2


def _renumbered(datagram: bytes) -> bytes:
    """The same records with sequence numbers moved on by 1,000."""
    out, at = bytearray(datagram), 0
    while at + 13 <= len(out):
        sequence = int.from_bytes(out[at + 5 : at + 11], "big") + 1000
        out[at + 5 : at + 11] = sequence.to_bytes(6, "big")
        at += 13 + int.from_bytes(out[at + 11 : at + 13], "big")
    return bytes(out)


def test_a_datagram_captured_twice_is_read_once(dtls: DtlsCapture):
    doubled = read(dtls.path, lambda items: [i for item in items for i in (item, item)])
    assert sum(d.duplicates for d in doubled.directions.values()) > 10
    (handshake,) = doubled.handshakes()
    (single,) = read(dtls.path).handshakes()
    assert (handshake.alerts, handshake.outcome) == (single.alerts, single.outcome)


@needs_tshark
def test_public_dtls_capture_with_fragmented_certificates(shared_data: Path):
    """nDPI's capture: DTLS 1.0 and 1.2 sessions, a real retransmission, Discord's WebRTC
    client certificate in fragments."""
    capture = shared_data / "pcaps" / "ndpi_dtls_certificate_fragments.pcap"
    sessions = read(capture)
    assert sessions.certificates == tshark_innermost_certificates(capture, dtls=True)
    assert sum(d.repeated for d in sessions.directions.values()) >= 1
    leaves = [parse_certificate(h.client_chain[0]) for h in sessions.handshakes() if h.client_chain]
    assert any("WebRTC" in getattr(leaf, "subject", "") for leaf in leaves)


# --- framing, bounds, bad input -----------------------------------------------------------------


def record(epoch: int, sequence: int, body: bytes, content_type: int = tls.HANDSHAKE) -> bytes:
    header = bytes([content_type]) + DTLS12.to_bytes(2, "big") + epoch.to_bytes(2, "big")
    return header + sequence.to_bytes(6, "big") + len(body).to_bytes(2, "big") + body


def fragment(kind: int, length: int, sequence: int, offset: int, data: bytes) -> bytes:
    return (
        bytes([kind])
        + length.to_bytes(3, "big")
        + sequence.to_bytes(2, "big")
        + offset.to_bytes(3, "big")
        + len(data).to_bytes(3, "big")
        + data
    )


def test_conflicting_fragment_keeps_the_first_bytes():
    certificate = bytes(range(34))
    body = (37).to_bytes(3, "big") + (34).to_bytes(3, "big") + certificate
    direction = DtlsDirection()
    assert direction.feed(record(0, 0, fragment(11, 40, 0, 0, body[:30]))) == []
    assert direction.feed(record(0, 1, fragment(11, 40, 0, 20, b"\xff" * 10))) == []
    assert direction.conflicts == 1
    events = direction.feed(record(0, 2, fragment(11, 40, 0, 30, body[30:])))
    assert events == [tls.CertificateMessage((certificate,))]


def test_oversized_message_stops_the_direction_with_a_reason():
    direction = DtlsDirection()
    events = direction.feed(record(0, 0, fragment(13, MAX_BUFFERED + 1, 0, 0, b"x")))
    assert len(events) == 1 and isinstance(events[0], tls.ProtocolError)
    assert direction.failed


def test_a_certificate_message_over_the_limit_keeps_its_first_certificates():
    """Declared at 1 MiB: the first tls.MAX_CERTIFICATE_MESSAGE bytes are joined (the real
    certificates in them kept, with a LIMIT problem), the rest is never buffered, and the
    next message is read."""
    ca, server, _ = test_pki()
    length = MAX_BUFFERED
    entries = b"".join(len(c.der).to_bytes(3, "big") + c.der for c in (server, ca))
    body = (length - 3).to_bytes(3, "big") + entries
    body += bytes(length - len(body))
    direction, events, size = DtlsDirection(), [], 1200
    for number, at in enumerate(range(0, length, size)):
        piece = fragment(11, length, 0, at, body[at : at + size])
        events += direction.feed(record(0, number, piece))
        assert direction._buffered <= tls.MAX_CERTIFICATE_MESSAGE
    events += direction.feed(record(0, 9999, fragment(14, 0, 1, 0, b"")))
    certificate, limit, done = events
    assert certificate == tls.CertificateMessage((server.der, ca.der))
    assert isinstance(limit, tls.ProtocolError) and limit.code == ProblemCode.LIMIT
    assert done == tls.OtherHandshake(tls.SERVER_HELLO_DONE)


def test_a_message_in_too_many_separate_pieces_stops_the_direction():
    direction = DtlsDirection()
    events = []
    for n in range(MAX_HOLES + 1):
        events += direction.feed(record(0, n, fragment(11, 4 * MAX_HOLES + 8, 0, 4 * n, b"x")))
    assert direction.failed
    assert isinstance(events[-1], tls.ProtocolError)


def test_other_protocols_beside_dtls_are_passed_over_and_bad_records_said_once():
    direction = DtlsDirection()
    assert direction.feed(b"\x00\x01\x00\x08" + b"\x21\x12\xa4\x42" + bytes(12)) == []  # STUN
    assert direction.feed(b"\x80\x00" + bytes(20)) == []  # RTP
    assert direction.skipped == 2
    first = direction.feed(b"\x16\xfe\xfd\x00")
    assert len(first) == 1 and isinstance(first[0], tls.ProtocolError)
    assert direction.feed(b"\x16\x03\x03" + bytes(20)) == []  # said once
    assert direction.feed(record(0, 9, fragment(14, 0, 0, 0, b""))) == [tls.OtherHandshake(14)]


def test_dtls13_encrypted_records_are_recognised():
    """RFC 9147 unified header: 0b001CSLEE; with L the length follows the sequence number."""
    ciphertext = bytes(40)
    with_length = bytes([0x2C, 0x01, 0x02]) + len(ciphertext).to_bytes(2, "big") + ciphertext
    without_length = bytes([0x28, 0x01, 0x02]) + ciphertext
    events = DtlsDirection().feed(with_length + with_length)
    assert events == [tls.EncryptedRecord(tls.APPLICATION_DATA, 40)] * 2
    assert DtlsDirection().feed(without_length) == [
        tls.EncryptedRecord(tls.APPLICATION_DATA, len(without_length))
    ]


def test_capwap_preamble():
    assert capwap_dtls(b"\x01\x00\x00\x00\x16\xfe\xfd") == b"\x16\xfe\xfd"
    assert capwap_dtls(b"\x00\x10\x02\x00" + bytes(8)) is None  # CAPWAP control in clear


_DTLS_LIKE = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda body: b"\x16\xfe\xfd\x00\x00" + body),
    st.binary(max_size=200).map(lambda body: b"\x2c" + body),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_DTLS_LIKE, max_size=8))
def test_random_datagrams_never_raise(datagrams: list[bytes]):
    direction = DtlsDirection()
    for datagram in datagrams:
        direction.feed(datagram)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_damaged_real_datagrams_never_raise(shared_data: Path, data):
    capture = shared_data / "pcaps" / "ndpi_dtls_certificate_fragments.pcap"
    datagrams = [payload for _, _, payload in dtls_datagrams(capture)]
    victim = data.draw(st.integers(0, len(datagrams) - 1))
    payload = datagrams[victim]
    position = data.draw(st.integers(0, len(payload) - 1))
    datagrams[victim] = (
        payload[:position] + bytes([data.draw(st.integers(0, 255))]) + (payload[position + 1 :])
    )
    direction = DtlsDirection()
    for datagram in datagrams:
        direction.feed(datagram)


# --- through the whole pipeline -------------------------------------------------------------


def test_capwap_join_through_analyze(dtls: DtlsCapture, tmp_path: Path):
    """An access point joining its controller over CAPWAP control: reported like a TLS
    handshake, as transport udp, service capwap, its MIC judged against the manufacturing CA."""
    capture = capwap_control(dtls, tmp_path / "capwap.pcap")
    report = analyze(capture, trust=dtls.path.parent / "ca.pem")
    (record,) = report.handshakes
    handshake = record.handshake
    version = f"DTLS {dtls.path.stem.removeprefix('dtls')}"
    assert (handshake.transport, handshake.service, handshake.tls_version) == (
        "udp",
        "capwap",
        version,
    )
    assert handshake.server == endpoint_text(dtls.server[0], CAPWAP_CONTROL_PORT)
    assert handshake.client == endpoint_text(*dtls.client)
    assert sha256s(handshake.client_chain) == list(dtls.client_chain)
    assert (handshake.client_cert_status, handshake.outcome) == ("present", "established")
    assert record.client_leaf is not None and record.client_leaf.kind == "MIC"
    assert record.validation.status == "trusted"
    json_record = handshake_record(record)
    assert (json_record["transport"], json_record["service"]) == ("udp", "capwap")
    assert json_record["tls_version"] == version


@pytest.mark.skipif(WHY_NOT is not None, reason=f"no DTLS capture: {WHY_NOT}")
def test_an_expired_access_point_mic_says_it_cannot_join(tmp_path: Path):
    dtls = capture_dtls(tmp_path / "expired", "1.2", expired=True)
    capture = capwap_control(dtls, tmp_path / "capwap.pcap")
    report = analyze(capture, trust=dtls.path.parent / "ca.pem")
    (record,) = report.handshakes
    assert record.validation.status == "expired"
    (finding,) = [f for f in record.findings if f.code == "certificate-expired"]
    assert "cannot join its controller" in finding.message
    assert "cert-expiry-ignore mic" in finding.advice


def test_dtls_on_any_port_through_analyze(dtls: DtlsCapture):
    """Plain DTLS on an ephemeral port, found by its first bytes: service dtls."""
    (record,) = analyze(dtls.path).handshakes
    assert (record.handshake.transport, record.handshake.service) == ("udp", "dtls")
    assert sha256s(record.handshake.server_chain) == list(dtls.server_chain)


def test_a_real_ap_mic_expired_before_the_capture(shared_data: Path):
    """The MIC of a real Cisco access point (taken from a CAPWAP capture), judged against the
    real Cisco CAs at a time after it expired: the finding says the AP cannot join."""
    certs = shared_data / "certs"
    ap = certs / "mic_cisco_ap_AP3G2-b83861f305ac_from_capwap_pcap.pem"
    der = x509.load_pem_x509_certificate(ap.read_bytes()).public_bytes(Encoding.DER)
    handshake = Handshake(
        capture="capwap.pcap",
        transport="udp",
        client="192.0.2.10:5264",
        server="192.0.2.20:5246",
        server_port=5246,
        service="capwap",
        start=datetime(2025, 6, 1, tzinfo=timezone.utc),
        tls_version="DTLS 1.0",
        cipher_suite=None,
        sni=None,
        client_cert_status="present",
        client_chain=(der,),
        server_chain=(),
        requested_ca_names=None,
        alerts=(),
        outcome="established",
        gaps=0,
    )
    stores = load_stores(str(certs / "cisco_public_ca_bundle.pem"))
    record = judge(handshake, stores, handshake.start)
    assert record.client_leaf is not None and record.client_leaf.kind == "MIC"
    assert record.validation.status == "expired"
    (finding,) = [f for f in record.findings if f.code == "certificate-expired"]
    assert "cannot join its controller" in finding.message
