"""TLS 1.0-1.2 record protection (RFC 2246, 4346, 5246): open one peer's records with a key log.

Sans-IO: a session's master secret (an NSS ``CLIENT_RANDOM`` line) and both hello randoms in,
record header and fragment out as content type and plaintext. The key log holds the master
secret whether or not the extended master secret (RFC 7627) was used, so both read alike.

Covered: AES-GCM, AES-CCM(-8), ChaCha20-Poly1305, AES-CBC with HMAC-SHA1/256/384 (TLS 1.0's
chained IVs, 1.1+ explicit IVs, MAC-then-encrypt or encrypt-then-MAC (RFC 7366), padding and MAC
checked), and the NULL suites, which are read without any key (plaintext followed by a MAC that
is checked when the key log has the session). cryptography does every cipher and MAC.

A :class:`Tls12Decryptor` opens one direction from its ChangeCipherSpec on, follows a
renegotiation into the next epoch when given its keys, and stops after
``MAX_APPLICATION_DATA`` bytes of application data (the bound on what one direction yields).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from capana.tls13 import DecryptionError

TLS10, TLS11, TLS12 = 0x0301, 0x0302, 0x0303
VERSIONS = frozenset({TLS10, TLS11, TLS12})
CHANGE_CIPHER_SPEC = 20
APPLICATION_DATA = 23
# ServerHello extensions that change how records are read or keys are made.
EXTENSION_ENCRYPT_THEN_MAC = 22
EXTENSION_EXTENDED_MASTER_SECRET = 23

# Bounds. One direction's decrypted application data stops at MAX_APPLICATION_DATA bytes (so a
# connection yields at most twice that): a registration, a CAPF enrolment or a TVS query fits in
# a few KiB; a long SIP session is not kept. TLSCiphertext.length is at most 2^14 + 2048.
MAX_APPLICATION_DATA = 256 * 1024
MAX_FRAGMENT = (1 << 14) + 2048

Mode = Literal["gcm", "ccm", "ccm8", "chacha20", "cbc", "null"]
MacName = Literal["MD5", "SHA1", "SHA256", "SHA384"]
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "MD5": hashes.MD5,
    "SHA1": hashes.SHA1,
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
}
_MAC_LENGTHS = {"MD5": 16, "SHA1": 20, "SHA256": 32, "SHA384": 48}


class UnsupportedSuite(ValueError):
    """The cipher suite or version is not one this module reads."""


@dataclass(frozen=True)
class SuiteSpec:
    """What a cipher suite means for its records; the key exchange does not matter here."""

    cipher: str  # "AES-128-GCM", "AES-256-CBC", "CHACHA20-POLY1305", "NULL", ...
    mode: Mode
    key_length: int  # bytes; 0 for NULL
    mac: MacName | None  # the record MAC; None for AEAD ciphers
    prf_hash: Literal["SHA256", "SHA384"]  # TLS 1.2's PRF; TLS 1.0/1.1 always use MD5+SHA1

    @property
    def mac_length(self) -> int:
        return _MAC_LENGTHS[self.mac] if self.mac else 0

    @property
    def iv_length(self) -> int:
        """The key block's IV: the AEAD salt, ChaCha20's nonce, or TLS 1.0's first CBC IV."""
        return {"gcm": 4, "ccm": 4, "ccm8": 4, "chacha20": 12, "cbc": 16, "null": 0}[self.mode]


# IANA cipher suite code -> SuiteSpec. Each row: one (cipher, MAC) and every key exchange that
# uses it (RSA, DH, DHE, ECDH, ECDHE, anon, PSK, SRP variants).
# fmt: off
_TABLE: tuple[tuple[SuiteSpec, tuple[int, ...]], ...] = (
    (SuiteSpec("NULL", "null", 0, "MD5", "SHA256"),
        (0x0001,)),
    (SuiteSpec("NULL", "null", 0, "SHA1", "SHA256"),
        (0x0002, 0x002C, 0x002D, 0x002E, 0xC001, 0xC006, 0xC00B, 0xC010, 0xC015,
         0xC039)),
    (SuiteSpec("NULL", "null", 0, "SHA256", "SHA256"),
        (0x003B, 0x00B0, 0x00B4, 0x00B8, 0xC03A)),
    (SuiteSpec("NULL", "null", 0, "SHA384", "SHA384"),
        (0x00B1, 0x00B5, 0x00B9, 0xC03B)),
    (SuiteSpec("AES-128-CBC", "cbc", 16, "SHA1", "SHA256"),
        (0x002F, 0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x008C, 0x0090, 0x0094,
         0xC004, 0xC009, 0xC00E, 0xC013, 0xC018, 0xC01D, 0xC01E, 0xC01F, 0xC035)),
    (SuiteSpec("AES-256-CBC", "cbc", 32, "SHA1", "SHA256"),
        (0x0035, 0x0036, 0x0037, 0x0038, 0x0039, 0x003A, 0x008D, 0x0091, 0x0095,
         0xC005, 0xC00A, 0xC00F, 0xC014, 0xC019, 0xC020, 0xC021, 0xC022, 0xC036)),
    (SuiteSpec("AES-128-CBC", "cbc", 16, "SHA256", "SHA256"),
        (0x003C, 0x003E, 0x003F, 0x0040, 0x0067, 0x006C, 0x00AE, 0x00B2, 0x00B6,
         0xC023, 0xC025, 0xC027, 0xC029, 0xC037)),
    (SuiteSpec("AES-256-CBC", "cbc", 32, "SHA256", "SHA256"),
        (0x003D, 0x0068, 0x0069, 0x006A, 0x006B, 0x006D)),
    (SuiteSpec("AES-256-CBC", "cbc", 32, "SHA384", "SHA384"),
        (0x00AF, 0x00B3, 0x00B7, 0xC024, 0xC026, 0xC028, 0xC02A, 0xC038)),
    (SuiteSpec("AES-128-GCM", "gcm", 16, None, "SHA256"),
        (0x009C, 0x009E, 0x00A0, 0x00A2, 0x00A4, 0x00A6, 0x00A8, 0x00AA, 0x00AC,
         0xC02B, 0xC02D, 0xC02F, 0xC031, 0xD001)),
    (SuiteSpec("AES-256-GCM", "gcm", 32, None, "SHA384"),
        (0x009D, 0x009F, 0x00A1, 0x00A3, 0x00A5, 0x00A7, 0x00A9, 0x00AB, 0x00AD,
         0xC02C, 0xC02E, 0xC030, 0xC032, 0xD002)),
    (SuiteSpec("AES-128-CCM", "ccm", 16, None, "SHA256"),
        (0xC09C, 0xC09E, 0xC0A4, 0xC0A6, 0xC0AC, 0xD005)),
    (SuiteSpec("AES-256-CCM", "ccm", 32, None, "SHA256"),
        (0xC09D, 0xC09F, 0xC0A5, 0xC0A7, 0xC0AD)),
    (SuiteSpec("AES-128-CCM-8", "ccm8", 16, None, "SHA256"),
        (0xC0A0, 0xC0A2, 0xC0A8, 0xC0AA, 0xC0AE, 0xD003)),
    (SuiteSpec("AES-256-CCM-8", "ccm8", 32, None, "SHA256"),
        (0xC0A1, 0xC0A3, 0xC0A9, 0xC0AB, 0xC0AF)),
    (SuiteSpec("CHACHA20-POLY1305", "chacha20", 32, None, "SHA256"),
        (0xCCA8, 0xCCA9, 0xCCAA, 0xCCAB, 0xCCAC, 0xCCAD, 0xCCAE)),
)
# fmt: on
SUITES: dict[int, SuiteSpec] = {code: spec for spec, codes in _TABLE for code in codes}


def suite_spec(code: int) -> SuiteSpec:
    spec = SUITES.get(code)
    if spec is None:
        raise UnsupportedSuite(f"cipher suite 0x{code:04x} is not one capana decrypts")
    return spec


def is_null_suite(code: int) -> bool:
    """Does this suite send its records in clear (integrity only)?"""
    spec = SUITES.get(code)
    return spec is not None and spec.mode == "null"


# --- key derivation ---------------------------------------------------------------------------


def _p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash (RFC 5246, 5): HMAC chained over A(i) until ``length`` bytes."""

    def mac(data: bytes) -> bytes:
        h = crypto_hmac.HMAC(secret, _HASHES[hash_name]())
        h.update(data)
        return h.finalize()

    out = bytearray()
    a = seed
    while len(out) < length:
        a = mac(a)
        out += mac(a + seed)
    return bytes(out[:length])


def prf(
    version: int, secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str
) -> bytes:
    """The TLS PRF: MD5 XOR SHA-1 halves for TLS 1.0/1.1 (RFC 2246, 5), P_<hash> for 1.2."""
    if version >= TLS12:
        return _p_hash(hash_name, secret, label + seed, length)
    half = (len(secret) + 1) // 2
    md5 = _p_hash("MD5", secret[:half], label + seed, length)
    sha1 = _p_hash("SHA1", secret[len(secret) - half :], label + seed, length)
    return bytes(x ^ y for x, y in zip(md5, sha1, strict=True))


@dataclass(frozen=True)
class DirectionKeys:
    """One direction's share of the key block."""

    mac_key: bytes
    key: bytes
    iv: bytes


def key_block(
    version: int,
    spec: SuiteSpec,
    master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
) -> tuple[DirectionKeys, DirectionKeys]:
    """(client write, server write) keys from the master secret (RFC 5246, 6.3)."""
    mac, key, iv = spec.mac_length, spec.key_length, spec.iv_length
    block = prf(
        version,
        master_secret,
        b"key expansion",
        server_random + client_random,
        2 * (mac + key + iv),
        spec.prf_hash,
    )
    parts = []
    offset = 0
    for size in (mac, mac, key, key, iv, iv):
        parts.append(block[offset : offset + size])
        offset += size
    return (
        DirectionKeys(parts[0], parts[2], parts[4]),
        DirectionKeys(parts[1], parts[3], parts[5]),
    )


# --- record protection ------------------------------------------------------------------------


class RecordProtection:
    """One direction's cipher state for one epoch: keys and the record sequence number.

    ``keys`` is None only for a NULL suite read without the key log: the MAC is then stripped,
    not checked (``mac_checked`` says which).
    """

    def __init__(
        self,
        version: int,
        spec: SuiteSpec,
        keys: DirectionKeys | None,
        encrypt_then_mac: bool = False,
    ) -> None:
        if version not in VERSIONS:
            raise UnsupportedSuite(f"version 0x{version:04x} is not TLS 1.0-1.2")
        if keys is None and spec.mode != "null":
            raise UnsupportedSuite(f"{spec.cipher} records need the session's keys")
        self.version = version
        self.spec = spec
        self.sequence = 0
        self.mac_checked = keys is not None
        self._keys = keys or DirectionKeys(b"", b"", b"")
        self._encrypt_then_mac = encrypt_then_mac and spec.mode == "cbc"
        self._cbc_iv = self._keys.iv  # TLS 1.0: the next record's IV (the last ciphertext block)
        self._aead = _aead(spec, self._keys.key) if keys is not None else None

    def open(self, header: bytes, fragment: bytes) -> bytes:
        """The plaintext of the next record; raises DecryptionError if it does not verify."""
        if len(fragment) > MAX_FRAGMENT:
            raise DecryptionError(f"record of {len(fragment)} bytes is over {MAX_FRAGMENT}")
        mode = self.spec.mode
        if mode == "null":
            plaintext = self._open_null(header, fragment)
        elif mode == "cbc":
            plaintext = self._open_cbc(header, fragment)
        else:
            plaintext = self._open_aead(header, fragment)
        self.sequence += 1
        return plaintext

    def _fail(self, what: str) -> DecryptionError:
        return DecryptionError(f"record {self.sequence}: {what}")

    def _mac(self, header: bytes, content: bytes) -> bytes:
        """HMAC over seq_num, type, version, length and content (RFC 5246, 6.2.3.1)."""
        assert self.spec.mac is not None
        h = crypto_hmac.HMAC(self._keys.mac_key, _HASHES[self.spec.mac]())
        h.update(self.sequence.to_bytes(8, "big") + header[:3] + len(content).to_bytes(2, "big"))
        h.update(content)
        return h.finalize()

    def _check_mac(self, header: bytes, content: bytes, mac: bytes) -> None:
        if self.mac_checked and not hmac.compare_digest(self._mac(header, content), mac):
            raise self._fail("bad record MAC (wrong key?)")

    def _open_null(self, header: bytes, fragment: bytes) -> bytes:
        size = self.spec.mac_length
        if len(fragment) < size:
            raise self._fail(f"{len(fragment)} bytes cannot hold a {size}-byte MAC")
        content, mac = fragment[: len(fragment) - size], fragment[len(fragment) - size :]
        self._check_mac(header, content, mac)
        return content

    def _open_cbc(self, header: bytes, fragment: bytes) -> bytes:
        size, block = self.spec.mac_length, 16
        if self._encrypt_then_mac:
            if len(fragment) < size:
                raise self._fail("too short for its MAC")
            fragment, mac = fragment[: len(fragment) - size], fragment[len(fragment) - size :]
            self._check_mac(header, fragment, mac)
        explicit = self.version >= TLS11
        least = (2 if explicit else 1) * block
        if len(fragment) % block or len(fragment) < least:
            raise self._fail(f"{len(fragment)} bytes is not whole {block}-byte blocks")
        if explicit:
            iv, ciphertext = fragment[:block], fragment[block:]
        else:
            iv, ciphertext = self._cbc_iv, fragment
            self._cbc_iv = fragment[-block:]
        decryptor = Cipher(algorithms.AES(self._keys.key), modes.CBC(iv)).decryptor()
        plaintext = decryptor.update(ciphertext) + decryptor.finalize()
        padding = plaintext[-1]
        mac_size = 0 if self._encrypt_then_mac else size
        if padding + 1 + mac_size > len(plaintext):
            raise self._fail("padding longer than the record (wrong key?)")
        if plaintext[len(plaintext) - padding - 1 :] != bytes([padding]) * (padding + 1):
            raise self._fail("bad padding (wrong key?)")
        body = plaintext[: len(plaintext) - padding - 1]
        if self._encrypt_then_mac:
            return body
        content, mac = body[: len(body) - size], body[len(body) - size :]
        self._check_mac(header, content, mac)
        return content

    def _open_aead(self, header: bytes, fragment: bytes) -> bytes:
        assert self._aead is not None
        tag = 8 if self.spec.mode == "ccm8" else 16
        sequence = self.sequence.to_bytes(8, "big")
        if self.spec.mode == "chacha20":  # RFC 7905: the IV XOR the padded sequence number
            nonce = bytes(a ^ b for a, b in zip(self._keys.iv, bytes(4) + sequence, strict=True))
            ciphertext = fragment
        else:  # RFC 5288 / 6655: 4-byte salt + 8-byte explicit nonce sent with the record
            nonce, ciphertext = self._keys.iv + fragment[:8], fragment[8:]
        if len(ciphertext) < tag or len(nonce) != 12:
            raise self._fail("too short for its nonce and tag")
        length = len(ciphertext) - tag
        aad = sequence + header[:3] + length.to_bytes(2, "big")
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise self._fail("failed authentication (wrong key?)") from None


def _aead(spec: SuiteSpec, key: bytes) -> AESGCM | AESCCM | ChaCha20Poly1305 | None:
    if spec.mode == "gcm":
        return AESGCM(key)
    if spec.mode == "ccm":
        return AESCCM(key)
    if spec.mode == "ccm8":
        return AESCCM(key, tag_length=8)
    if spec.mode == "chacha20":
        return ChaCha20Poly1305(key)
    return None


def protections(
    version: int,
    suite: int,
    master_secret: bytes | None,
    client_random: bytes,
    server_random: bytes,
    encrypt_then_mac: bool = False,
) -> tuple[RecordProtection, RecordProtection]:
    """(client, server) cipher states of a session; without a master secret, NULL suites only."""
    spec = suite_spec(suite)
    if master_secret is None:
        return (
            RecordProtection(version, spec, None),
            RecordProtection(version, spec, None),
        )
    client, server = key_block(version, spec, master_secret, client_random, server_random)
    return (
        RecordProtection(version, spec, client, encrypt_then_mac),
        RecordProtection(version, spec, server, encrypt_then_mac),
    )


class Tls12Decryptor:
    """One direction of a TLS <= 1.2 session from its ChangeCipherSpec on.

    A :class:`capana.tls.RecordDecryptor`: ``TlsDirection`` hands it every record after this
    peer's ChangeCipherSpec. A protected ChangeCipherSpec (a renegotiation) switches to the keys
    given by ``renegotiated``, or ends decryption when none were. ``active`` turns False once
    ``limit`` bytes of application data were opened, or after a record failed.
    """

    def __init__(self, protection: RecordProtection, limit: int = MAX_APPLICATION_DATA) -> None:
        self._protection: RecordProtection | None = protection
        self._next: RecordProtection | None = None
        self._limit = limit
        self.application_bytes = 0
        self.failed = False
        self.truncated = False  # stopped at the limit: later application data was not read

    @property
    def active(self) -> bool:
        return self._protection is not None

    @property
    def mac_checked(self) -> bool:
        return self._protection is not None and self._protection.mac_checked

    def renegotiated(self, protection: RecordProtection) -> None:
        """Keys of the next epoch, used after this peer's next ChangeCipherSpec."""
        self._next = protection

    def open(self, header: bytes, ciphertext: bytes) -> tuple[int, bytes]:
        if self._protection is None:
            raise DecryptionError("no more records are decrypted")
        try:
            plaintext = self._protection.open(header, ciphertext)
        except DecryptionError:
            self.failed = True
            self._protection = None
            raise
        content_type = header[0]
        if content_type == CHANGE_CIPHER_SPEC:
            self._protection, self._next = self._next, None
        elif content_type == APPLICATION_DATA:
            self.application_bytes += len(plaintext)
            if self.application_bytes >= self._limit:
                self.truncated = True
                self._protection = None
        return content_type, plaintext

    def finished(self) -> None:
        """TLS 1.3's hook; a TLS <= 1.2 Finished changes nothing here."""
