"""Both directions of a CAPF or TVS connection cut into messages and dissected: the shape the two
protocols share, a header naming the protocol and its body's length, then TLV elements.

Sans-IO: :meth:`TlvDecoder.feed` takes one direction's bytes in order, split anywhere; each whole
message is dissected by its scapy layer (``capana.dissectors.cisco_capf_tvs``), listed as a
:class:`~capana.model.SessionMessage` and handed to the subclass's ``_fold``, which says what the
messages mean (:mod:`capana.capf`, :mod:`capana.tvs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from scapy.packet import Packet

from capana.dissectors.cisco_capf_tvs import elements_fit
from capana.framing import MessageFramer
from capana.model import Party, Problem, ProblemCode, SessionMessage

# Bounds: a message is at most MAX_BODY bytes after its header (its length field's width); a
# connection lists at most MAX_MESSAGES messages (an enrolment takes about eight). Each
# direction holds at most one unfinished message (MessageFramer).
MAX_BODY = 0xFFFF
MAX_MESSAGES = 256


@dataclass(frozen=True)
class TlvProtocol:
    """What tells one TLV protocol's messages apart, and how to dissect them."""

    name: str  # "CAPF", "TVS"
    layer: type[Packet]
    element: type[Packet]  # the base class of its elements
    protocol_id: int  # the header's first byte
    header_length: int
    length_offset: int  # where the header's 2-byte body length sits
    commands: Mapping[int, str]
    elements: Mapping[int, str]


class TlvDecoder:
    """Reads both directions of one connection of ``protocol``; subclasses fold the meaning."""

    protocol: ClassVar[TlvProtocol]
    roles: ClassVar[tuple[Party, Party]]  # (the phone, the server)

    def __init__(self) -> None:
        self._framers = {role: self._framer() for role in self.roles}
        self._messages: list[SessionMessage] = []
        self._dropped = 0
        self._problems: list[Problem] = []

    def feed(self, sender: Party, data: bytes) -> list[SessionMessage]:
        """The messages that ``data`` completed in this direction."""
        framer = self._framers[sender]
        was_failed = framer.failed
        found = [self._message(sender, raw) for raw in framer.feed(data)]
        if framer.failed and not was_failed:
            self._problem(f"{sender}: {framer.failed}; the rest was not read")
        return found

    @property
    def unreadable(self) -> bool:
        """Neither direction can be read any more."""
        return all(framer.failed for framer in self._framers.values())

    @property
    def messages(self) -> tuple[SessionMessage, ...]:
        return tuple(self._messages)

    @property
    def problems(self) -> tuple[Problem, ...]:
        """What could not be read, so far: refused bytes, overruns, unfinished messages."""
        problems = list(self._problems)
        for sender, framer in self._framers.items():
            if framer.pending and not framer.failed:
                text = f"{sender}: {framer.pending} bytes of an unfinished message"
                problems.append(Problem(ProblemCode.SESSION_MESSAGES, text))
        if self._dropped:
            text = f"{self._dropped} messages past the first {MAX_MESSAGES} not listed"
            problems.append(Problem(ProblemCode.LIMIT, text))
        return tuple(problems)

    def _problem(self, text: str, code: ProblemCode = ProblemCode.SESSION_MESSAGES) -> None:
        self._problems.append(Problem(code, text))

    def _fold(self, sender: Party, message: SessionMessage, elements: list[Packet]) -> None:
        """What one message says (its elements as dissected, in order)."""
        raise NotImplementedError

    def _message(self, sender: Party, raw: bytes) -> SessionMessage:
        protocol = self.protocol
        packet = protocol.layer(raw)
        elements = [e for e in packet.elements if isinstance(e, protocol.element)]
        if not elements_fit(packet):
            self._problem(f"{sender}: a message's elements overrun its length")
        message = SessionMessage(
            sender,
            protocol.commands.get(packet.cmd, f"command_{packet.cmd}"),
            int(packet.session_id),
            tuple(protocol.elements.get(e.tag, f"element_{e.tag}") for e in elements),
        )
        if len(self._messages) < MAX_MESSAGES:
            self._messages.append(message)
        else:
            self._dropped += 1
        self._fold(sender, message, elements)
        return message

    def _framer(self) -> MessageFramer:
        protocol = self.protocol
        offset = protocol.length_offset

        def check(header: bytes) -> str | None:
            if header[0] != protocol.protocol_id:
                return (
                    f"not {protocol.name} (protocol id {header[0]}, "
                    f"expected {protocol.protocol_id})"
                )
            return None

        return MessageFramer(
            protocol.header_length,
            lambda header: int.from_bytes(header[offset : offset + 2], "big"),
            MAX_BODY,
            check,
        )
