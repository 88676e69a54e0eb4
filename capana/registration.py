"""Did the phone register? SIP REGISTER and its final answer, or SCCP Register and its Ack or
Reject, read from a connection's two directions of plaintext (decrypted TLS, a NULL-cipher
session, or clear SIP 5060 / SCCP 2000).

Sans-IO: feed each direction's bytes in order, split anywhere, to :class:`SipRegistration` or
:class:`SccpRegistration`; ``registration()`` gives one frozen :class:`Registration`.

- SIP: the last final response (>= 200) to a REGISTER decides: 2xx "registered", anything else
  "rejected" (a 401/407 challenge that the phone answers with a new REGISTER is not the end).
  A REGISTER with ``Expires: 0`` removes a binding; its answer does not make the phone
  registered. The line is the user part of the To URI (the phone's directory number); Cisco
  phones put their MAC in ``+sip.instance="<urn:uuid:00000000-0000-0000-0000-MAC>"``.
- SCCP: RegisterMessage (0x0001) names the device; RegisterAckMessage (0x0081) or
  RegisterRejectMessage (0x009D, with its text) answers; a LineStatResMessage (0x0092) gives the
  first line's directory number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from capana.framing import MessageFramer
from capana.model import Problem, ProblemCode, Registration, RegistrationResult

Sender = Literal["phone", "server"]

# Bounds: a SIP message's header block is at most MAX_SIP_HEADER bytes and its body at most
# MAX_SIP_BODY; an SCCP message at most MAX_SCCP_BODY. Each direction holds at most one
# unfinished message; at most MAX_MESSAGES messages are looked at per connection.
MAX_SIP_HEADER = 64 * 1024
MAX_SIP_BODY = 64 * 1024
MAX_SCCP_BODY = 64 * 1024
MAX_MESSAGES = 1024

SCCP_REGISTER = 0x0001
SCCP_REGISTER_ACK = 0x0081
SCCP_LINE_STAT_RES = 0x0092
SCCP_REGISTER_REJECT = 0x009D
_SCCP_HEADER = 12  # data length (LE, counts from the message id on), header version, message id
_SCCP_RESULTS: dict[str, RegistrationResult] = {
    "RegisterAck": "registered",
    "RegisterReject": "rejected",
}


# --- SIP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SipMessage:
    """A SIP request or response: its first line's parts and the headers we read."""

    method: str | None  # requests
    status: int | None  # responses
    reason: str
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value), compact forms expanded

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)


_COMPACT = {"t": "to", "f": "from", "i": "call-id", "l": "content-length", "m": "contact"}
_STATUS_LINE = re.compile(r"SIP/2\.0 (\d{3}) ?(.*)")
_REQUEST_LINE = re.compile(r"([A-Z]+) \S+ SIP/2\.0")
_URI_USER = re.compile(r"<?sips?:([^@;>]+)@")
_INSTANCE_MAC = re.compile(r"urn:uuid:00000000-0000-0000-0000-([0-9a-fA-F]{12})")
# Final answers that ask the phone to try again with credentials: not the end of it.
_CHALLENGES = frozenset({401, 407})


class SipReader:
    """Cuts one direction's bytes into SIP messages (RFC 3261, 7.5 and 18.3).

    Buffer: at most one unfinished message (MAX_SIP_HEADER + MAX_SIP_BODY) plus the last feed;
    keep-alive CRLFs between messages are skipped.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._body_left = 0
        self.failed: str | None = None

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[SipMessage]:
        if self.failed is not None:
            return []
        self._buffer += data
        messages: list[SipMessage] = []
        while True:
            if self._body_left:
                skipped = min(self._body_left, len(self._buffer))
                del self._buffer[:skipped]
                self._body_left -= skipped
                if self._body_left:
                    return messages
            while self._buffer[:2] == b"\r\n":
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_SIP_HEADER:
                    self._fail(f"no end of SIP headers within {MAX_SIP_HEADER} bytes")
                return messages
            head = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
            message = _sip_message(head)
            if message is None:
                self._fail("not SIP: " + head[:40].decode("latin-1").split("\r\n")[0])
                return messages
            length = message.header("content-length") or "0"
            if not length.strip().isdigit() or int(length) > MAX_SIP_BODY:
                self._fail(f"SIP body of {length.strip()[:20]} bytes is not read")
                return messages
            self._body_left = int(length)
            messages.append(message)

    def _fail(self, why: str) -> None:
        self.failed = why
        self._buffer.clear()


def _sip_message(head: bytes) -> SipMessage | None:
    lines = head.decode("utf-8", "replace").split("\r\n")
    status = _STATUS_LINE.fullmatch(lines[0])
    request = _REQUEST_LINE.fullmatch(lines[0])
    if status is None and request is None:
        return None
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            key = name.strip().lower()
            headers.append((_COMPACT.get(key, key), value.strip()))
    if status is not None:
        return SipMessage(None, int(status[1]), status[2], tuple(headers))
    assert request is not None
    return SipMessage(request[1], None, "", tuple(headers))


class SipRegistration:
    """Follows the REGISTERs of one SIP connection and their answers."""

    def __init__(self) -> None:
        self._readers = {"phone": SipReader(), "server": SipReader()}
        self._registers: dict[str, SipMessage] = {}  # CSeq -> REGISTER awaiting its answer
        self._final: tuple[SipMessage, SipMessage] | None = None  # (REGISTER, its answer)
        self._last_register: SipMessage | None = None
        self._attempts = 0
        self._seen = 0
        self._problems: list[Problem] = []

    def feed(self, sender: Sender, data: bytes) -> None:
        reader = self._readers[sender]
        was_failed = reader.failed
        for message in reader.feed(data):
            self._seen += 1
            if self._seen <= MAX_MESSAGES:
                self._message(message)
        if reader.failed and not was_failed:
            text = f"{sender}: {reader.failed}; the rest was not read"
            self._problems.append(Problem(ProblemCode.SESSION_MESSAGES, text))

    @property
    def complete(self) -> bool:
        """The registrar gave its last word (a 2xx, or a refusal that is not a challenge), or
        nothing more can be read."""
        if all(reader.failed for reader in self._readers.values()):
            return True
        answer = self._final[1] if self._final else None
        return answer is not None and answer.status not in _CHALLENGES

    @property
    def problems(self) -> tuple[Problem, ...]:
        problems = list(self._problems)
        if self._seen > MAX_MESSAGES:
            text = (
                f"{self._seen - MAX_MESSAGES} SIP messages past the first {MAX_MESSAGES} not read"
            )
            problems.append(Problem(ProblemCode.LIMIT, text))
        return tuple(problems)

    def registration(self) -> Registration | None:
        """None when no REGISTER (nor an answer to one) was seen."""
        register = self._final[0] if self._final else self._last_register
        if register is None:
            return None
        result: RegistrationResult = "unknown"
        status = None
        if self._final is not None:
            answer = self._final[1]
            status = f"{answer.status} {answer.reason}".strip()
            result = "registered" if 200 <= (answer.status or 0) < 300 else "rejected"
        to = register.header("to") or ""
        user = _URI_USER.search(to)
        mac = _INSTANCE_MAC.search(register.header("contact") or "")
        return Registration(
            "sip",
            result,
            status,
            user[1] if user else None,
            f"SEP{mac[1].upper()}" if mac else None,
            None,
            self._attempts,
        )

    def _message(self, message: SipMessage) -> None:
        cseq = message.header("cseq") or ""
        if message.method == "REGISTER":
            self._attempts += 1
            self._last_register = message
            self._registers[cseq] = message
        elif message.status is not None and cseq.upper().endswith("REGISTER"):
            register = self._registers.get(cseq)
            if register is None or message.status < 200:
                return
            if (register.header("expires") or "").strip() == "0":
                return  # an unregistration
            self._final = (register, message)


# --- SCCP ------------------------------------------------------------------------------------


class SccpRegistration:
    """Follows one SCCP connection's Register and the server's Ack or Reject."""

    def __init__(self) -> None:
        self._framers = {"phone": _sccp_framer(), "server": _sccp_framer()}
        self._device: str | None = None
        self._line: str | None = None
        self._status: str | None = None
        self._reason: str | None = None
        self._attempts = 0
        self._problems: list[Problem] = []
        self.message_ids: list[tuple[Sender, int]] = []  # the first MAX_MESSAGES, in order

    def feed(self, sender: Sender, data: bytes) -> None:
        framer = self._framers[sender]
        was_failed = framer.failed
        for raw in framer.feed(data):
            message_id = int.from_bytes(raw[8:12], "little")
            if len(self.message_ids) < MAX_MESSAGES:
                self.message_ids.append((sender, message_id))
            self._message(message_id, raw[_SCCP_HEADER:])
        if framer.failed and not was_failed:
            text = f"{sender}: {framer.failed}; the rest was not read"
            self._problems.append(Problem(ProblemCode.SESSION_MESSAGES, text))

    @property
    def complete(self) -> bool:
        """Rejected, or acknowledged with the line known (the phone asks for it right after),
        or nothing more can be read."""
        if all(framer.failed for framer in self._framers.values()):
            return True
        return self._status == "RegisterReject" or (
            self._status == "RegisterAck" and self._line is not None
        )

    @property
    def problems(self) -> tuple[Problem, ...]:
        return tuple(self._problems)

    def registration(self) -> Registration | None:
        """None when neither a Register nor an answer to one was seen."""
        if not self._attempts and self._status is None:
            return None
        result = _SCCP_RESULTS.get(self._status or "", "unknown")
        return Registration(
            "sccp",
            result,
            self._status,
            self._line,
            self._device,
            self._reason,
            self._attempts,
        )

    def _message(self, message_id: int, data: bytes) -> None:
        if message_id == SCCP_REGISTER:
            self._attempts += 1
            self._device = _text(data[:16]) or self._device
        elif message_id == SCCP_REGISTER_ACK:
            self._status, self._reason = "RegisterAck", None
        elif message_id == SCCP_REGISTER_REJECT:
            self._status, self._reason = "RegisterReject", _text(data[:33]) or None
        elif message_id == SCCP_LINE_STAT_RES and self._line is None:
            self._line = _text(data[4:28]) or None  # lineNumber (4), lineDirNumber (24)


def _sccp_framer() -> MessageFramer:
    def check(header: bytes) -> str | None:
        # The data length counts the message id; the header version is a small number.
        if int.from_bytes(header[:4], "little") >= 4 and header[5:8] == b"\0\0\0":
            return None
        return f"not SCCP (header {header.hex()})"

    # The header is the length and version; the body (message id and data) follows.
    return MessageFramer(
        8, lambda header: int.from_bytes(header[:4], "little"), MAX_SCCP_BODY, check
    )


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("ascii", "replace")
