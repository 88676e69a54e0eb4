"""Files fetched over HTTP on one TCP connection, as the flow table reads them: the sans-IO
:class:`~capana.http_files.HttpFileExchange` behind the :class:`~capana.streams.StreamReader`
seam.

A connection is followed when its client opens it on the TFTP service's HTTP port (6970), or
with a GET naming a phone's file (``.tlv``, ``.sgn``, ``.cnf.xml``) on any other port; until
that request line is whole the reader holds the client's first bytes (bounded by the request
line limit of :func:`~capana.http_files.is_file_request`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from capana.domain import TFTP_HTTP_PORT
from capana.handshake import CLIENT, SERVER
from capana.http_files import HttpFileExchange, is_file_request
from capana.model import FileTransfer, ProblemCode, Sender, TransferProblem
from capana.streams import Flow


def opens_file_transfer(sender: Sender, first_bytes: bytes, server_port: int) -> bool:
    """May a connection whose first bytes come from ``sender`` carry a phone's file requests?"""
    if sender != CLIENT:
        return False
    return server_port == TFTP_HTTP_PORT or is_file_request(first_bytes) is not False


class HttpFileStream:
    """One connection's HTTP file transfers, read from both sides' bytes."""

    __slots__ = ("_exchange", "_head", "_not_files", "_transfers")

    def __init__(self, server_port: int) -> None:
        self._exchange = HttpFileExchange("", "")  # the flow names the endpoints at the end
        self._transfers: list[FileTransfer] = []
        # On another port than 6970: the client's bytes until its request line is whole.
        self._head: bytearray | None = None if server_port == TFTP_HTTP_PORT else bytearray()
        self._not_files = False  # the first request does not ask for a phone's file

    @property
    def done(self) -> bool:
        return self._exchange.stopped

    @property
    def hopeless(self) -> bool:
        exchange = self._exchange
        return self._not_files or (exchange.stopped and not exchange.requests)

    def feed(self, sender: Sender, data: bytes, timestamp: float, frame: int) -> None:
        if self._head is not None and sender == CLIENT:
            self._head += data
            wanted = is_file_request(bytes(self._head))
            if wanted is None:
                return
            self._not_files = not wanted
            if self._not_files:  # hopeless now: the flow drops this reader unread
                return
            data, self._head = bytes(self._head), None
        self._transfers += self._exchange.feed(sender, data, frame, timestamp)

    def after_gap(self, sender: Sender, data: bytes, timestamp: float, frame: int) -> None:
        """HTTP cannot be framed after a hole: that side is not followed any further."""
        self._exchange.gap(sender)

    def facts(self, flow: Flow) -> Sequence[FileTransfer]:
        """Every GET of the connection, the ones the capture left unanswered as incomplete."""
        exchange = self._exchange
        done = list(self._transfers)
        for side in (CLIENT, SERVER):
            if side in flow.closed:
                done += exchange.end(side)
        done += exchange.finish()
        cut: tuple[TransferProblem, ...] = (
            ("snaplen",) if any(p.code == ProblemCode.SNAPLEN for p in flow.problems) else ()
        )
        return [
            replace(
                transfer,
                capture=flow.capture,
                client=flow.client,
                server=flow.server,
                problems=transfer.problems + cut,
            )
            for transfer in done
        ]
