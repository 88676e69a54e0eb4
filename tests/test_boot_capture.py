"""The shipped phone boot (pcaps/phone-boot-files.pcap, real servers and clients captured by
tcpdump): its transfers through capana's readers, held to tshark's HTTP and TFTP dissectors and
its exported objects, and the files they carried.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from boot_files import capture_transfers
from certutils_oracle import certutils_python
from conftest import SAMPLE_PCAPS
from tshark_oracle import TSHARK, tshark_certificates

from capana.certificates import Certificate
from capana.model import FileTransfer
from capana.trustfiles import check_signature, parse_file

SAMPLE = SAMPLE_PCAPS / "phone-boot-files.pcap"
MAC = "2C3124C9F8E1"
# (transport, name, status, HTTP status or TFTP error): the boot make_boot_capture.py runs.
BOOT = [
    ("http", f"CTLSEP{MAC}.tlv", "not_found", 404),
    ("tftp", f"CTLSEP{MAC}.tlv", "not_found", 1),
    ("http", f"ITLSEP{MAC}.tlv", "ok", 200),
    ("http", "ITLFile.tlv", "incomplete", 503),
    ("tftp", "ITLFile.tlv", "ok", None),
    ("http", f"SEP{MAC}.cnf.xml.sgn", "ok", 200),
]

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")


@pytest.fixture(scope="module")
def transfers() -> list[FileTransfer]:
    return capture_transfers(SAMPLE)


def outline(transfers: list[FileTransfer]) -> list[tuple[str, str, str, int | None]]:
    return [(t.transport, t.name, t.status, t.response_code) for t in transfers]


def test_every_request_of_the_boot_is_a_transfer(transfers: list[FileTransfer]) -> None:
    assert outline(transfers) == BOOT
    assert {t.client.split(":")[0] for t in transfers} == {"127.13.0.21"}
    assert {t.server for t in transfers} == {"127.0.0.1:6970", "127.0.0.1:69"}
    assert [t.problems for t in transfers] == [
        ("refused",) if t.response_code == 503 else () for t in transfers
    ]
    assert all(t.size == len(t.body) for t in transfers)
    itl_over_tftp = transfers[4]
    assert itl_over_tftp.announced_size == itl_over_tftp.size  # the OACK's tsize


@needs_tshark
def test_http_pairs_as_tshark_pairs(transfers: list[FileTransfer]) -> None:
    fields = ["http.request_in", "frame.number", "http.response.code", "http.response_for.uri"]
    rows = tshark_rows(["-Y", "http.response"], fields)
    expected = [
        (int(request), int(response), int(code), uri.rsplit("/", 1)[-1])
        for request, response, code, uri in rows
    ]
    ours = [
        (t.request_frame, t.last_frame, t.response_code, t.name)
        for t in transfers
        if t.transport == "http"
    ]
    assert ours == expected


@needs_tshark
def test_tftp_frames_as_tshark_sees_them(transfers: list[FileTransfer]) -> None:
    rows = tshark_rows(["-Y", "tftp"], ["frame.number", "tftp.opcode", "tftp.source_file"])
    requests = [(int(frame), name) for frame, opcode, name in rows if opcode == "1"]
    ends: list[int] = []  # the ERROR, or the last ACK, after each request
    for frame, opcode, _name in rows:
        if opcode == "1":
            ends.append(int(frame))
        elif opcode in ("4", "5"):
            ends[-1] = int(frame)
    ours = [(t.request_frame, t.name, t.last_frame) for t in transfers if t.transport == "tftp"]
    assert ours == [(frame, name, end) for (frame, name), end in zip(requests, ends, strict=True)]


@needs_tshark
def test_bodies_are_what_tshark_exports(transfers: list[FileTransfer], tmp_path: Path) -> None:
    for protocol in ("http", "tftp"):
        folder = tmp_path / protocol
        folder.mkdir()
        run_tshark(["-q", "--export-objects", f"{protocol},{folder}"])
        exported = sorted(_sha256(path.read_bytes()) for path in folder.iterdir())
        ours = sorted(_sha256(t.body) for t in transfers if t.transport == protocol and t.size)
        assert ours == exported, protocol


def test_the_files_carried(transfers: list[FileTransfer]) -> None:
    by_name = {(t.transport, t.name): t for t in transfers}
    itl = parse_file(by_name["http", f"ITLSEP{MAC}.tlv"].body, f"ITLSEP{MAC}.tlv")
    itl_file = parse_file(by_name["tftp", "ITLFile.tlv"].body, "ITLFile.tlv")
    config = parse_file(by_name["http", f"SEP{MAC}.cnf.xml.sgn"].body, f"SEP{MAC}.cnf.xml.sgn")

    for trust_list in (itl, itl_file):
        assert trust_list.kind == "itl" and trust_list.problems == ()
        assert trust_list.signature_check is not None
        assert trust_list.signature_check.status == "valid"
        assert [r.role for r in trust_list.records] == ["SAST", "CCM+TFTP", "CAPF", "TVS"]
    tftp_record = itl.records[1].certificate
    assert isinstance(tftp_record, Certificate)
    assert config.kind == "config-signed"
    check = check_signature(config, [r.certificate for r in itl.records if r.certificate])
    assert (check.status, check.signer) == ("valid", tftp_record)
    assert config.config is not None
    assert (config.config.security_mode, config.config.transport) == ("encrypted", "tls")
    assert [(m.address, m.port) for m in config.config.tvs] == [("127.0.0.1", 2445)]


@needs_tshark
def test_callmanager_presented_a_certificate_the_itl_lacks(transfers: list[FileTransfer]) -> None:
    """The capture's finding for the integration: the CallManager certificate is not the ITL's."""
    itl = parse_file(next(t.body for t in transfers if t.name == f"ITLSEP{MAC}.tlv"))
    listed = {r.certificate.sha256 for r in itl.records if r.certificate is not None}
    presented = {sha for sender, sha in tshark_certificates(SAMPLE) if sender.endswith(":5061")}
    assert len(presented) == 1
    assert not presented & listed


def test_generator_reproduces_the_boot(tmp_path: Path) -> None:
    """make_boot_capture.py with real servers and tcpdump, when this machine allows it."""
    if os.geteuid() != 0 or shutil.which("tcpdump") is None:
        pytest.skip("needs root and tcpdump (TFTP on UDP 69, capture on lo)")
    certutils_python()  # the generator builds the ITL and the signed configuration with them
    for port, kind in (
        (69, socket.SOCK_DGRAM),
        (6970, socket.SOCK_STREAM),
        (5061, socket.SOCK_STREAM),
    ):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, kind == socket.SOCK_STREAM)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                pytest.skip(f"127.0.0.1:{port} is in use")
    script = SAMPLE_PCAPS / "make_boot_capture.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert outline(capture_transfers(tmp_path / SAMPLE.name)) == BOOT


def tshark_rows(filters: list[str], fields: list[str]) -> list[list[str]]:
    command = [*filters, "-T", "fields"]
    for field in fields:
        command += ["-e", field]
    return [line.split("\t") for line in run_tshark(command).splitlines()]


def run_tshark(arguments: list[str]) -> str:
    assert TSHARK is not None
    command = [TSHARK, "-r", str(SAMPLE), "-o", "tcp.reassemble_out_of_order:TRUE", *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
