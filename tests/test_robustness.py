"""Hostile and broken input end to end: never crash, never hang, never lie.

Broken files go through the ``capana`` command as a lab script runs it; hostile bytes on the wire
are real OpenSSL handshakes laid into TCP by ``samplegen.wire`` and then damaged on purpose.
Inputs the fuzzer (``tests/fuzz``) once failed on are kept here as regressions.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from capture_files import epb, idb, shb
from facts import problem_texts, sha256s
from samplegen import flood, wire
from test_scan import CUCM, PHONE, WHEN, expected_chains, only, tls_packets
from test_tls import real_handshake, test_pki

from capana import budget, tls
from capana.certificates import parse_certificate
from capana.connections import ConnectionTable
from capana.model import ProblemCode, UnparsedCertificate
from capana.packets import FLAG_SYN, TcpSegment
from capana.scan import scan_capture
from capana.truststore import TrustStoreError, load_trust_store


def test_timestamps_beyond_any_date_are_a_warning_not_a_crash(tmp_path: Path) -> None:
    """Fuzz regression: a pcapng timestamp past year 9999 made datetime raise."""
    frames = [wire.Link().frame(packet) for packet in tls_packets()]
    ticks = [(1 << 62) + n for n in range(len(frames))]  # seconds: far beyond year 9999
    body = b"".join(epb(0, tick, frame) for tick, frame in zip(ticks, frames, strict=True))
    path = tmp_path / "future.pcapng"
    path.write_bytes(shb() + idb(1, tsresol=0) + body)
    summary, handshakes = scan_capture(path)
    assert summary.start is None and summary.end is None
    assert any("timestamps out of range" in warning for warning in summary.warnings)
    handshake = only(handshakes)
    assert handshake.start is None
    assert sha256s(handshake.server_chain) == expected_chains()[1]


@pytest.mark.parametrize("kind", ["CERTIFICATE", "PKCS7"])
def test_pem_block_whose_base64_does_not_decode_is_a_trust_store_error(
    tmp_path: Path, kind: str
) -> None:
    """Fuzz regression: binascii.Error escaped from the store loader (CLI: internal error)."""
    path = tmp_path / "cm-trust.pem"
    path.write_bytes(f"-----BEGIN {kind}-----\nMIIB0\n-----END {kind}-----\n".encode())
    with pytest.raises(TrustStoreError, match=r"cm-trust\.pem"):
        load_trust_store(path)


# -- broken files through the command line ---------------------------------------------------

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
REBOOT = PCAPS / "phone-reboot.pcapng"


def _broken(kind: str) -> bytes:
    """A damaged copy of a real capture (phone-reboot.pcapng, or a pcap written from it)."""
    ng = REBOOT.read_bytes()
    pcap = (PCAPS / "reordered-cert.pcap").read_bytes()
    two_thirds = 2 * len(ng) // 3
    return {
        "not a capture": b"GET / HTTP/1.1\r\nHost: cucm\r\n\r\n",
        "empty": b"",
        "pcap header cut": pcap[:20],
        "pcap truncated mid-record": pcap[: len(pcap) - 100],
        "pcap record longer than the file": pcap[:24]
        + struct.pack("<IIII", 1, 0, 200_000, 200_000)
        + bytes(64),
        "pcap record longer than any snaplen": pcap[:24]
        + struct.pack("<IIII", 1, 0, 1 << 30, 1 << 30)
        + bytes(64),
        "unknown link type": pcap[:20] + struct.pack("<I", 4242) + pcap[24:],
        "pcapng truncated mid-block": ng[:two_thirds],
        "pcapng bad block length": _bad_block_length(ng),
        "gzip ending early": gzip.compress(ng)[: len(gzip.compress(ng)) * 2 // 3],
    }[kind]


def _bad_block_length(ng: bytes) -> bytes:
    """The block length of the block starting past two thirds of the file set to 13."""
    offset = 0
    while offset < 2 * len(ng) // 3:
        offset += struct.unpack_from("<I", ng, offset + 4)[0]
    return ng[: offset + 4] + struct.pack("<I", 13) + ng[offset + 8 :]


BROKEN = [
    "not a capture",
    "empty",
    "pcap header cut",
    "pcap truncated mid-record",
    "pcap record longer than the file",
    "pcap record longer than any snaplen",
    "unknown link type",
    "pcapng truncated mid-block",
    "pcapng bad block length",
    "gzip ending early",
]


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "capana", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_broken_files_exit_2_with_one_line_each_and_keep_what_was_read(tmp_path: Path) -> None:
    """One run over every broken file: each names itself and where; the rest is reported."""
    paths = []
    for number, kind in enumerate(BROKEN):
        suffix = ".pcapng.gz" if "gzip" in kind else ".pcapng" if "pcapng" in kind else ".pcap"
        path = tmp_path / f"{number:02d}-{kind.replace(' ', '-')}{suffix}"
        path.write_bytes(_broken(kind))
        paths.append(path)
    result = run_cli("scan", *paths, "--format", "json")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    report = json.loads(result.stdout)
    for path, capture in zip(paths, report["captures"], strict=True):
        assert capture["errors"], path.name
        (line,) = [line for line in lines if path.name in line]  # one line per file
        assert re.search(r"byte \d+|packet \d+|magic|empty", line), line
    by_file = Counter(Path(h["capture"]).name for h in report["handshakes"])
    for kind in ("pcap truncated mid-record", "pcapng truncated mid-block", "gzip ending early"):
        assert by_file[paths[BROKEN.index(kind)].name] > 0, kind  # results up to the damage


def test_a_header_only_capture_is_empty_not_broken(tmp_path: Path) -> None:
    path = tmp_path / "header-only.pcap"
    path.write_bytes((PCAPS / "reordered-cert.pcap").read_bytes()[:24])
    result = run_cli("scan", path, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["captures"][0]["errors"] == []


# -- hostile bytes on the wire -----------------------------------------------------------------


def _hostile_capture(tmp_path: Path, server_flight: bytes, mss: int = 1460) -> Path:
    """The real ClientHello, then ``server_flight`` after the real ServerHello record."""
    hello = real_handshake().flights[1].data
    first_record = hello[: 5 + int.from_bytes(hello[3:5], "big")]
    conv = wire.TcpConversation(PHONE, CUCM, WHEN, mss=mss)
    conv.open()
    conv.send("client", real_handshake().flights[0].data)
    conv.send("server", first_record + server_flight)
    conv.close()
    return wire.write_pcap(tmp_path / "hostile.pcap", conv.packets())


def _records(message: bytes) -> bytes:
    """A handshake message in TLS records of 2^14 bytes."""
    size = 1 << 14
    return b"".join(
        struct.pack(">BHH", tls.HANDSHAKE, 0x0303, len(message[at : at + size]))
        + message[at : at + size]
        for at in range(0, len(message), size)
    )


def _certificate_message(entries: list[bytes]) -> bytes:
    body = b"".join(len(der).to_bytes(3, "big") + der for der in entries)
    body = len(body).to_bytes(3, "big") + body
    return bytes([tls.CERTIFICATE]) + len(body).to_bytes(3, "big") + body


def test_a_16_mib_certificate_message_is_read_to_its_first_bytes_only(tmp_path: Path) -> None:
    length = (1 << 24) - 1
    message = bytes([tls.CERTIFICATE]) + length.to_bytes(3, "big") + bytes(length)
    path = _hostile_capture(tmp_path, _records(message), mss=60_000)
    started = time.perf_counter()
    _, handshakes = scan_capture(path)
    assert time.perf_counter() - started < 20
    handshake = only(handshakes)
    cut = f"Certificate message of {length} bytes read to its first {tls.MAX_CERTIFICATE_MESSAGE}"
    assert any(cut in problem for problem in problem_texts(handshake))
    assert ProblemCode.LIMIT in handshake.problem_codes
    assert handshake.server_chain == ()


def test_ten_thousand_certificates_keep_the_first_of_them(tmp_path: Path) -> None:
    """MAX_CHAIN_CERTIFICATES are read, the rest said to be skipped."""
    server_der = test_pki()[1].der
    entries = [server_der] + [bytes(16)] * 9_999
    handshake = only(
        scan_capture(_hostile_capture(tmp_path, _records(_certificate_message(entries))))[1]
    )
    assert len(handshake.server_chain) == tls.MAX_CHAIN_CERTIFICATES
    assert sha256s(handshake.server_chain[:1]) == expected_chains()[1][:1]
    assert any("the rest were skipped" in problem for problem in problem_texts(handshake))


def test_ten_thousand_real_certificates_are_cut_at_the_message_bound(tmp_path: Path) -> None:
    """9 MB of real certificates: those within MAX_CERTIFICATE_MESSAGE are read (the first
    MAX_CHAIN_CERTIFICATES of them kept), the rest passed over, both said."""
    entries = [test_pki()[1].der] * 10_000
    path = _hostile_capture(tmp_path, _records(_certificate_message(entries)), mss=60_000)
    handshake = only(scan_capture(path)[1])
    assert len(handshake.server_chain) == tls.MAX_CHAIN_CERTIFICATES
    texts = problem_texts(handshake)
    assert any(f"read to its first {tls.MAX_CERTIFICATE_MESSAGE}" in text for text in texts)
    assert any("the rest were skipped" in text for text in texts)


@pytest.mark.parametrize("depth", [100, 10_000, 100_000])
def test_deeply_nested_der_is_kept_unparsed_with_its_hash(depth: int) -> None:
    der = b"\x05\x00"
    for _ in range(depth):
        der = b"\x30" + _der_length(len(der)) + der
    started = time.perf_counter()
    cert = parse_certificate(der)
    assert time.perf_counter() - started < 5
    assert isinstance(cert, UnparsedCertificate)
    assert cert.sha256 == hashlib.sha256(der).hexdigest()


def _der_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


@pytest.mark.parametrize(
    "der",
    [b"\x30\x80" + b"\x30\x80" * 1000, b"\x30\x84\xff\xff\xff\xff", b"\x30", b"\x1f\xff\xff\xff"],
    ids=["indefinite", "length-past-the-end", "header-cut", "high-tag-number"],
)
def test_malformed_der_is_kept_unparsed(der: bytes) -> None:
    assert isinstance(parse_certificate(der), UnparsedCertificate)


def test_a_syn_flood_keeps_the_table_bounded() -> None:
    """Connections that never carry a byte: the table evicts the oldest, never grows past it."""
    table = ConnectionTable("syn-flood.pcap", max_connections=5_000)
    server = bytes([10, 1, 1, 5]) + (2443).to_bytes(2, "big")
    for n in range(30_000):
        client = bytes([10, 20, n >> 8 & 0xFF, n & 0xFF]) + (40_000 + n % 7).to_bytes(2, "big")
        key = client[:4] + server[:4] + client[4:] + server[4:]
        reverse = server[:4] + client[:4] + server[4:] + client[4:]
        table.add(TcpSegment(key, reverse, n, 0, FLAG_SYN, b"", 0), n / 1000)
        assert len(table.flows) <= 2 * 5_000
    table.finish()
    assert table.completed == []


def test_thousands_of_large_concurrent_handshakes_stay_within_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small gzip that expands to 600 handshakes, each part-way through a 48 kB server
    Certificate at once (29 MB): with an 8 MiB budget, the handshakes that got their bytes are
    read whole, the others are cut with a problem, every one is reported, and a warning says
    what the budget cut. (bench/memory.py measures the peak RSS on a larger one.)"""
    monkeypatch.setattr(budget, "MAX_CAPTURE_BUFFERED", 8 << 20)
    ca, server, _ = test_pki()
    path = flood.concurrent_certificates(
        tmp_path / "flood.pcap.gz",
        real_handshake(),
        (server.der, ca.der),
        connections=600,
        size=48_000,
    )
    assert path.stat().st_size < 1 << 20
    summary, handshakes = scan_capture(path)
    assert summary.errors == ()
    assert len(handshakes) == 600
    cut = [h for h in handshakes if ProblemCode.LIMIT in h.problem_codes]
    whole = [h for h in handshakes if h.server_chain]
    assert cut and whole and len(cut) + len(whole) == 600
    assert all(h.server_chain[:2] == (server.der, ca.der) for h in whole)
    assert len(whole) * 48_000 < 9 << 20  # no more than the budget held at once
    (warning,) = [w for w in summary.warnings if "TLS records and handshake messages" in w]
    assert "memory budget (8 MiB for all buffers)" in warning
