"""Test helpers: TLS sessions read back from a capture by capana, and by tshark as the oracle.

``read_sessions`` puts each TCP connection of a capture together with capana's own reader and
TCP reassembly (``capture``, ``packets``, ``tcp``), feeds both directions to ``TlsDirection`` in
capture order (a direction's decryptor is installed while the other one is read) with
``Tls12Keys`` attached, and keeps every event. ``tshark_tls_streams`` is tshark's "Follow TLS
stream" of the same capture: the decrypted application bytes of each direction.
"""

from __future__ import annotations

import re
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from decoded import tcp_segment
from tshark_oracle import TSHARK

from capana import tls, tls12
from capana.capture import CaptureReader
from capana.keylog import KeyLog
from capana.model import HandshakeReport, Report
from capana.packets import FLAG_ACK, FLAG_SYN
from capana.tcp import TcpStream
from capana.tls12_keys import Tls12Keys

CLIENT, SERVER = "client", "server"


@dataclass
class Session:
    """One TCP connection's TLS, as capana read it."""

    client_key: bytes
    client_port: int
    server_port: int
    keys: Tls12Keys
    directions: dict[str, tls.TlsDirection]
    streams: dict[str, TcpStream]
    events: dict[str, list[tls.TlsEvent]] = field(default_factory=lambda: {CLIENT: [], SERVER: []})
    # Application data of both directions in capture order: what a session decoder is fed.
    conversation: list[tuple[str, bytes]] = field(default_factory=list)

    def application_data(self, sender: str) -> bytes:
        return b"".join(
            e.content for e in self.events[sender] if isinstance(e, tls.ApplicationData)
        )

    def of_type(self, kind: type, sender: str | None = None) -> list:
        senders = (sender,) if sender else (CLIENT, SERVER)
        return [e for s in senders for e in self.events[s] if isinstance(e, kind)]


def read_sessions(
    path: Path, keylog: Path | None = None, limit: int = tls12.MAX_APPLICATION_DATA
) -> list[Session]:
    """Every TCP connection that opens with a SYN, its TLS read with ``keylog`` if given."""
    lookup = KeyLog.read(keylog).secrets if keylog is not None else None
    sessions: dict[frozenset[bytes], Session] = {}
    order: list[Session] = []
    with CaptureReader(path) as capture:
        for _time, linktype, frame, wire_length in capture:
            segment = tcp_segment(linktype, frame, wire_length)
            if segment is None:
                continue
            connection = frozenset((segment.key, segment.reverse_key))
            if segment.flags & FLAG_SYN and not segment.flags & FLAG_ACK:
                directions = {CLIENT: tls.TlsDirection(), SERVER: tls.TlsDirection()}
                keys = Tls12Keys(lookup, limit)
                keys.attach(directions[CLIENT], directions[SERVER])
                session = Session(
                    segment.key,
                    int.from_bytes(segment.key[-4:-2], "big"),
                    int.from_bytes(segment.key[-2:], "big"),
                    keys,
                    directions,
                    {CLIENT: TcpStream(segment.seq + 1), SERVER: TcpStream()},
                )
                sessions[connection] = session
                order.append(session)
                continue
            session = sessions.get(connection)
            if session is None:
                continue
            sender = CLIENT if segment.key == session.client_key else SERVER
            if segment.flags & FLAG_SYN:
                session.streams[SERVER].next_seq = segment.seq + 1
                continue
            if segment.payload:
                ready = session.streams[sender].add(segment.seq, segment.payload)
                if ready:
                    events = session.directions[sender].feed(ready)
                    session.events[sender] += events
                    session.conversation += [
                        (sender, e.content) for e in events if isinstance(e, tls.ApplicationData)
                    ]
    return order


def tshark_tls_streams(
    path: Path, keylog: Path | None, tls_ports: tuple[int, ...] = ()
) -> dict[int, tuple[bytes, bytes]]:
    """``{client port: (client's bytes, server's bytes)}`` per TCP connection, as tshark
    decrypts them ("Follow TLS stream"); only connections whose SYN is in the capture.
    ``tls_ports``: ports Wireshark does not take for TLS by itself (CAPF 3804, TVS 2445)."""
    base = [TSHARK, "-r", str(path), "-o", "tcp.reassemble_out_of_order:TRUE"]
    if keylog is not None:
        base += ["-o", f"tls.keylog_file:{keylog}"]
    for port in tls_ports:
        base += ["-d", f"tcp.port=={port},tls"]
    first_syns = ["-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0"]
    syns = subprocess.run(
        [*base, *first_syns, "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    result = {}
    for line in syns.splitlines():
        stream, client_port = (int(field) for field in line.split())
        output = subprocess.run(
            [*base, "-q", "-z", f"follow,tls,raw,{stream}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        node0_port, first, second = _follow(output)
        result[client_port] = (first, second) if node0_port == client_port else (second, first)
    return result


def _follow(output: str) -> tuple[int, bytes, bytes]:
    """Parse ``-z follow,tls,raw``: node 1's lines are indented with a tab."""
    node0 = re.search(r"^Node 0: .*:(\d+)$", output, re.MULTILINE)
    first, second = bytearray(), bytearray()
    body = output.split("=" * 67)[1] if output.count("=" * 67) >= 2 else ""
    for line in body.splitlines():
        if not line.strip() or ":" in line:
            continue
        target = second if line.startswith("\t") else first
        target += bytes.fromhex(line.strip())
    return (int(node0.group(1)) if node0 else 0), bytes(first), bytes(second)


def tcp_conversations(
    path: Path, server_port: int
) -> dict[tuple[int, int], list[tuple[str, bytes]]]:
    """Clear TCP: ``{(phone port, server port): [(sender, bytes), ...]}`` in capture order,
    sender "phone" or "server" by ``server_port``; connections may start mid-stream."""
    streams: dict[frozenset[bytes], dict[str, TcpStream]] = {}
    conversations: dict[tuple[int, int], list[tuple[str, bytes]]] = {}
    with CaptureReader(path) as capture:
        for _time, linktype, frame, wire_length in capture:
            segment = tcp_segment(linktype, frame, wire_length)
            if segment is None:
                continue
            source = int.from_bytes(segment.key[-4:-2], "big")
            destination = int.from_bytes(segment.key[-2:], "big")
            if server_port not in (source, destination):
                continue
            sender = "server" if source == server_port else "phone"
            pair = streams.setdefault(
                frozenset((segment.key, segment.reverse_key)),
                {"phone": TcpStream(), "server": TcpStream()},
            )
            if segment.flags & FLAG_SYN:
                pair[sender].next_seq = segment.seq + 1
                continue
            if segment.payload:
                ready = pair[sender].add(segment.seq, segment.payload)
                phone_port = destination if sender == "server" else source
                if ready:
                    conversations.setdefault((phone_port, server_port), []).append((sender, ready))
    return conversations


def service_port(port: int) -> int:
    """``port`` on 127.0.0.1 if nothing listens there now, else skip: capana decodes CAPF,
    TVS, SIP and SCCP on their own ports only, so end-to-end runs use those."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            pytest.skip(f"127.0.0.1:{port} is in use: capana decodes that service there only")
    return port


def by_client_port(report: Report, server_port: int) -> dict[int, HandshakeReport]:
    """The report's handshakes to ``server_port``, by the client's port."""
    return {
        int(record.handshake.client.rsplit(":", 1)[1]): record
        for record in report.handshakes
        if record.handshake.server_port == server_port
    }
