"""Where each handshake shows in its capture, held to tshark: the frame numbers of the ClientHello,
the client's Certificate and the fatal alert, and the Wireshark filter that selects the
connection (802.1X: the phone's MAC)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import shared_captures
from tshark_oracle import TSHARK, tshark_reading

from capana import analyze
from capana.inputs import capture_files
from capana.model import Handshake

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
# eapol-group.pcap: two switch ports sending to the PAE group address; tshark joins both ports'
# EAP-TLS fragments into one and so never shows their Certificates (its certificates are held to
# tshark one port at a time in test_eap.py).
SHIPPED = [
    pytest.param(path, id=path.name)
    for path in sorted(capture_files(PCAPS))
    if path.name != "eapol-group.pcap"
]
FIELDS = (
    "frame.number",
    "tcp.stream",
    "tcp.srcport",
    "eth.src",
    "udp.dstport",
    "udp.srcport",
    "tls.handshake.type",
    "tls.alert_message.level",
    "dtls.handshake.type",
    "dtls.alert_message.level",
    "tcp.len",
)

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def tshark_rows(capture: Path, display_filter: str, keylog: Path | None = None) -> list[dict]:
    command = tshark_reading(capture)
    if keylog is not None:
        command += ["-o", f"tls.keylog_file:{keylog}"]
    command += ["-Y", display_filter, "-T", "fields", "-E", "occurrence=a"]
    for field in FIELDS:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    rows = []
    for line in output.stdout.splitlines():
        values = dict(zip(FIELDS, line.split("\t"), strict=True))
        rows.append({k: v.split(",") if v else [] for k, v in values.items()})
    return rows


def from_client(handshake: Handshake, row: dict) -> bool:
    """Was this frame sent by the handshake's client?"""
    if handshake.transport == "tcp":
        return row["tcp.srcport"][:1] == [handshake.client.rsplit(":", 1)[1]]
    if handshake.transport == "eapol":
        return row["eth.src"][:1] == [handshake.client]
    if handshake.transport == "udp":  # DTLS
        return row["udp.srcport"][:1] == [handshake.client.rsplit(":", 1)[1]]
    return row["udp.dstport"][:1] in (["1812"], ["1645"])  # RADIUS: the NAS's Access-Request


def first(
    rows: list[dict], handshake: Handshake, field: str, value: str, client: bool
) -> int | None:
    """The first frame of the connection (from the client, if ``client``) whose ``field`` has
    ``value``; None when there is none."""
    frames = [
        int(row["frame.number"][0])
        for row in rows
        if value in row[field] and (from_client(handshake, row) or not client)
    ]
    return frames[0] if frames else None


def check_frames(capture: Path, keylog: Path | None = None) -> int:
    """Every handshake's frames and filter against tshark; returns how many were checked."""
    report = analyze(capture, keylog=keylog)
    for record in report.handshakes:
        handshake = record.handshake
        assert handshake.wireshark_filter, handshake
        rows = tshark_rows(capture, handshake.wireshark_filter, keylog)
        frames = handshake.frames
        numbers = {int(row["frame.number"][0]) for row in rows}
        if handshake.transport == "tcp":
            streams = {row["tcp.stream"][0] for row in rows}
            assert len(streams) == 1, (handshake.client, streams)  # exactly that connection
        if handshake.cleartext:
            data = [int(r["frame.number"][0]) for r in rows if r["tcp.len"] != ["0"]]
            assert frames.cleartext == data[0], handshake
            continue
        tls = "dtls" if handshake.transport == "udp" else "tls"
        hello = first(rows, handshake, f"{tls}.handshake.type", "1", True)
        assert frames.client_hello == hello, handshake
        certificate = first(rows, handshake, f"{tls}.handshake.type", "11", True)
        assert frames.client_certificate == certificate, handshake
        alert = first(rows, handshake, f"{tls}.alert_message.level", "2", False)
        # An alert after an established handshake (a NULL-cipher session's end) is not its alert.
        if handshake.outcome != "established" or any(a.level == "fatal" for a in handshake.alerts):
            assert frames.alert == alert, handshake
        for frame in (frames.client_hello, frames.client_certificate, frames.alert):
            assert frame is None or frame in numbers, (handshake.client, frame)
    return len(report.handshakes)


@pytest.mark.parametrize("capture", SHIPPED)
def test_frames_of_the_shipped_captures_are_tsharks(capture: Path) -> None:
    keylog = PCAPS / "tls13-client-cert.keys" if capture.name.startswith("tls13") else None
    assert check_frames(capture, keylog) > 0


@pytest.mark.parametrize("capture", shared_captures())
def test_frames_of_the_real_captures_are_tsharks(capture: Path) -> None:
    check_frames(capture)


def test_reordered_certificate_is_at_the_frame_that_completes_it() -> None:
    """Its segments arrive swapped: Wireshark shows the message where reassembly ends, and
    so does capana (the later segment, not the first one seen)."""
    report = analyze(PCAPS / "reordered-cert.pcap")
    frames = report.handshakes[0].handshake.frames
    assert (frames.client_hello, frames.client_certificate) == (5, 17)


HELLO_FIELDS = (
    "frame.number",
    "tls.handshake.ciphersuite",
    "tls.handshake.sig_hash_alg",
    "tls.handshake.extensions.supported_version",
    "tls.handshake.version",
    "tls.handshake.extensions_server_name",
    "tls.handshake.extension.type",
    "tls.handshake.sig_hash_alg_len",
)


def tshark_hellos(capture: Path) -> dict[int, dict[str, list[str]]]:
    """ClientHellos by frame, TLS and DTLS alike (DTLS fields read under the TLS names; DTLS
    1.2 has no supported_versions)."""
    hellos = {}
    for protocol in ("tls", "dtls"):
        fields = [f.replace("tls.", f"{protocol}.", 1) for f in HELLO_FIELDS]
        if protocol == "dtls":
            fields.remove("dtls.handshake.extensions.supported_version")
        command = tshark_reading(capture)
        command += ["-Y", f"{protocol}.handshake.type == 1", "-T", "fields", "-E", "occurrence=a"]
        for field in fields:
            command += ["-e", field]
        run = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
        for line in run.stdout.splitlines():
            values = [v.split(",") if v else [] for v in line.split("\t")]
            named = dict(zip(fields[1:], values[1:], strict=True))
            row = {f: named.get(f.replace("tls.", f"{protocol}.", 1), []) for f in HELLO_FIELDS}
            hellos[int(values[0][0])] = row
    return hellos


def signature_algorithms(seen: dict[str, list[str]]) -> list[str]:
    """tshark lists signature_algorithms (13), delegated_credentials' (34) and
    signature_algorithms_cert (50) in one field: cut it by each extension's length, in the
    order the extensions came."""
    kinds = [t for t in seen["tls.handshake.extension.type"] if t in ("13", "34", "50")]
    codes, chunks = seen["tls.handshake.sig_hash_alg"], {}
    for kind, length in zip(kinds, seen["tls.handshake.sig_hash_alg_len"], strict=True):
        count = int(length) // 2
        chunks[kind], codes = codes[:count], codes[count:]
    return chunks.get("13", [])


def named(codes: list[str], name: object) -> list[str]:
    """tshark's hex code points, GREASE left out, named by capana's tables."""
    from capana import tls

    numbers = [int(code, 16) for code in codes]
    return [name(n) for n in numbers if not tls.is_grease(n)]  # type: ignore[operator]


def check_client_hellos(capture: Path) -> int:
    from capana import tls

    hellos = tshark_hellos(capture)
    checked = 0
    for record in analyze(capture).handshakes:
        facts, frame = record.handshake.client_hello, record.handshake.frames.client_hello
        if facts is None or frame is None:
            continue
        seen = hellos[frame]
        versions = seen["tls.handshake.extensions.supported_version"] or [
            seen["tls.handshake.version"][0]
        ]
        assert list(facts.versions) == named(versions, tls.version_name)
        assert list(facts.cipher_suites) == named(
            seen["tls.handshake.ciphersuite"], tls.cipher_suite_name
        )
        assert list(facts.signature_algorithms) == named(
            signature_algorithms(seen), tls.signature_scheme_name
        )
        assert facts.sni == (seen["tls.handshake.extensions_server_name"] or [None])[0]
        checked += 1
    return checked


@pytest.mark.parametrize("capture", SHIPPED)
def test_what_the_client_offered_is_tsharks(capture: Path) -> None:
    assert check_client_hellos(capture) > 0


@pytest.mark.parametrize("capture", shared_captures())
def test_what_real_clients_offered_is_tsharks(capture: Path) -> None:
    check_client_hellos(capture)
