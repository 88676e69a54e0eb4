# SPDX-License-Identifier: GPL-2.0-or-later
# This file is part of capana, loaded by Scapy as an extension (see dissectors/__init__.py).

# scapy.contrib.description = Cisco IP phone TLS (SCCP-TLS, SIP-TLS, CAPF, TVS)
# scapy.contrib.status = loads

"""Cisco IP phone TLS: dissect TLS on the phone ports, and list the certificates exchanged.

Loading binds scapy's TLS layer to TCP 2443 (SCCP-TLS), 5061 (SIP-TLS), 3804 (CAPF),
2445 (TVS), 8443, 9443 and 9444, as source and destination port. Nothing changes before
``load_contrib`` runs. In a scapy shell (the package must be installed, e.g. ``pip install
capana``)::

    >>> conf.exts.load("capana")
    >>> load_contrib("cisco_phone_tls")
    >>> packets = rdpcap("phone.pcap")
    >>> packets[2].summary()
    'IP / TCP / TLS 10.10.0.20:50000 > 10.10.0.1:2443 / TLS / TLS Handshake - Client Hello'
    >>> for cert in phone_certificates(packets):
    ...     print(cert)
    server 10.10.0.1:2443 -> 10.10.0.20:50000  other  CN=cucm-pub.example,O=Cisco
    server 10.10.0.1:2443 -> 10.10.0.20:50000  CA     CN=CallManager-CA,O=Cisco
    client 10.10.0.20:50000 -> 10.10.0.1:2443  LSC    CN=CP-8861-SEP001122334455,O=Cisco
    client 10.10.0.20:50000 -> 10.10.0.1:2443  CAPF   CN=CAPF-1a2b3c4d,O=Cisco
    >>> lsc = phone_certificates(packets)[2]
    >>> lsc.device, lsc.issuer, lsc.sha256[:16]
    ('SEP001122334455', 'CN=CAPF-1a2b3c4d,O=Cisco', '095c3c8274cd0815')

``phone_certificates`` is a view of capana's own analysis (``capana.analyze``), not a second
one: the packets are written to a temporary pcap and read by capana, whose TCP reassembly
handles reordering, retransmissions, holes and sequence wrap-around that scapy's ``TCPSession``
does not, and which reads TLS on any port and in TLS 1.3 with a key log. It gives what
``capana scan`` gives: each certificate of each handshake once, the server's chain then the
client's. For the verdicts (trust stores, findings) call ``capana.analyze`` itself.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from scapy.layers.inet import TCP
from scapy.layers.tls.record import TLS
from scapy.packet import Packet, bind_layers
from scapy.utils import wrpcap

from capana.analyzer import analyze
from capana.domain import CISCO_TLS_PORTS
from capana.model import CertificateReport, HandshakeReport

__all__ = ["CISCO_TLS_PORTS", "CiscoPhoneCert", "phone_certificates"]


@dataclass(frozen=True)
class CiscoPhoneCert:
    """One certificate from a TLS Certificate message, with who sent it to whom."""

    sender: str  # "ip:port" of the host that sent the Certificate message
    receiver: str
    role: str  # "client" or "server": the sender's side of the TLS handshake
    position: int  # 0 for the leaf, then up the chain as sent
    subject: str  # RFC 4514; "" when the DER could not be parsed
    issuer: str
    kind: str  # capana.classify: "LSC", "MIC", "CAPF", "CA", "other"; or "unparsed"
    device: str | None  # "SEP" + MAC when the subject names a phone
    sha256: str
    der: bytes = field(repr=False)

    def __str__(self) -> str:
        return f"{self.role} {self.sender} -> {self.receiver}  {self.kind:<6} {self.subject}"


def phone_certificates(capture: Iterable[Packet] | str | PathLike[str]) -> list[CiscoPhoneCert]:
    """Every certificate of the TLS handshakes in ``capture``, in the order capana reports them.

    ``capture`` is a capture file's path, or packets as read (``rdpcap``, or ``sniff`` without a
    session), which are not modified.
    """
    if isinstance(capture, str | PathLike):
        return _listed(analyze(capture).handshakes)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "packets.pcap"
        wrpcap(str(path), list(capture))
        return _listed(analyze(path).handshakes)


def _listed(handshakes: Iterable[HandshakeReport]) -> list[CiscoPhoneCert]:
    found = []
    for record in handshakes:
        client, server = record.handshake.client, record.handshake.server
        for role, chain, sender, receiver in (
            ("server", record.server_chain, server, client),
            ("client", record.client_chain, client, server),
        ):
            found += [
                _entry(sender, receiver, role, position, cert)
                for position, cert in enumerate(chain)
            ]
    return found


def _entry(
    sender: str, receiver: str, role: str, position: int, cert: CertificateReport
) -> CiscoPhoneCert:
    parsed = cert.parsed
    return CiscoPhoneCert(
        sender=sender,
        receiver=receiver,
        role=role,
        position=position,
        subject=parsed.subject if parsed else "",
        issuer=parsed.issuer if parsed else "",
        kind=cert.kind if parsed else "unparsed",
        device=cert.classification.device,
        sha256=cert.sha256,
        der=cert.certificate.der,
    )


def _bind_cisco_ports() -> None:
    for port in CISCO_TLS_PORTS:
        bind_layers(TCP, TLS, sport=port)
        bind_layers(TCP, TLS, dport=port)


_bind_cisco_ports()
