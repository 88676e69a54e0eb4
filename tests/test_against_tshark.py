"""capana extracts the same certificates as tshark, from the same senders, on every capture:
TLS over TCP, EAP-TLS over EAPOL and RADIUS, and DTLS over UDP."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_captures
from decode_oracle import tshark_innermost_certificates as tshark_datagram_certificates
from tshark_oracle import TSHARK
from tshark_oracle import tshark_certificates as tshark_stream_certificates

from capana import analyze
from capana.analyzer import capture_files

PROJECT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(capture_files(PROJECT / "pcaps"))

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def tshark_certificates(capture: Path) -> set[tuple[str, str]]:
    """Every Certificate message tshark sees, TLS (TCP, EAP) and DTLS, by sender."""
    dtls = tshark_datagram_certificates(capture, dtls=True)
    return tshark_stream_certificates(capture) | dtls


def capana_certificates(capture: Path) -> set[tuple[str, str]]:
    report = analyze(capture)
    seen = set()
    for record in report.handshakes:
        handshake = record.handshake
        seen |= {(handshake.client, cert.sha256) for cert in record.client_chain}
        seen |= {(handshake.server, cert.sha256) for cert in record.server_chain}
    return seen


# Where tshark (4.0) sees less than is there; test_eap.py holds these to tshark as it can.
TSHARK_SEES_LESS = {
    "eapol-group.pcap": "EAP fragments of two ports sent to one group address are joined",
    "eapol-tls13.pcapng": "the server's TLS 1.3 flight, sent with its ServerHello, is not read",
}


@pytest.mark.parametrize("capture", SHIPPED, ids=lambda p: p.name)
def test_shipped_capture_agrees_with_tshark(capture: Path) -> None:
    found, expected = capana_certificates(capture), tshark_certificates(capture)
    if capture.name in TSHARK_SEES_LESS:
        assert expected and expected < found, TSHARK_SEES_LESS[capture.name]
    else:
        assert found == expected


@pytest.mark.parametrize("capture", shared_captures())
def test_real_public_capture_agrees_with_tshark(capture: Path) -> None:
    expected = tshark_certificates(capture)
    assert capana_certificates(capture) == expected


def test_real_captures_with_client_certificates_are_found(shared_data: Path) -> None:
    """The MANIFEST's captures with a client certificate: capana finds it, as the client's."""
    cases = {
        "zeek_tls_client-certificate.pcap": "johanna@corelight.com",
        "suricata-verify_tls-client-auth.pcap": "SampleClientJane",
        "arkime_ssl-selfsign.pcap": "CN=MO",
        "ndpi_tls_client_certificate_with_missing_server_one.pcapng": "AnyDesk Client",
    }
    for name, subject_part in cases.items():
        report = analyze(shared_data / "pcaps" / name)
        leaves = [r.client_leaf for r in report.handshakes if r.client_leaf]
        assert leaves, name
        assert any(subject_part in leaf.label for leaf in leaves), name
