"""A TVS session (TCP 2445) read from its two directions' application bytes: which certificate
the phone asked about, and whether the Trust Verification Service vouched for it, for which
roles and for how long.

Sans-IO: feed each direction's decrypted bytes in order (split anywhere) to
:class:`TvsDecoder`; ``session()`` gives one frozen :class:`~capana.model.TvsSession`. Messages
are framed and dissected by :mod:`capana.tlv_sessions` with the scapy layers in
``capana.dissectors.cisco_capf_tvs``; a request and its answer share a session id.
"""

from __future__ import annotations

from typing import ClassVar

from scapy.packet import Packet

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
    TvsTtl,
)
from capana.dissectors.cisco_capf_tvs import (
    TvsStatus as TvsStatusElement,
)
from capana.model import Party, ProblemCode, SessionMessage, TvsQuery, TvsSession, TvsStatus
from capana.tlv_sessions import TlvDecoder, TlvProtocol

PROTOCOL = TlvProtocol(
    "TVS",
    TVS,
    TvsElement,
    TVS_PROTOCOL_ID,
    TVS_HEADER_LENGTH,
    8,  # protocol(1) version(1) command(1) reserved(1) session_id(4) length(2)
    TVS_COMMANDS,
    TVS_ELEMENTS,
)
# Bound: a connection keeps at most MAX_QUERIES queries (a phone asks one or two).
MAX_QUERIES = 128

_REQUESTS = frozenset({"verify_request", "query_request"})
_RESPONSES = frozenset({"verify_response", "query_response"})
_STATUS: dict[int, TvsStatus] = {0: "trusted", 1: "untrusted"}


class TvsDecoder(TlvDecoder):
    """Reads both directions of one TVS connection; ``session()`` gives the facts."""

    protocol = PROTOCOL
    roles: ClassVar[tuple[Party, Party]] = ("phone", "tvs")

    def __init__(self) -> None:
        super().__init__()
        self._queries: list[TvsQuery] = []
        self._open: dict[int, int] = {}  # session id -> index in _queries awaiting an answer

    @property
    def complete(self) -> bool:
        """Nothing more can be read. (A phone may ask again on the same connection, so an
        answered question does not end it.)"""
        return self.unreadable

    def session(self) -> TvsSession:
        return TvsSession(tuple(self._queries), self.messages)

    def _fold(self, sender: Party, message: SessionMessage, elements: list[Packet]) -> None:
        first = {type(e): e for e in reversed(elements)}
        if sender == "phone" and message.command in _REQUESTS:
            self._question(message.session_id, first)
        elif sender == "tvs" and message.command in _RESPONSES:
            self._answer(message.session_id, first)

    def _question(self, session_id: int, first: dict[type[Packet], Packet]) -> None:
        if len(self._queries) >= MAX_QUERIES:
            self._problem(
                f"more than {MAX_QUERIES} queries; later ones not listed", ProblemCode.LIMIT
            )
            return
        name = first.get(TvsDeviceName)
        certificate = first.get(TvsCertificate)
        device = bytes(name.text).decode("utf-8", "replace") if name is not None else None
        der = bytes(certificate.der) if certificate is not None else None
        self._open[session_id] = len(self._queries)
        self._queries.append(TvsQuery(device or None, der or None, "unknown", (), None))

    def _answer(self, session_id: int, first: dict[type[Packet], Packet]) -> None:
        index = self._open.pop(session_id, None)
        if index is None:
            self._problem(f"an answer for session {session_id}, which asked nothing")
            return
        status, roles, ttl = first.get(TvsStatusElement), first.get(TvsRoles), first.get(TvsTtl)
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
