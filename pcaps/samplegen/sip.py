"""A phone registering with SIP over TLS (or TCP) on lo: a small registrar and a phone, real
sockets through Python's ``ssl`` (OpenSSL), captured by tcpdump.

The registrar challenges the first REGISTER with 401 and a digest nonce, checks the phone's
digest answer (RFC 2617, MD5) and answers 200 OK, or 403 Forbidden when the line is not one it
knows. The phone speaks like a Cisco 88xx: ``+sip.instance`` carries its MAC, ``User-Agent``
its model. ``ciphers`` picks the suite: ``NULL-SHA`` is an authenticated-mode phone (integrity
only: the signalling is readable in any capture), ``ECDHE-RSA-AES128-GCM-SHA256`` an encrypted
one (readable with the key log the phone writes).
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from samplegen.loopback import free_port, tcpdump
from samplegen.pki import Issued

REALM = "cucm-pub.example.com"
_NONCE = "5f2a1c0e9b7d4e3a"


@dataclass(frozen=True)
class Line:
    number: str  # the directory number, e.g. "1001"
    password: str
    mac: str  # 12 hex digits
    model: str = "CP8861"


@dataclass(frozen=True)
class SipRun:
    capture: Path
    keylog: Path | None
    port: int
    answers: tuple[tuple[str, ...], ...]  # per line, the status lines the phone received


def sip_register(
    folder: Path,
    server: Issued | None,
    lines: list[Line],
    known: dict[str, str],
    *,
    ciphers: str = "NULL-SHA",
    name: str = "sip",
    port: int | None = None,
    phone: Issued | None = None,
    phone_ca: Issued | None = None,
) -> SipRun:
    """Each line registers on its own connection; ``server=None`` is clear SIP over TCP.

    ``known`` maps the registrar's directory numbers to their passwords; ``port`` (e.g. 5061)
    is the registrar's, else a free one. With ``phone`` (its certificate, an LSC say) and
    ``phone_ca`` (what the registrar trusts), the registrar requires the phone's certificate.
    """
    folder.mkdir(parents=True, exist_ok=True)
    keylog = folder / f"{name}.keys" if server is not None else None
    if keylog is not None:
        keylog.unlink(missing_ok=True)
    server_context, client_context = _contexts(folder, server, ciphers, keylog)
    if server_context is not None and client_context is not None and phone and phone_ca:
        (folder / "phone.pem").write_bytes(phone.pem + phone.key_pem)
        client_context.load_cert_chain(folder / "phone.pem")
        server_context.verify_mode = ssl.CERT_REQUIRED
        server_context.load_verify_locations(cadata=phone_ca.pem.decode())
    port = port or free_port()
    listener = socket.create_server(("127.0.0.1", port))
    capture = folder / f"{name}.pcap"
    answers = []
    with tcpdump(capture, [port]):
        registrar = threading.Thread(
            target=_serve, args=(listener, server_context, known, len(lines)), daemon=True
        )
        registrar.start()
        for line in lines:
            answers.append(_register(port, client_context, line))
        registrar.join(timeout=10)
    listener.close()
    return SipRun(capture, keylog, port, tuple(answers))


def _contexts(
    folder: Path, server: Issued | None, ciphers: str, keylog: Path | None
) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    if server is None:
        return None, None
    chain = folder / "registrar.pem"
    chain.write_bytes(server.pem + server.key_pem)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(chain)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    client_context.keylog_filename = str(keylog)
    for context in (server_context, client_context):
        context.maximum_version = ssl.TLSVersion.TLSv1_2  # authenticated mode stays below 1.3
        context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    return server_context, client_context


def _serve(
    listener: socket.socket, context: ssl.SSLContext | None, known: dict[str, str], count: int
) -> None:
    for _ in range(count):
        connection, _address = listener.accept()
        if context is not None:
            connection = context.wrap_socket(connection, server_side=True)
        with connection:
            reader = connection.makefile("rb")
            while request := _read_message(reader):
                connection.sendall(_answer(request, known))


def _register(port: int, context: ssl.SSLContext | None, line: Line) -> tuple[str, ...]:
    """REGISTER, answer a 401 challenge once; the status lines received."""
    raw = socket.create_connection(("127.0.0.1", port))
    connection = context.wrap_socket(raw) if context is not None else raw
    statuses = []
    with connection:
        reader = connection.makefile("rb")
        authorization = None
        for cseq in (101, 102):
            connection.sendall(_request(line, port, cseq, authorization))
            answer = _read_message(reader)
            status = answer.split(b"\r\n", 1)[0].decode()
            statuses.append(status)
            if not status.startswith("SIP/2.0 401"):
                break
            authorization = _digest(line)
    return tuple(statuses)


def _request(line: Line, port: int, cseq: int, authorization: str | None) -> bytes:
    uri = f"sip:{REALM}"
    headers = [
        f"REGISTER {uri} SIP/2.0",
        f"Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK{line.mac.lower()}{cseq}",
        f"From: <sip:{line.number}@{REALM}>;tag={line.mac.lower()}",
        f"To: <sip:{line.number}@{REALM}>",
        f"Call-ID: {line.mac.lower()}-reg@127.0.0.1",
        "Max-Forwards: 70",
        f"CSeq: {cseq} REGISTER",
        f"User-Agent: Cisco-{line.model}/14.2.1",
        f"Contact: <sip:{line.number}@127.0.0.1:5061;transport=tls>;+sip.instance="
        f'"<urn:uuid:00000000-0000-0000-0000-{line.mac.lower()}>";+u.sip!model.ccm.cisco.com="36213"',
        "Expires: 3600",
    ]
    if authorization:
        headers.append(f"Authorization: {authorization}")
    return ("\r\n".join([*headers, "Content-Length: 0", "", ""])).encode()


def _digest(line: Line) -> str:
    uri = f"sip:{REALM}"
    response = _digest_response(line.number, line.password, uri)
    return (
        f'Digest username="{line.number}",realm="{REALM}",uri="{uri}",'
        f'response="{response}",nonce="{_NONCE}",algorithm=MD5'
    )


def _digest_response(user: str, password: str, uri: str) -> str:
    ha1 = hashlib.md5(f"{user}:{REALM}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
    return hashlib.md5(f"{ha1}:{_NONCE}:{ha2}".encode()).hexdigest()


def _answer(request: bytes, known: dict[str, str]) -> bytes:
    head = request.decode()
    fields = dict(
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in head.split("\r\n")[1:])
    )
    user = fields["to"].split("sip:", 1)[1].split("@", 1)[0]
    if user not in known:
        status, extra = "403 Forbidden", []
    elif "authorization" not in fields:
        status = "401 Unauthorized"
        extra = [f'WWW-Authenticate: Digest realm="{REALM}",nonce="{_NONCE}",algorithm=MD5']
    elif (
        f'response="{_digest_response(user, known[user], f"sip:{REALM}")}"'
        in fields["authorization"]
    ):
        status, extra = "200 OK", [f"Contact: {fields['contact']};expires=3600"]
    else:
        status, extra = "403 Forbidden", []
    echoed = [
        f"{name}: {fields[name.lower()]}" for name in ("Via", "From", "To", "Call-ID", "CSeq")
    ]
    lines = [f"SIP/2.0 {status}", *echoed, *extra, "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def _read_message(reader) -> bytes:
    """One SIP message without a body (REGISTER and its answers carry none); b"" at the end."""
    lines = []
    while True:
        line = reader.readline()
        if not line:
            return b""
        if line == b"\r\n":
            return b"".join(lines)
        lines.append(line)
