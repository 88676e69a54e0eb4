"""The shipped captures of what happens inside the sessions (``pcaps/make_session_captures.py``):
real daemons and a real SIP exchange, read back by capana, with tshark as the oracle."""

from __future__ import annotations

import pytest
from conftest import SAMPLE_PCAPS
from cryptography import x509
from session_capture import CLIENT, read_sessions, tshark_tls_streams
from test_registration import sip_facts
from tshark_oracle import TSHARK

from capana.capf import CapfDecoder
from capana.certificates import parse_certificate
from capana.classify import classify
from capana.tvs import TvsDecoder

CAPF_PCAP, CAPF_KEYS = (
    SAMPLE_PCAPS / "capf-lsc-install.pcap",
    SAMPLE_PCAPS / "capf-lsc-install.keys",
)
TVS_PCAP, TVS_KEYS = SAMPLE_PCAPS / "tvs-query.pcap", SAMPLE_PCAPS / "tvs-query.keys"
SIP_PCAP = SAMPLE_PCAPS / "sip-tls-null-register.pcap"
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def issuer_cn(der: bytes) -> str:
    name = x509.load_der_x509_certificate(der).issuer
    return name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def test_capf_lsc_install():
    (session,) = read_sessions(CAPF_PCAP, CAPF_KEYS)
    assert session.server_port == 3804
    assert session.keys.decryption.status == "decrypted"
    decoder = CapfDecoder()
    for sender, data in session.conversation:
        decoder.feed("phone" if sender == CLIENT else "capf", data)
    capf = decoder.session()
    facts = (capf.device, capf.operation, capf.auth, capf.key, capf.result, capf.problems)
    assert facts == ("SEP2C3124C9F8E1", "install", "mic", "RSA 2048", "installed", ())
    assert issuer_cn(capf.presented_certificate) == "Cisco Manufacturing CA SHA2"
    assert issuer_cn(capf.issued_certificate) == "CAPF-0992727f"
    # The issued LSC is what the phone presents next: capana classifies it like any other.
    lsc = classify(parse_certificate(capf.issued_certificate))
    assert (lsc.kind, lsc.device) == ("LSC", "SEP2C3124C9F8E1")


def test_capf_without_the_key_log_says_nothing():
    (session,) = read_sessions(CAPF_PCAP)
    assert session.keys.decryption.status == "no_keys"
    assert session.conversation == []


def test_tvs_query():
    sessions = read_sessions(TVS_PCAP, TVS_KEYS)
    answers = []
    for session in sessions:
        decoder = TvsDecoder()
        for sender, data in session.conversation:
            decoder.feed("phone" if sender == CLIENT else "tvs", data)
        (query,) = decoder.session().queries
        answers.append((query.device, query.certificate is not None, query.status))
        answers.append((query.roles, query.ttl))
    assert answers == [
        ("CP-8861-SEP2C3124C9F8E1", True, "trusted"),
        (("CCM+TFTP",), 86400),
        ("CP-8861-SEP2C3124C9F8E1", True, "untrusted"),
        ((), None),
    ]


def test_sip_null_cipher_register_is_read_without_keys():
    (session,) = read_sessions(SIP_PCAP)
    decryption = session.keys.decryption
    assert (decryption.status, decryption.cipher_suite, decryption.mac_checked) == (
        "plaintext",
        0x0002,
        False,
    )
    registration = sip_facts(session.conversation)
    assert registration is not None
    facts = (registration.result, registration.status, registration.line, registration.device)
    assert facts == ("registered", "200 OK", "1001", "SEP2C3124C9F8E1")


@needs_tshark
@pytest.mark.parametrize(
    ("path", "keys", "port"), [(CAPF_PCAP, CAPF_KEYS, 3804), (TVS_PCAP, TVS_KEYS, 2445)]
)
def test_tshark_decrypts_the_same_bytes(path, keys, port):
    streams = tshark_tls_streams(path, keys, tls_ports=(port,))
    for session in read_sessions(path, keys):
        assert streams[session.client_port] == (
            session.application_data("client"),
            session.application_data("server"),
        )
