"""TLS that starts after clear text, captured off the loopback: every upgrade capana reads.

Each :class:`Upgrade` is a server's side of a dialogue that ends with TLS (a thread here) and a
client's: Python's own protocol clients where the standard library has one (``smtplib``,
``imaplib``, ``poplib``, ``ftplib``, ``http.client`` through a proxy's CONNECT), else the exact
bytes the protocol's specification gives (LDAP StartTLS, RFC 4511 4.14; XMPP STARTTLS, RFC 6120
5.4; PostgreSQL's SSLRequest and MySQL's SSL request, from their protocol documentation; SOCKS 5,
RFC 1928). The TLS after it is real OpenSSL through Python's ``ssl`` (TLS 1.2, the server asking
for the client's certificate). tcpdump on ``lo`` writes what the kernel carried; tshark, told the
port's protocol (``decode_as``), is the judge of what each side sent.

    capture = capture_upgrade(tmp_path, "smtp")
    capture.path, capture.client_chain  # SHA-256 of each certificate the client sent

Needs tcpdump and the right to capture on lo (root).
"""

from __future__ import annotations

import contextlib
import ftplib
import hashlib
import http.client
import imaplib
import poplib
import smtplib
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from samplegen import pki
from samplegen.loopback import free_port, tcpdump

HOST = "127.0.0.1"
SERVER_NAME = "cucm.example.com"
_TIMEOUT = 10.0

Dialogue = Callable[[socket.socket], None]  # clear text up to where TLS starts
Client = Callable[[int, ssl.SSLContext], None]  # connects to the port, talks, closes


@dataclass(frozen=True)
class Upgrade:
    """One way TLS starts after clear text: the server's dialogue, the client, tshark's name."""

    server: Dialogue
    client: Client
    decode_as: str  # tshark's protocol for the port (``-d tcp.port==N,<decode_as>``)
    answer: Callable[[bytes], bytes] = lambda _line: b"250 OK\r\n"  # to each line over TLS


@dataclass(frozen=True)
class UpgradeCapture:
    path: Path
    port: int
    preferences: tuple[str, ...]  # tshark options that name the port's protocol
    client_chain: tuple[str, ...]
    server_chain: tuple[str, ...]


# --- the servers' clear text ---------------------------------------------------------------------


def _line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"peer closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def _smtp_server(sock: socket.socket) -> None:
    """RFC 3207: the greeting, EHLO offering STARTTLS, then 220 to STARTTLS."""
    sock.sendall(b"220 cucm.example.com ESMTP ready\r\n")
    while (command := _line(sock).upper()) and not command.startswith(b"STARTTLS"):
        sock.sendall(b"250-cucm.example.com\r\n250-8BITMIME\r\n250 STARTTLS\r\n")
    sock.sendall(b"220 2.0.0 Ready to start TLS\r\n")


def _imap_server(sock: socket.socket) -> None:
    """RFC 3501 6.2.1: CAPABILITY lists STARTTLS; the tagged OK to STARTTLS starts TLS."""
    sock.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n")
    while line := _line(sock):
        tag, command = [*line.split(b" ", 2), b""][:2]
        if command.strip().upper() == b"STARTTLS":
            sock.sendall(tag + b" OK Begin TLS negotiation now\r\n")
            return
        sock.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n" + tag + b" OK done\r\n")


def _pop3_server(sock: socket.socket) -> None:
    """RFC 2595 4: CAPA lists STLS (RFC 2449), STLS starts TLS."""
    sock.sendall(b"+OK POP3 server ready\r\n")
    while (command := _line(sock).upper()) and not command.startswith(b"STLS"):
        sock.sendall(b"+OK\r\nSTLS\r\n.\r\n" if command.startswith(b"CAPA") else b"+OK\r\n")
    sock.sendall(b"+OK Begin TLS negotiation\r\n")


def _ftp_server(sock: socket.socket) -> None:
    """RFC 4217 4: AUTH TLS, answered 234."""
    sock.sendall(b"220 FTP server ready\r\n")
    while (command := _line(sock).upper()) and not command.startswith(b"AUTH"):
        sock.sendall(b"500 Unknown command\r\n")
    sock.sendall(b"234 AUTH TLS successful\r\n")


def _connect_proxy(sock: socket.socket) -> None:
    """An HTTP proxy's CONNECT (RFC 9110 9.3.6): the tunnel's TLS ends here."""
    while _line(sock) not in (b"\r\n", b"\n", b""):
        pass
    sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")


# LDAP (RFC 4511 4.14): ExtendedRequest { requestName 1.3.6.1.4.1.1466.20037 } and its success.
_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
LDAP_STARTTLS_REQUEST = (
    bytes([0x30, 0x1D, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16]) + _STARTTLS_OID
)
LDAP_STARTTLS_RESPONSE = bytes.fromhex("300c02010178070a010004000400")


def _ldap_server(sock: socket.socket) -> None:
    _exactly(sock, len(LDAP_STARTTLS_REQUEST))
    sock.sendall(LDAP_STARTTLS_RESPONSE)


_XMPP_STREAM = (
    b"<?xml version='1.0'?><stream:stream %s version='1.0' xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams'>"
)
_XMPP_TLS = b"xmlns='urn:ietf:params:xml:ns:xmpp-tls'"


def _xmpp_server(sock: socket.socket) -> None:
    """RFC 6120 5.4: stream features offering starttls, then proceed."""
    data = b""
    while b"<starttls" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return
        if b"<stream:stream" in chunk:
            sock.sendall(
                _XMPP_STREAM % b"from='example.com' id='c2s-1'"
                + b"<stream:features><starttls "
                + _XMPP_TLS
                + b"><required/></starttls></stream:features>"
            )
        data += chunk
    sock.sendall(b"<proceed " + _XMPP_TLS + b"/>")


# PostgreSQL: SSLRequest is length 8 and the code 80877103 (1234 << 16 | 5679); answered "S".
PGSQL_SSL_REQUEST = struct.pack("!II", 8, 80877103)


def _pgsql_server(sock: socket.socket) -> None:
    _exactly(sock, len(PGSQL_SSL_REQUEST))
    sock.sendall(b"S")


# MySQL: HandshakeV10 offering CLIENT_SSL; the client's SSLRequest packet (32 bytes) follows.
_MYSQL_CAPABILITIES = 0x0000_0200 | 0x0000_0800 | 0x0000_8000 | 0x0008_0000  # 4.1, SSL, auth
_MYSQL_SALT = bytes(range(0x21, 0x21 + 20))


def mysql_greeting() -> bytes:
    body = (
        b"\x0a8.0.36\x00"
        + struct.pack("<I", 42)
        + _MYSQL_SALT[:8]
        + b"\x00"
        + struct.pack("<H", _MYSQL_CAPABILITIES & 0xFFFF)
        + bytes([255])
        + struct.pack("<H", 2)
        + struct.pack("<H", _MYSQL_CAPABILITIES >> 16)
        + bytes([21])
        + bytes(10)
        + _MYSQL_SALT[8:]
        + b"\x00mysql_native_password\x00"
    )
    return len(body).to_bytes(3, "little") + b"\x00" + body


def mysql_ssl_request() -> bytes:
    body = struct.pack("<IIB", _MYSQL_CAPABILITIES, 1 << 24, 255) + bytes(23)
    return len(body).to_bytes(3, "little") + b"\x01" + body


def _mysql_server(sock: socket.socket) -> None:
    sock.sendall(mysql_greeting())
    _exactly(sock, len(mysql_ssl_request()))


# SOCKS 5 (RFC 1928): no authentication, CONNECT by domain name, success.
SOCKS_GREETING = b"\x05\x01\x00"
SOCKS_CHOICE = b"\x05\x00"
SOCKS_CONNECT = b"\x05\x01\x00\x03" + bytes([len(SERVER_NAME)]) + SERVER_NAME.encode() + b"\x01\xbb"
SOCKS_SUCCESS = b"\x05\x00\x00\x01" + bytes(6)


def _socks_server(sock: socket.socket) -> None:
    _exactly(sock, len(SOCKS_GREETING))
    sock.sendall(SOCKS_CHOICE)
    _exactly(sock, len(SOCKS_CONNECT))
    sock.sendall(SOCKS_SUCCESS)


# --- the clients ---------------------------------------------------------------------------------


def _smtp_client(port: int, context: ssl.SSLContext) -> None:
    with smtplib.SMTP(HOST, port, timeout=_TIMEOUT) as client:
        client.ehlo("phone.example.com")
        client.starttls(context=context)
        client.ehlo("phone.example.com")


def _imap_client(port: int, context: ssl.SSLContext) -> None:
    client = imaplib.IMAP4(HOST, port, timeout=_TIMEOUT)
    client.starttls(ssl_context=context)
    client.shutdown()


def _pop3_client(port: int, context: ssl.SSLContext) -> None:
    client = poplib.POP3(HOST, port, timeout=_TIMEOUT)
    client.stls(context=context)
    client.close()


def _ftp_client(port: int, context: ssl.SSLContext) -> None:
    client = ftplib.FTP_TLS(context=context, timeout=_TIMEOUT)
    client.connect(HOST, port)
    client.auth()
    client.close()


def _connect_client(port: int, context: ssl.SSLContext) -> None:
    client = http.client.HTTPSConnection(HOST, port, timeout=_TIMEOUT, context=context)
    client.set_tunnel(SERVER_NAME, 443)
    client.request("GET", "/")
    client.getresponse().read()
    client.close()


def _bytes_client(*exchange: tuple[bytes, int]) -> Client:
    """A client that sends each message and reads the given number of bytes back (-1: until
    the reply ends with '>'), then starts TLS."""

    def client(port: int, context: ssl.SSLContext) -> None:
        with socket.create_connection((HOST, port), timeout=_TIMEOUT) as sock:
            for message, answer in exchange:
                if message:
                    sock.sendall(message)
                if answer > 0:
                    _exactly(sock, answer)
                elif answer < 0:
                    _until(sock, b"</stream:features>" if b"stream:stream" in message else b"/>")
            _tls_client(sock, context)

    return client


def _until(sock: socket.socket, marker: bytes) -> None:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"peer closed before {marker!r}")
        data += chunk


def _tls_client(sock: socket.socket, context: ssl.SSLContext) -> None:
    with context.wrap_socket(sock, server_hostname=SERVER_NAME) as tls:
        tls.sendall(b"bye\r\n")
        with contextlib.suppress(OSError):
            tls.recv(64)


UPGRADES: dict[str, Upgrade] = {
    "smtp": Upgrade(_smtp_server, _smtp_client, "smtp"),
    "imap": Upgrade(
        _imap_server,
        _imap_client,
        "imap",
        lambda line: b"* CAPABILITY IMAP4rev1\r\n" + line.split(b" ")[0] + b" OK done\r\n",
    ),
    "pop3": Upgrade(_pop3_server, _pop3_client, "pop"),
    "ftp": Upgrade(_ftp_server, _ftp_client, "ftp"),
    "http-connect": Upgrade(
        _connect_proxy,
        _connect_client,
        "http",
        lambda _line: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ),
    "ldap": Upgrade(_ldap_server, _bytes_client((LDAP_STARTTLS_REQUEST, 14)), "ldap"),
    "xmpp": Upgrade(
        _xmpp_server,
        _bytes_client(
            (_XMPP_STREAM % b"to='example.com'", -1), (b"<starttls " + _XMPP_TLS + b"/>", -1)
        ),
        "xmpp",
    ),
    "postgresql": Upgrade(_pgsql_server, _bytes_client((PGSQL_SSL_REQUEST, 1)), "pgsql"),
    "mysql": Upgrade(
        _mysql_server,
        _bytes_client((b"", len(mysql_greeting())), (mysql_ssl_request(), 0)),
        "mysql",
    ),
    "socks5": Upgrade(
        _socks_server,
        _bytes_client((SOCKS_GREETING, len(SOCKS_CHOICE)), (SOCKS_CONNECT, len(SOCKS_SUCCESS))),
        "socks",
    ),
}


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pki:
    ca: pki.Issued
    server: pki.Issued
    phone: pki.Issued


def _pki() -> _Pki:
    now = datetime.now(timezone.utc)
    window = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=365)}
    ca = pki.issue("O=Example,CN=Example Voice CA", ca=True, **window)
    server = pki.server_cert(ca, SERVER_NAME, org="O=Example", **window)
    phone = pki.issue("O=Cisco,OU=Voice,CN=CP-8861-SEP2C3124C9F8E1", issuer=ca, **window)
    return _Pki(ca, server, phone)


def _contexts(folder: Path, keys: _Pki) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts: TLS 1.2 at most, each side sending its certificate."""
    files = {}
    for name, issued in (("ca", keys.ca), ("server", keys.server), ("phone", keys.phone)):
        (folder / f"{name}.pem").write_bytes(issued.pem)
        (folder / f"{name}.key").write_bytes(issued.key_pem)
        files[name] = (str(folder / f"{name}.pem"), str(folder / f"{name}.key"))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*files["server"])
    server.load_verify_locations(files["ca"][0])
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_cert_chain(*files["phone"])
    client.load_verify_locations(files["ca"][0])
    client.check_hostname = False  # the clients connect to 127.0.0.1, named nowhere
    for context in (server, client):
        context.maximum_version = ssl.TLSVersion.TLSv1_2  # certificates in clear
    return server, client


def _serve(listener: socket.socket, upgrade: Upgrade, context: ssl.SSLContext, errors: list):
    """Accept one connection: its clear text, then TLS; answer each line until the end."""
    try:
        sock, _ = listener.accept()
        sock.settimeout(_TIMEOUT)
        upgrade.server(sock)
        with context.wrap_socket(sock, server_side=True) as tls:
            while line := tls.recv(4096):
                tls.sendall(b"221 Bye\r\n" if b"QUIT" in line.upper() else upgrade.answer(line))
    except (OSError, ssl.SSLError) as error:  # the client closing first is fine
        if not isinstance(error, ssl.SSLEOFError | ConnectionResetError):
            errors.append(error)


def capture_upgrade(folder: Path, name: str) -> UpgradeCapture:
    """One connection of ``name`` (a key of UPGRADES): clear text, then a TLS 1.2 handshake
    with client certificate, captured with tcpdump on the loopback."""
    folder.mkdir(parents=True, exist_ok=True)
    upgrade = UPGRADES[name]
    keys = _pki()
    server_context, client_context = _contexts(folder, keys)
    port = free_port()
    path = folder / f"{name}.pcap"
    errors: list[BaseException] = []
    with tcpdump(path, [port]), socket.create_server((HOST, port)) as listener:
        listener.settimeout(_TIMEOUT)
        thread = threading.Thread(target=_serve, args=(listener, upgrade, server_context, errors))
        thread.start()
        try:
            upgrade.client(port, client_context)
        finally:
            thread.join(_TIMEOUT)
    if errors:
        raise RuntimeError(f"{name} server: {errors[0]!r}")
    return UpgradeCapture(
        path=path,
        port=port,
        preferences=("-d", f"tcp.port=={port},{upgrade.decode_as}"),
        client_chain=(_sha256(keys.phone),),
        server_chain=(_sha256(keys.server),),
    )


def _sha256(issued: pki.Issued) -> str:
    return hashlib.sha256(issued.der).hexdigest()
