"""capana.scan end to end: capture files written from real OpenSSL handshakes, read back.

Each test writes a small capture with ``samplegen.wire`` (every link type, pcap and pcapng,
damaged TCP, snaplen, non-TLS traffic, hostile TLS lengths) and checks what ``scan_capture``
says about it: the handshakes, their chains by SHA-256, and the capture's errors.
"""

from __future__ import annotations

import struct
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from facts import problem_texts, sha256s
from samplegen import pki, wire
from samplegen.tlsrun import record_offsets
from test_tls import SERVER_NAME, real_handshake, test_pki
from tshark_oracle import TSHARK

from capana.model import ProblemCode
from capana.scan import scan_capture

PHONE = ("10.1.1.20", 51234)
PHONE_V6 = ("fd00:20::20", 51234)
CUCM = ("10.1.1.5", 2443)
CUCM_V6 = ("fd00:10::5", 2443)
WHEN = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)


def tls_packets(
    result=None,
    *,
    client=PHONE,
    server=CUCM,
    start: datetime = WHEN,
    odd_splits: bool = False,
    **options,
) -> list[wire.Packet]:
    """One TCP connection carrying a real handshake; ``odd_splits`` cuts inside record headers."""
    result = result or real_handshake()
    conv = wire.TcpConversation(client, server, start, **options)
    conv.open()
    for flight in result.flights:
        cuts = [at + 3 for at in record_offsets(flight.data)] if odd_splits else ()
        conv.send(flight.sender, flight.data, cuts=cuts)
    conv.close()
    return conv.packets()


def scan(path: Path):
    summary, handshakes = scan_capture(path)
    assert summary.errors == ()
    return summary, handshakes


def only(handshakes):
    assert len(handshakes) == 1, handshakes
    return handshakes[0]


def client_and_server_chains(handshake) -> tuple[list[str], list[str]]:
    return (
        sha256s(handshake.client_chain),
        sha256s(handshake.server_chain),
    )


def expected_chains() -> tuple[list[str], list[str]]:
    ca, server, phone = test_pki()
    return [pki.fingerprint(phone)], [pki.fingerprint(server), pki.fingerprint(ca)]


LINKS = {
    "ethernet": wire.Link(),
    "802.1q": wire.Link(vlans=(110,)),
    "qinq": wire.Link(vlans=(200, 110)),
    "sll": wire.Link("sll", capture_host=CUCM[0]),
    "sll2": wire.Link("sll2", capture_host=CUCM[0]),
    "raw": wire.Link("raw"),
    "bsd_loopback": wire.Link("null"),
}


@pytest.mark.parametrize("suffix", [".pcap", ".pcapng", ".pcapng.gz"])
@pytest.mark.parametrize("link", LINKS)
def test_every_link_type_and_file_format(tmp_path, link, suffix):
    path = tmp_path / f"capture{suffix}"
    packets = tls_packets()
    if suffix == ".pcap":
        wire.write_pcap(path, packets, link=LINKS[link], nanosecond=True)
    else:
        wire.write_pcapng(path, [(LINKS[link], packets)], big_endian=link == "sll2")
    summary, handshakes = scan(path)
    handshake = only(handshakes)
    assert summary.packets == len(packets)
    assert client_and_server_chains(handshake) == expected_chains()
    assert handshake.start == packets[3].time  # the ClientHello, after SYN, SYN-ACK, ACK
    assert handshake.sni == SERVER_NAME


def test_pcapng_with_interfaces_of_different_link_types(tmp_path):
    """A SPAN port on a VLAN and a Linux host's "any" capture, in one file."""
    later = WHEN + timedelta(seconds=2)
    phone2 = ("10.1.1.21", 50002)
    path = wire.write_pcapng(
        tmp_path / "two.pcapng",
        [
            (wire.Link(vlans=(110,)), tls_packets(start=later)),
            (wire.Link("sll2", name="any"), tls_packets(client=phone2, start=WHEN)),
        ],
    )
    _, handshakes = scan(path)
    assert [h.client for h in handshakes] == ["10.1.1.21:50002", "10.1.1.20:51234"]


def test_ipv6_with_extension_headers_and_damage(tmp_path):
    conv = wire.TcpConversation(PHONE_V6, CUCM_V6, WHEN, ipv6_ext=True, mss=1200)
    conv.open()
    for flight in real_handshake().flights:
        conv.send(flight.sender, flight.data)
    conv.close()
    server_data = conv.data_indices("server")
    conv.swap(server_data[0], server_data[1])
    conv.retransmit(conv.data_indices("client")[1])
    path = wire.write_pcap(tmp_path / "v6.pcap", conv.packets())
    handshake = only(scan(path)[1])
    assert handshake.client == "[fd00:20::20]:51234"
    assert handshake.server == "[fd00:10::5]:2443"
    assert client_and_server_chains(handshake) == expected_chains()


def test_records_cut_inside_their_headers(tmp_path):
    path = wire.write_pcap(tmp_path / "odd.pcap", tls_packets(odd_splits=True, mss=300))
    handshake = only(scan(path)[1])
    assert client_and_server_chains(handshake) == expected_chains()
    assert handshake.outcome == "established"


@pytest.mark.parametrize(
    ("options", "version", "status", "outcome", "alert"),
    [
        ({"version": "1.0"}, "TLS 1.0", "present", "established", None),
        ({"version": "1.1"}, "TLS 1.1", "present", "established", None),
        ({}, "TLS 1.2", "present", "established", None),
        ({"version": "1.3"}, "TLS 1.3", "encrypted", "established", None),
        ({"trusted": False}, "TLS 1.2", "present", "rejected", ("server", "fatal", "unknown_ca")),
        ({"version": "1.3", "trusted": False}, "TLS 1.3", "encrypted", "rejected", None),
        ({"request": False}, "TLS 1.2", "not_requested", "established", None),
    ],
)
def test_handshake_facts_end_to_end(tmp_path, options, version, status, outcome, alert):
    path = wire.write_pcap(tmp_path / "one.pcap", tls_packets(real_handshake(**options)))
    handshake = only(scan(path)[1])
    assert (handshake.tls_version, handshake.client_cert_status, handshake.outcome) == (
        version,
        status,
        outcome,
    )
    if alert:
        assert (handshake.alerts[0].sender, handshake.alerts[0].level) == alert[:2]
        assert handshake.alerts[0].description == alert[2]


def test_tls_on_a_non_standard_port(tmp_path):
    path = wire.write_pcap(tmp_path / "port.pcap", tls_packets(server=("10.1.1.5", 40443)))
    handshake = only(scan(path)[1])
    assert handshake.service == "tls"
    assert client_and_server_chains(handshake) == expected_chains()


@pytest.mark.parametrize("snaplen", [128, 200, 600, 1000])
def test_snaplen_cut_capture_says_truncated_and_why(tmp_path, snaplen):
    """The ClientHello's header fits; the certificates do not (128: CUCM's default capture).
    The handshake is reported, its certificate "truncated", nothing guessed."""
    path = wire.write_pcap(tmp_path / "cut.pcap", tls_packets(), snaplen=snaplen)
    handshake = only(scan(path)[1])
    assert handshake.client_cert_status == "truncated"
    assert handshake.client_chain == ()
    assert handshake.client == "10.1.1.20:51234"
    assert handshake.start is not None
    codes = handshake.problem_codes
    assert {ProblemCode.SNAPLEN, ProblemCode.MESSAGE_TRUNCATED} <= codes


def test_lost_segment_is_a_gap_and_the_certificate_is_not_made_up(tmp_path):
    conv = wire.TcpConversation(PHONE, CUCM, WHEN)
    conv.open()
    for flight in real_handshake().flights:
        conv.send(flight.sender, flight.data, cuts=record_offsets(flight.data))
    conv.close()
    conv.drop(conv.data_indices("client")[1])  # the phone's Certificate record
    path = wire.write_pcap(tmp_path / "gap.pcap", conv.packets())
    handshake = only(scan(path)[1])
    assert handshake.gaps == 1
    assert handshake.client_chain == ()
    assert handshake.client_cert_status == "unknown"


def write_frames(path: Path, frames: list[bytes], linktype: int = 1) -> Path:
    """A pcap of hand-made frames (what wire.Link cannot frame, e.g. ARP)."""
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    seconds = int(WHEN.timestamp())
    records = b"".join(
        struct.pack("<IIII", seconds, n, len(frame), len(frame)) + frame
        for n, frame in enumerate(frames)
    )
    path.write_bytes(header + records)
    return path


def test_capture_without_tls_reports_only_the_cleartext_phone_session(tmp_path):
    """No TLS anywhere: the one thing reported is the phone's SCCP in clear on 2000 (a
    non-secure registration); RTP, DNS, ARP and other TCP are not."""
    phone, cucm = PHONE, ("10.1.1.5", 2000)
    packets = wire.merge(
        wire.rtp_stream(("10.1.1.20", 20000), ("10.1.1.21", 20002), WHEN, count=20),
        wire.dns_exchange(("10.1.1.20", 40000), ("10.1.1.1", 53), WHEN, "cucm.example.com"),
        wire.plain_tcp(phone, cucm, WHEN, [("client", b"\x0c\x00\x00\x00" * 4)] * 3),
        wire.plain_tcp(phone, CUCM, WHEN, [("client", b"REGISTER sip:cucm SIP/2.0\r\n\r\n")]),
    )
    link = wire.Link()
    arp = bytes.fromhex("ffffffffffff02000000000108060001080006040001") + bytes(20)
    frames = [link.frame(packet) for packet in packets] + [arp]
    summary, handshakes = scan(write_frames(tmp_path / "plain.pcap", frames))
    assert [(h.service, h.cleartext, h.client_chain) for h in handshakes] == [("sccp", True, ())]
    assert summary.packets == len(frames)
    assert summary.warnings == ()


def test_empty_capture(tmp_path):
    summary, handshakes = scan(write_frames(tmp_path / "empty.pcap", []))
    assert (summary.packets, handshakes) == (0, [])


def hostile_server_flight(kind: str) -> bytes:
    if kind == "record_length_0xffff":
        return struct.pack(">BHH", 22, 0x0303, 0xFFFF) + bytes(3000)
    if kind == "handshake_length_2_24":
        body = bytes([11]) + (2**24 - 1).to_bytes(3, "big") + bytes(1000)
        return struct.pack(">BHH", 22, 0x0303, len(body)) + body
    _, server, _ = test_pki()
    entries = len(server.der).to_bytes(3, "big") + server.der
    body = (len(entries) + 70000).to_bytes(3, "big") + entries
    message = bytes([11]) + len(body).to_bytes(3, "big") + body
    hello = real_handshake().flights[1].data
    first_record = hello[: 5 + int.from_bytes(hello[3:5], "big")]
    return first_record + struct.pack(">BHH", 22, 0x0303, len(message)) + message


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("record_length_0xffff", "claims 65535 bytes"),
        ("handshake_length_2_24", "of 16777215 bytes cut short"),
        ("certificate_list_too_long", "certificate list claims"),
    ],
)
def test_hostile_lengths_are_problems_not_exceptions(tmp_path, kind, problem):
    conv = wire.TcpConversation(PHONE, CUCM, WHEN)
    conv.open()
    conv.send("client", real_handshake().flights[0].data)
    conv.send("server", hostile_server_flight(kind))
    conv.close()
    handshake = only(scan(wire.write_pcap(tmp_path / "hostile.pcap", conv.packets()))[1])
    assert any(problem in text for text in problem_texts(handshake)), handshake.problems
    assert handshake.outcome == "incomplete"


def test_tso_capture_with_ipv4_total_length_zero(tmp_path):
    """Captured on the sender before segmentation offload: every IPv4 total length reads 0."""
    tso = [
        wire.Packet(p.time_ns, p.src, p.dst, p.ip[:2] + b"\0\0" + p.ip[4:])
        for p in tls_packets(mss=9000)
    ]
    _, handshakes = scan(wire.write_pcap(tmp_path / "tso.pcap", tso))
    assert client_and_server_chains(only(handshakes)) == expected_chains()


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_keep_alives_are_not_overlaps(tmp_path):
    """A keep-alive (one old or garbage byte at the next sequence number minus one, RFC 1122
    4.2.3.6) from each side between the flights: tshark calls them keep-alives, and capana
    neither counts them as overlaps with different contents nor lets them into the stream."""
    conv = wire.TcpConversation(PHONE, CUCM, WHEN)
    conv.open()
    for flight in real_handshake().flights:
        conv.send(flight.sender, flight.data)
        last = conv.data_indices(flight.sender)[-1]
        conv.overlap(last, back=1, length=1, same=False)
    conv.close()
    path = wire.write_pcap(tmp_path / "keepalive.pcap", conv.packets())
    command = [TSHARK, "-r", str(path), "-Y", "tcp.analysis.keep_alive"]
    flagged = subprocess.run(
        [*command, "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(flagged) == len(real_handshake().flights)
    handshake = only(scan(path)[1])
    assert handshake.problems == ()
    assert client_and_server_chains(handshake) == expected_chains()
    assert handshake.outcome == "established"


def test_ipv6_payload_length_zero_takes_the_captured_length(tmp_path):
    """BIG TCP / segmentation offload on IPv6: the payload length field reads 0."""
    tso = [
        wire.Packet(p.time_ns, p.src, p.dst, p.ip[:4] + b"\0\0" + p.ip[6:])
        for p in tls_packets(client=PHONE_V6, server=CUCM_V6, mss=9000)
    ]
    _, handshakes = scan(wire.write_pcap(tmp_path / "big-tcp.pcap", tso))
    handshake = only(handshakes)
    assert client_and_server_chains(handshake) == expected_chains()
    assert handshake.client == "[fd00:20::20]:51234"


def test_what_the_decoder_cannot_read_is_one_warning_per_header(tmp_path):
    """Never a silent drop: IPX frames and ESP packets are counted by what stopped them, and
    the IP fragments that never made a whole datagram are said too."""
    link = wire.Link()
    tls = [link.frame(packet) for packet in tls_packets()]
    ipx = bytes.fromhex("00000c9ff0012c3124c9f8e18137") + bytes(40)
    esp = link.frame(
        wire.Packet(0, PHONE[0], CUCM[0], wire.ip_packet(PHONE[0], CUCM[0], 50, bytes(60)))
    )
    first_fragment = bytearray(link.frame(tls_packets()[3]))
    first_fragment[20:22] = b"\x20\x00"  # more fragments: the rest never comes
    frames = [*tls, ipx, ipx, ipx, esp, bytes(first_fragment)]
    summary, handshakes = scan(write_frames(tmp_path / "odd.pcap", frames))
    assert client_and_server_chains(only(handshakes)) == expected_chains()
    assert summary.warnings == (
        "3 packets not decoded: ethertype 0x8137 (unsupported)",
        "1 packets not decoded: ipsec esp (encrypted)",
        "1 IP datagrams not reassembled from their fragments: fragments missing at the end of "
        "the capture",
    )
