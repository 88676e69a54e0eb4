"""capana.tcp: one direction's segments in, the sender's bytes out, exactly once and in order.

The stream is a real CUCM server flight (ServerHello .. ServerHelloDone, certificates included),
cut into segments the way ``samplegen.wire`` lays it on the wire; the tests then damage the
segment order the way captures do.
"""

from __future__ import annotations

import random
import time

import pytest
from test_tls import real_handshake

from capana.budget import Budget
from capana.tcp import MAX_BUFFERED, MAX_HELD_SEGMENTS, TcpStream

ISN = 0x6C00_0000


def server_bytes() -> bytes:
    return real_handshake().sent_by("server")


def segments(data: bytes, isn: int = ISN, mss: int = 536) -> list[tuple[int, bytes]]:
    """(sequence number, payload) pieces of ``data``, sequence numbers modulo 2^32."""
    return [((isn + at) % 2**32, data[at : at + mss]) for at in range(0, len(data), mss)]


def reassemble(stream: TcpStream, pieces: list[tuple[int, bytes]]) -> bytes:
    return b"".join(stream.add(seq, payload) for seq, payload in pieces)


def test_segments_in_order_give_the_stream():
    data = server_bytes()
    stream = TcpStream(ISN)
    assert reassemble(stream, segments(data)) == data
    assert (stream.gaps, stream.conflicts, stream.pending) == (0, 0, {})


@pytest.mark.parametrize("seed", range(5))
def test_out_of_order_segments_give_the_stream(seed):
    data = server_bytes()
    pieces = segments(data)
    random.Random(seed).shuffle(pieces)
    stream = TcpStream(ISN)
    assert reassemble(stream, pieces) == data
    assert stream.pending_bytes == 0


def test_nothing_comes_out_while_the_first_segment_is_missing():
    pieces = segments(server_bytes())
    stream = TcpStream(ISN)
    assert reassemble(stream, pieces[1:]) == b""
    assert stream.add(*pieces[0]) == server_bytes()


@pytest.mark.parametrize(
    "damage",
    ["retransmission", "duplicate", "retransmission_after_later_data", "every_segment_twice"],
)
def test_repeated_segments_come_out_once(damage):
    data = server_bytes()
    pieces = segments(data)
    if damage == "retransmission":
        pieces.insert(3, pieces[1])
    elif damage == "duplicate":
        pieces.insert(2, pieces[1])
    elif damage == "retransmission_after_later_data":
        pieces = pieces[:1] + pieces[2:4] + pieces[1:2] + pieces[1:]
    else:
        pieces = [piece for piece in pieces for _ in range(2)]
    stream = TcpStream(ISN)
    assert reassemble(stream, pieces) == data
    assert stream.conflicts == 0


@pytest.mark.parametrize("held", [False, True], ids=["delivered", "held_behind_a_hole"])
def test_overlap_with_the_same_bytes(held):
    """A resent segment that straddles two originals (a repacketised retransmission)."""
    data = server_bytes()
    pieces = segments(data)
    straddle = ((ISN + 536 - 100) % 2**32, data[536 - 100 : 536 + 200])
    order = [pieces[1], straddle, pieces[0], *pieces[2:]] if held else [*pieces, straddle]
    stream = TcpStream(ISN)
    assert reassemble(stream, order) == data
    assert stream.conflicts == 0


@pytest.mark.parametrize("held", [False, True], ids=["delivered", "held_behind_a_hole"])
def test_overlap_with_different_bytes_is_a_conflict(held):
    data = server_bytes()
    pieces = segments(data)
    forged = bytes(byte ^ 0x5A for byte in data[536 - 100 : 536]) + data[536 : 536 + 200]
    straddle = ((ISN + 536 - 100) % 2**32, forged)
    order = [pieces[1], straddle, pieces[0], *pieces[2:]] if held else [*pieces, straddle]
    stream = TcpStream(ISN)
    out = reassemble(stream, order)
    assert len(out) == len(data)
    assert stream.conflicts == 1


def test_same_sequence_number_different_bytes_is_a_conflict():
    data = server_bytes()
    pieces = segments(data)
    forged = (pieces[1][0], bytes(len(pieces[1][1])))
    stream = TcpStream(ISN)
    reassemble(stream, [pieces[1], forged])
    assert stream.conflicts == 1


@pytest.mark.parametrize("before_wrap", [1, 700, 535])
def test_sequence_numbers_wrapping_around_2_to_the_32(before_wrap):
    data = server_bytes()
    isn = 2**32 - before_wrap
    pieces = segments(data, isn)
    pieces.reverse()
    stream = TcpStream(isn)
    assert reassemble(stream, pieces) == data
    assert stream.next_seq == (isn + len(data)) % 2**32


def test_joined_mid_stream_starts_at_the_first_byte_seen():
    data = server_bytes()
    pieces = segments(data)
    stream = TcpStream()  # no SYN seen
    assert reassemble(stream, pieces[2:]) == data[2 * 536 :]


def test_a_lost_segment_is_a_gap_and_never_filled_in():
    data = server_bytes()
    pieces = segments(data)
    lost = pieces.pop(2)
    stream = TcpStream(ISN)
    before = reassemble(stream, pieces)
    assert before == data[: 2 * 536]
    after = stream.skip_gap()
    assert after == data[3 * 536 :]
    assert stream.gaps == 1
    assert lost[1] not in before + after
    assert len(before + after) == len(data) - len(lost[1])


def test_skip_gap_without_a_hole_does_nothing():
    stream = TcpStream(ISN)
    stream.add(ISN, b"abc")
    assert stream.skip_gap() == b""
    assert stream.gaps == 0


def test_bytes_waiting_behind_a_hole_are_bounded():
    """Past MAX_BUFFERED held bytes the hole is declared a gap and the rest flows again."""
    chunk = bytes(range(256)) * 40
    stream = TcpStream(ISN)
    seq = ISN + 1000  # the first 1000 bytes never arrive
    out = b""
    while stream.gaps == 0:
        out += stream.add(seq % 2**32, chunk)
        assert stream.pending_bytes <= MAX_BUFFERED + len(chunk)
        seq += len(chunk)
    assert stream.pending_bytes == 0
    assert out == chunk * (len(out) // len(chunk))
    assert len(out) > MAX_BUFFERED


@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_tiny_segments_behind_a_hole_cost_n_log_n(order):
    """1-byte segments held behind a hole (a DoS against a rescanning buffer) drain at once."""
    count = MAX_HELD_SEGMENTS
    positions = range(1, count + 1)
    stream = TcpStream(ISN)
    started = time.perf_counter()
    for at in positions if order == "ascending" else reversed(positions):
        assert stream.add(ISN + at, bytes([at & 0xFF])) == b""
    out = stream.add(ISN, b"\0")
    assert time.perf_counter() - started < 0.5
    assert out == bytes(at & 0xFF for at in range(count + 1))
    assert stream.gaps == 0 and not stream.pending


def test_held_segments_are_bounded_in_number_not_only_in_bytes():
    stream = TcpStream(ISN)
    out = b""
    for at in range(MAX_HELD_SEGMENTS + 1):
        out += stream.add(ISN + 2 + 2 * at, b"x")  # every other byte missing
    assert stream.gaps >= 1
    assert len(stream.pending) <= MAX_HELD_SEGMENTS
    assert out  # the rest flows again after the declared gap


def test_joined_mid_stream_earlier_segments_arriving_late_are_a_gap():
    """No SYN and the first two segments swapped: the first one's bytes are lost, and said so."""
    data = server_bytes()
    (seq0, first), (seq1, second), *rest = segments(data)
    stream = TcpStream()
    out = stream.add(seq1, second) + stream.add(seq0, first) + reassemble(stream, rest)
    assert out == data[len(first) :]
    assert stream.gaps == 1


def test_bytes_held_across_streams_share_one_capture_budget():
    """Many streams each below their own bound: the capture's budget declares gaps for them."""
    budget = Budget(limit=64 << 10)
    streams = [TcpStream(ISN, budget) for _ in range(64)]
    for stream in streams:
        stream.add(ISN + 1, bytes(4096))  # held behind a 1-byte hole
        assert budget.held <= budget.limit + 4096
    gaps = sum(stream.gaps for stream in streams)
    assert gaps == budget.refused["tcp"] > 0
    streams.clear()  # streams dropped while holding give their bytes back
    assert budget.held == 0
