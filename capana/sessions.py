"""What a phone says inside a connection, read by the decoder of its service: CAPF (3804), TVS
(2445), SIP (5061, 5060) or SCCP (2443, 2000) registration.

Sans-IO: a :class:`SessionReader` is fed the application bytes of both sides in capture order
(decrypted TLS records, a NULL-cipher session's, or a clear TCP stream's) and says when it
``complete``: the decoder has what it needs, or the bound is reached. ``apply`` then adds what it
read to the connection's :class:`~capana.model.Handshake`.

The CAPF and TVS decoders load scapy (half a second): they are imported when a connection of
theirs first carries readable bytes, never by a scan that meets none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from capana.model import Handshake, Problem, ProblemCode, Sender
from capana.registration import SccpRegistration, SipRegistration

# Bound: at most MAX_BYTES of each side's application bytes are read (the TLS 1.2 decryptor
# stops at the same figure, tls12.MAX_APPLICATION_DATA); an enrolment, a TVS answer or a
# registration fits in a few KiB. What the decoders hold is bounded by the decoders.
MAX_BYTES = 256 * 1024


class _Decoder(Protocol):
    @property
    def complete(self) -> bool: ...

    @property
    def problems(self) -> tuple[Problem, ...]: ...

    def feed(self, sender: Any, data: bytes) -> object: ...


def _capf() -> _Decoder:
    from capana.capf import CapfDecoder

    return CapfDecoder()


def _tvs() -> _Decoder:
    from capana.tvs import TvsDecoder

    return TvsDecoder()


@dataclass(frozen=True)
class _Service:
    names: tuple[str, str]  # the decoder's names for the client and the server
    make: Callable[[], _Decoder]
    fill: Callable[[Any, Handshake], Handshake]  # the handshake with the decoder's facts


def _registration(decoder: Any, handshake: Handshake) -> Handshake:
    return dataclasses.replace(handshake, registration=decoder.registration())


_CAPF = _Service(("phone", "capf"), _capf, lambda d, h: dataclasses.replace(h, capf=d.session()))
_TVS = _Service(("phone", "tvs"), _tvs, lambda d, h: dataclasses.replace(h, tvs=d.session()))
_SIP = _Service(("phone", "server"), SipRegistration, _registration)
_SCCP = _Service(("phone", "server"), SccpRegistration, _registration)
# By service name (capana.domain): TLS services and their clear-text counterparts.
_SERVICES = {
    "capf": _CAPF,
    "tvs": _TVS,
    "sip-tls": _SIP,
    "sip": _SIP,
    "sccp-tls": _SCCP,
    "sccp": _SCCP,
}


def session_reader(service: str) -> SessionReader | None:
    """The reader for a connection of ``service`` ("capf", "sip-tls", "sccp", ...), or None
    when capana decodes nothing there."""
    known = _SERVICES.get(service)
    return SessionReader(known) if known else None


class SessionReader:
    """Feeds a connection's application bytes to its service's decoder, made at the first."""

    __slots__ = ("_cut", "_decoder", "_names", "_read", "_service", "limited")

    def __init__(self, service: _Service) -> None:
        self._service = service
        self._names = {"client": service.names[0], "server": service.names[1]}
        self._decoder: _Decoder | None = None
        self._read = {"client": 0, "server": 0}
        self._cut: set[Sender] = set()  # sides a hole in the capture cut: not read past it
        self.limited = False  # a side reached MAX_BYTES: the rest of the session is not read

    @property
    def complete(self) -> bool:
        """Nothing more is wanted: the decoder has what it needs, the bound was reached, or
        holes cut both sides."""
        decoder = self._decoder
        if self.limited or len(self._cut) == 2:
            return True
        return decoder is not None and decoder.complete

    def cut(self, sender: Sender) -> None:
        """A stretch of ``sender``'s bytes is missing: its messages cannot be framed again."""
        self._cut.add(sender)

    def feed(self, sender: Sender, data: bytes) -> None:
        if self.complete or not data or sender in self._cut:
            return
        room = MAX_BYTES - self._read[sender]
        if len(data) >= room:
            data, self.limited = data[:room], True
        self._read[sender] += len(data)
        if self._decoder is None:
            self._decoder = self._service.make()
        self._decoder.feed(self._names[sender], data)

    def apply(self, handshake: Handshake) -> Handshake:
        """``handshake`` with what was said inside it (unchanged when nothing was read)."""
        decoder = self._decoder
        if decoder is None:
            return handshake
        problems = decoder.problems
        for sender in sorted(self._cut):
            text = f"{self._names[sender]}: a hole in the capture; its later messages not read"
            problems += (Problem(ProblemCode.SESSION_MESSAGES, text),)
        if self.limited:
            text = f"only the first {MAX_BYTES} bytes of each side's application data were read"
            problems += (Problem(ProblemCode.LIMIT, text),)
        handshake = dataclasses.replace(handshake, problems=handshake.problems + problems)
        return self._service.fill(decoder, handshake)
