"""Files fetched over TFTP (RFC 1350, options RFC 2347-2349): UDP datagrams in, transfers out.

A read request goes to UDP 69; the server answers from a port of its own (its transfer ID) to
the client's port: DATA blocks (or an OACK first, when it accepts the blksize and tsize options,
which the client ACKs as block 0), each ACKed by the client, the last one shorter than the block
size; or an ERROR ("file not found" is code 1). A block seen twice is a retransmission, counted
once. A block the capture lacks leaves a hole: the transfer is incomplete. A transfer is handed
out when the final block is ACKed, on an ERROR, or when the capture ends (:meth:`finish`).
Sans-IO: the caller gives each UDP datagram with its frame number and time;
:meth:`TftpTracker.interested` tells cheaply which datagrams to give. :class:`TftpReader` is the
tracker as the scan's UDP table takes a reader.

Bounds: MAX_OPEN transfers at once (past it the oldest is handed out as incomplete), each
keeping MAX_FILE_BYTES of its body (capana.transfers): at most 1024 x 256 KiB held.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from capana.decode import Datagram
from capana.domain import TFTP_PORT
from capana.handshake import utc_from_epoch
from capana.model import FileTransfer, TransferProblem, TransferStatus
from capana.packets import address_text, endpoint_text
from capana.streams import Fact
from capana.transfers import BodyBuffer

MAX_OPEN = 1024
_RRQ, _WRQ, _DATA, _ACK, _ERROR, _OACK = 1, 2, 3, 4, 5, 6
_FILE_NOT_FOUND = 1
_DEFAULT_BLOCK_SIZE = 512

# (client address, client port, server address): one transfer at a time per client port.
_Key = tuple[str, int, str]


@dataclass
class _Transfer:
    """One read request and what followed it so far."""

    client: str
    client_port: int
    server: str
    name: str
    request_frame: int
    request_time: float
    last_frame: int
    server_port: int | None = None
    block_size: int = _DEFAULT_BLOCK_SIZE
    tsize: int | None = None
    last_block: int = 0
    final: bool = False  # the short last block arrived
    error: int | None = None
    problems: list[TransferProblem] = field(default_factory=list)
    body: BodyBuffer = field(default_factory=BodyBuffer)


class TftpTracker:
    """Every TFTP read request of a capture and its transfer (``capture`` names them).

    ``ports``, when given, is a set a fast path consults to pick UDP datagrams: the tracker keeps
    TFTP_PORT and the client port of every open transfer in it (the server answers from a port
    of its own to the client's), and removes only the ports it added.
    """

    def __init__(self, capture: str = "", ports: set[int] | None = None) -> None:
        self.capture = capture
        self._open: dict[_Key, _Transfer] = {}
        self._client_ports: Counter[int] = Counter()
        self._shared = ports if ports is not None else set()
        self._added: set[int] = set()  # the ports of self._shared this tracker put there
        self._watch(TFTP_PORT)

    def interested(self, source_port: int, destination_port: int) -> bool:
        """Could a UDP datagram between these ports belong to a TFTP transfer?"""
        ports = self._client_ports
        return TFTP_PORT in (source_port, destination_port) or (
            source_port in ports or destination_port in ports
        )

    def feed(
        self,
        source: str,
        source_port: int,
        destination: str,
        destination_port: int,
        payload: bytes,
        frame: int,
        timestamp: float,
        missing: int = 0,
    ) -> list[FileTransfer]:
        """One UDP datagram (``missing``: its bytes the snaplen cut); the transfers it completed."""
        if len(payload) < 4:
            return []
        opcode = int.from_bytes(payload[:2], "big")
        if opcode == _RRQ and destination_port == TFTP_PORT:
            return self._request(source, source_port, destination, payload, frame, timestamp)
        transfer = self._open.get((destination, destination_port, source))
        if transfer is not None and transfer.server_port in (None, source_port):
            transfer.server_port = source_port
            if missing and opcode == _DATA:
                transfer.problems.append("snaplen")
            return self._from_server(transfer, opcode, payload, frame)
        transfer = self._open.get((source, source_port, destination))
        if transfer is not None and transfer.server_port == destination_port:
            return self._from_client(transfer, opcode, payload, frame)
        return []

    def finish(self) -> list[FileTransfer]:
        """The capture is over: every open transfer, complete or not."""
        done = [self._close(transfer) for transfer in list(self._open.values())]
        return sorted(done, key=lambda transfer: transfer.request_frame)

    def _watch(self, port: int) -> None:
        if port not in self._shared:
            self._shared.add(port)
            self._added.add(port)

    def _unwatch(self, port: int) -> None:
        if port in self._added and port != TFTP_PORT:
            self._added.discard(port)
            self._shared.discard(port)

    def _request(
        self, client: str, port: int, server: str, payload: bytes, frame: int, timestamp: float
    ) -> list[FileTransfer]:
        fields = payload[2:].split(b"\x00")
        name = fields[0].decode("utf-8", "replace").lstrip("/")
        key = (client, port, server)
        earlier = self._open.get(key)
        if earlier is not None and earlier.server_port is None and earlier.name == name:
            return []  # the request sent again: the server had not answered yet
        done = [self._close(earlier)] if earlier is not None else []
        if len(self._open) >= MAX_OPEN:
            oldest = next(iter(self._open.values()))
            oldest.problems.append("evicted")
            done.append(self._close(oldest))
        self._open[key] = _Transfer(client, port, server, name, frame, timestamp, frame)
        self._client_ports[port] += 1
        self._watch(port)
        return done

    def _from_server(
        self, transfer: _Transfer, opcode: int, payload: bytes, frame: int
    ) -> list[FileTransfer]:
        if opcode == _DATA and not transfer.final:
            transfer.last_frame = frame
            self._data(transfer, int.from_bytes(payload[2:4], "big"), payload[4:])
        elif opcode == _OACK:
            transfer.last_frame = frame
            options = _options(payload[2:])
            if options.get("blksize", "").isdigit():
                transfer.block_size = int(options["blksize"])
            if options.get("tsize", "").isdigit():
                transfer.tsize = int(options["tsize"])
        elif opcode == _ERROR:
            transfer.last_frame = frame
            transfer.error = int.from_bytes(payload[2:4], "big")
            return [self._close(transfer)]
        return []

    def _from_client(
        self, transfer: _Transfer, opcode: int, payload: bytes, frame: int
    ) -> list[FileTransfer]:
        if opcode == _ACK:
            transfer.last_frame = frame
            if transfer.final and int.from_bytes(payload[2:4], "big") == transfer.last_block:
                return [self._close(transfer)]
        elif opcode == _ERROR:  # the client gave up (e.g. refused the options)
            transfer.last_frame = frame
            transfer.error = int.from_bytes(payload[2:4], "big")
            return [self._close(transfer)]
        return []

    def _data(self, transfer: _Transfer, block: int, data: bytes) -> None:
        if block == transfer.last_block:
            return  # a retransmission: the client's ACK was late or lost
        if block != (transfer.last_block + 1) & 0xFFFF:
            transfer.problems.append("block-missing")
        transfer.last_block = block
        transfer.body.add(data)
        transfer.final = len(data) < transfer.block_size

    def _close(self, transfer: _Transfer) -> FileTransfer:
        key = (transfer.client, transfer.client_port, transfer.server)
        if self._open.get(key) is transfer:
            del self._open[key]
            self._client_ports[transfer.client_port] -= 1
            if not self._client_ports[transfer.client_port]:
                del self._client_ports[transfer.client_port]
                self._unwatch(transfer.client_port)
        problems = list(transfer.problems)
        if transfer.body.truncated:
            problems.append("body-truncated")
        status: TransferStatus
        if transfer.error == _FILE_NOT_FOUND:
            status = "not_found"
        elif transfer.error is not None:
            status = "incomplete"
            problems.insert(0, "refused")
        elif transfer.final and not {"block-missing", "snaplen"} & set(problems):
            status = "ok"
        else:
            status = "incomplete"
        return FileTransfer(
            capture=self.capture,
            transport="tftp",
            client=endpoint_text(transfer.client, transfer.client_port),
            server=endpoint_text(transfer.server, TFTP_PORT),
            name=transfer.name,
            status=status,
            size=transfer.body.size,
            request_frame=transfer.request_frame,
            last_frame=transfer.last_frame,
            start=utc_from_epoch(transfer.request_time),
            announced_size=transfer.tsize,
            response_code=transfer.error,
            problems=tuple(dict.fromkeys(problems)),
            body=bytes(transfer.body.kept),
        )


class TftpReader:
    """The TFTP tracker as a reader of the scan's UDP table (``DatagramReader``, SEAMS.md).

    ``ports`` is the table's shared set of UDP ports the fast path lets through: the reader
    adds 69 and each open transfer's client port, and removes them when the transfer ends.
    """

    def __init__(self, capture: str, ports: set[int]) -> None:
        self.tracker = TftpTracker(capture, ports)
        self.completed: list[Fact] = []  # transfers handed out; the scan drains it

    def claims(self, datagram: Datagram) -> bool:
        return self.tracker.interested(datagram.source_port, datagram.destination_port)

    def add(self, datagram: Datagram, timestamp: float, frame: int) -> None:
        self.completed += self.tracker.feed(
            address_text(datagram.source),
            datagram.source_port,
            address_text(datagram.destination),
            datagram.destination_port,
            datagram.payload,
            frame,
            timestamp,
            datagram.missing,
        )

    def finish(self) -> None:
        self.completed += self.tracker.finish()


def _options(data: bytes) -> dict[str, str]:
    """``name\\0value\\0...`` (an OACK's body) as a dict, names lower-cased."""
    fields = [item.decode("ascii", "replace") for item in data.split(b"\x00")]
    return {name.lower(): value for name, value in zip(fields[::2], fields[1::2], strict=False)}
