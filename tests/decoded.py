"""Test-side glue: one frame through capana's decoder, kept only when it is a TCP segment or a
UDP datagram (tests that follow one transport ignore the rest)."""

from __future__ import annotations

from capana.decode import Datagram, decode_frame
from capana.packets import TcpSegment


def tcp_segment(linktype: int, frame: bytes, wire_length: int) -> TcpSegment | None:
    decoded = decode_frame(linktype, frame, wire_length)
    return decoded if isinstance(decoded, TcpSegment) else None


def udp_datagram(linktype: int, frame: bytes, wire_length: int) -> Datagram | None:
    decoded = decode_frame(linktype, frame, wire_length)
    return decoded if isinstance(decoded, Datagram) else None
