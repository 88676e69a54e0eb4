"""Cleartext phone signalling: is a TCP session SCCP (2000) or SIP (5060) rather than TLS?

A phone with a non-secure device profile registers in clear: SCCP on TCP 2000, SIP on TCP 5060.
A session's first bytes (from either side: a capture may start mid-session) say which; then its
bytes go to the registration reader (:mod:`capana.sessions`, at most ``MAX_BYTES`` per side)
until it knows whether the phone registered.
"""

from __future__ import annotations

import re

from capana.domain import CLEARTEXT_SERVICE_BY_PORT
from capana.handshake import utc_from_epoch
from capana.model import Frames, Handshake, Sender
from capana.sessions import SessionReader, session_reader
from capana.streams import Flow

# A SIP request line ("REGISTER sip:...") or status line ("SIP/2.0 200 OK").
_SIP_START = re.compile(rb"[A-Z]{3,16} sips?:|SIP/2\.0 \d{3} ")
# An SCCP message body may not claim more than this (the largest messages are a few KB).
_SCCP_MAX_LENGTH = 1 << 16


def cleartext_service(server_port: int, first_bytes: bytes) -> str | None:
    """The service ("sccp", "sip") a session to ``server_port`` opens in clear, else None."""
    service = CLEARTEXT_SERVICE_BY_PORT.get(server_port)
    if service == "sccp" and looks_like_sccp(first_bytes):
        return service
    if service == "sip" and _SIP_START.match(first_bytes):
        return service
    return None


def looks_like_sccp(data: bytes) -> bool:
    """An SCCP (Skinny) header: length, header version and message id, each 4 bytes little
    endian; the version and the id are small numbers."""
    if len(data) < 12:
        return False
    length = int.from_bytes(data[0:4], "little")
    return 4 <= length <= _SCCP_MAX_LENGTH and data[5:8] == b"\0\0\0" and data[10:12] == b"\0\0"


class CleartextSession:
    """The stream reader of a phone's clear-text SCCP/SIP session: reports the connection as one
    without TLS, with the registration its messages show."""

    __slots__ = ("frame", "last", "reader", "service", "timestamp")

    hopeless = False

    def __init__(self, service: str, timestamp: float, frame: int) -> None:
        self.service = service
        self.timestamp = timestamp
        self.frame = frame
        self.reader: SessionReader | None = session_reader(service)
        self.last = timestamp  # the capture time of the last bytes read

    @property
    def done(self) -> bool:
        """The registration is known (or the bound was reached): stop buffering."""
        return self.reader is None or self.reader.complete

    def feed(self, sender: Sender, data: bytes, timestamp: float, frame: int) -> None:
        self.last = timestamp or self.last
        if self.reader is not None:
            self.reader.feed(sender, data)

    def after_gap(self, sender: Sender, data: bytes, timestamp: float, frame: int) -> None:
        """A message cut by the hole cannot be framed again: that side is read no more."""
        if self.reader is not None:
            self.reader.cut(sender)

    def facts(self, flow: Flow) -> tuple[Handshake, ...]:
        handshake = Handshake(
            capture=flow.capture,
            transport="tcp",
            client=flow.client,
            server=flow.server,
            server_port=flow.server_port,
            service=self.service,
            start=utc_from_epoch(self.timestamp),
            tls_version=None,
            cipher_suite=None,
            sni=None,
            client_cert_status="not_requested",
            client_chain=(),
            server_chain=(),
            requested_ca_names=None,
            alerts=(),
            outcome="established",
            gaps=flow.gaps,
            problems=flow.problems,
            frames=Frames(cleartext=self.frame or None),
            wireshark_filter=flow.wireshark_filter,
            cleartext=True,
            end=utc_from_epoch(self.last),
        )
        return (self.reader.apply(handshake) if self.reader else handshake,)
