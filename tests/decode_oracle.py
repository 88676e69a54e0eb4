"""tshark as the oracle of the frame decoder: what each frame carries innermost, and the
certificates of every TLS and DTLS handshake by sender, with inner (tunnelled) addresses."""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from tshark_oracle import CISCO_TLS, TSHARK

from capana.capture import CaptureReader
from capana.decode import Datagram, EapolFrame, FrameDecoder, Undecoded
from capana.packets import TcpSegment, address_text, endpoint, endpoint_text

OUT_OF_ORDER = ("-o", "tcp.reassemble_out_of_order:TRUE")
_FRAME_FIELDS = (
    "frame.number",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.len",
    "udp.srcport",
    "udp.dstport",
    "udp.length",
    "eth.src",
    "eth.dst",
    "wlan.sa",
    "wlan.da",
)


class Carried(NamedTuple):
    """What one frame carries innermost: "tcp", "udp" or "eapol", its endpoints, its length
    (TCP or UDP payload bytes on the wire, captured or not; 0 for EAPOL)."""

    kind: str
    source: str
    destination: str
    length: int


def tshark_frames(capture: Path, preferences: Sequence[str] = ()) -> dict[int, Carried]:
    """Frame number -> what tshark found innermost, for the frames that carry TCP, UDP or EAPOL.

    ICMP errors are left out: tshark reports the packet they quote, which is not their own.
    """
    command = [TSHARK, "-r", str(capture), *OUT_OF_ORDER, *preferences, "-T", "fields"]
    command += ["-E", "occurrence=a", "-E", "separator=/t"]
    for field in _FRAME_FIELDS:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    frames = {}
    for line in output.stdout.splitlines():
        values = dict(zip(_FRAME_FIELDS, line.split("\t"), strict=False))
        carried = _carried(values)
        if carried is not None:
            frames[int(values["frame.number"])] = carried
    return frames


def _last(values: dict[str, str], field: str) -> str:
    return values.get(field, "").split(",")[-1]


def _carried(values: dict[str, str]) -> Carried | None:
    protocols = values["frame.protocols"].split(":")
    if "icmp" in protocols or "icmpv6" in protocols:
        return None
    transports = [p for p in protocols if p in ("tcp", "udp", "eapol")]
    if not transports:
        return None
    kind = transports[-1]
    if kind == "eapol":
        wireless = "wlan" in protocols and protocols.index("wlan") > _last_index(protocols, "eth")
        source = _last(values, "wlan.sa" if wireless else "eth.src")
        destination = _last(values, "wlan.da" if wireless else "eth.dst")
        return Carried("eapol", source, destination, 0)
    family = "ipv6" if _last_index(protocols, "ipv6") > _last_index(protocols, "ip") else "ip"
    if _last_index(protocols, kind) < _last_index(protocols, family):
        return None  # a fragment inside a tunnel: the transport seen is the tunnel's
    source, destination = _last(values, f"{family}.src"), _last(values, f"{family}.dst")
    ports = _last(values, f"{kind}.srcport"), _last(values, f"{kind}.dstport")
    if kind == "tcp":
        length = int(_last(values, "tcp.len") or 0)
    else:
        length = int(_last(values, "udp.length")) - 8
    return Carried(
        kind,
        endpoint_text(_canonical(source), int(ports[0])),
        endpoint_text(_canonical(destination), int(ports[1])),
        length,
    )


def _last_index(items: list[str], item: str) -> int:
    return max((i for i, value in enumerate(items) if value == item), default=-1)


def _canonical(address: str) -> str:
    return str(ipaddress.ip_address(address))


def capana_frames(capture: Path) -> tuple[dict[int, Carried], dict[str, int]]:
    """Frame number -> what the decoder found; and the count of each undecoded layer."""
    decoder = FrameDecoder()
    frames: dict[int, Carried] = {}
    undecoded: dict[str, int] = {}
    with CaptureReader(capture) as reader:
        for number, (timestamp, linktype, frame, wire_length) in enumerate(reader, 1):
            decoded = decoder.decode(linktype, frame, wire_length, timestamp)
            if isinstance(decoded, Undecoded):
                name = f"{decoded.layer} ({decoded.reason})"
                undecoded[name] = undecoded.get(name, 0) + 1
            carried = _view(decoded)
            if carried is not None:
                frames[number] = carried
    decoder.finish()
    return frames, undecoded


def _view(decoded: object) -> Carried | None:
    if isinstance(decoded, TcpSegment):
        length = len(decoded.payload) + decoded.missing
        source, destination = endpoint(decoded.key), endpoint(decoded.key, destination=True)
        return Carried("tcp", endpoint_text(*source), endpoint_text(*destination), length)
    if isinstance(decoded, Datagram):
        return Carried(
            "udp",
            endpoint_text(address_text(decoded.source), decoded.source_port),
            endpoint_text(address_text(decoded.destination), decoded.destination_port),
            len(decoded.payload) + decoded.missing,
        )
    if isinstance(decoded, EapolFrame):
        return Carried("eapol", decoded.source.hex(":"), decoded.destination.hex(":"), 0)
    return None


def tshark_innermost_certificates(
    capture: Path, preferences: Sequence[str] = (), dtls: bool = False
) -> set[tuple[str, str]]:
    """``{(sender "ip:port", sha256 of the DER)}`` of every TLS Certificate message over TCP (or
    DTLS over UDP), the sender being the innermost addresses when it travels in a tunnel."""
    protocol = "dtls" if dtls else "tls"
    transport = "udp" if dtls else "tcp"
    command = [TSHARK, "-r", str(capture), *OUT_OF_ORDER, *CISCO_TLS, *preferences]
    command += ["-Y", f"{protocol}.handshake.type == 11", "-T", "fields", "-E", "occurrence=a"]
    for field in ("frame.protocols", "ip.src", "ipv6.src", f"{transport}.srcport"):
        command += ["-e", field]
    command += ["-e", f"{protocol}.handshake.certificate"]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    seen = set()
    for line in output.stdout.splitlines():
        protocols, ipv4, ipv6, port, certificates = (line.split("\t") + [""] * 5)[:5]
        layers = protocols.split(":")
        if transport not in layers:
            continue  # EAP-TLS over EAPOL or RADIUS: not a TLS connection of its own
        address = ipv6 if _last_index(layers, "ipv6") > _last_index(layers, "ip") else ipv4
        sender = endpoint_text(_canonical(address.split(",")[-1]), int(port.split(",")[-1]))
        for hex_der in filter(None, certificates.split(",")):
            der = bytes.fromhex(hex_der.replace(":", ""))
            seen.add((sender, hashlib.sha256(der).hexdigest()))
    return seen
