"""A CAPF session (TCP 3804) read from its two directions' application bytes: what the phone
asked for, how it authenticated, what it was given, and how it ended.

Sans-IO: feed each direction's decrypted bytes in order (split anywhere) to
:class:`CapfDecoder`; ``session()`` folds the messages read so far into one frozen
:class:`~capana.model.CapfSession`. Messages are framed and dissected by
:mod:`capana.tlv_sessions` with the scapy layers in ``capana.dissectors.cisco_capf_tvs``.

What the bytes do not state is inferred, and left None when it cannot be known:

- ``auth``: a certificate in the phone's auth response is what it authenticated with, LSC or MIC
  by its issuer (``capana.classify``); else the auth type the CAPF asked for (1 password,
  2 no password, 3 LSC, 4 MIC); else (type 0 or none, as the usecallmanager CAPF always sends) a
  non-empty password means "password", and an empty one that the CAPF accepted (it went on to an
  operation, or had none scheduled) means "none".
- ``operation``: a key generate request is "install", or "upgrade" when the phone authenticated
  with an LSC it already had; a fetch request is "fetch", or "troubleshoot" when the CAPF fetches
  the MIC too (two fetches, or one for certificate type MIC); "delete"; "none" when the session
  ends at once with reason 0 or 1 (nothing scheduled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from cryptography.hazmat.primitives.serialization import load_der_public_key
from scapy.packet import Packet

from capana.certificates import describe_public_key, parse_certificate
from capana.classify import classify
from capana.dissectors.cisco_capf_tvs import (
    CAPF,
    CAPF_COMMANDS,
    CAPF_CURVES,
    CAPF_ELEMENTS,
    CAPF_HEADER_LENGTH,
    CAPF_PROTOCOL_ID,
    CAPF_REASONS,
    CapfAuthType,
    CapfCertificate,
    CapfCertificateType,
    CapfCurve,
    CapfElement,
    CapfKeySize,
    CapfKeyType,
    CapfString,
)
from capana.dissectors.cisco_capf_tvs import (
    CapfReason as CapfReasonElement,
)
from capana.model import (
    CapfAuth,
    CapfOperation,
    CapfReason,
    CapfResult,
    CapfSession,
    Certificate,
    Party,
    SessionMessage,
)
from capana.tlv_sessions import TlvDecoder, TlvProtocol

PROTOCOL = TlvProtocol(
    "CAPF",
    CAPF,
    CapfElement,
    CAPF_PROTOCOL_ID,
    CAPF_HEADER_LENGTH,
    6,  # protocol(1) command(1) session_id(4) length(2)
    CAPF_COMMANDS,
    CAPF_ELEMENTS,
)

_AUTH_BY_TYPE: dict[int, CapfAuth] = {1: "password", 2: "none", 3: "lsc", 4: "mic"}
_SUCCESS = 1  # reason "update certificate": the phone's response to an operation that worked
_NOTHING_SCHEDULED = frozenset({0, 1})  # end session at once: no operation for this device
_CURVE_KEYS = {0: "EC P-256", 1: "EC P-384", 2: "EC P-521"}
_OPERATION_REQUESTS = frozenset(
    {"key_generate_request", "fetch_certificate_request", "delete_certificate_request"}
)


@dataclass
class _State:
    """What the messages said, as they came."""

    device: str | None = None
    requested_auth: int | None = None
    password: str | None = None
    auth_certificate: bytes | None = None
    operation_command: str | None = None
    fetch_types: list[int | None] = field(default_factory=list)
    key_request: tuple[int | None, int | None, int | None] | None = None  # type, size, curve
    public_key: bytes | None = None
    issued: bytes | None = None
    fetched: list[bytes] = field(default_factory=list)
    responses: dict[str, int | None] = field(default_factory=dict)  # command -> reason
    end: CapfReason | None = None


class CapfDecoder(TlvDecoder):
    """Reads both directions of one CAPF connection; ``session()`` gives the facts."""

    protocol = PROTOCOL
    roles: ClassVar[tuple[Party, Party]] = ("phone", "capf")

    def __init__(self) -> None:
        super().__init__()
        self._state = _State()

    @property
    def complete(self) -> bool:
        """The CAPF ended the session (or nothing more can be read): all is said."""
        return self._state.end is not None or self.unreadable

    def session(self) -> CapfSession:
        state = self._state
        auth = _auth(state)
        operation = _operation(state, auth)
        result, reason = _result(state, operation)
        if operation is None and result == "no_operation":
            operation = "none"
        return CapfSession(
            state.device,
            operation,
            auth,
            _key(state),
            state.issued,
            state.auth_certificate or (state.fetched[0] if state.fetched else None),
            result,
            reason,
            self.messages,
            tuple(state.fetched),
        )

    def _fold(self, sender: Party, message: SessionMessage, elements: list[Packet]) -> None:
        _record(self._state, sender, message.command, elements)


def _record(state: _State, sender: Party, command: str, elements: Sequence[Packet]) -> None:
    """Fold one message's elements into the session state."""
    by_class: dict[type[Packet], Packet] = {}
    for element in elements:
        by_class.setdefault(type(element), element)
    texts = {e.tag: _text(e.text) for e in elements if isinstance(e, CapfString)}
    reason = by_class.get(CapfReasonElement)
    reason_code = int(reason.reason) if reason is not None else None
    certificate = by_class.get(CapfCertificate)
    der = bytes(certificate.der) if certificate is not None and certificate.der else None
    if command == "auth_request" and sender == "capf":
        auth_type = by_class.get(CapfAuthType)
        state.requested_auth = int(auth_type.auth_type) if auth_type is not None else None
    elif command == "auth_response" and sender == "phone":
        state.device = texts.get(13) or state.device
        state.password = texts.get(11, state.password)
        state.auth_certificate = der or state.auth_certificate
    elif command in _OPERATION_REQUESTS:
        state.operation_command = state.operation_command or command
        if command == "key_generate_request":
            state.key_request = (
                _field(by_class.get(CapfKeyType), "key_type"),
                _field(by_class.get(CapfKeySize), "key_size"),
                _field(by_class.get(CapfCurve), "curve"),
            )
        elif command == "fetch_certificate_request":
            state.fetch_types.append(_field(by_class.get(CapfCertificateType), "certificate_type"))
    elif command == "key_generate_response":
        state.public_key = next((bytes(e.value) for e in elements if e.tag == 9), None)
        state.responses[command] = reason_code
    elif command == "store_certificate_request":
        state.issued = der or state.issued
    elif command.endswith("_response") and sender == "phone":
        state.responses[command] = reason_code
        if command == "fetch_certificate_response" and der:
            state.fetched.append(der)
    elif command == "end_session" and reason_code is not None:
        text = CAPF_REASONS.get(reason_code, f"reason {reason_code}")
        state.end = CapfReason(reason_code, text, texts.get(2))


def _field(element: Packet | None, name: str) -> int | None:
    return int(getattr(element, name)) if element is not None else None


def _text(raw: bytes) -> str:
    return bytes(raw).split(b"\x00", 1)[0].decode("utf-8", "replace")


def _auth(state: _State) -> CapfAuth | None:
    if state.auth_certificate is not None:
        cert = parse_certificate(state.auth_certificate)
        kind = classify(cert).kind if isinstance(cert, Certificate) else None
        if kind in ("LSC", "MIC"):
            return "lsc" if kind == "LSC" else "mic"
        requested = _AUTH_BY_TYPE.get(state.requested_auth or 0)
        return requested if requested in ("lsc", "mic") else None
    if state.requested_auth in _AUTH_BY_TYPE:
        return _AUTH_BY_TYPE[state.requested_auth]
    if state.password:
        return "password"
    accepted = state.operation_command is not None or (
        state.end is not None and state.end.code in _NOTHING_SCHEDULED
    )
    return "none" if state.password is not None and accepted else None


def _operation(state: _State, auth: CapfAuth | None) -> CapfOperation | None:
    command = state.operation_command
    if command == "key_generate_request":
        return "upgrade" if auth == "lsc" else "install"
    if command == "fetch_certificate_request":
        mic = 2 in state.fetch_types or len(state.fetch_types) > 1
        return "troubleshoot" if mic else "fetch"
    if command == "delete_certificate_request":
        return "delete"
    return None


_OUTCOME: dict[str, tuple[str, CapfResult]] = {
    "install": ("store_certificate_response", "installed"),
    "upgrade": ("store_certificate_response", "installed"),
    "fetch": ("fetch_certificate_response", "fetched"),
    "troubleshoot": ("fetch_certificate_response", "fetched"),
    "delete": ("delete_certificate_response", "deleted"),
}


def _result(state: _State, operation: CapfOperation | None) -> tuple[CapfResult, CapfReason | None]:
    """How the session ended, and why when it was refused or failed."""
    end = state.end
    if operation is None or operation == "none":
        if end is None:
            return "unknown", None
        return ("no_operation" if end.code in _NOTHING_SCHEDULED else "failed"), end
    if "key_generate_response" in state.responses and state.public_key is None:
        code = state.responses["key_generate_response"]
        return "failed", _reason(code) if code is not None else end
    response, success = _OUTCOME[operation]
    if response in state.responses:
        code = state.responses[response]
        if code == _SUCCESS:
            return success, None
        return "failed", _reason(code) if code is not None else end
    return ("failed", end) if end is not None else ("unknown", None)


def _reason(code: int) -> CapfReason:
    return CapfReason(code, CAPF_REASONS.get(code, f"reason {code}"))


def _key(state: _State) -> str | None:
    """The phone's new public key if it parses, else what the CAPF asked it to make."""
    if state.public_key:
        try:
            return describe_public_key(load_der_public_key(state.public_key))
        except ValueError:
            pass
    if state.key_request is None:
        return None
    key_type, key_size, curve = state.key_request
    if key_type == 1 and curve is not None:
        return _CURVE_KEYS.get(curve, f"EC {CAPF_CURVES.get(curve, curve)}")
    if key_type in (0, None) and key_size is not None:
        return f"RSA {key_size}"
    return None
