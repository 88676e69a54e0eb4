"""Hands a connection's two TLS directions their TLS 1.3 handshake keys from a key log.

TLS 1.0-1.2 sessions are :class:`capana.tls12_keys.Tls12Keys`'s.

Sans-IO glue between :mod:`capana.keylog`, :mod:`capana.tls13` and :mod:`capana.tls`: the
ClientHello names the session (its random), the ServerHello picks the version and cipher suite;
when the key log holds that session's handshake secrets, both directions open their protected
records from the next one on (the hello hooks run inside ``TlsDirection.feed``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from capana import keylog, tls, tls13
from capana.model import Decryption

SecretsLookup = Callable[[bytes], keylog.SessionSecrets | None]

# What ``Handshake.decryption`` says of a TLS 1.3 session.
DECRYPTED: Final[Decryption] = "decrypted"  # TLS 1.3 handshake records were opened with the key log
FAILED: Final[Decryption] = "failed"  # the key log had secrets, but records did not open with them


class SessionKeys:
    """Watches one connection's hellos; installs decryptors when the key log knows the session."""

    __slots__ = ("_client_random", "_decryptors", "_lookup", "problems")

    def __init__(self, lookup: SecretsLookup) -> None:
        self._lookup = lookup
        self._client_random: bytes | None = None
        self._decryptors: list[tls13.HandshakeDecryptor] = []
        self.problems: list[str] = []

    def attach(self, client: tls.TlsDirection, server: tls.TlsDirection) -> None:
        client.on_hello = self._client_hello
        server.on_hello = lambda hello: self._server_hello(hello, client, server)

    @property
    def status(self) -> Decryption | None:
        if self._decryptors:
            return FAILED if any(d.failed for d in self._decryptors) else DECRYPTED
        return None

    def _client_hello(self, hello: tls.ClientHello | tls.ServerHello) -> None:
        if isinstance(hello, tls.ClientHello) and hello.random:
            self._client_random = hello.random

    def _server_hello(
        self,
        hello: tls.ClientHello | tls.ServerHello,
        client: tls.TlsDirection,
        server: tls.TlsDirection,
    ) -> None:
        if not isinstance(hello, tls.ServerHello) or hello.hello_retry:
            return
        if hello.selected_version != tls.TLS13:
            return
        if self._client_random is None or self._decryptors:
            return
        secrets = self._lookup(self._client_random)
        if secrets is None:
            return
        client_secret = secrets.get(keylog.CLIENT_HANDSHAKE)
        server_secret = secrets.get(keylog.SERVER_HANDSHAKE)
        for label, secret in (
            (keylog.SERVER_HANDSHAKE, server_secret),
            (keylog.CLIENT_HANDSHAKE, client_secret),
        ):
            if secret is None:
                self.problems.append(f"key log has no {label} for this session")
        try:
            for direction, secret, application in (
                (server, server_secret, secrets.get(keylog.SERVER_APPLICATION)),
                (client, client_secret, secrets.get(keylog.CLIENT_APPLICATION)),
            ):
                if secret is not None:
                    decryptor = tls13.HandshakeDecryptor(hello.cipher_suite, secret, application)
                    direction.decryptor = decryptor
                    self._decryptors.append(decryptor)
        except tls13.UnsupportedSuite as error:
            self.problems.append(f"key log not used: {error}")
