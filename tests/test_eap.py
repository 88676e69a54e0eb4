"""802.1X EAP-TLS: phone certificates from EAPOL and RADIUS, on real hostapd/wpa_supplicant bytes.

The two captures in ``pcaps/`` were made by ``pcaps/make_eap_captures.py`` (needs root: network
namespaces); these tests only read them, and rebuild damaged copies from their frames.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from capture_files import pcap
from facts import problem_texts
from tshark_oracle import TSHARK, tshark_certificates

from capana import analyze
from capana.capture import CaptureReader
from capana.decode import EapolFrame, decode_frame
from capana.eap import (
    EAP_REQUEST,
    EAP_RESPONSE,
    FLAG_LENGTH,
    FLAG_MORE,
    MAX_TLS_MESSAGE,
    EapPacket,
    EapTlsSession,
    parse_eap,
)
from capana.model import Handshake
from capana.radius import normalized_mac, parse_radius
from capana.scan import scan_capture
from capana.views.records import handshake_record

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
EAPOL = PCAPS / "eapol-eap-tls.pcap"
RADIUS = PCAPS / "radius-eap-tls.pcap"
GROUP = PCAPS / "eapol-group.pcap"
TLS13 = PCAPS / "eapol-tls13.pcapng"
TLS13_PCAP, TLS13_KEYS = PCAPS / "eapol-tls13.pcap", PCAPS / "eapol-tls13.keys"
FREERADIUS = PCAPS / "radius-freeradius.pcap"
ISE_TRUST = PCAPS / "eap-ise-trust"
LSC_PHONE, MIC_PHONE = "2c:31:24:c9:f8:e1", "00:aa:bb:cc:00:11"
SWITCH, RADIUS_SERVER = "00:1b:54:00:00:01", "10.99.0.2:1812"
IDENTITIES = {LSC_PHONE: "CP-8861-SEP2C3124C9F8E1", MIC_PHONE: "CP-7841-SEP00AABBCC0011"}


def read_frames(path: Path) -> list[tuple[float, bytes]]:
    with CaptureReader(path) as reader:
        return [(timestamp, frame) for timestamp, _link, frame, _wire in reader]


def rescan(tmp_path: Path, frames: list[tuple[float, bytes]]) -> list[Handshake]:
    """The handshakes capana finds in a pcap made of ``frames`` (Ethernet)."""
    records = [(int(t), min(round(t % 1 * 1e6), 999_999), frame, None) for t, frame in frames]
    path = tmp_path / "edited.pcap"
    path.write_bytes(pcap(records))
    summary, handshakes = scan_capture(path)
    assert not summary.errors
    return handshakes


def eap_of(frame: bytes) -> EapPacket | None:
    found = decode_frame(1, frame, len(frame))
    return parse_eap(found.body) if isinstance(found, EapolFrame) else None


def tls_fragments(frames: list[tuple[float, bytes]], code: int) -> list[int]:
    """Indices of the EAP-TLS frames with TLS data sent with ``code`` (Request: the server)."""
    found = []
    for index, (_, frame) in enumerate(frames):
        packet = eap_of(frame)
        if packet and packet.code == code and packet.method == 13 and len(packet.data) > 1:
            found.append(index)
    return found


def first_session(frames: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    """The LSC phone's frames only."""
    mac = bytes.fromhex(LSC_PHONE.replace(":", ""))
    return [(t, f) for t, f in frames if mac in (f[0:6], f[6:12])]


# --- the shipped captures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capture", "transport", "server", "port"),
    [(EAPOL, "eapol", SWITCH, 0), (RADIUS, "radius", RADIUS_SERVER, 1812)],
    ids=["eapol", "radius"],
)
def test_phone_certificates_are_classified_and_judged_by_ise(capture, transport, server, port):
    report = analyze(capture, trust={"ise": ISE_TRUST})
    by_phone = {record.handshake.client: record for record in report.handshakes}
    assert set(by_phone) == {LSC_PHONE, MIC_PHONE}
    for mac, record in by_phone.items():
        handshake = record.handshake
        assert (handshake.transport, handshake.service) == (transport, "eap-tls")
        assert (handshake.server, handshake.server_port) == (server, port)
        assert handshake.eap_identity == IDENTITIES[mac]
        assert handshake.tls_version == "TLS 1.2" and handshake.client_cert_status == "present"
        assert handshake.gaps == 0 and not handshake.problems
        assert [c.certificate.subject for c in record.server_chain] == [
            "CN=ise.example.com,O=Example"
        ]
    lsc, mic = by_phone[LSC_PHONE], by_phone[MIC_PHONE]
    assert lsc.client_chain[0].classification.kind == "LSC"
    assert lsc.handshake.outcome == "established" and lsc.validation.status == "trusted"
    assert not lsc.findings
    assert mic.client_chain[0].classification.kind == "MIC"
    assert mic.handshake.outcome == "rejected" and mic.validation.status == "untrusted"
    assert mic.issuer_requested is False  # ISE asked for the CAPF only
    assert {"mic-ca-missing", "issuer-not-requested"} <= {f.code for f in mic.findings}
    assert {device.name for device in report.devices} == {"SEP2C3124C9F8E1", "SEP00AABBCC0011"}


def test_json_record_carries_transport_and_identity():
    record = handshake_record(analyze(EAPOL).handshakes[0])
    assert record["transport"] == "eapol" and record["client"] == LSC_PHONE
    assert record["eap_identity"] == IDENTITIES[LSC_PHONE]


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@pytest.mark.parametrize("capture", [EAPOL, RADIUS], ids=["eapol", "radius"])
def test_tshark_finds_the_same_certificates_per_sender(capture):
    report = analyze(capture)
    seen = set()
    for record in report.handshakes:
        seen |= {(record.handshake.client, c.sha256) for c in record.client_chain}
        seen |= {(record.handshake.server, c.sha256) for c in record.server_chain}
    assert seen == tshark_certificates(capture)
    assert len({sender for sender, _ in seen}) == 3


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_tshark_reads_the_same_eap_identities():
    command = [TSHARK, "-r", str(EAPOL), "-Y", "eap.identity", "-T", "fields"]
    command += ["-e", "eth.src", "-e", "eap.identity"]
    lines = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert dict(line.split("\t") for line in lines.splitlines()) == IDENTITIES
    assert {h.handshake.client: h.handshake.eap_identity for h in analyze(EAPOL).handshakes} == (
        IDENTITIES
    )


# --- as real switches and servers do it ----------------------------------------------------------


def certificates_by_sender(report) -> set[tuple[str, str]]:
    seen = set()
    for record in report.handshakes:
        seen |= {(record.handshake.client, c.sha256) for c in record.client_chain}
        seen |= {(record.handshake.server, c.sha256) for c in record.server_chain}
    return seen


def test_both_ends_sending_to_the_group_address_are_paired():
    """hostapd with use_pae_group_addr=1 on two ports: every EAPOL frame, the switch's too, goes
    to 01:80:c2:00:00:03. Each phone is paired with its own port: server chain, version and
    outcome as when the switch answers the phone's own address."""
    frames = read_frames(GROUP)
    assert {frame[0:6] for _, frame in frames} == {bytes.fromhex("0180c2000003")}
    report = analyze(GROUP, trust={"ise": ISE_TRUST})
    by_phone = {record.handshake.client: record.handshake for record in report.handshakes}
    assert set(by_phone) == {LSC_PHONE, MIC_PHONE}
    ports = {LSC_PHONE: "00:1b:54:00:00:01", MIC_PHONE: "00:1b:54:00:00:02"}
    for mac, handshake in by_phone.items():
        assert handshake.server == ports[mac]
        assert handshake.eap_identity == IDENTITIES[mac]
        assert handshake.tls_version == "TLS 1.2" and handshake.server_chain
        assert handshake.client_cert_status == "present"
    assert by_phone[LSC_PHONE].outcome == "established"
    assert by_phone[MIC_PHONE].outcome == "rejected"


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_group_addressed_eapol_agrees_with_tshark_port_by_port(tmp_path):
    """tshark joins EAP-TLS fragments by the conversation's addresses, which the group address
    makes one for both ports: it is the oracle of each port's frames on their own (phone N was
    on port N, as make_eap_captures.py wired them)."""
    frames = read_frames(GROUP)
    expected = set()
    for phone, port in ((LSC_PHONE, "00:1b:54:00:00:01"), (MIC_PHONE, "00:1b:54:00:00:02")):
        ends = {bytes.fromhex(mac.replace(":", "")) for mac in (phone, port)}
        part = [(t, f) for t, f in frames if f[6:12] in ends]
        records = [(int(t), min(round(t % 1 * 1e6), 999_999), f, None) for t, f in part]
        path = tmp_path / f"{port.replace(':', '')}.pcap"
        path.write_bytes(pcap(records))
        expected |= tshark_certificates(path)
    assert len({sender for sender, _ in expected}) == 4  # two phones, two ports
    assert certificates_by_sender(analyze(GROUP)) == expected


def test_tls13_eap_tls_is_read_with_the_capture_s_own_keys():
    """RFC 9190 between hostapd and wpa_supplicant; hostapd's key log in the pcapng's
    Decryption Secrets Block reads the phone's encrypted certificate."""
    report = analyze(TLS13, trust={"ise": ISE_TRUST})
    by_phone = {record.handshake.client: record for record in report.handshakes}
    assert set(by_phone) == {LSC_PHONE, MIC_PHONE}
    for record in by_phone.values():
        handshake = record.handshake
        assert handshake.tls_version == "TLS 1.3" and handshake.decryption == "decrypted"
        assert handshake.client_cert_status == "present"
    lsc, mic = by_phone[LSC_PHONE], by_phone[MIC_PHONE]
    assert lsc.client_chain[0].classification.kind == "LSC"
    assert (lsc.handshake.outcome, lsc.validation.status) == ("established", "trusted")
    assert mic.client_chain[0].classification.kind == "MIC"
    assert mic.handshake.outcome == "rejected"  # hostapd sends EAP-Failure, no alert


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_tls13_eap_tls_agrees_with_tshark_reading_the_same_keys():
    """tshark (4.0) decrypts the phone's flight but not the server's, which reaches it joined
    with the ServerHello in one EAP message: capana reads both, and the server's chain is the
    one the phones' EAP-TLS 1.2 sessions show in clear."""
    clear = certificates_by_sender(analyze(EAPOL))
    for capture, keys in ((TLS13, None), (TLS13_PCAP, TLS13_KEYS)):
        found = certificates_by_sender(analyze(capture, keylog=keys))
        expected = tshark_certificates(capture, keylog=keys)
        assert expected and expected <= found
        assert {sender for sender, _ in found - expected} == {SWITCH}
        assert {sha for _, sha in found - expected} == {sha for s, sha in clear if s == SWITCH}


def test_tls13_eap_tls_without_keys_says_the_certificate_is_encrypted():
    report = analyze(TLS13_PCAP)
    assert {r.handshake.client_cert_status for r in report.handshakes} == {"encrypted"}
    assert {r.handshake.outcome for r in report.handshakes} == {"established", "rejected"}
    with_keys = analyze(TLS13_PCAP, keylog=TLS13_KEYS)
    assert {r.handshake.client_cert_status for r in with_keys.handshakes} == {"present"}


def test_freeradius_with_the_length_on_every_fragment_and_a_nak_to_peap():
    """FreeRADIUS sets L on every EAP-TLS fragment; its RADIUS packets travel in IPv4
    fragments (MTU 576); the MIC phone answers EAP-TLS with a Nak and runs PEAP."""
    frames = read_frames(FREERADIUS)
    assert any(frame[20] & 0x20 for _, frame in frames)  # IPv4 more-fragments
    summary, handshakes = scan_capture(FREERADIUS)
    assert summary.warnings == ()
    by_phone = {handshake.client: handshake for handshake in handshakes}
    lsc, mic = by_phone[LSC_PHONE], by_phone[MIC_PHONE]
    assert (lsc.service, lsc.client_cert_status, lsc.outcome) == (
        "eap-tls",
        "present",
        "established",
    )
    assert lsc.gaps == 0 and lsc.problems == ()
    assert (mic.service, mic.outcome) == ("peap", "established")
    assert mic.client_chain == () and mic.server_chain and mic.gaps == 0
    assert mic.eap_identity == IDENTITIES[MIC_PHONE]


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_freeradius_agrees_with_tshark():
    assert certificates_by_sender(analyze(FREERADIUS)) == tshark_certificates(FREERADIUS)


# --- fragments: lost, repeated, reordered ACKs ---------------------------------------------------


def test_the_capture_really_is_fragmented():
    frames = first_session(read_frames(EAPOL))
    server = tls_fragments(frames, EAP_REQUEST)
    flags = [eap_of(frames[i][1]).data[0] for i in server]
    assert flags[:3] == [FLAG_LENGTH | FLAG_MORE, FLAG_MORE, 0]  # ServerHello..Done in three


def test_a_repeated_fragment_is_taken_once(tmp_path):
    frames = first_session(read_frames(EAPOL))
    server = tls_fragments(frames, EAP_REQUEST)
    client = tls_fragments(frames, EAP_RESPONSE)
    frames.insert(server[1] + 1, frames[server[1]])
    frames.insert(client[-1] + 2, frames[client[-1] + 1])  # indices moved by one
    (handshake,) = rescan(tmp_path, frames)
    assert handshake.client_cert_status == "present" and len(handshake.client_chain) == 1
    assert handshake.gaps == 0 and handshake.outcome == "established"
    assert problem_texts(handshake) == ["2 EAP-TLS fragments seen twice"]


@pytest.mark.parametrize("lost", [0, 1, 2], ids=["first", "middle", "last"])
def test_a_lost_server_fragment_loses_the_server_flight_only(tmp_path, lost):
    frames = first_session(read_frames(EAPOL))
    del frames[tls_fragments(frames, EAP_REQUEST)[lost]]
    (handshake,) = rescan(tmp_path, frames)
    assert handshake.gaps == 1
    assert handshake.server_chain == () and handshake.requested_ca_names is None
    assert handshake.client_cert_status == "present"  # the phone's flight is whole
    assert handshake.eap_identity == IDENTITIES[LSC_PHONE]
    assert handshake.outcome == "established"  # EAP-Success says so


def test_a_lost_client_fragment_hides_the_phone_certificate(tmp_path):
    frames = first_session(read_frames(EAPOL))
    del frames[tls_fragments(frames, EAP_RESPONSE)[1]]  # the first fragment of its Certificate
    (handshake,) = rescan(tmp_path, frames)
    assert handshake.gaps == 1 and handshake.client_chain == ()
    assert handshake.client_cert_status == "unknown"  # it may have been in the hole
    assert len(handshake.server_chain) == 1


def test_an_ack_captured_after_the_next_fragment_changes_nothing(tmp_path):
    frames = first_session(read_frames(EAPOL))
    expected = rescan(tmp_path, frames)[0]
    first = tls_fragments(frames, EAP_REQUEST)[0]
    ack = frames.pop(first + 1)  # the phone's ACK of the first server fragment
    assert eap_of(ack[1]).data == b"\x00"
    frames.insert(first + 2, ack)
    (handshake,) = rescan(tmp_path, frames)
    assert handshake.client_chain == expected.client_chain
    assert handshake.server_chain == expected.server_chain
    assert (handshake.gaps, handshake.outcome) == (0, "established")


def test_eapol_behind_vlan_tags_and_a_second_authentication(tmp_path):
    frames = first_session(read_frames(EAPOL))
    tagged = [(t, f[:12] + bytes.fromhex("8100006481000c8a") + f[12:]) for t, f in frames]
    again = [(t + 60, f) for t, f in tagged]
    handshakes = rescan(tmp_path, tagged + again)
    assert [h.client for h in handshakes] == [LSC_PHONE, LSC_PHONE]
    assert all(h.client_cert_status == "present" and h.gaps == 0 for h in handshakes)


def test_radius_sessions_sharing_one_udp_port_are_told_apart(tmp_path):
    """Both phones through one NAS socket: State and Calling-Station-Id keep them apart."""
    frames = read_frames(RADIUS)
    ports = {f[34:36] for _, f in frames if f[36:38] == (1812).to_bytes(2, "big")}
    first, second = sorted(ports)  # one NAS socket per phone in the shipped capture
    same = [
        (t, f[:34] + first + f[36:] if f[34:36] == second else f[:36] + first + f[38:])
        if second in (f[34:36], f[36:38])
        else (t, f)
        for t, f in frames
    ]
    handshakes = rescan(tmp_path, same)
    assert {h.client: h.outcome for h in handshakes} == {
        LSC_PHONE: "established",
        MIC_PHONE: "rejected",
    }


# --- the pieces alone ----------------------------------------------------------------------------


def test_radius_attributes_are_joined_and_the_station_normalised():
    eap = bytes([2, 7, 0, 10, 1]) + b"phone"
    attributes = bytes([79, 2 + 4]) + eap[:4] + bytes([79, 2 + 6]) + eap[4:]
    attributes += bytes([31, 19]) + b"2C-31-24-C9-F8-E1" + bytes([24, 6]) + b"abcd"
    data = bytes([1, 42]) + (20 + len(attributes)).to_bytes(2, "big") + bytes(16) + attributes
    packet = parse_radius(data)
    assert packet is not None
    assert (packet.code, packet.identifier, packet.eap) == (1, 42, eap)
    assert (packet.calling_station, packet.state) == (LSC_PHONE, b"abcd")
    assert parse_radius(data[:-1]) is None  # an attribute runs past the end
    assert normalized_mac("2c31.24c9.f8e1") == LSC_PHONE
    assert normalized_mac("host/phone") == "host/phone"


def tls_packet(code: int, identifier: int, flags: int, payload: bytes, total: int = 0) -> EapPacket:
    length = total.to_bytes(4, "big") if flags & FLAG_LENGTH else b""
    return EapPacket(code, identifier, 13, bytes([flags]) + length + payload)


def test_a_message_longer_than_its_length_field_is_dropped_as_lost():
    session = EapTlsSession()
    session.feed(tls_packet(EAP_RESPONSE, 1, FLAG_LENGTH | FLAG_MORE, b"\x16\x03\x03", 10), 0.0)
    session.feed(tls_packet(EAP_RESPONSE, 2, 0, b"\x00\x01"), 0.0)
    assert session._gaps == 1 and session.tracker.hopeless is False


def test_buffered_bytes_are_bounded():
    session = EapTlsSession()
    chunk = bytes(60_000)
    session.feed(tls_packet(EAP_RESPONSE, 0, FLAG_LENGTH | FLAG_MORE, chunk, 1 << 30), 0.0)
    for identifier in range(1, MAX_TLS_MESSAGE // len(chunk) + 2):
        session.feed(tls_packet(EAP_RESPONSE, identifier, FLAG_MORE, chunk), 0.0)
    joiner = session._joiners["client"]
    assert len(joiner.buffer) <= MAX_TLS_MESSAGE and session._gaps == 1


def test_malformed_eap_is_ignored():
    assert parse_eap(b"\x02\x01\x00") is None
    assert parse_eap(b"\x02\x01\x00\x40abc") is None  # claims more than it has
    assert parse_eap(b"\x09\x01\x00\x04") is None  # no such code
    assert parse_eap(b"\x03\x05\x00\x04" + bytes(42)) == EapPacket(3, 5, None, b"")  # padding
