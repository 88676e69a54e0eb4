"""capana.ipfrag: IP fragments put back together, in any order, within bounds; and against
tshark on real RADIUS EAP-TLS and TLS handshakes fragmented by scapy over IPv4 and IPv6."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from decode_oracle import capana_frames, tshark_frames, tshark_innermost_certificates
from facts import sha256s
from hypothesis import given, settings
from hypothesis import strategies as st
from samplegen import wire
from samplegen.encaps import ENCAPSULATIONS, Frame, fragmented, write_frames
from test_decode import capana_certificates
from test_scan import CUCM_V6, PHONE, PHONE_V6, WHEN, tls_packets
from tshark_oracle import TSHARK
from tshark_oracle import tshark_certificates as tshark_radius_certificates

from capana.capture import CaptureReader
from capana.ipfrag import MAX_FRAGMENTS, PIECE_COST, Fragment, IpReassembler
from capana.scan import scan_capture

PROJECT = Path(__file__).resolve().parent.parent
RADIUS_CAPTURE = PROJECT / "pcaps" / "radius-eap-tls.pcap"
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

SOURCE, DESTINATION = bytes([10, 1, 1, 20]), bytes([10, 1, 1, 5])
DATA = bytes(range(256)) * 4


def piece(start: int, stop: int, more: bool = True, key: bytes = b"k", data: bytes = DATA):
    return Fragment(key, SOURCE, DESTINATION, 17, start, more, data[start:stop], 0, 3)


def test_fragments_in_any_order_give_the_datagram_once():
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        reassembler = IpReassembler()
        pieces = [piece(0, 400), piece(400, 800), piece(800, 1024, more=False)]
        results = [reassembler.add(pieces[i], 1.0) for i in order]
        assert results[:2] == [None, None]
        whole = results[2]
        assert whole is not None
        assert (whole.payload, whole.missing, whole.protocol, whole.depth) == (DATA, 0, 17, 3)
        assert (whole.source, whole.destination) == (SOURCE, DESTINATION)
        assert reassembler.held_bytes == 0
        assert reassembler.completed == 1


def test_overlaps_keep_the_first_bytes_and_count_a_conflict():
    reassembler = IpReassembler()
    assert reassembler.add(piece(0, 400), 1.0) is None
    assert reassembler.add(piece(392, 800), 1.0) is None  # same bytes again: no conflict
    assert reassembler.conflicts == 0
    rewritten = bytes(b ^ 0xFF for b in DATA)
    assert reassembler.add(piece(300, 700, data=rewritten), 1.0) is None
    assert reassembler.conflicts == 1
    whole = reassembler.add(piece(800, 1024, more=False), 1.0)
    assert whole is not None and whole.payload == DATA  # the first bytes stand


def test_two_different_ends_keep_the_first():
    reassembler = IpReassembler()
    reassembler.add(piece(512, 1024, more=False), 1.0)
    reassembler.add(piece(512, 900, more=False), 1.0)
    assert reassembler.conflicts == 1
    whole = reassembler.add(piece(0, 512), 1.0)
    assert whole is not None and whole.payload == DATA


def test_a_fragment_the_snaplen_cut_gives_the_captured_prefix_and_the_missing_count():
    reassembler = IpReassembler()
    cut = Fragment(b"k", SOURCE, DESTINATION, 6, 400, True, DATA[400:500], 300, 3)
    reassembler.add(piece(0, 400), 1.0)
    reassembler.add(cut, 1.0)
    whole = reassembler.add(piece(700, 1024, more=False), 1.0)
    assert whole is not None
    assert (whole.payload, whole.missing) == (DATA[:500], 524)


def test_incomplete_datagrams_time_out_by_capture_time_and_end_with_finish():
    reassembler = IpReassembler(timeout=30.0)
    reassembler.add(piece(0, 400, key=b"a"), 100.0)
    reassembler.add(piece(0, 400, key=b"b"), 120.0)
    reassembler.add(piece(0, 400, key=b"c"), 131.0)  # a is 31 s old: dropped
    assert reassembler.dropped == {"timeout": 1}
    assert reassembler.add(piece(400, 1024, more=False, key=b"a"), 131.0) is None
    reassembler.finish()
    assert reassembler.dropped == {"timeout": 1, "unfinished": 3}
    assert reassembler.held_bytes == 0


def test_bounds_on_datagrams_bytes_fragments_and_length():
    by_count = IpReassembler(max_datagrams=2)
    for key in (b"a", b"b", b"c"):
        by_count.add(piece(0, 8, key=key), 1.0)
    assert by_count.dropped == {"datagrams": 1}

    by_bytes = IpReassembler(max_bytes=1000)
    by_bytes.add(piece(0, 600, key=b"a"), 1.0)
    by_bytes.add(piece(0, 600, key=b"b"), 1.0)
    assert by_bytes.dropped == {"bytes": 1}
    assert by_bytes.held_bytes == 600 + PIECE_COST

    by_fragments = IpReassembler()
    tiny = bytes(16 * (MAX_FRAGMENTS + 1))
    for n in range(0, 2 * (MAX_FRAGMENTS + 1), 2):  # every other 8 bytes: pieces never merge
        by_fragments.add(piece(8 * n, 8 * n + 8, data=tiny), 1.0)
    assert by_fragments.dropped == {"fragments": 1}

    too_long = IpReassembler()
    last = Fragment(b"k", SOURCE, DESTINATION, 17, 65528, False, bytes(16), 0, 3)
    assert too_long.add(last, 1.0) is None
    assert too_long.dropped == {"too_long": 1}


# --- real traffic, fragmented by scapy, against tshark ------------------------------------------


def _radius_frames() -> list[Frame]:
    with CaptureReader(RADIUS_CAPTURE) as reader:
        records = list(reader)
    nas = records[0][2][26:30]
    return [(int(t * 1e9), frame, frame[26:30] == nas) for t, _, frame, _ in records]


def _tls_frames() -> list[Frame]:
    link = wire.Link()
    packets = tls_packets() + tls_packets(
        client=PHONE_V6, server=CUCM_V6, start=WHEN + timedelta(seconds=1)
    )
    clients = (PHONE[0], PHONE_V6[0])
    return [(p.time_ns, link.frame(p), p.src in clients) for p in packets]


@needs_tshark
def test_fragmented_tls_agrees_with_tshark(tmp_path: Path):
    frames = fragmented(_tls_frames(), 256)
    capture = write_frames(tmp_path / "fragments.pcap", ENCAPSULATIONS["ethernet"], frames)
    found, undecoded = capana_frames(capture)
    assert undecoded == {}
    expected = tshark_frames(capture)
    assert found == expected
    assert len(frames) > len(expected) + 20  # many frames are fragments
    certificates = tshark_innermost_certificates(capture)
    assert certificates
    assert capana_certificates(capture) == certificates


@needs_tshark
@pytest.mark.parametrize("name", ["ethernet", "vxlan"])
def test_fragmented_radius_agrees_with_tshark(tmp_path: Path, name: str):
    """RADIUS packets of a real EAP-TLS exchange in fragments, also inside a tunnel, through
    capana's whole pipeline: no warning (no datagram left unreassembled)."""
    frames = fragmented(_radius_frames(), 200)
    capture = write_frames(tmp_path / "radius.pcap", ENCAPSULATIONS[name], frames)
    found, undecoded = capana_frames(capture)
    assert undecoded == {}
    assert found == tshark_frames(capture)
    summary, handshakes = scan_capture(capture)  # the whole pipeline: decode, reassemble, RADIUS
    assert (summary.errors, summary.warnings) == ((), ())
    assert sum(1 for h in handshakes if h.transport == "radius") == 2
    seen = set()
    for handshake in handshakes:
        seen |= {(handshake.client, sha) for sha in sha256s(handshake.client_chain)}
        seen |= {(handshake.server, sha) for sha in sha256s(handshake.server_chain)}
    assert any(sender.count(":") == 5 for sender, _ in seen)  # the phone, by its MAC
    if name == "ethernet":  # tshark_oracle names a RADIUS server by its outer address
        assert seen == tshark_radius_certificates(capture)
    else:
        assert seen == _radius_certificates(tmp_path)


def _radius_certificates(folder: Path) -> set[tuple[str, str]]:
    """tshark's certificates of the same exchange, unfragmented and untunnelled."""
    capture = write_frames(folder / "plain.pcap", ENCAPSULATIONS["ethernet"], _radius_frames())
    return tshark_radius_certificates(capture)


_FRAGMENTS = st.builds(
    lambda key, offset, more, size, missing: Fragment(
        bytes([key]), SOURCE, DESTINATION, 17, offset * 8, more, bytes(size), missing, 3
    ),
    st.integers(0, 3),
    st.integers(0, 8200),
    st.booleans(),
    st.integers(0, 200),
    st.integers(0, 100),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=40))
def test_any_fragments_keep_the_bounds_and_the_books(fragments: list[Fragment]):
    reassembler = IpReassembler(max_datagrams=2, max_bytes=600)
    for number, piece_ in enumerate(fragments):
        whole = reassembler.add(piece_, float(number))
        if whole is not None:
            assert len(whole.payload) + whole.missing <= 65535
        assert 0 <= reassembler.held_bytes <= 600
    reassembler.finish()
    assert reassembler.held_bytes == 0
