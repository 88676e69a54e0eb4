"""The files a phone downloads at boot, as facts: ITL/CTL trust lists, signed and encrypted
configurations, plain configurations.

Bytes in, a frozen :class:`PhoneFile` out; never raises. A damaged file gives the facts read
before the damage and problem codes. The scapy layers of ``capana.dissectors.cisco_trust_files``
(``dissectors/`` in the source tree) do the dissection, imported only when a signed file is met.
A trust list's signature is checked against its own signer record (the SAST, TFTP or CCM+TFTP
record whose certificate has the header's serial number); a signed configuration's against the
certificates the caller gives (:func:`check_signature`), e.g. the records of the trust list the
phone downloaded.
Example::

    itl = parse_file(data, name="ITLSEP2C3124C9F8E1.tlv")
    itl.kind, itl.signature_check.status, [r.role for r in itl.records]
    config = parse_file(sgn, name="SEP2C3124C9F8E1.cnf.xml.sgn")
    check_signature(config, [r.certificate for r in itl.records if r.certificate])
"""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from capana.certificates import parse_certificate
from capana.domain import MAX_TRUST_LIST_SIZE, TRUST_LIST_ROLES, TRUST_LIST_SIGNER_ROLES
from capana.model import (
    AnyCertificate,
    Certificate,
    EncryptionHeader,
    FileHeader,
    FileKind,
    FileProblem,
    PhoneConfig,
    PhoneFile,
    SignatureCheck,
    SignatureReason,
    TrustRecord,
)
from capana.phoneconfig import parse_config

if TYPE_CHECKING:
    from scapy.packet import Packet

# Bound: the bytes of one file that are dissected (4x what a phone accepts); the rest is counted
# in ``size`` and reported as "unread-bytes". Keeps scapy's cost under about 0.5 s per file.
MAX_PARSED_BYTES = 256 * 1024
_DIGESTS: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "SHA-1": hashes.SHA1,
    "SHA-256": hashes.SHA256,
    "SHA-512": hashes.SHA512,
}
_HEADER_START = b"\x01\x00\x02"  # tag 1 (version), length 2
_LENGTH_ELEMENT = b"\x02\x00\x02"  # tag 2 (header length), length 2
_SIGNATURE_TAG = 12
# Header elements without which a signature cannot be checked.
_REQUIRED: tuple[tuple[int, FileProblem], ...] = (
    (12, "missing-signature"),
    (8, "missing-digest-algorithm"),
    (5, "missing-signer-serial"),
)
_UNIQUE_TAGS = frozenset({4, 5, 6, 8, 12, 14, 15, 19, 25, 27, 28})
_KINDS_BY_SUFFIX: tuple[tuple[str, FileKind], ...] = (
    (".cnf.xml.enc.sgn", "config-encrypted"),
    (".cnf.xml.sgn", "config-signed"),
    (".cnf.xml", "config"),
)


def parse_file(data: bytes, name: str | None = None) -> PhoneFile:
    """The facts in one file's bytes; ``name`` (as requested) helps tell a CTL from an ITL."""
    data = bytes(data)
    base = (name or "").rsplit("/", 1)[-1]
    if (
        data
        and _HEADER_START.startswith(data[:3])
        and (len(data) < 8 or data[5:8] == _LENGTH_ELEMENT)
    ):
        from capana.dissectors import cisco_trust_files

        return _SignedFileReader(data, base, cisco_trust_files).read()
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<":
        config = parse_config(data)
        kind: FileKind = "config" if config.root == "device" else "other"
        return _unsigned(data, kind, config=config, content=data)
    return _unsigned(data, "other")


def kind_of_name(name: str) -> FileKind:
    """What a file is by its name alone, for a transfer that brought no body to read."""
    base = name.rsplit("/", 1)[-1].lower()
    if base.endswith(".tlv"):
        return "ctl" if base.startswith("ctl") else "itl"
    for suffix, kind in _KINDS_BY_SUFFIX:
        if base.endswith(suffix):
            return kind
    return "other"


def check_signature(file: PhoneFile, signers: Iterable[AnyCertificate]) -> SignatureCheck:
    """Verify ``file``'s signature with the one of ``signers`` that has its serial number."""
    if file.header is None or not file.signature:
        return SignatureCheck("unknown", "no-signature")
    serial = file.header.signer_serial
    matching = [
        cert
        for cert in signers
        if isinstance(cert, Certificate) and same_serial(cert.serial, serial)
    ]
    return _check(file, matching)


def _check(file: PhoneFile, candidates: Sequence[AnyCertificate]) -> SignatureCheck:
    """Valid when one candidate verifies the signature; else the first candidate's failure."""
    if not file.signature:
        return SignatureCheck("unknown", "no-signature")
    if "unread-bytes" in file.problems:
        return SignatureCheck("unknown", "not-read-whole")
    if not candidates:
        return SignatureCheck("unknown", "signer-not-found")
    results = [(cert, _verify(file, cert)) for cert in candidates]
    for cert, reason in results:
        if reason == "verified":
            return SignatureCheck("valid", reason, cert)
    cert, reason = results[0]
    return SignatureCheck("invalid" if reason == "signature-mismatch" else "unknown", reason, cert)


def same_serial(found: str | None, wanted: str | None) -> bool:
    """Serial numbers as numbers (leading zeros differ); no serial in the header matches any."""
    if wanted is None:
        return True
    return found is not None and int(found or "0", 16) == int(wanted or "0", 16)


def cert_hash_matches(cert_hash: str, der: bytes) -> bool:
    """Does a configuration's ``certHash`` name the certificate ``der``?

    MD5 in hex, as enccnf writes it and a public CUCM softphone client compares it;
    certutils' ``certhash`` prints SHA-1 or SHA-512 in base64. All four forms are accepted.
    """
    given = cert_hash.strip().replace(":", "").replace(" ", "")
    hexes = {hashlib.md5(der).hexdigest(), hashlib.sha1(der).hexdigest()}
    encoded = {base64.b64encode(hashlib.new(n, der).digest()).decode() for n in ("sha1", "sha512")}
    return given.lower() in hexes or given in encoded


def _unsigned(
    data: bytes,
    kind: FileKind,
    *,
    config: PhoneConfig | None = None,
    content: bytes = b"",
    problems: tuple[FileProblem, ...] = (),
) -> PhoneFile:
    return PhoneFile(
        kind=kind,
        size=len(data),
        header=None,
        records=(),
        config=config,
        encryption=None,
        signature_check=None,
        too_large=False,
        problems=problems,
        content=content,
    )


class _SignedFileReader:
    """Turns one dissected .tlv/.sgn/.enc.sgn into facts, collecting problems on the way."""

    def __init__(self, data: bytes, name: str, layers: Any) -> None:
        self.size = len(data)
        self.data = data[:MAX_PARSED_BYTES]
        self.name = name
        self.layers = layers  # capana.dissectors.cisco_trust_files, imported by the caller
        self.problems: list[FileProblem] = []
        self.values: dict[int, Any] = {}  # header tag -> first value seen
        self.signature_at: int | None = None
        if self.size > len(self.data):
            self.problems.append("unread-bytes")

    def read(self) -> PhoneFile:
        layers = self.layers
        if len(self.data) < layers.HEADER_FIXED_LENGTH:
            return _unsigned(self.data, "other", problems=("truncated-header",))
        packet = layers.CiscoSignedFile(self.data)
        header = self._header(packet)
        payload = packet.payload
        records: tuple[TrustRecord, ...] = ()
        config = encryption = None
        content = b""
        kind: FileKind
        if isinstance(payload, layers.EncryptedContent):
            kind, content = "config-encrypted", bytes(payload.ciphertext)
            encryption = self._encryption()
        elif isinstance(payload, layers.TrustListRecords) or self._named(".tlv"):
            if isinstance(payload, layers.TrustListRecords):
                records = self._records(payload)
            elif payload:
                self.problems.append("bad-record")  # scapy could not dissect them at all
            kind = "ctl" if self._named("ctl") else "itl"
        else:
            content = bytes(payload.content) if isinstance(payload, layers.SignedContent) else b""
            config = parse_config(content) if content.lstrip()[:1] == b"<" else None
            device = config is not None and config.root == "device"
            kind = "config-signed" if device or self._named(".cnf.xml.sgn") else "other"
        signature = self.values.get(_SIGNATURE_TAG, b"")
        file = PhoneFile(
            kind=kind,
            size=self.size,
            header=header,
            records=records,
            config=config,
            encryption=encryption,
            signature_check=None,
            too_large=kind in ("ctl", "itl") and self.size > MAX_TRUST_LIST_SIZE,
            problems=tuple(dict.fromkeys(self.problems)),
            signature=signature,
            signed_bytes=self._signed_bytes(signature),
            content=content,
        )
        return _with_check(file)

    def _named(self, marker: str) -> bool:
        """Does the requested name or the header's file name start (or, ``.x``, end) so?"""
        names = (self.name.lower(), (self.values.get(14) or "").lower())
        if marker.startswith("."):
            return any(name.endswith(marker) for name in names)
        return any(name.startswith(marker) for name in names)

    def _header(self, packet: Packet) -> FileHeader:
        fixed = self.layers.HEADER_FIXED_LENGTH
        header_length = int(packet.header_length)
        if header_length > len(self.data):
            self.problems.append("truncated-header")
        for offset, element in _walk(packet.header, fixed, self.layers):
            self._element(offset, element)
        end = fixed + sum(_size(element, self.layers) for element in packet.header)
        if end != header_length and header_length <= len(self.data):
            self.problems.append("header-overrun")
        self.problems += [problem for tag, problem in _REQUIRED if tag not in self.values]
        return FileHeader(
            version=f"{packet.major}.{packet.minor}",
            header_length=header_length,
            signer_version=self.values.get(28),
            signer_name=self.values.get(4),
            signer_serial=self.values.get(5),
            signer_issuer=self.values.get(6),
            digest_algorithm=self.values.get(8),
            file_name=self.values.get(14),
            timestamp=self.values.get(15),
        )

    def _element(self, offset: int, element: Packet) -> None:
        layers = self.layers
        if not isinstance(element, layers.TLVElement):
            self.problems.append("bad-header-element")
            return
        tag = int(element.tag)
        if type(element) is layers.HeaderElement:
            known = tag in layers.HEADER_TAGS
            self.problems.append("bad-header-element" if known else "unknown-header-element")
            return
        if len(bytes(element)) != _size(element, layers):
            self.problems.append("truncated-element")
            return
        if isinstance(element, layers.HeaderGroup):
            return
        if tag in self.values and tag in _UNIQUE_TAGS:
            self.problems.append("duplicate-element")
            return
        value = self._value(element)
        if value is not None:
            self.values[tag] = value
        if tag == _SIGNATURE_TAG:
            self.signature_at = offset

    def _value(self, element: Packet) -> Any:
        layers = self.layers
        if isinstance(element, layers.HeaderVersion):
            return f"{element.major}.{element.minor}"
        if isinstance(element, layers.HeaderString):
            return self._text(element.text)
        if isinstance(element, layers.HeaderSerial):
            return bytes(element.serial).hex()
        if isinstance(element, layers.HeaderHashAlgorithm):
            return _digest_name(int(element.algorithm), layers.HASH_ALGORITHMS)
        if isinstance(element, layers.HeaderBytes):
            return bytes(element.data)
        if isinstance(element, (layers.HeaderByte, layers.HeaderShort)):
            return int(element.number)
        if isinstance(element, layers.HeaderTimestamp):
            return datetime.fromtimestamp(int(element.timestamp), tz=timezone.utc)
        return None

    def _text(self, raw: bytes) -> str:
        raw = bytes(raw).rstrip(b"\x00")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.problems.append("bad-text")
            return raw.decode("utf-8", "replace")

    def _signed_bytes(self, signature: bytes) -> bytes:
        """The file without its signature element: what the signature covers."""
        at = self.signature_at
        if at is None or not signature or self.size > len(self.data):
            return b""
        return self.data[:at] + self.data[at + 3 + len(signature) :]

    def _encryption(self) -> EncryptionHeader:
        values = self.values
        return EncryptionHeader(
            iv=values.get(19, b""),
            padding=values.get(20),
            key_size=values.get(23),
            key_algorithm=values.get(24),
            wrapped_key=values.get(25, b""),
            content_digest_algorithm=values.get(26),
            content_digest=values[27].hex() if 27 in values else None,
        )

    def _records(self, payload: Packet) -> tuple[TrustRecord, ...]:
        layers = self.layers
        records = []
        for record in payload.records:
            if not isinstance(record, layers.TrustListRecord):
                self.problems.append("truncated-record")
                break
            if int(record.tag) != 1 or int(record.length) != 2 or int(record.record_length) < 5:
                self.problems.append("bad-record")
                break
            if len(bytes(record)) != int(record.record_length):
                self.problems.append("truncated-record")
            records.append(self._record(record))
        if payload.payload:
            self.problems.append("too-many-records")
        return tuple(records)

    def _record(self, record: Packet) -> TrustRecord:
        layers = self.layers
        found: dict[int, Any] = {}
        for element in record.elements:
            typed = (
                isinstance(element, layers.TLVElement) and type(element) is not layers.RecordElement
            )
            if not typed or len(bytes(element)) != _size(element, layers):
                self.problems.append("bad-record-element")
                continue
            found.setdefault(int(element.tag), element)
        role_code = int(found[4].role) if 4 in found else None
        certificate = parse_certificate(bytes(found[9].certificate)) if 9 in found else None
        if certificate is not None and not isinstance(certificate, Certificate):
            self.problems.append("unparsed-certificate")
        return TrustRecord(
            role=_role_name(role_code),
            role_code=role_code,
            dns_name=self._text(found[2].text) if 2 in found else None,
            subject=self._text(found[3].text) if 3 in found else None,
            issuer=self._text(found[5].text) if 5 in found else None,
            serial=bytes(found[6].serial).hex() if 6 in found else None,
            certificate=certificate,
            ip_address=_ip_text(bytes(found[10].data)) if 10 in found else None,
            certificate_hash=bytes(found[11].data).hex() if 11 in found else None,
        )


def _with_check(file: PhoneFile) -> PhoneFile:
    """A trust list is checked against its own signer records; anything else waits for one."""
    if file.kind not in ("ctl", "itl"):
        check = SignatureCheck(
            "unknown", "no-signature" if not file.signature else "signer-not-given"
        )
        return replace(file, signature_check=check)
    serial = file.header.signer_serial if file.header else None
    signers = [
        record.certificate
        for role in TRUST_LIST_SIGNER_ROLES
        for record in file.records
        if record.role == role
        and record.certificate is not None
        and same_serial(_serial_of(record), serial)
    ]
    return replace(file, signature_check=_check(file, signers))


def _serial_of(record: TrustRecord) -> str | None:
    """The certificate's serial; the record's own when the certificate could not be parsed."""
    if isinstance(record.certificate, Certificate):
        return record.certificate.serial
    return record.serial


def _verify(file: PhoneFile, cert: AnyCertificate) -> SignatureReason:
    """RSA PKCS#1 v1.5, or ECDSA (DER) for an EC signer, over the signed bytes. The signer's key
    decides, whatever the signer version (1.1 announces EC signers) says."""
    if not isinstance(cert, Certificate):
        return "signer-unparsed"
    digest = _DIGESTS.get(file.header.digest_algorithm or "") if file.header else None
    if digest is None:
        return "unsupported-digest"
    try:
        key = serialization.load_der_public_key(cert.public_key_der)
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(file.signature, file.signed_bytes, padding.PKCS1v15(), digest())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(file.signature, file.signed_bytes, ec.ECDSA(digest()))
        else:
            return "unsupported-key"
    except InvalidSignature:
        return "signature-mismatch"
    except (UnsupportedAlgorithm, ValueError, TypeError):
        return "unsupported-key"
    return "verified"


def _walk(elements: Iterable[Packet], offset: int, layers: Any) -> Iterator[tuple[int, Packet]]:
    """Every header element with its offset in the file, groups before their contents."""
    for element in elements:
        yield offset, element
        if isinstance(element, layers.HeaderGroup):
            yield from _walk(element.elements, offset + 3, layers)
        offset += _size(element, layers)


def _size(element: Packet, layers: Any) -> int:
    """The bytes an element takes in the file, as its length says (1 for padding)."""
    if isinstance(element, layers.HeaderPadding):
        return 1
    if isinstance(element, layers.TLVElement):
        return 3 + int(element.length)
    return len(bytes(element))


def _digest_name(code: int, names: dict[int, str]) -> str:
    return names.get(code, f"hash_{code}")


def _role_name(code: int | None) -> str:
    if code is None:
        return "role_none"
    return TRUST_LIST_ROLES.get(code, f"role_{code}")


def _ip_text(raw: bytes) -> str:
    """4 or 16 bytes as an address; anything else as the text it holds."""
    if len(raw) in (4, 16):
        return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
    return raw.rstrip(b"\x00").decode("utf-8", "replace")
