"""Files fetched over HTTP/1.x on one TCP connection: stream bytes in, transfers out.

The phone's TFTP service answers HTTP on TCP 6970; a phone also fetches its files from any port
where a GET names one (:func:`is_file_request` tells). h11 parses both directions: the client's
bytes as a server would (requests), the server's as a client would (responses), told which
request each response answers so HEAD and 304 are framed right. Requests and responses pair
in order, several per connection; bodies by Content-Length, chunked, or until the server closes.
Each side ends explicitly (:meth:`HttpFileExchange.end`); :meth:`HttpFileExchange.finish` reports
what the capture left unanswered as incomplete. Sans-IO: the caller (capana's TCP reassembly)
gives each direction's bytes in order, with the frame number they completed in.

Bounds: a body keeps MAX_FILE_BYTES (capana.transfers); server bytes waiting for a request
they answer keep MAX_UNANSWERED, past which the server side is given up; h11 holds at most
16 KiB of an unfinished request or response head.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit

from capana.handshake import utc_from_epoch
from capana.model import FileTransfer, TransferProblem, TransferStatus
from capana.transfers import BodyBuffer, is_phone_file


def _lazy_module(name: str) -> ModuleType:
    """``name``, executed when one of its attributes is first read (importlib's LazyLoader)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    import h11
else:  # h11 costs a small capture's start-up 5 %: loaded when a phone's file request is met
    h11 = _lazy_module("h11")

Side = Literal["client", "server"]
MAX_UNANSWERED = 64 * 1024
_MAX_REQUEST_LINE = 8 * 1024  # a longer first line is not a phone's request
_NOT_FOUND = 404


@dataclass
class _Request:
    """A request seen from the client (only a GET becomes a transfer), and its answer so far."""

    method: bytes
    target: bytes
    host: bytes
    frame: int
    time: float
    status: int | None = None
    announced: int | None = None
    last_frame: int | None = None
    body: BodyBuffer = field(default_factory=BodyBuffer)


def is_file_request(first_client_bytes: bytes) -> bool | None:
    """Do a connection's first client bytes GET a phone file (a .tlv, .sgn or .cnf.xml)?
    None while the request line is not complete yet."""
    line, ended, _rest = first_client_bytes.partition(b"\r\n")
    if not ended and len(line) < _MAX_REQUEST_LINE and b"GET /".startswith(line[:5]):
        return None
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or not parts[2].startswith(b"HTTP/1."):
        return False
    return is_phone_file(_name(parts[1]))


class HttpFileExchange:
    """One TCP connection's file requests and their responses, paired in order.

    ``capture``, ``client`` and ``server`` name the transfers as the report does.
    """

    def __init__(self, client: str, server: str, capture: str = "") -> None:
        self.capture = capture
        self.client = client
        self.server = server
        self._requests = h11.Connection(h11.SERVER)  # reads what the client sends
        self._current: _Request | None = None  # a request whose head is read, body not yet
        self._asked: deque[_Request] = deque()  # complete requests awaiting their response
        self._response: h11.Connection | None = None  # reads the answer to self._asked[0]
        self._eof_given = False  # self._response has been told the server closed
        self._unanswered = bytearray()  # server bytes not yet given to a response parser
        self._stopped: set[Side] = set()  # sides that cannot be followed any more
        self._closed: set[Side] = set()
        self._problems: list[TransferProblem] = []
        self._server_frame = 0
        self.requests = 0  # request heads read so far, any method

    @property
    def stopped(self) -> bool:
        """Neither side can be followed any more: no transfer can be completed."""
        return {"client", "server"} <= self._stopped

    def feed(self, side: Side, data: bytes, frame: int, timestamp: float) -> list[FileTransfer]:
        """One side's next in-order bytes; the transfers they completed."""
        if side in self._stopped or side in self._closed or not data:
            return []
        if side == "client":
            self._requests.receive_data(data)
            self._read_requests(frame, timestamp)
            return self._read_responses()
        self._server_frame = frame
        self._unanswered += data
        done = self._read_responses()
        if len(self._unanswered) > MAX_UNANSWERED:  # what no request asked for: not HTTP
            self._unanswered.clear()
            self._stop("server", "bad-http")
        return done

    def end(self, side: Side) -> list[FileTransfer]:
        """That side closed (FIN or RST): a body delimited by the close is now complete."""
        if side in self._closed:
            return []
        self._closed.add(side)
        if side == "client" and "client" not in self._stopped:
            self._requests.receive_data(b"")
            self._read_requests(self._server_frame, 0.0)
        return self._read_responses()

    def gap(self, side: Side) -> None:
        """Bytes of that side are missing from the capture: it cannot be followed further."""
        self._stop(side, "stream-gap")

    def finish(self) -> list[FileTransfer]:
        """The capture is over: every request still unanswered, as incomplete."""
        done = [self._transfer(request, complete=False) for request in self._asked]
        self._asked.clear()
        self._response = None
        return [transfer for transfer in done if transfer is not None]

    def _stop(self, side: Side, problem: TransferProblem) -> None:
        self._stopped.add(side)
        self._problems.append(problem)

    def _read_requests(self, frame: int, timestamp: float) -> None:
        while "client" not in self._stopped:
            try:
                event = self._requests.next_event()
            except h11.RemoteProtocolError:
                self._stop("client", "bad-http")
                return
            if isinstance(event, h11.Request):
                self.requests += 1
                host = dict(event.headers).get(b"host", b"")
                self._current = _Request(event.method, event.target, host, frame, timestamp)
            elif isinstance(event, h11.EndOfMessage) and self._current is not None:
                self._asked.append(self._current)
                self._current = None
                self._requests = _next_request_parser(self._requests)
            elif not isinstance(event, h11.Data):
                return  # NEED_DATA, PAUSED or ConnectionClosed

    def _read_responses(self) -> list[FileTransfer]:
        """Answer the oldest waiting requests with the server bytes read so far."""
        done: list[FileTransfer | None] = []
        while self._asked and "server" not in self._stopped:
            request = self._asked[0]
            response = self._response_parser(request)
            complete = self._read_response(response, request)
            if complete is None:
                break
            done.append(self._transfer(request, complete))
            self._asked.popleft()
            if not complete:
                self._stopped.add("server")
                break
            trailing, closed = response.trailing_data
            self._unanswered[:0] = trailing
            self._response = None
            if closed:
                self._closed.add("server")
        if "server" in self._closed and self._response is None and not self._unanswered:
            done += [self._transfer(request, complete=False) for request in self._asked]
            self._asked.clear()
        return [transfer for transfer in done if transfer is not None]

    def _response_parser(self, request: _Request) -> h11.Connection:
        """The parser of ``request``'s response, given every server byte read so far."""
        if self._response is None:
            self._response = _answering(request)
            self._eof_given = False
        if self._unanswered:
            self._response.receive_data(bytes(self._unanswered))
            self._unanswered.clear()
        if "server" in self._closed and not self._eof_given:
            self._response.receive_data(b"")
            self._eof_given = True
        return self._response

    def _read_response(self, response: h11.Connection, request: _Request) -> bool | None:
        """True when the response is complete, False when it cannot be, None for more bytes."""
        frame = self._server_frame
        while True:
            try:
                event = response.next_event()
            except h11.RemoteProtocolError:
                request.last_frame = frame
                if request.status is None:
                    self._problems.append("bad-http")
                return False
            if isinstance(event, h11.Response):
                request.status = event.status_code
                request.announced = _content_length(event.headers)
                request.last_frame = frame
            elif isinstance(event, h11.Data):
                request.body.add(bytes(event.data))
                request.last_frame = frame
            elif isinstance(event, h11.EndOfMessage):
                request.last_frame = frame
                return True
            elif isinstance(event, h11.ConnectionClosed):
                return False
            elif event is h11.NEED_DATA or event is h11.PAUSED:
                return None

    def _transfer(self, request: _Request, complete: bool) -> FileTransfer | None:
        """The transfer a GET made; None for another method (nothing was fetched)."""
        if request.method != b"GET":
            return None
        status = request.status
        problems = list(self._problems)
        if request.body.truncated:
            problems.append("body-truncated")
        outcome: TransferStatus
        if status == _NOT_FOUND:
            outcome = "not_found"
        elif status is not None and status >= 400:
            outcome = "incomplete"
            problems.insert(0, "refused")
        elif complete and status is not None and 200 <= status < 300:
            outcome = "ok"
        else:
            outcome = "incomplete"
        return FileTransfer(
            capture=self.capture,
            transport="http",
            client=self.client,
            server=self.server,
            name=_name(request.target),
            status=outcome,
            size=request.body.size,
            request_frame=request.frame,
            last_frame=request.last_frame if request.last_frame is not None else request.frame,
            start=utc_from_epoch(request.time),
            announced_size=request.announced,
            response_code=status,
            problems=tuple(dict.fromkeys(problems)),
            body=bytes(request.body.kept),
        )


def _answering(request: _Request) -> h11.Connection:
    """An h11 client that has sent ``request``: it frames the response as that request needs."""
    connection = h11.Connection(h11.CLIENT)
    headers = [(b"host", request.host or b"phone-tftp")]
    connection.send(h11.Request(method=request.method, target=request.target, headers=headers))
    connection.send(h11.EndOfMessage())
    return connection


def _next_request_parser(connection: h11.Connection) -> h11.Connection:
    """A fresh parser fed what ``connection`` had not read yet (h11 pauses after a request)."""
    fresh = h11.Connection(h11.SERVER)
    trailing, closed = connection.trailing_data
    if trailing:
        fresh.receive_data(bytes(trailing))
    if closed:  # receive_data(b"") is h11's end of stream
        fresh.receive_data(b"")
    return fresh


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    value = dict(headers).get(b"content-length")
    return int(value) if value is not None and value.isdigit() else None


def _name(target: bytes) -> str:
    """``/ITLSEP001122334455.tlv?x=1`` -> ``ITLSEP001122334455.tlv``."""
    path = urlsplit(target.decode("latin-1")).path
    return unquote(path).lstrip("/")
