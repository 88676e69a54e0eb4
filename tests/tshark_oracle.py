"""tshark as an independent oracle: which certificates did each endpoint send?"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

TSHARK = shutil.which("tshark")
# Wireshark does not take CAPF and TVS for TLS by itself.
CISCO_TLS = ["-d", "tcp.port==3804,tls", "-d", "tcp.port==2445,tls"]
_FIELDS = (
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "tls.handshake.certificate",
    "eth.src",
    "udp.srcport",
    "radius.Calling_Station_Id",
)


def tshark_reading(capture: Path) -> list[str]:
    """The start of a tshark command line reading ``capture`` as these tests always do: TCP
    reassembled out of order, CAPF and TVS ports taken for TLS."""
    return [str(TSHARK), "-r", str(capture), "-o", "tcp.reassemble_out_of_order:TRUE", *CISCO_TLS]


def tshark_certificates(capture: Path, keylog: Path | None = None) -> set[tuple[str, str]]:
    """``{(sender, sha256 of the DER)}`` of every TLS Certificate message.

    The sender is "ip:port" over TCP and for a RADIUS server; a phone's MAC (``aa:bb:...``)
    over EAPOL (Ethernet source) and inside RADIUS (Calling-Station-Id).
    """
    command = tshark_reading(capture)
    if keylog is not None:
        command += ["-o", f"tls.keylog_file:{keylog}"]
    command += ["-Y", "tls.handshake.type == 11", "-T", "fields", "-E", "occurrence=a"]
    for field in _FIELDS:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    seen = set()
    for line in output.stdout.splitlines():
        ipv4, ipv6, port, certificates, mac, udp_port, station = (line.split("\t") + [""] * 7)[:7]
        address = f"[{ipv6}]" if ipv6 else ipv4.split(",")[0]
        if port:
            sender = f"{address}:{port.split(',')[0]}"
        elif station:
            sender = _mac(station.split(",")[0])
        elif udp_port:
            sender = f"{address}:{udp_port.split(',')[0]}"
        else:
            sender = mac.split(",")[0]
        for hex_der in filter(None, certificates.split(",")):
            sha = hashlib.sha256(bytes.fromhex(hex_der.replace(":", ""))).hexdigest()
            seen.add((sender, sha))
    return seen


def _mac(text: str) -> str:
    """A Calling-Station-Id such as ``2C-31-24-C9-F8-E1`` as ``2c:31:24:c9:f8:e1``."""
    digits = "".join(c for c in text.lower() if c in "0123456789abcdef")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2)) if len(digits) == 12 else text
