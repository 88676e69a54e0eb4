"""capana.connections: TCP segments of many connections in, one handshake per TLS connection out.

Real OpenSSL handshakes (``test_tls.real_handshake``) laid into TCP by ``samplegen.wire``, damaged
the way captures are damaged, decoded by ``capana.packets`` and fed in capture order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

import pytest
from decoded import tcp_segment
from facts import problem_texts, sha256s
from samplegen import pki, wire
from samplegen.tlsrun import record_offsets
from test_tls import real_handshake, test_pki

from capana.connections import ConnectionTable
from capana.decode import LINKTYPE_RAW
from capana.model import Handshake, ProblemCode

PHONE = ("10.1.1.20", 51234)
CUCM = ("10.1.1.5", 2443)
WHEN = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)


def conversation(
    result=None,
    *,
    client=PHONE,
    server=CUCM,
    flights: int | None = None,
    ending: str = "close",
    record_cuts: bool = False,
    start: datetime = WHEN,
    **options,
) -> wire.TcpConversation:
    """A handshake's flights (the first ``flights`` of them) in one TCP connection."""
    result = result or real_handshake()
    conv = wire.TcpConversation(client, server, start, **options)
    conv.open()
    for flight in result.flights[:flights]:
        cuts = record_offsets(flight.data) if record_cuts else ()
        conv.send(flight.sender, flight.data, cuts=cuts)
    if ending == "close":
        conv.close()
    elif ending == "reset":
        conv.reset("client")
    return conv


def feed(table: ConnectionTable, packets: Iterable[wire.Packet]) -> list[Handshake]:
    """Feed packets; return the handshakes the table reported before the capture ended."""
    reported = []
    for number, packet in enumerate(packets, 1):
        segment = tcp_segment(LINKTYPE_RAW, packet.ip, len(packet.ip))
        if segment is not None:
            table.add(segment, packet.time_ns / 1e9, number)
            reported += table.completed
            table.completed.clear()
    return reported


def handshakes(*packet_lists: Iterable[wire.Packet], **table_options) -> list[Handshake]:
    table = ConnectionTable("test.pcap", **table_options)
    found = feed(table, wire.merge(*packet_lists))
    table.finish()
    return found + table.completed


def only(found: list[Handshake]) -> Handshake:
    assert len(found) == 1, found
    return found[0]


def chains(handshake: Handshake) -> tuple[list[str], list[str]]:
    return (
        sha256s(handshake.client_chain),
        sha256s(handshake.server_chain),
    )


def expected_chains() -> tuple[list[str], list[str]]:
    ca, server, phone = test_pki()
    return [pki.fingerprint(phone)], [pki.fingerprint(server), pki.fingerprint(ca)]


def test_one_clean_connection():
    table = ConnectionTable("test.pcap")
    reported = feed(table, conversation().packets())
    handshake = only(reported)  # reported as soon as both Finished went by
    assert handshake.client == "10.1.1.20:51234"
    assert handshake.server == "10.1.1.5:2443"
    assert handshake.service == "sccp-tls"
    assert handshake.outcome == "established"
    assert chains(handshake) == expected_chains()
    assert (handshake.gaps, handshake.problems) == (0, ())
    table.finish()
    assert table.completed == []


def damaged(kind: str) -> wire.TcpConversation:
    conv = conversation(mss=536)
    client_data = conv.data_indices("client")
    server_data = conv.data_indices("server")
    if kind == "reordered":
        conv.swap(server_data[0], server_data[2])
        conv.swap(client_data[1], client_data[2])
    elif kind == "retransmitted":
        conv.retransmit(server_data[1])
    elif kind == "duplicated":
        for index in reversed(server_data):
            conv.duplicate(index)
    elif kind == "overlapping":
        conv.overlap(server_data[1], back=100, length=300)
    return conv


@pytest.mark.parametrize("kind", ["reordered", "retransmitted", "duplicated", "overlapping"])
def test_damaged_streams_still_give_both_chains(kind):
    handshake = only(handshakes(damaged(kind).packets()))
    assert chains(handshake) == expected_chains()
    assert handshake.client_cert_status == "present"
    assert handshake.outcome == "established"
    assert (handshake.gaps, handshake.problems) == (0, ())


def test_overlap_with_different_bytes_is_reported():
    conv = conversation(mss=536)
    conv.overlap(conv.data_indices("server")[1], back=100, length=300, same=False)
    handshake = only(handshakes(conv.packets()))
    assert "server: 1 overlapping segments with different contents" in problem_texts(handshake)


def test_sequence_numbers_wrapping_around():
    conv = conversation(client_isn=2**32 - 300, server_isn=2**32 - 1000, mss=536)
    handshake = only(handshakes(conv.packets()))
    assert chains(handshake) == expected_chains()
    assert handshake.outcome == "established"


@pytest.mark.parametrize("server", [CUCM, ("10.1.1.5", 40443)], ids=["cisco_port", "other_port"])
def test_connection_seen_without_its_syn(server):
    conv = conversation(server=server)
    conv.midstream()
    handshake = only(handshakes(conv.packets()))
    assert handshake.client == "10.1.1.20:51234"
    assert chains(handshake) == expected_chains()


def test_capture_starting_after_the_hellos_still_shows_the_phones_certificate():
    """On 2443 the capture begins with the phone's Certificate flight; the hellos were missed."""
    result = real_handshake()
    conv = conversation(result)
    hellos_end = len(result.flights[0].data)
    first = conv.indices_in("client", hellos_end, hellos_end + 1)[0]
    del conv.segments[:first]
    handshake = only(handshakes(conv.packets()))
    assert handshake.client == "10.1.1.20:51234"
    assert handshake.start is None  # judged at the capture's start
    assert chains(handshake) == (expected_chains()[0], [])
    assert handshake.client_cert_status == "present"
    # Each side is said to have been read from a record boundary, nothing passed over.
    assert {(p.code, p.text.split(":")[0]) for p in handshake.problems} == {
        (ProblemCode.RESYNC, "client"),
        (ProblemCode.RESYNC, "server"),
    }
    assert all(" 0 bytes before it" in p.text for p in handshake.problems)


def test_tls_on_an_unknown_port_is_found_by_its_client_hello():
    handshake = only(handshakes(conversation(server=("10.1.1.5", 40443)).packets()))
    assert handshake.service == "tls"
    assert handshake.tls_version == "TLS 1.2"


SCCP_REGISTER = b"\x0c\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00SEP0011"


@pytest.mark.parametrize("port", [2443, 40443])
def test_plain_tcp_is_skipped_quietly(port):
    packets = wire.plain_tcp(PHONE, ("10.1.1.5", port), WHEN, [("client", SCCP_REGISTER)] * 3)
    assert handshakes(packets) == []


@pytest.mark.parametrize(
    ("port", "payload", "service"),
    [
        (2000, SCCP_REGISTER, "sccp"),
        (5060, b"REGISTER sip:10.1.1.5 SIP/2.0\r\nVia: SIP/2.0/TCP\r\n\r\n", "sip"),
    ],
)
def test_cleartext_phone_signalling_is_a_connection_without_tls(port, payload, service):
    """A phone registering in clear is reported once, as a session that never started TLS."""
    packets = wire.plain_tcp(PHONE, ("10.1.1.5", port), WHEN, [("client", payload)] * 3)
    session = only(handshakes(packets))
    assert (session.service, session.cleartext, session.tls_version) == (service, True, None)
    assert session.client == "10.1.1.20:51234" and session.client_chain == ()
    assert session.frames.cleartext == 4  # SYN, SYN-ACK, ACK, then the first payload


@pytest.mark.parametrize("port", [2000, 5060])
def test_other_bytes_on_the_signalling_ports_are_not_reported(port):
    packets = wire.plain_tcp(PHONE, ("10.1.1.5", port), WHEN, [("client", b"GET / HTTP/1.1\r\n")])
    assert handshakes(packets) == []


def test_new_connection_reusing_the_four_tuple():
    """The first connection's end was not captured; a SYN with a new ISN starts another."""
    first = conversation(flights=2, ending="none")
    later = WHEN + timedelta(seconds=1)
    second = conversation(client_isn=0x2000_0000, server_isn=0x7000_0000, start=later)
    found = handshakes(first.packets(), second.packets())
    assert [h.outcome for h in found] == ["incomplete", "established"]
    assert chains(found[1]) == expected_chains()
    assert found[0].client_chain == ()


@pytest.mark.parametrize("ending", ["close", "reset"])
def test_fin_or_rst_ends_an_unfinished_handshake_at_once(ending):
    table = ConnectionTable("test.pcap")
    reported = feed(table, conversation(flights=2, ending=ending).packets())
    handshake = only(reported)
    assert handshake.outcome == "incomplete"
    assert handshake.client_cert_status == "unknown"


def test_rejected_handshake_is_reported_at_the_fatal_alert():
    table = ConnectionTable("test.pcap")
    reported = feed(table, conversation(real_handshake(trusted=False), ending="reset").packets())
    handshake = only(reported)
    assert handshake.outcome == "rejected"
    assert [(a.sender, a.description) for a in handshake.alerts] == [("server", "unknown_ca")]


@pytest.mark.parametrize("record_cuts", [False, True], ids=["mss_cuts", "record_cuts"])
def test_lost_segment_of_the_phone_certificate_is_a_gap_not_an_absent_certificate(record_cuts):
    """The hole is counted; whatever follows it, no certificate (or its absence) is invented."""
    conv = conversation(record_cuts=record_cuts)
    client_data = conv.data_indices("client")
    certificate_segment = client_data[1]  # the ClientHello is the first
    conv.drop(certificate_segment)
    handshake = only(handshakes(conv.packets()))
    assert handshake.gaps == 1
    assert handshake.client_chain == ()
    assert handshake.client_cert_status == "unknown"
    assert chains(handshake)[1] == expected_chains()[1]


def test_too_many_open_connections_evicts_the_oldest_with_a_note():
    phones = [(f"10.1.2.{n}", 50000 + n) for n in range(1, 5)]
    packets = [
        conversation(
            client=phone, flights=2, ending="none", start=WHEN + timedelta(seconds=n)
        ).packets()
        for n, phone in enumerate(phones)
    ]
    table = ConnectionTable("test.pcap", max_connections=2)
    found = feed(table, wire.merge(*packets))
    table.finish()
    found += table.completed
    assert len(found) == 4
    assert table.evicted >= 1
    notes = [h for h in found if any("evicted" in p for p in problem_texts(h))]
    assert len(notes) == table.evicted


@pytest.mark.parametrize("cut", [1, 3, 5])
@pytest.mark.parametrize("server", [CUCM, ("10.1.1.5", 40443)], ids=["cisco_port", "other_port"])
def test_client_hello_cut_inside_its_record_header(cut, server):
    """The decision "is this TLS" waits until the record header and handshake type are in."""
    result = real_handshake()
    conv = wire.TcpConversation(PHONE, server, WHEN)
    conv.open()
    conv.send("client", result.flights[0].data, cuts=[cut])
    for flight in result.flights[1:]:
        conv.send(flight.sender, flight.data)
    conv.close()
    handshake = only(handshakes(conv.packets()))
    assert chains(handshake) == expected_chains()


def test_a_fin_sent_twice_by_one_side_is_still_a_half_close():
    """The client's FIN sent again: the server's flight after it is the same handshake."""
    result = real_handshake()
    conv = wire.TcpConversation(PHONE, CUCM, WHEN)
    conv.open()
    conv.send("client", result.flights[0].data)
    conv._emit("client", "FA", b"")  # a half-close before the server answered
    conv.duplicate(len(conv.segments) - 1)
    conv.send("server", result.flights[1].data)
    handshake = only(handshakes(conv.packets()))
    assert chains(handshake)[1] == expected_chains()[1]


@pytest.mark.parametrize("flags", ["SF", "SR", "SFR"])
def test_a_syn_with_fin_or_rst_opens_nothing(flags):
    """No TCP stack opens a connection on SYN+FIN or SYN+RST (a scanner's or a damaged frame):
    one from the server in the middle of the handshake must not start a reversed connection
    that takes the phone's certificate as a server's (found by the fuzzer, seed 20261201)."""
    conv = conversation()
    packets = conv.packets()
    syn_ack = next(p for p in packets if p.src == CUCM[0])  # the server's SYN-ACK
    bogus = wire.Packet(
        packets[3].time_ns + 1,
        CUCM[0],
        PHONE[0],
        wire.ip_packet(
            CUCM[0],
            PHONE[0],
            6,
            wire.tcp_header(CUCM, PHONE, 0x6C00_0000, 0, flags, b""),
        ),
    )
    assert syn_ack.ip != bogus.ip
    handshake = only(handshakes([*packets[:4], bogus, *packets[4:]]))
    assert (handshake.client, handshake.server) == ("10.1.1.20:51234", "10.1.1.5:2443")
    assert chains(handshake) == expected_chains() and handshake.outcome == "established"
