"""A file a phone fetched from the cluster's TFTP service, over HTTP or TFTP, as one fact.

The HTTP reader (:mod:`capana.http_files`) and the TFTP reader (:mod:`capana.tftp`) both hand
out :class:`FileTransfer`; :mod:`capana.trustfiles` reads what the body holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# The cluster's TFTP service: TFTP on UDP 69, and the same files over HTTP on TCP 6970
# (DOMAIN.md; 6971/6972 are the HTTPS variants, encrypted). To move into capana.domain.
TFTP_PORT = 69
TFTP_HTTP_PORT = 6970
# A request for one of these names is a phone's boot file on whatever port it travels.
PHONE_FILE_SUFFIXES = (".tlv", ".sgn", ".cnf.xml")

# Bound: the bytes kept of one file's body. Trust lists are refused by phones over 64 KB and
# configurations are smaller; a larger body is counted in ``size`` but kept only this far.
MAX_FILE_BYTES = 256 * 1024

Transport = Literal["http", "tftp"]
# ok: the whole file arrived; not_found: HTTP 404 or TFTP error 1; failed: any other refusal
# (HTTP status >= 400, a TFTP error); incomplete: the capture or the connection ended first.
TransferStatus = Literal["ok", "not_found", "failed", "incomplete"]
TransferProblem = Literal[
    "body-truncated",  # over MAX_FILE_BYTES: the rest was counted, not kept
    "block-missing",  # a TFTP DATA block the capture lacks: the body has a hole
    "stream-gap",  # the TCP stream has a hole: HTTP could not be followed past it
    "bad-http",  # h11 refused the bytes: not HTTP/1.x, or broken framing
    "evicted",  # too many TFTP transfers open at once: closed early, as incomplete
]


@dataclass(frozen=True)
class FileTransfer:
    """One request for a file and its outcome. Frames are the caller's frame numbers."""

    transport: Transport
    client: str  # "ip:port" of the phone
    server: str  # "ip:port" of the service asked: its HTTP port, or 69 for TFTP
    name: str  # as requested, without a leading "/" or a query
    status: TransferStatus
    size: int  # body bytes seen (all of them, kept or not)
    request_frame: int  # the frame that completed the request
    last_frame: int  # the last frame of the exchange (the final TFTP ACK when captured)
    request_time: float
    announced_size: int | None = None  # Content-Length, or TFTP tsize from the server
    response_code: int | None = None  # the HTTP status, or the TFTP error code
    problems: tuple[TransferProblem, ...] = ()
    body: bytes = field(default=b"", repr=False)  # the first MAX_FILE_BYTES of the file


def is_phone_file(name: str) -> bool:
    """Is ``name`` a trust list, a signed file or a configuration a phone fetches at boot?"""
    return name.lower().split("?", 1)[0].endswith(PHONE_FILE_SUFFIXES)


class BodyBuffer:
    """A file's bytes as they arrive: the first MAX_FILE_BYTES kept, every byte counted."""

    __slots__ = ("kept", "size")

    def __init__(self) -> None:
        self.kept = bytearray()
        self.size = 0

    def add(self, data: bytes) -> None:
        self.size += len(data)
        room = MAX_FILE_BYTES - len(self.kept)
        if room > 0:
            self.kept += data[:room]

    @property
    def truncated(self) -> bool:
        return self.size > len(self.kept)
