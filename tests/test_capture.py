"""capana.capture: hand-made pcap/pcapng files read back and checked against scapy and tshark."""

from __future__ import annotations

import gzip
import itertools
import math
import random
import shutil
import struct
import subprocess
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import capture_files as cf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.utils import RawPcapNgReader, RawPcapReader

from capana.capture import CaptureError, CaptureReader
from capana.decode import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW

EPOCH = 1_700_000_000  # 2023-11-14, a realistic capture date


def read(path: Path, **kwargs: int) -> tuple[list[tuple[float, int, bytes, int]], CaptureReader]:
    with CaptureReader(path, **kwargs) as reader:
        return list(reader), reader


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_error(reader: CaptureReader, path: Path, *fragments: str) -> str:
    """Exactly one error line, naming the file, a byte offset and a packet number."""
    [error] = reader.info.errors
    assert error.startswith(f"{path}: ")
    assert "byte " in error and "packet " in error
    for fragment in fragments:
        assert fragment in error
    return error


def scapy_pcap(path: Path) -> list[tuple[int, int, bytes, int]]:
    with RawPcapReader(str(path)) as reader:
        return [(m.sec, m.usec, data, m.wirelen) for data, m in reader]


def scapy_pcapng(path: Path) -> list[tuple[int, int, int, bytes, int]]:
    with RawPcapNgReader(str(path)) as reader:
        return [
            (m.linktype, (m.tshigh << 32) | m.tslow, m.tsresol, data, m.wirelen)
            for data, m in reader
        ]


def tshark_frames(path: Path) -> list[tuple[Decimal | None, int]] | None:
    """(frame.time_epoch, frame.len) per packet from tshark, or None if it is not installed."""
    if shutil.which("tshark") is None:
        return None
    fields = ["frame.time_epoch", "frame.len", "frame.encap_type"]
    command = ["tshark", "-r", str(path), "-T", "fields"]
    for name in fields:
        command += ["-e", name]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    rows = (line.split("\t") for line in out.splitlines())
    # tshark lists pcapng custom blocks as frames without an encapsulation; SPBs have no time.
    return [(Decimal(t) if t else None, int(n)) for t, n, encap in rows if encap]


def assert_same_as_tshark(path: Path, packets: list[tuple[float, int, bytes, int]]) -> None:
    frames = tshark_frames(path)
    if frames is None:
        return
    assert len(frames) == len(packets)
    for (ts, _, _, wirelen), (tshark_ts, tshark_len) in zip(packets, frames, strict=True):
        # A float holds an epoch timestamp to ~0.24 us; tshark prints nanoseconds.
        assert tshark_ts is None or abs(Decimal(ts) - tshark_ts) < Decimal("5e-7")
        assert wirelen == tshark_len


# -- classic pcap ------------------------------------------------------------------------------


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("chunk_size", [64, 1 << 20])
def test_pcap_variants_match_scapy(tmp_path, endian, nano, chunk_size):
    units = 10**9 if nano else 10**6
    records = [(EPOCH + i, (i * 123_457) % units, cf.frame(i, 40 + 37 * i), None) for i in range(8)]
    path = write(tmp_path, "v.pcap", cf.pcap(records, endian=endian, nano=nano))

    packets, reader = read(path, chunk_size=chunk_size)

    assert reader.info.format == "pcap"
    assert reader.info.errors == reader.info.warnings == []
    assert [p[2] for p in packets] == [r[2] for r in records]
    assert {p[1] for p in packets} == {LINKTYPE_ETHERNET}
    for (ts, *_), (sec, frac, *_) in zip(packets, records, strict=True):
        assert abs(Fraction(ts) - sec - Fraction(frac, units)) <= math.ulp(ts)  # float: ~0.24 us
    theirs = scapy_pcap(path)
    assert [(sec, frac, data, wire) for sec, frac, data, wire in theirs] == [
        (s, f, d, len(d)) for s, f, d, _ in records
    ]
    assert reader.info.packets == 8
    assert reader.info.start == packets[0][0] and reader.info.end == packets[-1][0]
    if chunk_size > 64:
        assert_same_as_tshark(path, packets)


def test_pcap_linktype_ignores_fcs_bits(tmp_path):
    fcs_flagged = (1 << 28) | (4 << 29) | LINKTYPE_RAW
    path = write(
        tmp_path, "fcs.pcap", cf.pcap([(EPOCH, 0, b"\x45" * 20, None)], linktype=fcs_flagged)
    )
    packets, _ = read(path)
    assert packets[0][1] == LINKTYPE_RAW


def test_header_only_files_have_no_packets_and_no_error(tmp_path):
    for name, data in [("h.pcap", cf.pcap_header()), ("h.pcapng", cf.shb() + cf.idb(1))]:
        packets, reader = read(write(tmp_path, name, data))
        assert packets == []
        assert reader.info.packets == 0 and reader.info.start is None and reader.info.end is None
        assert reader.info.errors == reader.info.warnings == []


def test_snaplen_cut_is_passed_through_and_counted(tmp_path):
    records = [(EPOCH, i, cf.frame(i, 96), 1514) for i in range(3)] + [(EPOCH, 9, b"x" * 60, None)]
    path = write(tmp_path, "cut.pcap", cf.pcap(records, snaplen=96))
    packets, reader = read(path)
    assert [(len(p[2]), p[3]) for p in packets] == [(96, 1514)] * 3 + [(60, 60)]
    assert reader.info.warnings == ["3 packets cut by snaplen 96"]
    assert reader.info.errors == []


def test_record_longer_than_snaplen_is_kept_with_a_warning(tmp_path):
    # libpcap and Wireshark accept these (up to 262144 bytes), so capana does too, and says so.
    records = [(EPOCH, 0, cf.frame(0, 200), None), (EPOCH, 1, cf.frame(1, 50), None)]
    packets, reader = read(write(tmp_path, "long.pcap", cf.pcap(records, snaplen=96)))
    assert [p[2] for p in packets] == [r[2] for r in records]
    assert reader.info.warnings == ["1 packets longer than snaplen 96"]
    assert reader.info.errors == []


def test_progress_reaches_the_file_size(tmp_path):
    records = [(EPOCH, i, cf.frame(i, 500), None) for i in range(500)]
    path = write(tmp_path, "p.pcap", cf.pcap(records))
    with CaptureReader(path, chunk_size=4096) as reader:
        seen = []
        for _ in reader:
            seen.append(reader.bytes_read)
        assert reader.size == path.stat().st_size
        assert seen == sorted(seen) and 0 < seen[0] < reader.size
        assert reader.bytes_read == reader.size


def test_stopping_early_keeps_the_count(tmp_path):
    path = write(tmp_path, "s.pcap", cf.pcap([(EPOCH, i, cf.frame(i), None) for i in range(5)]))
    with CaptureReader(path) as reader:
        assert len(list(itertools.islice(reader, 2))) == 2
    assert reader.info.packets == 2


# -- pcapng ------------------------------------------------------------------------------------


def multi_interface_pcapng(endian: str = "<") -> tuple[bytes, list[tuple[float, int, bytes, int]]]:
    """Three interfaces (Ethernet us, raw IP ns, SLL2 2^-20 s) with packets interleaved."""
    ticks = [
        (0, EPOCH * 10**6 + 654_321, 10**6),
        (1, EPOCH * 10**9 + 123_456_789, 10**9),
        (2, (EPOCH << 20) + 12345, 1 << 20),
    ]
    linktypes = [LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL2]
    data = cf.shb(endian)
    data += cf.idb(LINKTYPE_ETHERNET, 65535, endian=endian)
    data += cf.idb(LINKTYPE_RAW, 0, tsresol=9, endian=endian)
    data += cf.nrb(endian)
    data += cf.idb(LINKTYPE_LINUX_SLL2, 262144, tsresol=0x80 | 20, endian=endian)
    expected = []
    for i in range(9):
        ifid, base, units = ticks[i % 3]
        tick = base + i * 1000
        payload = cf.frame(i, 41 + 13 * i)
        data += cf.epb(ifid, tick, payload, endian=endian, comment=b"x" if i == 4 else b"")
        expected.append((tick / units, linktypes[ifid], payload, len(payload)))
    data += cf.isb(0, endian) + cf.block(cf.CUSTOM, b"custom data", endian)
    return data, expected


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("chunk_size", [64, 1 << 20])
def test_pcapng_multi_interface_matches_scapy(tmp_path, endian, chunk_size):
    data, expected = multi_interface_pcapng(endian)
    path = write(tmp_path, "multi.pcapng", data)

    packets, reader = read(path, chunk_size=chunk_size)

    assert reader.info.format == "pcapng"
    assert reader.info.errors == reader.info.warnings == []
    assert packets == expected
    theirs = scapy_pcapng(path)
    assert [(lt, ticks / res, d, wire) for lt, ticks, res, d, wire in theirs] == [
        (lt, ts, d, wire) for ts, lt, d, wire in packets
    ]
    assert reader.info.start == min(p[0] for p in expected)
    assert reader.info.end == max(p[0] for p in expected)
    if chunk_size > 64:
        assert_same_as_tshark(path, packets)


def test_pcapng_tsoffset_spb_pb_and_sections_with_other_byte_order(tmp_path):
    data = cf.shb("<") + cf.idb(LINKTYPE_ETHERNET, 128, tsoffset=EPOCH)
    data += cf.epb(0, 5_000_000, cf.frame(1))  # 5 s after the offset
    data += cf.spb(cf.frame(2, 128), 1514)  # cut by the snaplen; timestamp of the last one
    data += cf.pb(0, 7_250_000, cf.frame(3))
    data += cf.dsb(cf.TLS_KEYLOG, b"CLIENT_RANDOM 00aa 11bb\n\nCLIENT_RANDOM 22cc 33dd\n")
    # A second section, big-endian, redeclares interface 0 as raw IP.
    data += cf.shb(">") + cf.idb(LINKTYPE_RAW, 0, tsresol=3, endian=">")
    data += cf.epb(0, EPOCH * 1000 + 9, cf.frame(4), endian=">")
    data += cf.spb(cf.frame(5, 30), endian=">")
    path = write(tmp_path, "sections.pcapng", data)

    packets, reader = read(path)

    assert packets == [
        (EPOCH + 5.0, LINKTYPE_ETHERNET, cf.frame(1), 60),
        (EPOCH + 5.0, LINKTYPE_ETHERNET, cf.frame(2, 128), 1514),
        (EPOCH + 7.25, LINKTYPE_ETHERNET, cf.frame(3), 60),
        ((EPOCH * 1000 + 9) / 1000, LINKTYPE_RAW, cf.frame(4), 60),
        ((EPOCH * 1000 + 9) / 1000, LINKTYPE_RAW, cf.frame(5, 30), 30),
    ]
    assert reader.info.keylog == [b"CLIENT_RANDOM 00aa 11bb", b"CLIENT_RANDOM 22cc 33dd"]
    assert reader.info.warnings == ["1 packets cut by snaplen 128"]
    assert reader.info.errors == []
    assert_same_as_tshark(path, packets)


# -- gzip --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_gzip_is_detected_by_magic_and_streamed(tmp_path, kind):
    if kind == "pcap":
        data = cf.pcap([(EPOCH, i, cf.frame(i, 300), None) for i in range(2000)])
    else:
        data, _ = multi_interface_pcapng()
    plain, _ = read(write(tmp_path, f"c.{kind}", data))
    path = write(tmp_path, f"c.{kind}.any-name", gzip.compress(data))

    packets, reader = read(path, chunk_size=4096)

    assert packets == plain
    assert reader.info.format == f"{kind}+gzip"
    assert reader.info.errors == []
    assert reader.size == path.stat().st_size == reader.bytes_read


def test_gzip_that_ends_early_keeps_what_was_decompressed(tmp_path):
    data = cf.pcap([(EPOCH, i, random.Random(i).randbytes(400), None) for i in range(3000)])
    whole = gzip.compress(data)
    path = write(tmp_path, "cut.pcap.gz", whole[: len(whole) // 2])

    packets, reader = read(path)

    error = assert_error(reader, path, "gzip stream ends early", "uncompressed byte")
    assert 500 < len(packets) < 3000
    assert [p[2] for p in packets] == [random.Random(i).randbytes(400) for i in range(len(packets))]
    assert f"packet {len(packets) + 1}" in error


def test_corrupt_gzip_stops_with_an_error(tmp_path):
    data = cf.pcap([(EPOCH, i, random.Random(i).randbytes(400), None) for i in range(3000)])
    whole = bytearray(gzip.compress(data))
    middle = bytearray(whole)
    middle[len(whole) // 2 : len(whole) // 2 + 64] = bytes(64)
    whole[-8] ^= 1  # the CRC-32 in the trailer; checked only at the end of the stream

    packets, reader = read(write(tmp_path, "crc.pcap.gz", bytes(whole)))
    assert len(packets) == 3000
    assert_error(reader, tmp_path / "crc.pcap.gz", "gzip stream is corrupt", "CRC")

    # Garbage decompressed before zlib notices may read as a bad record first.
    packets, reader = read(write(tmp_path, "bad.pcap.gz", bytes(middle)))
    assert len(packets) < 3000
    assert_error(reader, tmp_path / "bad.pcap.gz")


# -- files that are not captures ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.pcap", b"", "empty file"),
        ("text.pcap", b"GET / HTTP/1.1\r\n", "not a pcap or pcapng file"),
        ("short.pcap", cf.pcap_header()[:20], "header truncated"),
        ("v3.pcap", cf.pcap_header(version=(3, 0)), "unsupported pcap version 3.0"),
        ("v2.pcapng", cf.shb(major=2), "unsupported pcapng version 2.0"),
        ("bom.pcapng", cf.shb()[:8] + b"\0\0\0\0" + cf.shb()[12:], "byte-order magic"),
        ("empty.gz", gzip.compress(b"", mtime=0), "empty gzip stream"),
        ("junk.gz", b"\x1f\x8b" + b"\xff" * 30, "gzip"),
        ("text.gz", gzip.compress(b"hello world", mtime=0), "not a pcap or pcapng file"),
    ],
)
def test_not_a_capture_raises_at_open(tmp_path, name, data, message):
    path = write(tmp_path, name, data)
    with pytest.raises(CaptureError, match=message) as caught:
        CaptureReader(path)
    assert str(caught.value).startswith(str(path))


def test_missing_file_and_directory_raise_at_open(tmp_path):
    for path in (tmp_path / "absent.pcap", tmp_path):
        with pytest.raises(CaptureError, match="cannot open"):
            CaptureReader(path)


# -- damage found while reading ----------------------------------------------------------------


def five_packets() -> bytes:
    return cf.pcap([(EPOCH, i, cf.frame(i, 100), None) for i in range(5)])


@pytest.mark.parametrize("cut", [1, 10, 16, 50])
def test_pcap_truncated_record_at_end(tmp_path, cut):
    path = write(tmp_path, "t.pcap", five_packets()[:-cut])
    packets, reader = read(path)
    assert [p[2] for p in packets] == [cf.frame(i, 100) for i in range(4)]
    # The fifth record starts at 24 + 4 * 116 = 488.
    assert_error(reader, path, "truncated", "at byte 488 ", "(packet 5)")


@pytest.mark.parametrize(
    ("caplen", "fragment"),
    [(5000, "truncated"), (0x7FFFFFFF, "record length 2147483647 exceeds snaplen 65535")],
)
def test_pcap_record_longer_than_the_file_or_any_limit(tmp_path, caplen, fragment):
    data = bytearray(five_packets())
    struct.pack_into("<I", data, 24 + 2 * 116 + 8, caplen)  # third record's caplen
    path = write(tmp_path, "big.pcap", bytes(data))
    packets, reader = read(path, chunk_size=128)
    assert len(packets) == 2
    assert_error(reader, path, fragment, "at byte 256 ", "(packet 3)")


def test_pcapng_block_length_errors(tmp_path):
    good = cf.shb() + cf.idb(1) + cf.epb(0, EPOCH * 10**6, cf.frame(0))
    bad_epb = bytearray(cf.epb(0, EPOCH * 10**6, cf.frame(1)))
    offset = len(good)
    cases = {
        "not a multiple of 4": (4, 90),
        "below 12": (4, 8),
        "trailing": (len(bad_epb) - 4, 84),
    }
    for name, (field_at, value) in cases.items():
        data = bytearray(bad_epb)
        struct.pack_into("<I", data, field_at, value)
        path = write(tmp_path, f"{name}.pcapng", good + bytes(data) + cf.epb(0, 1, b"after"))
        packets, reader = read(path)
        assert [p[2] for p in packets] == [cf.frame(0)], name
        assert_error(reader, path, f"at byte {offset} ", "(packet 2)")


def test_pcapng_block_larger_than_the_file(tmp_path):
    data = cf.shb() + cf.idb(1) + cf.epb(0, 0, cf.frame(0)) + cf.epb(0, 0, cf.frame(1))
    path = write(tmp_path, "trunc.pcapng", data[:-30])
    packets, reader = read(path)
    assert len(packets) == 1
    assert_error(reader, path, "block truncated")


def test_pcapng_damaged_packet_blocks_are_skipped(tmp_path):
    overrun = bytearray(cf.epb(0, 0, cf.frame(2)))
    struct.pack_into("<I", overrun, 20, 4000)  # captured length beyond the block
    data = cf.shb() + cf.idb(1) + cf.epb(0, 0, cf.frame(0))
    data += (
        cf.epb(3, 0, cf.frame(1)) + bytes(overrun) + cf.pb(7, 0, b"x") + cf.epb(0, 0, cf.frame(3))
    )
    path = write(tmp_path, "skip.pcapng", data)

    packets, reader = read(path)

    assert [p[2] for p in packets] == [cf.frame(0), cf.frame(3)]
    errors = reader.info.errors
    assert len(errors) == 3
    assert "undeclared interface 3" in errors[0] and "(packet 2)" in errors[0]
    assert "captured length 4000 overruns" in errors[1]
    assert "undeclared interface 7" in errors[2]
    assert all(str(path) in e and "byte " in e for e in errors)


def test_spb_before_any_interface_is_skipped(tmp_path):
    path = write(tmp_path, "spb.pcapng", cf.shb() + cf.spb(b"lost") + cf.idb(1) + cf.spb(b"kept"))
    packets, reader = read(path)
    assert [p[2] for p in packets] == [b"kept"]
    assert "undeclared interface 0" in reader.info.errors[0]


def test_errors_are_bounded(tmp_path):
    data = cf.shb() + b"".join(cf.epb(1, 0, b"x") for _ in range(500)) + cf.idb(1)
    data += cf.epb(0, 0, b"last")
    packets, reader = read(write(tmp_path, "many.pcapng", data))
    assert [p[2] for p in packets] == [b"last"]
    assert len(reader.info.errors) == 21
    assert reader.info.errors[-1].endswith("480 further errors not listed")


def test_later_section_with_bad_byte_order_or_version(tmp_path):
    head = cf.shb() + cf.idb(1) + cf.epb(0, 0, cf.frame(0))
    bad_bom = bytearray(cf.shb())
    bad_bom[8:12] = b"abcd"
    for name, section, fragment in [
        ("bom", bytes(bad_bom), "byte-order magic"),
        ("version", cf.shb(">", major=9), "unsupported or short section header"),
    ]:
        path = write(tmp_path, f"{name}.pcapng", head + section + cf.idb(1) + cf.epb(0, 0, b"x"))
        packets, reader = read(path)
        assert len(packets) == 1
        assert_error(reader, path, fragment, f"at byte {len(head)} ")


# -- property: damaged files never crash, never hang, never change what came before -------------


def valid_capture(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        endian = rng.choice("<>")
        records = [
            (EPOCH + i, rng.randrange(10**6), rng.randbytes(rng.randrange(0, 200)), None)
            for i in range(rng.randrange(1, 12))
        ]
        return cf.pcap(records, endian=endian)
    endian = rng.choice("<>")
    data = cf.shb(endian) + cf.idb(1, 0, tsresol=rng.choice([6, 9, 0x80 | 24]), endian=endian)
    for i in range(rng.randrange(1, 12)):
        payload = rng.randbytes(rng.randrange(0, 200))
        kind = rng.randrange(6)
        if kind == 0:
            data += cf.spb(payload, endian=endian)
        elif kind == 1:
            data += cf.dsb(cf.TLS_KEYLOG, b"CLIENT_RANDOM a b\n", endian=endian)
        else:
            data += cf.epb(0, EPOCH * 10**6 + i, payload, endian=endian)
    return data


def read_or_refuse(path: Path, chunk_size: int) -> list[tuple[float, int, bytes, int]] | None:
    try:
        reader = CaptureReader(path, chunk_size=chunk_size)
    except CaptureError:
        return None
    with reader:
        return list(reader)


@settings(
    max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32),
    where=st.floats(0, 1),
    flip=st.integers(0, 7),
    gzipped=st.booleans(),
    chunk_size=st.sampled_from([64, 100, 1 << 20]),
)
def test_damage_never_raises_and_keeps_the_prefix(tmp_path, seed, where, flip, gzipped, chunk_size):
    data = valid_capture(random.Random(seed))
    wrap = gzip.compress if gzipped else bytes
    at = int(where * (len(data) - 1))
    original = read_or_refuse(write(tmp_path, "o", wrap(data)), chunk_size)
    assert original is not None
    damaged = bytearray(data)
    damaged[at] ^= 1 << flip
    variants = {"truncated": data[:at], "flipped": bytes(damaged)}
    before = read_or_refuse(write(tmp_path, "b", wrap(data[:at])), chunk_size) or []
    assert original[: len(before)] == before  # a truncated file yields a prefix
    for name, variant in variants.items():
        result = read_or_refuse(write(tmp_path, name, wrap(variant)), chunk_size)
        if result is not None:
            assert result[: len(before)] == before, name


def test_damaged_gzip_container_never_raises(tmp_path):
    rng = random.Random(7)
    whole = gzip.compress(valid_capture(rng) * 3)
    for trial in range(200):
        damaged = bytearray(whole)
        for _ in range(1 + trial % 4):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        read_or_refuse(write(tmp_path, "g", bytes(damaged)), 100)


# -- real captures -----------------------------------------------------------------------------


def real_captures(shared_data: Path) -> list[Path]:
    return sorted(p for p in (shared_data / "pcaps").glob("*") if p.suffix in (".pcap", ".pcapng"))


def test_real_captures_match_tshark_and_scapy(shared_data):
    paths = real_captures(shared_data)
    assert paths
    for path in paths:
        packets, reader = read(path)
        assert reader.info.errors == [], path
        assert reader.info.packets == len(packets) > 0
        assert_same_as_tshark(path, packets)
        if reader.info.format == "pcap":
            theirs = scapy_pcap(path)
            assert [(d, w) for _, _, d, w in theirs] == [(p[2], p[3]) for p in packets], path
        else:
            theirs = scapy_pcapng(path)
            assert [(d, w) for _, _, _, d, w in theirs] == [(p[2], p[3]) for p in packets], path
