# SPDX-License-Identifier: GPL-2.0-or-later
# This file is part of capana, loaded by Scapy as an extension (see dissectors/__init__.py).

# scapy.contrib.description = Cisco IP phone TLS (SCCP-TLS, SIP-TLS, CAPF, TVS)
# scapy.contrib.status = loads

"""Cisco IP phone TLS: dissect TLS on the phone ports and list the certificates exchanged.

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
    >>> sniff(offline="phone.pcap", session=TCPSession)  # whole TLS records, not segments
    <Sniffed: TCP:7 UDP:0 ICMP:0 Other:0>

``phone_certificates`` puts each TCP direction back together with scapy's ``TCPSession`` so
a Certificate message split over several segments is still read. That is not a full TCP
reassembly: it orders the segments it has buffered by sequence number, but a lost segment
silently hides the rest of that direction and sequence wrap-around is not
resolved (capana's own analyzer, ``capana.tcp``, handles these and counts the gaps). Only
certificates sent in clear are listed, i.e. up to TLS 1.2: a TLS 1.3 Certificate is encrypted.

LSC/MIC is capana's guess from the issuer's name (``capana.classify``: a ``CAPF-...`` issuer
means LSC, a Cisco Manufacturing or SUDI CA means MIC); no signature is checked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.tls.handshake import (
    TLS13Certificate,
    TLS13ClientHello,
    TLS13ServerHello,
    TLSCertificate,
    TLSClientHello,
    TLSServerHello,
)
from scapy.layers.tls.record import TLS
from scapy.packet import Packet, bind_layers
from scapy.sessions import TCPSession

from capana.certificates import parse_certificate
from capana.classify import classify
from capana.domain import CISCO_TLS_PORTS
from capana.model import Certificate

__all__ = ["CISCO_TLS_PORTS", "CiscoPhoneCert", "phone_certificates"]

# SCCP-TLS, SIP-TLS, CAPF, TVS, then the HTTPS ports of CUCM and the phones (scapy has 443).


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


def phone_certificates(packets: Iterable[Packet]) -> list[CiscoPhoneCert]:
    """Every certificate in the TLS Certificate messages of ``packets``, in capture order.

    ``packets`` is a capture as read (``rdpcap``, or ``sniff`` without a session); it is not
    modified. Only TCP on ports bound to TLS is read (the Cisco ports above, and 443).
    """
    found: list[CiscoPhoneCert] = []
    client_of: dict[frozenset[str], str] = {}  # connection -> endpoint that sent ClientHello
    for tcp, record in _tls_records(packets):
        sender, receiver = _endpoints(tcp)
        connection = frozenset((sender, receiver))
        for message in record.msg:
            if isinstance(message, (TLSClientHello, TLS13ClientHello)):
                client_of[connection] = sender
            elif isinstance(message, (TLSServerHello, TLS13ServerHello)):
                client_of.setdefault(connection, receiver)
            elif isinstance(message, (TLSCertificate, TLS13Certificate)):
                client = client_of.get(connection) or _client_by_port(tcp, sender, receiver)
                role = "client" if sender == client else "server"
                for position, der in enumerate(_certificate_ders(message)):
                    found.append(_record(sender, receiver, role, position, der))
    return found


def _tls_records(packets: Iterable[Packet]) -> Iterator[tuple[TCP, TLS]]:
    """TLS records in capture order, each TCP direction reassembled by scapy's TCPSession."""
    session = TCPSession()
    for packet in packets:
        if TCP not in packet:
            continue
        # Dissect the wire bytes afresh: TCPSession consumes the packets it is given.
        fresh = type(packet)(packet.original or bytes(packet), stop_dissection_after=TCP)
        reassembled = session.process(fresh)
        if reassembled is None or TCP not in reassembled:
            continue
        tcp = reassembled[TCP]
        for layer in tcp.payload.iterpayloads():
            if isinstance(layer, TLS):
                yield tcp, layer


def _endpoints(tcp: TCP) -> tuple[str, str]:
    ip = tcp.underlayer
    if isinstance(ip, IPv6):
        return f"[{ip.src}]:{tcp.sport}", f"[{ip.dst}]:{tcp.dport}"
    return f"{ip.src}:{tcp.sport}", f"{ip.dst}:{tcp.dport}"


def _client_by_port(tcp: TCP, sender: str, receiver: str) -> str:
    """Without a hello in the capture, the side on a well-known TLS port is the server."""
    server_ports = {*CISCO_TLS_PORTS, 443}
    if tcp.sport in server_ports and tcp.dport not in server_ports:
        return receiver
    if tcp.dport in server_ports and tcp.sport not in server_ports:
        return sender
    return sender if tcp.sport > tcp.dport else receiver


def _certificate_ders(message: TLSCertificate | TLS13Certificate) -> list[bytes]:
    # TLS 1.2 lists (length, Cert) pairs; TLS 1.3 wraps each pair with its extensions.
    pairs = [getattr(entry, "cert", entry) for entry in message.certs]
    return [cert.der for _length, cert in pairs]


def _record(sender: str, receiver: str, role: str, position: int, der: bytes) -> CiscoPhoneCert:
    cert = parse_certificate(der)
    if not isinstance(cert, Certificate):
        return CiscoPhoneCert(
            sender, receiver, role, position, "", "", "unparsed", None, cert.sha256, der
        )
    claim = classify(cert)
    return CiscoPhoneCert(
        sender,
        receiver,
        role,
        position,
        cert.subject,
        cert.issuer,
        claim.kind,
        claim.device,
        cert.sha256,
        der,
    )


def _bind_cisco_ports() -> None:
    for port in CISCO_TLS_PORTS:
        bind_layers(TCP, TLS, sport=port)
        bind_layers(TCP, TLS, dport=port)


_bind_cisco_ports()
