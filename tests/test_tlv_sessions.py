"""What CAPF and TVS decoding share (``capana.tlv_sessions``), held once for both protocols on
hand-made and random bytes: a wrong protocol, an overrun element, unknown codes, the bounds."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capana import tlv_sessions
from capana.capf import CapfDecoder
from capana.model import ProblemCode
from capana.tlv_sessions import TlvDecoder
from capana.tvs import TvsDecoder


def capf_message(command: int, body: bytes, protocol: int = 85, session: int = 7) -> bytes:
    return struct.pack(">BBIH", protocol, command, session, len(body)) + body


def tvs_message(command: int, body: bytes, protocol: int = 0x57, session: int = 7) -> bytes:
    return struct.pack(">BBBBIH", protocol, 1, command, 0, session, len(body)) + body


# (decoder, message builder, the server's name, the other protocol's id)
PROTOCOLS = [
    pytest.param(CapfDecoder, capf_message, "capf", 0x57, id="capf"),
    pytest.param(TvsDecoder, tvs_message, "tvs", 85, id="tvs"),
]


@pytest.mark.parametrize(("decoder_type", "message", "server", "other"), PROTOCOLS)
def test_another_protocol_is_refused_clearly_and_nothing_more_is_read(
    decoder_type: type[TlvDecoder], message, server, other
):
    decoder = decoder_type()
    name = decoder_type.protocol.name
    assert decoder.feed(server, message(1, b"", protocol=other)) == []
    assert decoder.feed(server, message(1, b"")) == []  # that direction is read no more
    assert not decoder.unreadable
    decoder.feed("phone", b"\x16\x03\x03\x00\x10" + bytes(20))  # TLS where it should not be
    assert decoder.unreadable and decoder.messages == ()
    expected = decoder_type.protocol.protocol_id
    assert [(p.code, p.text) for p in decoder.problems] == [
        (
            ProblemCode.SESSION_MESSAGES,
            f"{server}: not {name} (protocol id {other}, expected {expected}); "
            "the rest was not read",
        ),
        (
            ProblemCode.SESSION_MESSAGES,
            f"phone: not {name} (protocol id 22, expected {expected}); the rest was not read",
        ),
    ]


@pytest.mark.parametrize(("decoder_type", "message", "server", "other"), PROTOCOLS)
def test_an_overrun_element_and_unknown_codes_keep_their_numbers(
    decoder_type, message, server, other
):
    decoder = decoder_type()
    overrun = bytes([42]) + (200).to_bytes(2, "big") + b"SEP001122334455\x00"
    (first,) = decoder.feed("phone", message(99, overrun))
    assert (first.sender, first.command, first.elements) == ("phone", "command_99", ("element_42",))
    assert [p.text for p in decoder.problems] == ["phone: a message's elements overrun its length"]


@pytest.mark.parametrize(("decoder_type", "message", "server", "other"), PROTOCOLS)
def test_messages_past_the_bound_are_counted_not_kept(
    decoder_type, message, server, other, monkeypatch
):
    monkeypatch.setattr(tlv_sessions, "MAX_MESSAGES", 3)
    decoder = decoder_type()
    decoder.feed("phone", message(99, b"") * 5)
    assert len(decoder.messages) == 3
    assert [(p.code, p.text) for p in decoder.problems] == [
        (ProblemCode.LIMIT, "2 messages past the first 3 not listed")
    ]


@pytest.mark.parametrize(("decoder_type", "message", "server", "other"), PROTOCOLS)
@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300), command=st.integers(min_value=0, max_value=40))
def test_random_bodies_never_crash(decoder_type, message, server, other, body, command):
    decoder = decoder_type()
    decoder.feed("phone", message(command % 24, body))
    decoder.feed(server, message(command, body[::-1]))
    decoder.feed(server, body)
    decoder.session()
    assert all(
        p.code in (ProblemCode.SESSION_MESSAGES, ProblemCode.LIMIT) for p in decoder.problems
    )
