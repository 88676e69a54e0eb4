# SPDX-License-Identifier: GPL-2.0-or-later
# This file is part of capana, loaded by Scapy as an extension (see dissectors/__init__.py).

# scapy.contrib.description = Cisco CAPF (TCP 3804) and TVS (TCP 2445) messages
# scapy.contrib.status = loads

"""Cisco CAPF and TVS: the messages a phone exchanges, inside TLS, with the cluster's
Certificate Authority Proxy Function (LSC enrolment) and Trust Verification Service.

Both are a fixed header and a list of TLV elements (tag: 1 byte, length: 2 bytes, big-endian):

- CAPF, protocol id 85, version 3: ``protocol(1) command(1) session_id(4) length(2)``. The CAPF
  sends the "requests" (auth, key generate, store/fetch/delete certificate, end session) and the
  phone the "responses"; an end session's reason says how it went.
- TVS, protocol id 0x57 (87), version 1: ``protocol(1) version(1) command(1) reserved(1)
  session_id(4) length(2)``. The phone asks whether a certificate is trusted; the answer carries a
  status, the roles it is trusted for and how long to cache that (TTL, seconds).

Field codes come from the usecallmanager.nz CAPF and TVS daemons (servers and clients that real
phones enrol and verify against) and from notes on CUCM's CAPF (jabber4linux's protocol write-up).
Meanings those sources do not give are left as numbers.

The records are TLS-protected on the wire: decrypt them (e.g. capana with a key log), then::

    >>> load_contrib("cisco_capf_tvs")
    >>> CAPF(decrypted_bytes).show()
    >>> TVS(decrypted_bytes)[TvsCertificate].der

Loaded by ``load_contrib``, TCP 3804 and 2445 are bound to CAPF and TVS for clear-text bytes
(a capture of decrypted streams); bytes that look like a TLS record still dissect as TLS.
Imported as ``dissectors.cisco_capf_tvs`` (as capana does), nothing is bound.
"""

from __future__ import annotations

from typing import Any, ClassVar

from scapy.fields import (
    ByteEnumField,
    ByteField,
    FieldLenField,
    IntField,
    PacketListField,
    ShortField,
    StrLenField,
    XStrLenField,
)
from scapy.layers.inet import TCP
from scapy.packet import Packet, bind_layers

__all__ = [
    "CAPF",
    "CAPF_AUTH_TYPES",
    "CAPF_CERTIFICATE_TYPES",
    "CAPF_COMMANDS",
    "CAPF_CURVES",
    "CAPF_DIGESTS",
    "CAPF_ELEMENTS",
    "CAPF_HEADER_LENGTH",
    "CAPF_KEY_TYPES",
    "CAPF_PORT",
    "CAPF_PROTOCOL_ID",
    "CAPF_REASONS",
    "CAPF_VERSION",
    "TVS",
    "TVS_COMMANDS",
    "TVS_ELEMENTS",
    "TVS_HEADER_LENGTH",
    "TVS_PORT",
    "TVS_PROTOCOL_ID",
    "TVS_ROLES",
    "TVS_STATUSES",
    "TVS_VERSION",
    "CapfAuthType",
    "CapfByte",
    "CapfCertificate",
    "CapfCertificateType",
    "CapfCurve",
    "CapfElement",
    "CapfKeySize",
    "CapfKeyType",
    "CapfReason",
    "CapfSha2SignedData",
    "CapfString",
    "TvsCertificate",
    "TvsDeviceName",
    "TvsElement",
    "TvsRoles",
    "TvsStatus",
    "TvsTtl",
    "elements_fit",
]

CAPF_PORT = 3804
CAPF_PROTOCOL_ID = 85
CAPF_VERSION = 3
CAPF_HEADER_LENGTH = 8
TVS_PORT = 2445
TVS_PROTOCOL_ID = 0x57
TVS_VERSION = 1
TVS_HEADER_LENGTH = 10

CAPF_COMMANDS = {
    1: "auth_request",
    2: "auth_response",
    3: "key_generate_request",
    4: "key_generate_response",
    5: "encrypt_response",
    6: "encrypt_request",
    7: "decrypt_request",
    8: "decrypt_response",
    9: "store_certificate_request",
    10: "store_certificate_response",
    11: "fetch_certificate_request",
    12: "fetch_certificate_response",
    13: "delete_certificate_request",
    14: "delete_certificate_response",
    15: "end_session",
    16: "retry_later",
    17: "request_in_progress",
    18: "status_request",
    19: "status_response",
    20: "abort_request",
    21: "abort_response",
    22: "sign_certificate_request",
    23: "sign_certificate_response",
}
CAPF_ELEMENTS = {
    1: "reason",
    2: "reason_info",
    3: "certificate_type",
    4: "certificate",
    5: "certificate_id",
    6: "signed_data",  # the device name and certificate signed with its key (SHA-1)
    7: "version",
    8: "auth_type",
    9: "public_key",  # SubjectPublicKeyInfo, DER
    10: "key_size",
    11: "password",  # the authentication string, NUL-terminated
    12: "retry_delay",
    13: "device_name",  # NUL-terminated, e.g. SEP001122334455
    16: "sudi_data",
    17: "key_type",
    18: "curve",
    19: "digest_type",
    20: "sha2_signed_data",
}
# In an end session (and in a phone's responses): how the operation went.
CAPF_REASONS = {
    0: "no action",  # nothing scheduled for this device
    1: "update certificate",  # the operation succeeded
    7: "invalid element",  # authentication or a message was refused
    9: "unknown device",
}
CAPF_AUTH_TYPES = {0: "none", 1: "password", 2: "no password", 3: "lsc", 4: "mic"}
CAPF_CERTIFICATE_TYPES = {1: "LSC", 2: "MIC"}
CAPF_KEY_TYPES = {0: "RSA", 1: "EC"}
CAPF_CURVES = {0: "secp256r1", 1: "secp384r1", 2: "secp521r1"}
CAPF_DIGESTS = {1: "sha1", 2: "sha256", 3: "sha512"}

TVS_COMMANDS = {
    0: "none",
    1: "verify_request",
    2: "verify_response",
    3: "query_request",
    4: "query_response",
}
TVS_ELEMENTS = {1: "device_name", 2: "certificate", 7: "status", 8: "roles", 9: "ttl"}
TVS_STATUSES = {0: "valid", 1: "invalid"}
# The trust-list role codes (as in the ITL/CTL files).
TVS_ROLES = {0: "SAST", 1: "CCM", 2: "CCM+TFTP", 3: "TFTP", 4: "CAPF", 7: "APP-SERVER", 21: "TVS"}


class _Element(Packet):
    """A TLV element: tag (1 byte), length of the value (2 bytes), value.

    Subclasses give the value its fields; ``length`` is computed when left unset. Dissected,
    an element becomes the class its family registers for its tag (``_CLASSES``).
    """

    _CLASSES: ClassVar[dict[int, type[Packet]]] = {}

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.length is None:
            pkt = pkt[:1] + (len(pkt) - 3).to_bytes(2, "big") + pkt[3:]
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


# scapy calls a dispatch_hook only where a class defines it (not inherited): each family's base
# class names one of these.


def _by_tag(
    cls: type[_Element], _pkt: bytes | None = None, *args: Any, **kargs: Any
) -> type[Packet]:
    """An element's class, by its tag."""
    return cls._CLASSES.get(_pkt[0], cls) if _pkt else cls


def _tls_or(cls: type[Packet], _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
    """TLS for bytes that open a TLS record (the usual case on these ports), else ``cls``."""
    if _pkt and len(_pkt) >= 3 and 20 <= _pkt[0] <= 24 and _pkt[1] == 3:
        from scapy.layers.tls.record import TLS

        return TLS
    return cls


def _header(tags: dict[int, str], tag: int) -> list[Any]:
    return [ByteEnumField("tag", tag, tags), ShortField("length", None)]


def _value_length(pkt: Packet) -> int:
    return int(pkt.length or 0)


def _opaque(tags: dict[int, str], tag: int, name: str = "value") -> list[Any]:
    """An element whose value is bytes as they came (a certificate, an unknown element)."""
    return [*_header(tags, tag), XStrLenField(name, b"", length_from=_value_length)]


class CapfElement(_Element):
    name = "CAPF element"
    fields_desc = _opaque(CAPF_ELEMENTS, 0)
    dispatch_hook = classmethod(_by_tag)


class CapfByte(CapfElement):
    name = "CAPF element (byte)"
    fields_desc = [*_header(CAPF_ELEMENTS, 7), ByteField("value", 0)]  # noqa: RUF012


class CapfReason(CapfElement):
    name = "CAPF reason"
    fields_desc = [*_header(CAPF_ELEMENTS, 1), ByteEnumField("reason", 0, CAPF_REASONS)]  # noqa: RUF012


class CapfAuthType(CapfElement):
    name = "CAPF auth type"
    fields_desc = [*_header(CAPF_ELEMENTS, 8), ByteEnumField("auth_type", 0, CAPF_AUTH_TYPES)]  # noqa: RUF012


class CapfCertificateType(CapfElement):
    name = "CAPF certificate type"
    fields_desc = [  # noqa: RUF012
        *_header(CAPF_ELEMENTS, 3),
        ByteEnumField("certificate_type", 1, CAPF_CERTIFICATE_TYPES),
    ]


class CapfKeyType(CapfElement):
    name = "CAPF key type"
    fields_desc = [*_header(CAPF_ELEMENTS, 17), ByteEnumField("key_type", 0, CAPF_KEY_TYPES)]  # noqa: RUF012


class CapfCurve(CapfElement):
    name = "CAPF curve"
    fields_desc = [*_header(CAPF_ELEMENTS, 18), ByteEnumField("curve", 0, CAPF_CURVES)]  # noqa: RUF012


class CapfKeySize(CapfElement):
    name = "CAPF key size"
    fields_desc = [*_header(CAPF_ELEMENTS, 10), ShortField("key_size", 2048)]  # noqa: RUF012


class CapfString(CapfElement):
    """Device name, password, reason info: NUL-terminated text."""

    name = "CAPF text"
    fields_desc = [  # noqa: RUF012
        *_header(CAPF_ELEMENTS, 13),
        StrLenField("text", b"", length_from=_value_length),
    ]


class CapfCertificate(CapfElement):
    """A certificate: an entry of count(1)=1, length(2) = DER + 2, reserved(1), type(1), DER."""

    name = "CAPF certificate"
    fields_desc = [  # noqa: RUF012
        *_header(CAPF_ELEMENTS, 4),
        ByteField("count", 1),
        FieldLenField("entry_length", None, length_of="der", fmt="!H", adjust=lambda _p, x: x + 2),
        ByteField("reserved", 0),
        ByteEnumField("certificate_type", 1, CAPF_CERTIFICATE_TYPES),
        XStrLenField("der", b"", length_from=lambda p: max(0, int(p.entry_length or 0) - 2)),
    ]


class CapfSha2SignedData(CapfElement):
    name = "CAPF SHA-2 signed data"
    fields_desc = [  # noqa: RUF012
        *_header(CAPF_ELEMENTS, 20),
        ByteEnumField("digest", 3, CAPF_DIGESTS),
        FieldLenField("signature_length", None, length_of="signature", fmt="!H"),
        XStrLenField("signature", b"", length_from=lambda p: int(p.signature_length or 0)),
    ]


CapfElement._CLASSES = {
    1: CapfReason,
    2: CapfString,
    3: CapfCertificateType,
    4: CapfCertificate,
    7: CapfByte,
    8: CapfAuthType,
    10: CapfKeySize,
    11: CapfString,
    13: CapfString,
    17: CapfKeyType,
    18: CapfCurve,
    20: CapfSha2SignedData,
}


class _Message(Packet):
    """A CAPF or TVS message: a header, then its elements (``length`` bytes of them)."""

    def mysummary(self) -> str:
        return str(self.sprintf(f"{self.name} %cmd% session %session_id%"))


def _elements(element: type[Packet]) -> list[Any]:
    return [
        FieldLenField("length", None, length_of="elements", fmt="!H"),
        PacketListField("elements", [], element, length_from=lambda p: int(p.length or 0)),
    ]


class CAPF(_Message):
    """One CAPF message."""

    name = "CAPF"
    fields_desc = [  # noqa: RUF012 (scapy's declaration style)
        ByteField("protocol", CAPF_PROTOCOL_ID),
        ByteEnumField("cmd", 1, CAPF_COMMANDS),
        IntField("session_id", 0),
        *_elements(CapfElement),
    ]
    dispatch_hook = classmethod(_tls_or)


class TvsElement(_Element):
    name = "TVS element"
    fields_desc = _opaque(TVS_ELEMENTS, 0)
    dispatch_hook = classmethod(_by_tag)


class TvsDeviceName(TvsElement):
    """The phone's name (e.g. CP-8861-SEP001122334455) after a byte the daemons set to 1."""

    name = "TVS device name"
    fields_desc = [  # noqa: RUF012
        *_header(TVS_ELEMENTS, 1),
        ByteField("kind", 1),
        StrLenField("text", b"", length_from=lambda p: max(0, _value_length(p) - 1)),
    ]


class TvsCertificate(TvsElement):
    name = "TVS certificate"
    fields_desc = _opaque(TVS_ELEMENTS, 2, "der")


class TvsStatus(TvsElement):
    name = "TVS status"
    fields_desc = [*_header(TVS_ELEMENTS, 7), ByteEnumField("status", 0, TVS_STATUSES)]  # noqa: RUF012


class TvsRoles(TvsElement):
    name = "TVS roles"
    fields_desc = [  # noqa: RUF012
        *_header(TVS_ELEMENTS, 8),
        XStrLenField("roles", b"", length_from=_value_length),  # one role code per byte
    ]


class TvsTtl(TvsElement):
    name = "TVS TTL"
    fields_desc = [*_header(TVS_ELEMENTS, 9), IntField("ttl", 86400)]  # noqa: RUF012


TvsElement._CLASSES = {
    1: TvsDeviceName,
    2: TvsCertificate,
    7: TvsStatus,
    8: TvsRoles,
    9: TvsTtl,
}


class TVS(_Message):
    """One TVS message."""

    name = "TVS"
    fields_desc = [  # noqa: RUF012
        ByteField("protocol", TVS_PROTOCOL_ID),
        ByteField("version", TVS_VERSION),
        ByteEnumField("cmd", 1, TVS_COMMANDS),
        ByteField("reserved", 0),
        IntField("session_id", 0),
        *_elements(TvsElement),
    ]
    dispatch_hook = classmethod(_tls_or)


def elements_fit(message: Packet) -> bool:
    """Do the message's elements, as their lengths claim, fill its body exactly?

    A dissected element keeps its claimed length even where the bytes ran out first.
    """
    elements = message.elements
    claimed = sum(3 + int(e.length or 0) for e in elements if isinstance(e, _Element))
    return len(elements) == sum(isinstance(e, _Element) for e in elements) and claimed == int(
        message.length or 0
    )


def _bind_ports() -> None:
    for port, layer in ((CAPF_PORT, CAPF), (TVS_PORT, TVS)):
        bind_layers(TCP, layer, sport=port)
        bind_layers(TCP, layer, dport=port)


if __name__.startswith("scapy."):  # loaded by load_contrib, not imported by capana
    _bind_ports()
