"""Real TLS handshakes run in memory by OpenSSL (pyOpenSSL), recorded as the bytes each side sent.

No socket and no clock: the client and the server are two ``SSL.Connection`` objects on memory
BIOs, pumped until neither has anything left to say. Every burst one side writes is a
:class:`Flight`; ``wire`` lays flights into TCP segments. OpenSSL makes every decision itself:
the server verifies the phone's chain against its trust anchors at ``verify_time`` and, when it
rejects it, the fatal alert in the flights is the one OpenSSL really sent.

pyOpenSSL rather than Python's ``ssl``: only it puts CA names in the server's CertificateRequest
(``add_client_ca``), as CUCM does with the subjects of CallManager-trust.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from cryptography import x509
from OpenSSL import SSL, crypto

from samplegen.pki import Issued

Sender = Literal["client", "server"]

# What a 12.5-era 88xx phone offers; OpenSSL 3.x/4.x no longer builds DES-CBC3-SHA, so the
# cipher string keeps the rest (OpenSSL skips names it does not know).
PHONE_CIPHERS = (
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:AES256-SHA:AES128-SHA:DES-CBC3-SHA"
)
# CUCM accepts SHA-1 MICs and old suites: security level 0 lets OpenSSL do the same.
SERVER_CIPHERS = "ALL:@SECLEVEL=0"

_VERSIONS = {
    "1.0": SSL.TLS1_VERSION,
    "1.1": SSL.TLS1_1_VERSION,
    "1.2": SSL.TLS1_2_VERSION,
    "1.3": SSL.TLS1_3_VERSION,
}
# RFC 8446 / RFC 5246 alert descriptions that these handshakes can produce.
ALERT_NAMES = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    109: "missing_extension",
    116: "certificate_required",
}
_BIO_CHUNK = 65536
_X509_V_ERR_INVALID_PURPOSE = 26


@dataclass(frozen=True)
class Flight:
    """Bytes one side wrote in one go (one or more TLS records)."""

    sender: Sender
    data: bytes


@dataclass(frozen=True)
class Alert:
    """A TLS alert as OpenSSL reported sending it (also when it travels encrypted)."""

    sender: Sender
    level: int  # 1 warning, 2 fatal
    description: int  # RFC 8446 code, e.g. 48 unknown_ca

    @property
    def name(self) -> str:
        return ALERT_NAMES.get(self.description, f"alert_{self.description}")


@dataclass(frozen=True)
class HandshakeBytes:
    """The outcome of one real handshake: its flights in order, keys and OpenSSL's verdict."""

    flights: tuple[Flight, ...]
    keylog: tuple[str, ...]
    established: bool
    alerts: tuple[Alert, ...]
    version: str | None  # "TLSv1.2"; None when no ServerHello was processed
    cipher: str | None
    client_error: str | None = None
    server_error: str | None = None

    @property
    def fatal_alert(self) -> Alert | None:
        """The first fatal alert either side sent, if any."""
        return next((alert for alert in self.alerts if alert.level == 2), None)

    def keylog_text(self) -> str:
        """The NSS key log (``CLIENT_RANDOM ...`` / TLS 1.3 secrets), one line each."""
        return "".join(line + "\n" for line in self.keylog)

    def sent_by(self, sender: Sender) -> bytes:
        """Everything one side sent, concatenated (its TCP payload)."""
        return b"".join(flight.data for flight in self.flights if flight.sender == sender)


@dataclass
class _Recorder:
    """Collects what the callbacks of both contexts report during one run."""

    keylog: list[str] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


def run_handshake(
    *,
    server_chain: Sequence[Issued],
    client_chain: Sequence[Issued] = (),
    request_client_cert: bool = True,
    require_client_cert: bool = False,
    ca_names: Sequence[x509.Certificate] | None = None,
    trust: Sequence[x509.Certificate] = (),
    verify_time: datetime | None = None,
    min_version: str = "1.0",
    max_version: str = "1.2",
    client_ciphers: str = PHONE_CIPHERS,
    server_ciphers: str = SERVER_CIPHERS,
    tls13_ciphers: str | None = None,
    sni: str | None = None,
    check_purpose: bool = False,
    app_data: Sequence[tuple[Sender, bytes]] = (),
    close: bool = True,
) -> HandshakeBytes:
    """Run one client/server handshake in memory and return what went over the wire.

    ``client_chain`` and ``server_chain`` are leaf first, intermediates after (the leaf needs its
    key). ``ca_names`` defaults to the subjects of ``trust``, as CUCM lists CallManager-trust.
    ``app_data`` and ``close`` (close_notify both ways) apply only to an established session.
    ``check_purpose=False`` lets the server accept chains whose CA lacks clientAuth in its EKU:
    CUCM's CAPF certificate carries serverAuth only, yet CUCM accepts the LSCs it signs.
    ``tls13_ciphers`` (e.g. "TLS_CHACHA20_POLY1305_SHA256") limits the TLS 1.3 suites both offer.

        result = run_handshake(server_chain=[cucm], client_chain=[lsc], trust=[capf.cert])
        assert result.established
    """
    recorder = _Recorder()
    server_ctx = _context(server_chain, server_ciphers, min_version, max_version, recorder)
    client_ctx = _context(client_chain, client_ciphers, min_version, max_version, recorder)
    _configure_verifier(
        server_ctx,
        trust,
        verify_time,
        request_client_cert,
        require_client_cert,
        trust if ca_names is None else ca_names,
        check_purpose,
    )
    if tls13_ciphers is not None:
        for ctx in (server_ctx, client_ctx):
            ctx.set_tls13_ciphersuites(tls13_ciphers.encode())
    client_ctx.set_keylog_callback(lambda _conn, line: recorder.keylog.append(line.decode()))
    client_ctx.set_verify(SSL.VERIFY_NONE)  # the phone's own check (ITL/CTL) is out of scope

    server = SSL.Connection(server_ctx, None)
    server.set_accept_state()
    server.set_app_data("server")
    client = SSL.Connection(client_ctx, None)
    client.set_connect_state()
    client.set_app_data("client")
    if sni:
        client.set_tlsext_host_name(sni.encode())

    flights: list[Flight] = []
    errors, done = _pump(client, server, flights)
    established = not any(errors.values()) and done == {"client", "server"}
    if established:
        for sender, data in app_data:
            writer, reader = (client, server) if sender == "client" else (server, client)
            writer.sendall(data)
            _transfer(writer, reader, flights)
            _drain_reads(reader)
        if close:
            _close(client, server, flights)
    return HandshakeBytes(
        flights=tuple(flights),
        keylog=tuple(recorder.keylog),
        established=established,
        alerts=tuple(recorder.alerts),
        version=_negotiated(client),
        cipher=client.get_cipher_name() if established else None,
        client_error=errors["client"],
        server_error=errors["server"],
    )


def record_offsets(data: bytes) -> list[int]:
    """Where each TLS record starts in ``data`` (a flight), for cutting segments at odd places."""
    offsets, at = [], 0
    while at + 5 <= len(data):
        offsets.append(at)
        at += 5 + int.from_bytes(data[at + 3 : at + 5], "big")
    return offsets


def _context(
    chain: Sequence[Issued],
    ciphers: str,
    min_version: str,
    max_version: str,
    recorder: _Recorder,
) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(_VERSIONS[min_version])
    ctx.set_max_proto_version(_VERSIONS[max_version])
    ctx.set_cipher_list(ciphers.encode())
    if chain:
        ctx.use_certificate(chain[0].cert)
        ctx.use_privatekey(chain[0].key)
        for extra in chain[1:]:
            ctx.add_extra_chain_cert(extra.cert)
    ctx.set_info_callback(_alert_recorder(recorder))
    return ctx


def _configure_verifier(
    ctx: SSL.Context,
    trust: Sequence[x509.Certificate],
    verify_time: datetime | None,
    request: bool,
    require: bool,
    ca_names: Sequence[x509.Certificate],
    check_purpose: bool,
) -> None:
    """Make the server verify client chains against ``trust`` as of ``verify_time``."""
    store = ctx.get_cert_store()
    for anchor in trust:
        store.add_cert(crypto.X509.from_cryptography(anchor))
    if verify_time is not None:
        # pyOpenSSL reads the naive time tuple as UTC.
        store.set_time(verify_time.astimezone(timezone.utc).replace(tzinfo=None))
    if not request:
        ctx.set_verify(SSL.VERIFY_NONE)
        return
    mode = SSL.VERIFY_PEER | (SSL.VERIFY_FAIL_IF_NO_PEER_CERT if require else 0)

    def verdict(
        _conn: SSL.Connection, _cert: crypto.X509, errno: int, _depth: int, ok: int
    ) -> bool:
        return bool(ok) or (not check_purpose and errno == _X509_V_ERR_INVALID_PURPOSE)

    ctx.set_verify(mode, verdict)
    for ca in ca_names:
        ctx.add_client_ca(ca)


def _alert_recorder(recorder: _Recorder):
    def callback(conn: SSL.Connection, where: int, ret: int) -> None:
        if where & SSL.SSL_CB_WRITE_ALERT == SSL.SSL_CB_WRITE_ALERT:
            recorder.alerts.append(Alert(conn.get_app_data(), ret >> 8, ret & 0xFF))

    return callback


def _pump(
    client: SSL.Connection, server: SSL.Connection, flights: list[Flight]
) -> tuple[dict[Sender, str | None], set[Sender]]:
    """Step both sides until neither writes anything more: (error per side, sides done)."""
    errors: dict[Sender, str | None] = {"client": None, "server": None}
    done: set[Sender] = set()
    progress = True
    while progress:
        progress = False
        for me, peer in ((client, server), (server, client)):
            name: Sender = me.get_app_data()
            if errors[name] is None:
                try:
                    if _step(me, name in done):
                        done.add(name)
                except SSL.Error as error:
                    errors[name] = str(error) or "connection failed"
            progress |= _transfer(me, peer, flights)
    return errors, done


def _step(conn: SSL.Connection, done: bool) -> bool:
    """Advance the handshake (True once it completes); once done, read tickets and alerts."""
    if done:
        _drain_reads(conn)
        return True
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        return False
    return True


def _drain_reads(conn: SSL.Connection) -> None:
    try:
        while conn.recv(_BIO_CHUNK):
            pass
    except (SSL.WantReadError, SSL.ZeroReturnError):
        pass


def _transfer(src: SSL.Connection, dst: SSL.Connection, flights: list[Flight]) -> bool:
    """Move what ``src`` wrote to ``dst``, recording it as one flight."""
    chunks = []
    while True:
        try:
            chunk = src.bio_read(_BIO_CHUNK)
        except SSL.WantReadError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    if not chunks:
        return False
    data = b"".join(chunks)
    flights.append(Flight(src.get_app_data(), data))
    dst.bio_write(data)
    return True


def _close(client: SSL.Connection, server: SSL.Connection, flights: list[Flight]) -> None:
    """close_notify from the client, answered by the server's own."""
    client.shutdown()
    _transfer(client, server, flights)
    _drain_reads(server)
    server.shutdown()
    _transfer(server, client, flights)
    _drain_reads(client)


def _negotiated(conn: SSL.Connection) -> str | None:
    name = conn.get_protocol_version_name()
    return name if name.startswith("TLS") else None
