"""A TCP segment as the flow table takes it, and the endpoint names of segments and datagrams.

The frame decoder (:mod:`capana.decode`) makes the segments; the flow table keys connections
by ``TcpSegment.key``, and the report names endpoints with these helpers.
"""

from __future__ import annotations

import socket
from enum import Enum
from typing import Final, Literal, NamedTuple

FLAG_FIN = 0x01
FLAG_SYN = 0x02
FLAG_RST = 0x04
FLAG_ACK = 0x10


class _Flow(Enum):
    SKIPPED = 0


# What a flow table holds for a TCP flow it decided not to follow (its first bytes were not TLS).
SKIPPED_FLOW: Final = _Flow.SKIPPED
SkippedFlow = Literal[_Flow.SKIPPED]


class TcpSegment(NamedTuple):
    """One TCP segment. ``key`` is source address + destination address + ports, as bytes."""

    key: bytes
    reverse_key: bytes
    seq: int
    ack: int
    flags: int
    payload: bytes
    missing: int  # payload bytes the capture did not keep (snaplen)


def reverse_key(key: bytes) -> bytes:
    """The key of the other direction of the same connection."""
    size = (len(key) - 4) // 2
    return key[size : 2 * size] + key[:size] + key[-2:] + key[-4:-2]


def endpoint(key: bytes, destination: bool = False) -> tuple[str, int]:
    """``(address text, port)`` of the source (or destination) of a segment key."""
    size = (len(key) - 4) // 2
    raw = key[size : 2 * size] if destination else key[:size]
    port_at = len(key) - (2 if destination else 4)
    port = int.from_bytes(key[port_at : port_at + 2], "big")
    return address_text(raw), port


def endpoint_text(address: str, port: int) -> str:
    """``10.1.1.5:2443`` or ``[fd00::1]:2443``."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def address_text(raw: bytes) -> str:
    """``10.1.1.5`` or ``fd00::1`` from 4 or 16 raw bytes."""
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def conversation_filter(
    transport: str, client: str, client_port: int, server: str, server_port: int
) -> str:
    """Wireshark's conversation filter for one TCP or UDP flow (its "Conversation Filter")."""
    ip = "ipv6" if ":" in client else "ip"
    return (
        f"({ip}.addr eq {client} and {ip}.addr eq {server}) and "
        f"({transport}.port eq {client_port} and {transport}.port eq {server_port})"
    )
