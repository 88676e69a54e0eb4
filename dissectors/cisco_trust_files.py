# SPDX-License-Identifier: GPL-2.0-or-later
# This file is part of capana, loaded by Scapy as an extension (see dissectors/__init__.py).

# scapy.contrib.description = Cisco phone trust lists and signed files (.tlv, .sgn, .enc.sgn)
# scapy.contrib.status = loads

"""Cisco IP phone trust lists and signed files, as the cluster's TFTP service serves them.

Files, not packets: nothing is bound to a port, and loading this module changes nothing else
in scapy. Every element is a tag (1 byte), a length (2 bytes, big-endian) and a value; the one
exception is header padding (tag 13), a single byte. Layout (from usecallmanager.nz's certutils
``tlvfile``, ``sgnfile`` and ``enccnf``, which phones accept)::

    header   version 1.x or 2.0 | header length (bytes, from the file's start) | elements...
    .tlv     header, then records: record length | DNS name | subject | role | issuer | serial
             | public key | signature | DER certificate | IP address | certificate hash ...
    .sgn     header, then the signed content (e.g. SEP<MAC>.cnf.xml)
    .enc.sgn header with encryption elements (AES key wrapped to the phone's key, IV, padding,
             hash of the plain content), then the ciphertext

The signature covers the whole file with the signature element (tag, length and value) left
out. In a scapy shell (the package must be installed, e.g. ``pip install capana``)::

    >>> conf.exts.load("capana")
    >>> load_contrib("cisco_trust_files")
    >>> itl = ITLFile(open("ITLFile.tlv", "rb").read())
    >>> itl.show()
    >>> [record.role for record in itl.records]
    [0, 1, 1, 7, 7]
    >>> CiscoSignedFile(data)  # the payload layer is chosen from the header

A malformed element is kept as a generic :class:`HeaderElement` / :class:`RecordElement`
(or ``Raw``); dissection never raises on short or damaged input.
"""

# ruff: noqa: RUF012  (scapy declares each layer by a class-level ``fields_desc`` list)
from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any

from scapy.fields import (
    ByteEnumField,
    ByteField,
    FieldLenField,
    PacketListField,
    ShortEnumField,
    ShortField,
    StrField,
    StrLenField,
    UTCTimeField,
    XStrLenField,
)
from scapy.packet import Packet

from capana.domain import TRUST_LIST_ROLES

__all__ = [
    "HASH_ALGORITHMS",
    "HEADER_TAGS",
    "RECORD_TAGS",
    "ROLES",
    "CTLFile",
    "CiscoSignedFile",
    "EncSgnFile",
    "EncryptedContent",
    "HeaderByte",
    "HeaderBytes",
    "HeaderElement",
    "HeaderGroup",
    "HeaderHashAlgorithm",
    "HeaderPadding",
    "HeaderSerial",
    "HeaderShort",
    "HeaderString",
    "HeaderTimestamp",
    "HeaderVersion",
    "ITLFile",
    "RecordBytes",
    "RecordCertificate",
    "RecordElement",
    "RecordHashAlgorithm",
    "RecordRole",
    "RecordSerial",
    "RecordString",
    "SgnFile",
    "SignedContent",
    "TLVElement",
    "TrustListRecord",
    "TrustListRecords",
]

HEADER_TAGS = {
    1: "version",
    2: "header_length",
    3: "signer_info",
    4: "signer_name",
    5: "serial_number",
    6: "issuer_name",
    7: "signature_info",
    8: "hash_algorithm",
    9: "signature_algorithm_info",
    10: "signature_algorithm",
    11: "signature_modulus",
    12: "signature",
    13: "padding",
    14: "filename",
    15: "timestamp",
    16: "encryption_info",
    17: "encryption_iv_info",
    18: "encryption_unknown_18",
    19: "encryption_iv",
    20: "encryption_padding",
    21: "encryption_key_info",
    22: "encryption_unknown_22",
    23: "encryption_key_size",
    24: "encryption_key_algorithm",
    25: "encryption_key",
    26: "encryption_hash_algorithm",
    27: "encryption_hash",
    28: "signer_version",
}
RECORD_TAGS = {
    1: "record_length",
    2: "dns_name",
    3: "subject_name",
    4: "role",
    5: "issuer_name",
    6: "serial_number",
    7: "public_key",
    8: "signature",
    9: "certificate",
    10: "ip_address",
    11: "certificate_hash",
    12: "hash_algorithm",
}
HASH_ALGORITHMS = {1: "SHA-1", 2: "SHA-256", 3: "SHA-512"}
# What a record's certificate is trusted for (DOMAIN.md; certutils' tlvfile).
ROLES = dict(TRUST_LIST_ROLES)

HEADER_FIXED_LENGTH = 10  # the version and header-length elements every header starts with
PADDING_TAG = 13
# Bounds on what one file may make scapy build: a real header holds about 15 elements, a trust
# list under 100 records (phones refuse one over 64 KB). Past them the rest stays Raw. They also
# bound scapy's cost, which copies the rest of the buffer at every fixed field it reads: a list
# of n items costs O(n x bytes left).
MAX_HEADER_ELEMENTS = 256
MAX_GROUP_ELEMENTS = 64  # inside one header group, or one record
MAX_RECORDS = 256


def _up_to(cls: type[Packet], limit: int) -> Callable[..., type[Packet] | None]:
    """A ``next_cls_cb``: dissect ``cls`` while bytes remain, ``limit`` items at most; what
    follows stays Raw (``max_count`` alone would make scapy raise and lose the whole list)."""

    def next_class(
        pkt: Packet, lst: Sized, cur: Packet | None, remain: bytes
    ) -> type[Packet] | None:
        return cls if remain and len(lst) + (cur is not None) < limit else None

    return next_class


class TLVElement(Packet):
    """Base of every element: what follows one in a list is the next element, not its payload."""

    value_size: int | None = None  # the length a fixed-size value must declare

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def _length(name: str) -> FieldLenField:
    return FieldLenField("length", None, length_of=name, fmt="!H")


def _value_length(packet: Packet) -> int:
    return int(packet.length)


class HeaderElement(TLVElement):
    """A header element of any tag, value as bytes; also what an unknown or damaged one is."""

    name = "Header element"
    fields_desc = [
        ByteEnumField("tag", 0, HEADER_TAGS),
        _length("value"),
        XStrLenField("value", b"", length_from=_value_length),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        return _element_class(_pkt, _HEADER_CLASSES, cls) if _pkt else cls


class HeaderPadding(TLVElement):
    """Tag 13: one byte, no length, aligning the header to 4 bytes."""

    name = "Header padding"
    fields_desc = [ByteEnumField("tag", PADDING_TAG, HEADER_TAGS)]


class HeaderGroup(TLVElement):
    """Signer info (3), signature info (7), signature algorithm info (9) and the encryption
    groups (16, 17, 21): elements inside an element."""

    name = "Header group"
    fields_desc = [
        ByteEnumField("tag", 3, HEADER_TAGS),
        _length("elements"),
        PacketListField(
            "elements",
            [],
            HeaderElement,
            length_from=_value_length,
            next_cls_cb=_up_to(HeaderElement, MAX_GROUP_ELEMENTS),
            max_count=MAX_GROUP_ELEMENTS,
        ),
    ]


class HeaderVersion(TLVElement):
    """Signer version (28): 1.0, or 1.1 announcing a signer that may sign with ECDSA."""

    name = "Header version"
    value_size = 2
    fields_desc = [
        ByteEnumField("tag", 28, HEADER_TAGS),
        ShortField("length", 2),
        ByteField("major", 1),
        ByteField("minor", 0),
    ]


class HeaderShort(TLVElement):
    """A 2-byte number: encryption padding (20) and key size in bits (23)."""

    name = "Header short"
    value_size = 2
    fields_desc = [
        ByteEnumField("tag", 20, HEADER_TAGS),
        ShortField("length", 2),
        ShortField("number", 0),
    ]


class HeaderByte(TLVElement):
    """A 1-byte number: signature algorithm (10), modulus index (11), encryption (18, 22, 24)."""

    name = "Header byte"
    value_size = 1
    fields_desc = [
        ByteEnumField("tag", 10, HEADER_TAGS),
        ShortField("length", 1),
        ByteField("number", 0),
    ]


class HeaderHashAlgorithm(TLVElement):
    """The digest of the signature (8) or of the encrypted content (26)."""

    name = "Header hash algorithm"
    value_size = 1
    fields_desc = [
        ByteEnumField("tag", 8, HEADER_TAGS),
        ShortField("length", 1),
        ByteEnumField("algorithm", 1, HASH_ALGORITHMS),
    ]


class HeaderString(TLVElement):
    """Signer name (4), issuer name (6), file name (14): text ending in a NUL byte."""

    name = "Header string"
    fields_desc = [
        ByteEnumField("tag", 4, HEADER_TAGS),
        _length("text"),
        StrLenField("text", b"", length_from=_value_length),
    ]


class HeaderSerial(TLVElement):
    """The signer certificate's serial number (5), big-endian."""

    name = "Header serial number"
    fields_desc = [
        ByteEnumField("tag", 5, HEADER_TAGS),
        _length("serial"),
        XStrLenField("serial", b"", length_from=_value_length),
    ]


class HeaderBytes(TLVElement):
    """Signature (12), encryption IV (19), wrapped key (25), content hash (27)."""

    name = "Header bytes"
    fields_desc = [
        ByteEnumField("tag", 12, HEADER_TAGS),
        _length("data"),
        XStrLenField("data", b"", length_from=_value_length),
    ]


class HeaderTimestamp(TLVElement):
    """When the file was built (15), seconds since 1970 UTC."""

    name = "Header timestamp"
    value_size = 4
    fields_desc = [
        ByteEnumField("tag", 15, HEADER_TAGS),
        ShortField("length", 4),
        UTCTimeField("timestamp", 0, strf="%Y-%m-%d %H:%M:%S UTC"),
    ]


class RecordElement(TLVElement):
    """A record element of any tag, value as bytes; also what an unknown or damaged one is."""

    name = "Record element"
    fields_desc = [
        ByteEnumField("tag", 0, RECORD_TAGS),
        _length("value"),
        XStrLenField("value", b"", length_from=_value_length),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        return _element_class(_pkt, _RECORD_CLASSES, cls) if _pkt else cls


class RecordString(TLVElement):
    """DNS name (2), subject (3), issuer (5): text ending in a NUL byte."""

    name = "Record string"
    fields_desc = [
        ByteEnumField("tag", 3, RECORD_TAGS),
        _length("text"),
        StrLenField("text", b"", length_from=_value_length),
    ]


class RecordRole(TLVElement):
    """What the record's certificate is trusted for (4)."""

    name = "Record role"
    value_size = 2
    fields_desc = [
        ByteEnumField("tag", 4, RECORD_TAGS),
        ShortField("length", 2),
        ShortEnumField("role", 0, ROLES),
    ]


class RecordSerial(TLVElement):
    """The certificate's serial number (6), big-endian."""

    name = "Record serial number"
    fields_desc = [
        ByteEnumField("tag", 6, RECORD_TAGS),
        _length("serial"),
        XStrLenField("serial", b"", length_from=_value_length),
    ]


class RecordBytes(TLVElement):
    """Public key (7), certificate signature (8), IP address (10), certificate hash (11)."""

    name = "Record bytes"
    fields_desc = [
        ByteEnumField("tag", 7, RECORD_TAGS),
        _length("data"),
        XStrLenField("data", b"", length_from=_value_length),
    ]


class RecordCertificate(TLVElement):
    """The DER X.509 certificate (9)."""

    name = "Record certificate"
    fields_desc = [
        ByteEnumField("tag", 9, RECORD_TAGS),
        _length("certificate"),
        XStrLenField("certificate", b"", length_from=_value_length),
    ]


class RecordHashAlgorithm(TLVElement):
    """The digest of the certificate hash (12)."""

    name = "Record hash algorithm"
    value_size = 1
    fields_desc = [
        ByteEnumField("tag", 12, RECORD_TAGS),
        ShortField("length", 1),
        ByteEnumField("algorithm", 1, HASH_ALGORITHMS),
    ]


class TrustListRecord(TLVElement):
    """One certificate of an ITL or CTL: the record length (tag 1) covers the whole record."""

    name = "Trust list record"
    fields_desc = [
        ByteEnumField("tag", 1, RECORD_TAGS),
        ShortField("length", 2),
        FieldLenField(
            "record_length", None, length_of="elements", fmt="!H", adjust=lambda pkt, x: x + 5
        ),
        PacketListField(
            "elements",
            [],
            RecordElement,
            length_from=lambda pkt: max(0, int(pkt.record_length) - 5),
            next_cls_cb=_up_to(RecordElement, MAX_GROUP_ELEMENTS),
            max_count=MAX_GROUP_ELEMENTS,
        ),
    ]

    @property
    def role(self) -> int | None:
        """The role code of the record, None when it has no role element."""
        roles = [element.role for element in self.elements if isinstance(element, RecordRole)]
        return roles[0] if roles else None


class TrustListRecords(Packet):
    """The records of an ITL or CTL, after the header."""

    name = "Trust list records"
    fields_desc = [
        PacketListField(
            "records",
            [],
            TrustListRecord,
            next_cls_cb=_up_to(TrustListRecord, MAX_RECORDS),
            max_count=MAX_RECORDS,
        )
    ]


class SignedContent(Packet):
    """What a .sgn file signs, e.g. the phone's SEP<MAC>.cnf.xml."""

    name = "Signed content"
    fields_desc = [StrField("content", b"")]


class EncryptedContent(Packet):
    """The AES-CBC ciphertext of an .enc.sgn file."""

    name = "Encrypted content"
    fields_desc = [StrField("ciphertext", b"")]


class CiscoSignedFile(Packet):
    """The header of a .tlv, .sgn or .enc.sgn file; the payload layer is chosen from it."""

    name = "Cisco signed file"
    fields_desc = [
        ByteEnumField("version_tag", 1, HEADER_TAGS),
        ShortField("version_length", 2),
        ByteField("major", 1),
        ByteField("minor", 2),
        ByteEnumField("length_tag", 2, HEADER_TAGS),
        ShortField("length_length", 2),
        ShortField("header_length", None),
        PacketListField(
            "header",
            [],
            HeaderElement,
            length_from=lambda pkt: max(0, int(pkt.header_length) - HEADER_FIXED_LENGTH),
            next_cls_cb=_up_to(HeaderElement, MAX_HEADER_ELEMENTS),
            max_count=MAX_HEADER_ELEMENTS,
        ),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.header_length is None:
            pkt = pkt[:8] + len(pkt).to_bytes(2, "big") + pkt[10:]
        return pkt + pay

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        tags = {tag for element in self.header for tag in _tags(element)}
        if tags & _ENCRYPTION_TAGS:
            return EncryptedContent
        if payload[:3] == b"\x01\x00\x02" or _file_name(self).lower().endswith(".tlv"):
            return TrustListRecords
        return SignedContent


class ITLFile(CiscoSignedFile):
    """An Identity Trust List (ITLFile.tlv, ITLSEP<MAC>.tlv): header, then records."""

    name = "ITL file"

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        return TrustListRecords


class CTLFile(ITLFile):
    """A Certificate Trust List (CTLFile.tlv, CTLSEP<MAC>.tlv): the same layout as the ITL."""

    name = "CTL file"


class SgnFile(CiscoSignedFile):
    """A signed file (e.g. SEP<MAC>.cnf.xml.sgn): header, then the content in clear."""

    name = "Signed file"

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        return SignedContent


class EncSgnFile(CiscoSignedFile):
    """An encrypted configuration (SEP<MAC>.cnf.xml.enc.sgn): header, then ciphertext."""

    name = "Encrypted signed file"

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        return EncryptedContent


_GROUP_TAGS = (3, 7, 9, 16, 17, 21)
_ENCRYPTION_TAGS = frozenset(range(16, 28))
_HEADER_CLASSES: dict[int, type[Packet]] = {
    **dict.fromkeys(_GROUP_TAGS, HeaderGroup),
    **dict.fromkeys((1, 28), HeaderVersion),
    **dict.fromkeys((20, 23), HeaderShort),
    **dict.fromkeys((10, 11, 18, 22, 24), HeaderByte),
    **dict.fromkeys((8, 26), HeaderHashAlgorithm),
    **dict.fromkeys((4, 6, 14), HeaderString),
    5: HeaderSerial,
    **dict.fromkeys((12, 19, 25, 27), HeaderBytes),
    15: HeaderTimestamp,
}
_RECORD_CLASSES: dict[int, type[Packet]] = {
    **dict.fromkeys((2, 3, 5), RecordString),
    4: RecordRole,
    6: RecordSerial,
    **dict.fromkeys((7, 8, 10, 11), RecordBytes),
    9: RecordCertificate,
    12: RecordHashAlgorithm,
}


def _element_class(
    data: bytes, classes: dict[int, type[Packet]], generic: type[Packet]
) -> type[Packet]:
    """The class of the element ``data`` starts with; the generic one when its length is wrong."""
    if generic is HeaderElement and data[0] == PADDING_TAG:
        return HeaderPadding
    chosen = classes.get(data[0], generic)
    size = getattr(chosen, "value_size", None)
    if size is not None and (len(data) < 3 or int.from_bytes(data[1:3], "big") != size):
        return generic
    return chosen


def _tags(element: Packet) -> list[int]:
    tags = [int(element.tag)] if hasattr(element, "tag") else []
    for inner in getattr(element, "elements", None) or []:
        tags += _tags(inner)
    return tags


def _file_name(packet: CiscoSignedFile) -> str:
    for element in packet.header:
        if isinstance(element, HeaderString) and element.tag == 14:
            return bytes(element.text).rstrip(b"\x00").decode("utf-8", "replace")
    return ""
