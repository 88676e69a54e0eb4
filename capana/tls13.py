"""TLS 1.3 record protection (RFC 8446, 5.2-5.3 and 7.3): open one peer's handshake records.

Sans-IO: traffic secrets in (from a key log), record header and ciphertext in, inner content type
and plaintext out. A :class:`HandshakeDecryptor` opens one direction under its handshake traffic
secret until that peer's Finished, then at most ``MAX_APPLICATION_RECORDS`` records under its
first application traffic secret: enough to read the alert or ticket that ends the handshake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

IV_LENGTH = 12
MAX_APPLICATION_RECORDS = 4
# TLSCiphertext.length may not exceed 2^14 + 256 (RFC 8446, 5.2).
MAX_CIPHERTEXT = (1 << 14) + 256


class _Suite(NamedTuple):
    aead: Callable[[bytes], AESGCM | AESCCM | ChaCha20Poly1305]
    key_length: int
    hash: type[hashes.HashAlgorithm]


# The TLS 1.3 cipher suites (RFC 8446, B.4) by IANA code.
SUITES = {
    0x1301: _Suite(AESGCM, 16, hashes.SHA256),
    0x1302: _Suite(AESGCM, 32, hashes.SHA384),
    0x1303: _Suite(ChaCha20Poly1305, 32, hashes.SHA256),
    0x1304: _Suite(AESCCM, 16, hashes.SHA256),
    0x1305: _Suite(lambda key: AESCCM(key, tag_length=8), 16, hashes.SHA256),
}


class DecryptionError(ValueError):
    """A record did not open: wrong key, wrong sequence number, or damaged bytes."""


class UnsupportedSuite(ValueError):
    """The cipher suite is not a TLS 1.3 suite this module knows."""


def hkdf_expand_label(
    secret: bytes, label: str, context: bytes, length: int, hash_type: type[hashes.HashAlgorithm]
) -> bytes:
    """HKDF-Expand-Label (RFC 8446, 7.1)."""
    full_label = b"tls13 " + label.encode("ascii")
    info = (
        length.to_bytes(2, "big")
        + bytes([len(full_label)])
        + full_label
        + bytes([len(context)])
        + context
    )
    return HKDFExpand(hash_type(), length, info).derive(secret)


class RecordProtection:
    """One traffic secret's key, IV and record sequence number (RFC 8446, 5.3 and 7.3)."""

    def __init__(self, suite: int, secret: bytes) -> None:
        spec = SUITES.get(suite)
        if spec is None:
            raise UnsupportedSuite(f"cipher suite 0x{suite:04x} is not a TLS 1.3 suite")
        key = hkdf_expand_label(secret, "key", b"", spec.key_length, spec.hash)
        self._iv = int.from_bytes(hkdf_expand_label(secret, "iv", b"", IV_LENGTH, spec.hash), "big")
        self._aead = spec.aead(key)
        self.sequence = 0

    def open(self, header: bytes, ciphertext: bytes) -> tuple[int, bytes]:
        """(inner content type, content) of the next record; the header is the AEAD's data."""
        if len(ciphertext) > MAX_CIPHERTEXT:
            raise DecryptionError(f"record of {len(ciphertext)} bytes is over {MAX_CIPHERTEXT}")
        nonce = (self._iv ^ self.sequence).to_bytes(IV_LENGTH, "big")
        try:
            plaintext = self._aead.decrypt(nonce, ciphertext, header)
        except InvalidTag:
            raise DecryptionError(
                f"record {self.sequence} failed authentication (wrong key?)"
            ) from None
        self.sequence += 1
        # TLSInnerPlaintext: content, content type, zero padding (RFC 8446, 5.2).
        content = plaintext.rstrip(b"\x00")
        if not content:
            raise DecryptionError(f"record {self.sequence - 1} has no inner content type")
        return content[-1], content[:-1]


class HandshakeDecryptor:
    """One direction of a TLS 1.3 handshake, from its first encrypted record to shortly after.

    ``finished()`` (the peer's Finished was read) switches to the application traffic secret,
    if known; ``active`` turns False once nothing more is to be opened.
    """

    def __init__(
        self, suite: int, handshake_secret: bytes, application_secret: bytes | None = None
    ) -> None:
        self._suite = suite
        self._protection: RecordProtection | None = RecordProtection(suite, handshake_secret)
        self._application_secret = application_secret
        self._application_records = 0
        self.failed = False

    @property
    def active(self) -> bool:
        return self._protection is not None

    def open(self, header: bytes, ciphertext: bytes) -> tuple[int, bytes]:
        if self._protection is None:
            raise DecryptionError("no more records are decrypted")
        try:
            opened = self._protection.open(header, ciphertext)
        except DecryptionError:
            self.failed = True
            self._protection = None
            raise
        if self._application_records:
            self._application_records += 1
            if self._application_records > MAX_APPLICATION_RECORDS:
                self._protection = None
        return opened

    def finished(self) -> None:
        """The handshake keys are done with; read a few records under the application keys."""
        if self._application_records or self._application_secret is None:
            self._protection = None
            return
        self._protection = RecordProtection(self._suite, self._application_secret)
        self._application_records = 1
