"""Test-side glue: a capture's file transfers through capana's own stages.

What the pipeline will do once the readers are wired in: capture records, capana's TCP
reassembly per direction feeding :class:`HttpFileExchange`, UDP datagrams feeding
:class:`TftpTracker`. Frame numbers count from 1, as tshark's do.
"""

from __future__ import annotations

from pathlib import Path

from capana.capture import CaptureReader
from capana.domain import TFTP_HTTP_PORT
from capana.http_files import HttpFileExchange, Side, is_file_request
from capana.model import FileTransfer
from capana.packets import (
    FLAG_ACK,
    FLAG_FIN,
    FLAG_RST,
    FLAG_SYN,
    TcpSegment,
    address_text,
    decode_tcp,
    decode_udp,
    endpoint,
    endpoint_text,
)
from capana.tcp import TcpStream
from capana.tftp import TftpTracker

ALL_PORTS = frozenset(range(65536))


class _Connection:
    def __init__(self, client_key: bytes) -> None:
        self.client_key = client_key
        client, server = endpoint(client_key), endpoint(client_key, destination=True)
        self.server_port = server[1]
        self.exchange = HttpFileExchange(endpoint_text(*client), endpoint_text(*server))
        self.streams: dict[Side, TcpStream] = {}
        self.following: bool | None = None  # decided by the first client bytes
        self.ended: set[Side] = set()


def capture_transfers(path: Path) -> list[FileTransfer]:
    """Every file transfer in the capture at ``path``, in the order their requests came."""
    connections: dict[bytes, _Connection] = {}
    tftp = TftpTracker()
    done: list[FileTransfer] = []
    with CaptureReader(path) as capture:
        for number, (timestamp, linktype, frame, wire_length) in enumerate(capture, start=1):
            segment = decode_tcp(linktype, frame, wire_length)
            if segment is not None:
                done += _tcp(connections, segment, number, timestamp)
                continue
            datagram = decode_udp(linktype, frame, ALL_PORTS)
            if datagram is not None and tftp.interested(
                datagram.source_port, datagram.destination_port
            ):
                done += tftp.feed(
                    address_text(datagram.source),
                    datagram.source_port,
                    address_text(datagram.destination),
                    datagram.destination_port,
                    datagram.payload,
                    number,
                    timestamp,
                )
    for connection in connections.values():
        done += connection.exchange.finish()
    done += tftp.finish()
    return sorted(done, key=lambda transfer: transfer.request_frame)


def _tcp(
    connections: dict[bytes, _Connection], segment: TcpSegment, number: int, timestamp: float
) -> list[FileTransfer]:
    if segment.flags & FLAG_SYN and not segment.flags & FLAG_ACK:  # a new connection
        connections[segment.key] = _Connection(segment.key)
    connection = connections.get(segment.key) or connections.get(segment.reverse_key)
    if connection is None:
        return []
    side: Side = "client" if segment.key == connection.client_key else "server"
    stream = connection.streams.get(side)
    if stream is None:
        start = segment.seq + 1 if segment.flags & FLAG_SYN else segment.seq
        stream = connection.streams[side] = TcpStream(next_seq=start)
    done: list[FileTransfer] = []
    data = stream.add(segment.seq + (1 if segment.flags & FLAG_SYN else 0), segment.payload)
    if data:
        if connection.following is None and side == "client":
            connection.following = connection.server_port == TFTP_HTTP_PORT or is_file_request(data)
        if connection.following:
            done += connection.exchange.feed(side, data, number, timestamp)
    if segment.flags & (FLAG_FIN | FLAG_RST) and side not in connection.ended:
        connection.ended.add(side)
        if connection.following:
            done += connection.exchange.end(side)
    return done
