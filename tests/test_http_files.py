"""capana.http_files on the bytes of a real server: the standard library's HTTP server (the
sample's TFTP-over-HTTP handler) answering requests on a loopback socket, its answer fed back
whole, in one-byte pieces, cut, or after a hole in the stream.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
from collections.abc import Iterator

import pytest
from make_boot_capture import PhoneFileHandler

from capana.http_files import MAX_UNANSWERED, HttpFileExchange, is_file_request
from capana.model import FileTransfer
from capana.transfers import MAX_FILE_BYTES

ITL = bytes(range(256)) * 30  # stands for any file: the reader does not look inside
CONFIG = b"<device><deviceSecurityMode>2</deviceSecurityMode></device>\n" * 20


class ServerTricks(PhoneFileHandler):
    """The sample's handler, plus a body cut short and an HTTP/1.0 close-delimited answer."""

    def do_GET(self) -> None:
        if self.path == "/cut.tlv":
            self.send_response(200)
            self.send_header("Content-Length", str(len(ITL)))
            self.end_headers()
            self.wfile.write(ITL[:1000])
            self.close_connection = True
        elif self.path == "/old.cnf.xml":
            self.protocol_version = "HTTP/1.0"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(CONFIG)
            self.close_connection = True
        else:
            super().do_GET()


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    folder = tmp_path_factory.mktemp("tftpboot")
    (folder / "ITLSEP2C3124C9F8E1.tlv").write_bytes(ITL)
    (folder / "SEP2C3124C9F8E1.cnf.xml.sgn").write_bytes(CONFIG)  # served chunked
    (folder / "big.tlv").write_bytes(b"x" * (MAX_FILE_BYTES + 5000))
    handler = functools.partial(ServerTricks, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def get(name: str, *, method: str = "GET", close: bool = False) -> bytes:
    headers = "Connection: close\r\n" if close else ""
    return f"{method} /{name} HTTP/1.1\r\nHost: 127.0.0.1:6970\r\n{headers}\r\n".encode()


def talk(port: int, *requests: bytes) -> bytes:
    """Send the requests at once (pipelined) and read the server until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"".join(requests))
        answer = bytearray()
        with contextlib.suppress(TimeoutError):
            while chunk := connection.recv(65536):
                answer += chunk
    return bytes(answer)


def replay(
    client: bytes, server: bytes, *, piece: int = 0, close: bool = True
) -> list[FileTransfer]:
    """Feed both directions as a capture would: the requests, then the answer (in ``piece``-byte
    segments when given), then both ends of the connection."""
    exchange = HttpFileExchange("10.20.1.21:50000", "10.10.1.5:6970")
    done = exchange.feed("client", client, 1, 1.0)
    pieces = [server[i : i + piece] for i in range(0, len(server), piece)] if piece else [server]
    for number, data in enumerate(pieces, start=2):
        done += exchange.feed("server", data, number, 2.0)
    if close:
        done += exchange.end("server") + exchange.end("client")
    return done + exchange.finish()


def summary(transfers: list[FileTransfer]) -> list[tuple[str, str, int | None, int]]:
    return [(t.name, t.status, t.response_code, t.size) for t in transfers]


def test_keep_alive_content_length_chunked_and_not_found(port: int) -> None:
    client = get("ITLSEP2C3124C9F8E1.tlv") + get("SEP2C3124C9F8E1.cnf.xml.sgn")
    client += get("CTLSEP2C3124C9F8E1.tlv", close=True)
    server = talk(port, client)
    assert b"Transfer-Encoding: chunked" in server

    for piece in (0, 1, 1460):
        transfers = replay(client, server, piece=piece)
        assert summary(transfers)[:2] == [
            ("ITLSEP2C3124C9F8E1.tlv", "ok", 200, len(ITL)),
            ("SEP2C3124C9F8E1.cnf.xml.sgn", "ok", 200, len(CONFIG)),
        ], piece
        assert (transfers[2].name, transfers[2].status) == ("CTLSEP2C3124C9F8E1.tlv", "not_found")
        assert [t.body for t in transfers[:2]] == [ITL, CONFIG]
        assert (transfers[0].announced_size, transfers[1].announced_size) == (len(ITL), None)
        assert all(t.problems == () for t in transfers)


def test_frames_of_request_and_last_response_byte(port: int) -> None:
    client = get("ITLSEP2C3124C9F8E1.tlv", close=True)
    server = talk(port, client)
    transfers = replay(client, server, piece=1000)
    pieces = -(-len(server) // 1000)
    assert [(t.request_frame, t.last_frame) for t in transfers] == [(1, 1 + pieces)]


def test_cut_connection_is_incomplete(port: int) -> None:
    client = get("cut.tlv")
    server = talk(port, client)
    (transfer,) = replay(client, server)
    assert (transfer.status, transfer.response_code) == ("incomplete", 200)
    assert (transfer.size, transfer.announced_size) == (1000, len(ITL))


def test_body_delimited_by_the_close(port: int) -> None:
    client = get("old.cnf.xml")
    server = talk(port, client)
    assert b"Content-Length" not in server and server.startswith(b"HTTP/1.0 200")
    assert replay(client, server, close=False)[0].status == "incomplete"  # no FIN captured
    (transfer,) = replay(client, server)
    assert (transfer.status, transfer.body) == ("ok", CONFIG)


def test_head_is_framed_but_not_a_transfer(port: int) -> None:
    client = get("ITLSEP2C3124C9F8E1.tlv", method="HEAD") + get("SEP2C3124C9F8E1.cnf.xml.sgn")
    server = talk(port, client + get("CTLSEP2C3124C9F8E1.tlv", close=True))
    transfers = replay(client + get("CTLSEP2C3124C9F8E1.tlv", close=True), server)
    assert summary(transfers)[0] == ("SEP2C3124C9F8E1.cnf.xml.sgn", "ok", 200, len(CONFIG))
    assert len(transfers) == 2


def test_request_without_answer_when_the_capture_ends() -> None:
    exchange = HttpFileExchange("10.20.1.21:50000", "10.10.1.5:6970")
    assert exchange.feed("client", get("ITLFile.tlv"), 7, 1.0) == []
    (transfer,) = exchange.finish()
    assert (transfer.status, transfer.request_frame, transfer.last_frame) == ("incomplete", 7, 7)


def test_hole_in_the_server_stream(port: int) -> None:
    client = get("ITLSEP2C3124C9F8E1.tlv") + get("SEP2C3124C9F8E1.cnf.xml.sgn", close=True)
    server = talk(port, client)
    exchange = HttpFileExchange("10.20.1.21:50000", "10.10.1.5:6970")
    exchange.feed("client", client, 1, 1.0)
    exchange.feed("server", server[:3000], 2, 2.0)
    exchange.gap("server")
    assert exchange.feed("server", server[4000:], 3, 3.0) == []
    transfers = exchange.end("server") + exchange.finish()
    assert [(t.status, t.problems) for t in transfers] == [
        ("incomplete", ("stream-gap",)),
        ("incomplete", ("stream-gap",)),
    ]


def test_a_large_body_is_counted_not_kept(port: int) -> None:
    client = get("big.tlv", close=True)
    (transfer,) = replay(client, talk(port, client), piece=65536)
    assert (transfer.status, transfer.size) == ("ok", MAX_FILE_BYTES + 5000)
    assert len(transfer.body) == MAX_FILE_BYTES
    assert transfer.problems == ("body-truncated",)


def test_not_http_is_given_up_within_bounds() -> None:
    exchange = HttpFileExchange("10.20.1.21:50000", "10.10.1.5:6970")
    assert exchange.feed("client", b"\x16\x03\x01\x02\x00" + bytes(600), 1, 1.0) == []
    assert exchange.feed("server", bytes(MAX_UNANSWERED + 1), 2, 2.0) == []
    assert exchange.feed("server", bytes(10), 3, 3.0) == []
    assert exchange.end("server") + exchange.end("client") + exchange.finish() == []


@pytest.mark.parametrize(
    ("first", "wanted"),
    [
        (b"GET /ITLSEP2C3124C9F8E1.tlv HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET /SEP2C3124C9F8E1.cnf.xml.sgn HTTP/1.1\r\n", True),
        (b"GET /SEP2C3124C9F8E1.cnf.xml?x=1 HTTP/1.0\r\n", True),
        (b"GET /index.html HTTP/1.1\r\n", False),
        (b"POST /ITLFile.tlv HTTP/1.1\r\n", False),
        (b"\x16\x03\x01\x00\xa5\x01", False),
        (b"GET /ITLSEP2C31", None),
        (b"GE", None),
        (b"GET /" + b"a" * 9000, False),
    ],
)
def test_is_file_request(first: bytes, wanted: bool | None) -> None:
    assert is_file_request(first) is wanted


def test_names_lose_the_slash_and_the_query(port: int) -> None:
    client = get("ITLSEP2C3124C9F8E1.tlv?version=1", close=True)
    (transfer,) = replay(client, talk(port, client))
    assert transfer.name == "ITLSEP2C3124C9F8E1.tlv"
