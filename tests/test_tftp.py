"""capana.tftp on real datagrams: tftpy's client and server from the shipped phone boot capture,
replayed as captured, with a block retransmitted, lost, or the capture cut short.
"""

from __future__ import annotations

import pytest
from conftest import SAMPLE_PCAPS

from capana.capture import CaptureReader
from capana.decode import Datagram as Decoded
from capana.decode import decode_frame
from capana.model import FileTransfer
from capana.packets import address_text, decode_udp
from capana.tftp import MAX_OPEN, TftpReader, TftpTracker

Datagram = tuple[str, int, str, int, bytes, int]  # source, port, destination, port, payload, frame
PHONE, CLUSTER = "127.13.0.21", "127.0.0.1"


@pytest.fixture(scope="module")
def captured() -> list[Datagram]:
    """The boot's TFTP datagrams: the CTL refused, then ITLFile.tlv in five DATA blocks."""
    found = []
    with CaptureReader(SAMPLE_PCAPS / "phone-boot-files.pcap") as capture:
        for number, (_time, linktype, frame, _length) in enumerate(capture, start=1):
            udp = decode_udp(linktype, frame, frozenset(range(65536)))
            if udp is not None:
                source, destination = address_text(udp.source), address_text(udp.destination)
                found.append(
                    (
                        source,
                        udp.source_port,
                        destination,
                        udp.destination_port,
                        udp.payload,
                        number,
                    )
                )
    assert [opcode(d) for d in found] == [1, 5, 1, 6, 4, *[3, 4] * 5]
    return found


def opcode(datagram: Datagram) -> int:
    return int.from_bytes(datagram[4][:2], "big")


def block(datagram: Datagram) -> int:
    return int.from_bytes(datagram[4][2:4], "big")


def replay(datagrams: list[Datagram], tracker: TftpTracker | None = None) -> list[FileTransfer]:
    tracker = tracker or TftpTracker()
    done = []
    for source, sport, destination, dport, payload, frame in datagrams:
        if tracker.interested(sport, dport):
            done += tracker.feed(source, sport, destination, dport, payload, frame, float(frame))
    return done + tracker.finish()


def itl_datagrams(captured: list[Datagram]) -> list[Datagram]:
    return captured[2:]


def test_as_captured(captured: list[Datagram]) -> None:
    ctl, itl = replay(captured)
    assert (ctl.name, ctl.status, ctl.response_code, ctl.size) == (
        "CTLSEP2C3124C9F8E1.tlv",
        "not_found",
        1,
        0,
    )
    assert (ctl.request_frame, ctl.last_frame) == (captured[0][5], captured[1][5])
    data = b"".join(d[4][4:] for d in captured if opcode(d) == 3)
    assert (itl.name, itl.status, itl.body, itl.announced_size) == (
        "ITLFile.tlv",
        "ok",
        data,
        len(data),
    )
    assert (itl.request_frame, itl.last_frame) == (captured[2][5], captured[-1][5])
    assert itl.client.startswith(PHONE) and itl.server == f"{CLUSTER}:69"


def test_retransmitted_block_and_request_count_once(captured: list[Datagram]) -> None:
    itl = itl_datagrams(captured)
    second_data = next(i for i, d in enumerate(itl) if opcode(d) == 3 and block(d) == 2)
    again = [itl[0], itl[0], *itl[: second_data + 1], itl[second_data], *itl[second_data:]]
    (transfer,) = replay(again)
    (clean,) = replay(itl)
    assert (transfer.status, transfer.body, transfer.problems) == ("ok", clean.body, ())


def test_a_block_the_capture_lacks(captured: list[Datagram]) -> None:
    itl = itl_datagrams(captured)
    lost = [d for d in itl if not (opcode(d) == 3 and block(d) == 3)]
    (transfer,) = replay(lost)
    (clean,) = replay(itl)
    assert (transfer.status, transfer.problems) == ("incomplete", ("block-missing",))
    assert transfer.size == clean.size - 1428


def test_final_ack_not_captured(captured: list[Datagram]) -> None:
    itl = itl_datagrams(captured)
    (transfer,) = replay(itl[:-1])
    assert (transfer.status, transfer.last_frame) == ("ok", itl[-2][5])


def test_capture_ends_mid_transfer(captured: list[Datagram]) -> None:
    itl = itl_datagrams(captured)
    (transfer,) = replay(itl[:7])
    assert transfer.status == "incomplete"
    assert transfer.size == 2 * 1428


def test_client_gives_up(captured: list[Datagram]) -> None:
    itl = itl_datagrams(captured)
    source, sport, destination, dport, _payload, frame = itl[4]  # the phone's ACK of block 1
    abort = (source, sport, destination, dport, b"\x00\x05\x00\x03Disk full\x00", frame + 1)
    (transfer,) = replay([*itl[:4], abort, *itl[5:]])
    assert (transfer.status, transfer.response_code, transfer.size) == ("incomplete", 3, 1428)
    assert transfer.problems == ("refused",)


def test_default_block_size_without_options() -> None:
    rrq = (PHONE, 50000, CLUSTER, 69, b"\x00\x01SEPX.cnf.xml\x00octet\x00", 1)
    data1 = (CLUSTER, 40000, PHONE, 50000, b"\x00\x03\x00\x01" + b"a" * 512, 2)
    ack1 = (PHONE, 50000, CLUSTER, 40000, b"\x00\x04\x00\x01", 3)
    data2 = (CLUSTER, 40000, PHONE, 50000, b"\x00\x03\x00\x02" + b"b" * 10, 4)
    ack2 = (PHONE, 50000, CLUSTER, 40000, b"\x00\x04\x00\x02", 5)
    stranger = (CLUSTER, 40001, PHONE, 50000, b"\x00\x03\x00\x03" + b"c" * 10, 6)
    (transfer,) = replay([rrq, data1, ack1, data2, stranger, ack2])
    assert (transfer.status, transfer.size, transfer.last_frame) == ("ok", 522, 5)


def test_interest_follows_open_transfers(captured: list[Datagram]) -> None:
    tracker = TftpTracker()
    source, sport, destination, dport, payload, frame = captured[2]  # the ITL request
    assert not tracker.interested(sport, 40000)
    assert tracker.interested(sport, dport)
    tracker.feed(source, sport, destination, dport, payload, frame, 0.0)
    assert tracker.interested(40000, sport)
    tracker.finish()
    assert not tracker.interested(40000, sport)


def test_open_transfers_are_bounded() -> None:
    tracker = TftpTracker()
    done = []
    for n in range(MAX_OPEN + 1):
        request = b"\x00\x01ITLFile.tlv\x00octet\x00"
        done += tracker.feed(PHONE, 1024 + n, CLUSTER, 69, request, n + 1, 0.0)
    assert [(t.request_frame, t.status, t.problems) for t in done] == [
        (1, "incomplete", ("evicted",))
    ]
    assert len(tracker.finish()) == MAX_OPEN


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\x03", b"\x00\x09\x00\x01", b"\xff" * 9])
def test_junk_is_ignored(payload: bytes) -> None:
    tracker = TftpTracker()
    assert tracker.feed(PHONE, 50000, CLUSTER, 69, payload, 1, 0.0) == []
    assert tracker.finish() == []


# The reader the scan's UDP table takes (SEAMS.md: DatagramReader), on the sample's datagrams as
# capana's frame decoder gives them, numbered over the whole file.


def decoded_datagrams() -> list[tuple[Decoded, float, int]]:
    """Every UDP datagram of the boot capture, as capana.decode gives it, with time and frame."""
    found = []
    with CaptureReader(SAMPLE_PCAPS / "phone-boot-files.pcap") as capture:
        for number, (timestamp, linktype, frame, length) in enumerate(capture, start=1):
            decoded = decode_frame(linktype, frame, length)
            if isinstance(decoded, Decoded):
                found.append((decoded, timestamp, number))
    return found


def test_reader_gives_the_boot_transfers_and_keeps_its_ports(captured: list[Datagram]) -> None:
    ports = {1812}  # a port another reader of the table watches
    reader = TftpReader("boot.pcap", ports)
    assert ports == {1812, 69}
    seen_ports = []
    for datagram, timestamp, frame in decoded_datagrams():
        if reader.claims(datagram):
            reader.add(datagram, timestamp, frame)
            seen_ports.append(set(ports))
    reader.finish()
    ctl, itl = reader.completed
    assert isinstance(ctl, FileTransfer) and isinstance(itl, FileTransfer)
    assert [(t.capture, t.name, t.status, t.request_frame, t.last_frame) for t in (ctl, itl)] == [
        (t.capture, t.name, t.status, t.request_frame, t.last_frame)
        for t in replay(captured, TftpTracker("boot.pcap"))
    ]
    assert itl.status == "ok" and itl.start is not None
    phone_ports = {captured[0][1], captured[2][1]}  # the phone's port of each request
    assert {p for found in seen_ports for p in found} == {1812, 69, *phone_ports}
    assert ports == {1812, 69}  # each transfer's port went when it ended; 1812 stayed
    assert all(
        not reader.claims(d)
        for d, _, _ in decoded_datagrams()
        if 69 not in (d.source_port, d.destination_port)
    )


def test_reader_marks_a_block_cut_by_the_snaplen(captured: list[Datagram]) -> None:
    reader = TftpReader("boot.pcap", set())
    for datagram, timestamp, frame in decoded_datagrams():
        if reader.claims(datagram):
            data = int.from_bytes(datagram.payload[:2], "big") == 3
            reader.add(datagram._replace(missing=100 if data else 0), timestamp, frame)
    reader.finish()
    itl = reader.completed[-1]
    assert isinstance(itl, FileTransfer)
    assert (itl.status, itl.problems) == ("incomplete", ("snaplen",))
