"""Where TLS starts in one side's bytes when they do not open with it (sans-IO).

Two ways a side's bytes get there:
- an upgrade: a connection read from its first byte speaks something else first, then TLS
  (STARTTLS in SMTP, IMAP, POP3, LDAP, XMPP and FTP; PostgreSQL's SSLRequest; MySQL's SSL
  request; HTTP CONNECT; SOCKS). The client's TLS opens with a ClientHello, the server's with a
  ServerHello or an alert refusing the client's: a :class:`TlsStart` in ``"upgrade"`` mode looks
  for that record header anywhere in the bytes, each field checked, which a clear-text (or
  binary) protocol forms only by a rare chance;
- a resynchronisation: the capture starts inside the connection, or lacks some of its bytes.
  A peer starts each flight with a new segment, so in ``"resync"`` mode a chunk (a segment, or
  what a hole released) that begins with a chain of plausible record headers starts TLS again;
  a hello anywhere does too.

Bounds: a :class:`TlsStart` keeps at most the last HEADER_BYTES - 1 bytes between chunks (a
hello header cut across two segments) and passes over at most ``limit`` bytes before giving up
(MAX_CLEAR_PREFIX for an upgrade, MAX_RESYNC for a resync). Each chunk costs O(its length): the
search is ``bytes.find`` for the record type and version bytes.
"""

from __future__ import annotations

from typing import Literal

from capana import tls
from capana.model import Sender

MAX_CLEAR_PREFIX = (
    16 << 10
)  # clear-text bytes before TLS, per side: a STARTTLS dialogue is far less
MAX_RESYNC = 64 << 10  # bytes passed over to find a record boundary, per side
# Record header (5) + handshake type and length (4) + hello version (2).
HEADER_BYTES = 11

Mode = Literal["upgrade", "resync"]


def hello_at(data: bytes, sender: Sender, start: int = 0) -> int:
    """Where a record opening a ClientHello (``sender`` client) or a ServerHello or a plain alert
    (server) starts in ``data`` at or after ``start``; -1 when none does."""
    kinds = (tls.HANDSHAKE,) if sender == "client" else (tls.HANDSHAKE, tls.ALERT)
    found = -1
    for kind in kinds:
        at = start
        while True:
            at = data.find(bytes((kind, 3)), at)
            if at < 0 or (found >= 0 and at >= found):
                break
            if _hello_header(data, at, sender):
                found = at
                break
            at += 1
    return found


def _hello_header(data: bytes, at: int, sender: Sender) -> bool:
    """Is there a hello record header (or a 2-byte plain alert, from a server) at ``at``?"""
    if len(data) < at + 7 or data[at + 2] > 4:
        return False
    length = (data[at + 3] << 8) | data[at + 4]
    if data[at] == tls.ALERT:
        return length == 2 and data[at + 5] in (1, 2)
    if len(data) < at + HEADER_BYTES or not 42 <= length <= tls.MAX_RECORD_LENGTH:
        return False
    message = tls.CLIENT_HELLO if sender == "client" else tls.SERVER_HELLO
    size = int.from_bytes(data[at + 6 : at + 9], "big")
    return (
        data[at + 5] == message
        and 38 <= size <= tls.MAX_HANDSHAKE_MESSAGE
        and data[at + 9] == 3
        and data[at + 10] <= 4
    )


def records_at_start(data: bytes) -> bool:
    """Does ``data`` begin with plausible TLS record headers, each record's length leading to
    the next header (or past the end of ``data``)?"""
    at = 0
    while at + 5 <= len(data):
        kind, length = data[at], (data[at + 3] << 8) | data[at + 4]
        if (
            kind not in (tls.CHANGE_CIPHER_SPEC, tls.ALERT, tls.HANDSHAKE, tls.APPLICATION_DATA)
            or data[at + 1] != 3
            or data[at + 2] > 4
            or not 0 < length <= tls.MAX_RECORD_LENGTH
            or (kind == tls.CHANGE_CIPHER_SPEC and length != 1)
        ):
            return False
        at += 5 + length
    return at > 0


class TlsStart:
    """Finds where TLS starts in one side's bytes, chunk by chunk."""

    __slots__ = ("limit", "mode", "passed", "sender", "tail")

    def __init__(self, sender: Sender, mode: Mode) -> None:
        self.sender = sender
        self.mode = mode
        self.limit = MAX_CLEAR_PREFIX if mode == "upgrade" else MAX_RESYNC
        self.passed = 0  # bytes passed over so far
        self.tail = b""  # the end of the last chunk: a hello header may continue in this one

    @property
    def exhausted(self) -> bool:
        return self.passed >= self.limit

    def find(self, chunk: bytes) -> bytes | None:
        """The bytes from where TLS starts (this chunk's, and the tail's before it when the
        start is there); None while it has not started."""
        if self.exhausted:
            return None
        if self.mode == "resync" and records_at_start(chunk):
            return chunk
        data = self.tail + chunk
        at = hello_at(data, self.sender)
        if at >= 0:
            self.passed += at - len(self.tail)
            return data[at:]
        self.passed += len(chunk)
        self.tail = data[-(HEADER_BYTES - 1) :]
        return None
