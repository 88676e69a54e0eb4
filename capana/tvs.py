"""A TVS session (TCP 2445) read from its two directions' application bytes: which certificate
the phone asked about, and whether the Trust Verification Service vouched for it, for which
roles and for how long.

Sans-IO: feed each direction's decrypted bytes in order (split anywhere) to
:class:`TvsDecoder`; ``session()`` gives one frozen :class:`TvsSession`. Messages are dissected
by the scapy layers in ``capana.dissectors.cisco_capf_tvs``; a request and its answer share a
session id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from capana.dissectors.cisco_capf_tvs import (
    TVS,
    TVS_COMMANDS,
    TVS_ELEMENTS,
    TVS_HEADER_LENGTH,
    TVS_PROTOCOL_ID,
    TVS_ROLES,
    TvsCertificate,
    TvsDeviceName,
    TvsElement,
    TvsRoles,
    TvsStatus,
    TvsTtl,
    elements_fit,
)
from capana.framing import MessageFramer

Sender = Literal["phone", "tvs"]
Status = Literal["trusted", "untrusted", "unknown"]

# Bounds: a TVS message is at most 65535 bytes after its header (the length field's width); a
# session keeps at most MAX_QUERIES queries and MAX_MESSAGES messages (a phone asks one or two).
MAX_BODY = 0xFFFF
MAX_QUERIES = 128
MAX_MESSAGES = 256

_REQUESTS = frozenset({"verify_request", "query_request"})
_RESPONSES = frozenset({"verify_response", "query_response"})
_STATUS: dict[int, Status] = {0: "trusted", 1: "untrusted"}


@dataclass(frozen=True)
class TvsMessage:
    sender: Sender
    command: str  # e.g. "verify_request"; "command_<n>" for a code no source names
    session_id: int
    elements: tuple[str, ...]


@dataclass(frozen=True)
class TvsQuery:
    """One question and its answer ("unknown" and no roles when no answer was read)."""

    device: str | None
    certificate: bytes | None  # DER
    status: Status
    roles: tuple[str, ...]  # "CCM", "CCM+TFTP", "TVS", ...; "role_<n>" for another code
    ttl: int | None  # seconds the phone may cache the answer


@dataclass(frozen=True)
class TvsSession:
    queries: tuple[TvsQuery, ...]
    messages: tuple[TvsMessage, ...]
    problems: tuple[str, ...] = ()


class TvsDecoder:
    """Reads both directions of one TVS connection; ``session()`` gives the facts."""

    def __init__(self) -> None:
        self._framers = {sender: _framer() for sender in ("phone", "tvs")}
        self._messages: list[TvsMessage] = []
        self._queries: list[TvsQuery] = []
        self._open: dict[int, int] = {}  # session id -> index in _queries awaiting an answer
        self._problems: list[str] = []

    def feed(self, sender: Sender, data: bytes) -> list[TvsMessage]:
        """The messages that ``data`` completed in this direction."""
        framer = self._framers[sender]
        was_failed = framer.failed
        found = [self._message(sender, raw) for raw in framer.feed(data)]
        if framer.failed and not was_failed:
            self._problems.append(f"{sender}: {framer.failed}; the rest was not read")
        return found

    def session(self) -> TvsSession:
        problems = list(self._problems)
        for sender, framer in self._framers.items():
            if framer.pending and not framer.failed:
                problems.append(f"{sender}: {framer.pending} bytes of an unfinished message")
        return TvsSession(tuple(self._queries), tuple(self._messages), tuple(problems))

    def _message(self, sender: Sender, raw: bytes) -> TvsMessage:
        packet = TVS(raw)
        elements = [e for e in packet.elements if isinstance(e, TvsElement)]
        if not elements_fit(packet):
            self._problems.append(f"{sender}: a message's elements overrun its length")
        command = TVS_COMMANDS.get(packet.cmd, f"command_{packet.cmd}")
        session_id = int(packet.session_id)
        message = TvsMessage(
            sender,
            command,
            session_id,
            tuple(TVS_ELEMENTS.get(e.tag, f"element_{e.tag}") for e in elements),
        )
        if len(self._messages) < MAX_MESSAGES:
            self._messages.append(message)
        first = {type(e): e for e in reversed(elements)}
        if sender == "phone" and command in _REQUESTS:
            self._question(session_id, first)
        elif sender == "tvs" and command in _RESPONSES:
            self._answer(session_id, first)
        return message

    def _question(self, session_id: int, first: dict[type, TvsElement]) -> None:
        if len(self._queries) >= MAX_QUERIES:
            self._problems.append(f"more than {MAX_QUERIES} queries; later ones not listed")
            return
        name = first.get(TvsDeviceName)
        certificate = first.get(TvsCertificate)
        device = bytes(name.text).decode("utf-8", "replace") if name is not None else None
        der = bytes(certificate.der) if certificate is not None else None
        self._open[session_id] = len(self._queries)
        self._queries.append(TvsQuery(device or None, der or None, "unknown", (), None))

    def _answer(self, session_id: int, first: dict[type, TvsElement]) -> None:
        index = self._open.pop(session_id, None)
        if index is None:
            self._problems.append(f"an answer for session {session_id}, which asked nothing")
            return
        status, roles, ttl = first.get(TvsStatus), first.get(TvsRoles), first.get(TvsTtl)
        question = self._queries[index]
        self._queries[index] = TvsQuery(
            question.device,
            question.certificate,
            _STATUS.get(int(status.status), "unknown") if status is not None else "unknown",
            tuple(TVS_ROLES.get(code, f"role_{code}") for code in bytes(roles.roles))
            if roles is not None
            else (),
            int(ttl.ttl) if ttl is not None else None,
        )


def _framer() -> MessageFramer:
    def check(header: bytes) -> str | None:
        if header[0] != TVS_PROTOCOL_ID:
            return f"not TVS (protocol id {header[0]}, expected {TVS_PROTOCOL_ID})"
        return None

    return MessageFramer(
        TVS_HEADER_LENGTH, lambda header: int.from_bytes(header[8:10], "big"), MAX_BODY, check
    )
