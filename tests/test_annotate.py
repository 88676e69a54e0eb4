"""``capana scan X --annotate OUT.pcapng``: the capture copied as pcapng with capana's verdict as
packet comments, held to tshark reading them back (``frame.comment``)."""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from samplegen import scenarios
from samplegen.scenarios import KeyRing
from tshark_oracle import TSHARK

from capana import analyze
from capana.annotate import AnnotateError, write_annotated
from capana.views.annotations import frame_comments

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
REBOOT = PCAPS / "phone-reboot.pcapng"
TRUST = PCAPS / "phone-reboot-trust"
EDITCAP = shutil.which("editcap")

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def tshark_fields(capture: Path, *fields: str, display_filter: str | None = None) -> list[list]:
    command = [str(TSHARK), "-r", str(capture), "-T", "fields", "-E", "occurrence=a"]
    command += ["-E", "separator=/t", "-o", "tcp.reassemble_out_of_order:TRUE"]
    if display_filter:
        command += ["-Y", display_filter]
    for field in fields:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    return [line.split("\t") for line in output.stdout.splitlines()]


def annotate(capture: Path, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "capana", "scan", str(capture), "--annotate", str(out)]
    return subprocess.run([*command, *options], capture_output=True, text=True, timeout=120)


def check_copy(original: Path, annotated: Path, comments: dict[int, str]) -> None:
    """The same packets at the same times on the same link types, and exactly our comments."""
    fields = ("frame.number", "frame.time_epoch", "frame.encap_type", "frame.len", "frame.cap_len")
    assert tshark_fields(annotated, *fields) == tshark_fields(original, *fields)
    read_back = tshark_fields(
        annotated, "frame.number", "frame.comment", display_filter='frame.comment contains "capana"'
    )
    assert {int(number): text for number, text in read_back} == comments


def test_pcapng_keeps_its_blocks_and_gets_the_comments(tmp_path: Path) -> None:
    out = tmp_path / "annotated.pcapng"
    result = annotate(REBOOT, out, "--trust", f"callmanager={TRUST}")
    assert result.returncode == 0, result.stderr
    report = analyze(REBOOT, trust={"callmanager": TRUST})
    comments = frame_comments(report, str(REBOOT))
    check_copy(REBOOT, out, comments)
    # Every frame the handshakes name carries a comment; the moved phone's say why.
    moved = [text for text in comments.values() if "SEP2C3124C9F80F" in text]
    assert len(moved) == 6 and all("lsc-from-other-cluster" in text for text in moved)
    assert f"{len(comments)} packet comment(s)" in result.stderr
    # The blocks other than packets are copied as they are, in order.
    assert [b for b in block_types(out) if b != 6] == [b for b in block_types(REBOOT) if b != 6]


def block_types(path: Path) -> list[int]:
    data = path.read_bytes()
    types, offset = [], 0
    while offset < len(data):
        block_type, length = struct.unpack_from("<II", data, offset)
        types.append(block_type)
        offset += length
    return types


@pytest.mark.parametrize("nanosecond", [False, True], ids=["usec", "nsec"])
def test_pcap_becomes_pcapng_with_its_times_and_link_type(tmp_path: Path, nanosecond: bool):
    scenario = scenarios.moved_cluster(tmp_path / "capture", keys=KeyRing(), nanosecond=nanosecond)
    gzipped = tmp_path / "moved.pcap.gz"
    gzipped.write_bytes(gzip.compress(scenario.capture.read_bytes()))
    out = tmp_path / "annotated.pcapng"
    assert annotate(gzipped, out, "--trust", f"callmanager={scenario.trust_dir}").returncode == 0
    report = analyze(gzipped, trust={"callmanager": scenario.trust_dir})
    comments = frame_comments(report, str(gzipped))
    assert len(comments) == 3  # ClientHello, the phone's Certificate, the server's alert
    check_copy(scenario.capture, out, comments)
    assert out.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"


@pytest.mark.skipif(EDITCAP is None, reason="editcap (Wireshark) is not installed")
def test_existing_comments_are_kept(tmp_path: Path) -> None:
    """A packet that already carries a comment gets capana's beside it."""
    commented = tmp_path / "commented.pcapng"
    subprocess.run([str(EDITCAP), "-a", "18:seen by the admin", str(REBOOT), str(commented)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    out = tmp_path / "annotated.pcapng"
    assert annotate(commented, out).returncode == 0
    (row,) = tshark_fields(out, "frame.comment", display_filter="frame.number == 18")
    assert row[0].split(",")[0] == "seen by the admin" and "capana: ClientHello" in row[0]


def test_usage_errors(tmp_path: Path) -> None:
    result = annotate(PCAPS, tmp_path / "out.pcapng")  # a folder of several captures
    assert result.returncode == 2 and "--annotate takes one capture file" in result.stderr
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture")
    with pytest.raises(AnnotateError, match="not a pcap or pcapng"):
        write_annotated(junk, tmp_path / "out.pcapng", {})
    with pytest.raises(AnnotateError, match="would overwrite"):
        write_annotated(REBOOT, REBOOT, {})


def test_damage_midway_keeps_the_packets_before_it(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(REBOOT.read_bytes()[:20_000])
    out = tmp_path / "out.pcapng"
    with pytest.raises(AnnotateError, match="truncated"):
        write_annotated(cut, out, {1: "capana: first"})
    rows = tshark_fields(out, "frame.number", "frame.comment")
    assert rows[0] == ["1", "capana: first"] and len(rows) > 10
