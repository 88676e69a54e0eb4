"""Hands a connection's two TLS 1.0-1.2 directions their record decryptors.

Sans-IO glue between :mod:`capana.keylog`, :mod:`capana.tls12` and :mod:`capana.tls`, the TLS
<= 1.2 counterpart of :class:`capana.session_keys.SessionKeys`: the ClientHello names the session
(its random), the ServerHello gives the version, suite, server random and extensions. When the
key log holds the session's master secret, or the suite is a NULL one (no key needed), both
directions open their records after their ChangeCipherSpec. A renegotiation's hellos, read
inside the session, install the next epoch's keys the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from capana import tls, tls12
from capana.session_keys import SecretsLookup

# What the session's decryption came to.
Status = Literal[
    "decrypted",  # records opened with the key log's master secret
    "plaintext",  # a NULL suite read without keys: content readable, MAC not checked
    "failed",  # a record did not open (wrong secret, damaged bytes); later ones stay encrypted
    "no_keys",  # encrypted, and the key log does not have this session
    "unsupported",  # a suite or version this module does not read (e.g. 3DES, RC4, SSL 3.0)
]


@dataclass(frozen=True)
class Tls12Decryption:
    """How one TLS <= 1.2 connection was read."""

    status: Status
    version: int
    cipher_suite: int
    extended_master_secret: bool  # the ServerHello carried extended_master_secret (RFC 7627)
    encrypt_then_mac: bool  # the ServerHello carried encrypt_then_mac (RFC 7366)
    mac_checked: bool
    truncated: bool  # a direction stopped at tls12.MAX_APPLICATION_DATA
    problems: tuple[str, ...] = ()


class Tls12Keys:
    """Watches one connection's hellos; installs TLS <= 1.2 decryptors on both directions."""

    def __init__(self, lookup: SecretsLookup | None, limit: int = tls12.MAX_APPLICATION_DATA):
        self._lookup = lookup
        self._limit = limit
        self._client_random: bytes | None = None
        self._hello: tls.ServerHello | None = None
        self._status: Status | None = None
        self._decryptors: tuple[tls12.Tls12Decryptor, tls12.Tls12Decryptor] | None = None
        self.problems: list[str] = []

    def attach(self, client: tls.TlsDirection, server: tls.TlsDirection) -> None:
        """Hook both directions' hellos, after any hook already there (e.g. SessionKeys)."""
        previous_client, previous_server = client.on_hello, server.on_hello

        def on_client(hello: tls.ClientHello | tls.ServerHello) -> None:
            if previous_client is not None:
                previous_client(hello)
            if isinstance(hello, tls.ClientHello) and hello.random:
                self._client_random = hello.random

        def on_server(hello: tls.ClientHello | tls.ServerHello) -> None:
            if previous_server is not None:
                previous_server(hello)
            if isinstance(hello, tls.ServerHello):
                self._server_hello(hello, client, server)

        client.on_hello, server.on_hello = on_client, on_server

    @property
    def decryption(self) -> Tls12Decryption | None:
        """None unless the connection negotiated TLS 1.0-1.2."""
        hello = self._hello
        if hello is None or self._status is None:
            return None
        status = self._status
        decryptors = self._decryptors or ()
        if any(d.failed for d in decryptors):
            status = "failed"
        return Tls12Decryption(
            status,
            hello.version,
            hello.cipher_suite,
            tls12.EXTENSION_EXTENDED_MASTER_SECRET in hello.extensions,
            tls12.EXTENSION_ENCRYPT_THEN_MAC in hello.extensions,
            status == "decrypted",
            any(d.truncated for d in decryptors),
            tuple(self.problems),
        )

    def _server_hello(
        self, hello: tls.ServerHello, client: tls.TlsDirection, server: tls.TlsDirection
    ) -> None:
        if hello.hello_retry or hello.selected_version is not None or not hello.random:
            return  # TLS 1.3 (or a hello too short to derive keys from)
        if self._client_random is None:  # no ClientHello seen: the session cannot be named
            if self._hello is None:
                self._hello, self._status = hello, "no_keys"
            return
        secrets = self._lookup(self._client_random) if self._lookup else None
        master = secrets.master_secret if secrets else None
        encrypt_then_mac = tls12.EXTENSION_ENCRYPT_THEN_MAC in hello.extensions
        try:
            client_state, server_state = tls12.protections(
                hello.version,
                hello.cipher_suite,
                master,
                self._client_random,
                hello.random,
                encrypt_then_mac,
            )
        except tls12.UnsupportedSuite as error:
            if self._decryptors is None:
                self._hello = hello
                # An encrypted suite without its keys is merely unread; with them, or a NULL
                # suite, what stops us is the suite or version itself (3DES, RC4, SSL 3.0).
                self._status = (
                    "unsupported"
                    if master or tls12.is_null_suite(hello.cipher_suite)
                    else "no_keys"
                )
                if master:
                    self.problems.append(f"key log not used: {error}")
            else:
                self.problems.append(f"renegotiated session not read: {error}")
            return
        if self._decryptors is None:
            self._hello = hello
            self._status = "decrypted" if master else "plaintext"
            self._decryptors = (
                tls12.Tls12Decryptor(client_state, self._limit),
                tls12.Tls12Decryptor(server_state, self._limit),
            )
            client.decryptor, server.decryptor = self._decryptors
        else:  # a renegotiation: the next epoch starts at each peer's next ChangeCipherSpec
            self._decryptors[0].renegotiated(client_state)
            self._decryptors[1].renegotiated(server_state)
