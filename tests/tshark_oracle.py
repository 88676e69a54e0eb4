"""tshark as an independent oracle: which certificates did each endpoint send?"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

TSHARK = shutil.which("tshark")
_FIELDS = ("ip.src", "ipv6.src", "tcp.srcport", "tls.handshake.certificate")


def tshark_certificates(capture: Path, keylog: Path | None = None) -> set[tuple[str, str]]:
    """``{(sender "ip:port", sha256 of the DER)}`` of every TLS Certificate message."""
    command = [TSHARK, "-r", str(capture), "-o", "tcp.reassemble_out_of_order:TRUE"]
    if keylog is not None:
        command += ["-o", f"tls.keylog_file:{keylog}"]
    command += ["-Y", "tls.handshake.type == 11", "-T", "fields", "-E", "occurrence=a"]
    for field in _FIELDS:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    seen = set()
    for line in output.stdout.splitlines():
        ipv4, ipv6, port, certificates = (line.split("\t") + [""] * 4)[:4]
        address = f"[{ipv6}]" if ipv6 else ipv4.split(",")[0]
        for hex_der in filter(None, certificates.split(",")):
            sha = hashlib.sha256(bytes.fromhex(hex_der.replace(":", ""))).hexdigest()
            seen.add((f"{address}:{port.split(',')[0]}", sha))
    return seen
