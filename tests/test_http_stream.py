"""The HTTP file reader on the flow table (capana.http_stream), through capana's scan: which
connections it follows, the frames it names, and what it keeps when the capture is damaged.
The server bytes are the standard library's HTTP server's (the sample's TFTP handler)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from file_captures import CLUSTER, PHONE, Cluster, http_exchange
from samplegen import wire

from capana.capture import CaptureReader
from capana.http_stream import HttpFileStream, opens_file_transfer
from capana.packets import decode_tcp, endpoint
from capana.scan import read_capture
from capana.streams import Flow

START = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)
ITL = "ITLSEP2C3124C9F8E1.tlv"


@pytest.fixture
def served(tmp_path: Path) -> Cluster:
    files = Cluster(tmp_path)
    files.serve(ITL, bytes(range(256)) * 40)
    files.serve("index.html", b"<html></html>")
    return files


def capture(tmp_path: Path, port: int, names: list[str], served: Cluster) -> Path:
    requests, answer = http_exchange(served, names)
    packets = wire.plain_tcp(
        (PHONE, 50100), (CLUSTER, port), START, [("client", requests), ("server", answer)]
    )
    return wire.write_pcap(tmp_path / f"http-{port}.pcap", packets)


def test_a_phone_file_on_any_port(tmp_path: Path, served: Cluster) -> None:
    facts = read_capture(capture(tmp_path, 8080, [ITL, "missing.cnf.xml"], served))
    assert [(t.name, t.status, t.server) for t in facts.transfers] == [
        (ITL, "ok", f"{CLUSTER}:8080"),
        ("missing.cnf.xml", "not_found", f"{CLUSTER}:8080"),
    ]
    assert facts.handshakes == []


def test_other_gets_are_followed_on_6970_only(tmp_path: Path, served: Cluster) -> None:
    assert read_capture(capture(tmp_path, 8080, ["index.html"], served)).transfers == []
    (page,) = read_capture(capture(tmp_path, 6970, ["index.html"], served)).transfers
    assert (page.name, page.status, page.body) == ("index.html", "ok", b"<html></html>")


def test_frames_are_numbered_over_the_whole_file(tmp_path: Path, served: Cluster) -> None:
    path = capture(tmp_path, 6970, [ITL], served)
    (transfer,) = read_capture(path).transfers
    with CaptureReader(path) as reader:
        segments = [
            (number, segment)
            for number, (_, linktype, frame, length) in enumerate(reader, 1)
            if (segment := decode_tcp(linktype, frame, length)) is not None and segment.payload
        ]
    sent = [number for number, s in segments if endpoint(s.key)[1] == 50100]
    answered = [number for number, s in segments if endpoint(s.key)[1] == 6970]
    assert (transfer.request_frame, transfer.last_frame) == (sent[-1], answered[-1])
    assert transfer.start is not None and transfer.start > START


def test_a_hole_in_the_answer(tmp_path: Path, served: Cluster) -> None:
    requests, answer = http_exchange(served, [ITL])
    conversation = wire.TcpConversation((PHONE, 50100), (CLUSTER, 6970), START)
    conversation.open()
    conversation.send("client", requests)
    conversation.send("server", answer)
    conversation.drop(conversation.data_indices("server")[1])  # a middle segment never captured
    conversation.close()
    path = wire.write_pcap(tmp_path / "hole.pcap", conversation.packets())
    (transfer,) = read_capture(path).transfers
    assert (transfer.status, transfer.problems) == ("incomplete", ("stream-gap",))


def test_who_opens_a_file_transfer() -> None:
    assert opens_file_transfer("client", b"GET /ITLFile.tlv HTTP/1.1\r\n", 80)
    assert opens_file_transfer("client", b"GET /ITL", 80)  # not whole yet: the reader decides
    assert opens_file_transfer("client", b"POST /x HTTP/1.1\r\n", 6970)
    assert not opens_file_transfer("client", b"GET /index.html HTTP/1.1\r\n", 80)
    assert not opens_file_transfer("server", b"HTTP/1.1 200 OK\r\n", 6970)


def test_a_request_line_that_is_not_a_file_drops_the_connection() -> None:
    reader = HttpFileStream(8080)
    reader.feed("client", b"GET /ITL", 1.0, 4)
    assert not reader.hopeless
    reader.feed("client", b"File.html HTTP/1.1\r\n\r\n", 1.0, 5)
    assert reader.hopeless
    flow = Flow("x.pcap", f"{PHONE}:1", f"{CLUSTER}:8080", 8080, "tls", 0, (), "")
    assert reader.facts(flow) == []
