"""TVS queries decoded from real daemons' bytes, held to what tvsd logged and tvsc printed.

``tvsd`` (the Trust Verification Service) and ``tvsc`` (the phone) run as separate processes
on 127.0.0.1 (``samplegen.daemons``), captured by tcpdump with the server's key log.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest
from conftest import PROJECT
from hypothesis import given, settings
from hypothesis import strategies as st
from samplegen import daemons, loopback, pki
from session_capture import CLIENT, read_sessions

from capana.dissectors.cisco_capf_tvs import TVS, TvsCertificate, TvsDeviceName
from capana.tvs import TvsDecoder, TvsSession

DAEMONS = PROJECT.parent / "shared" / "oracles" / "usecallmanager-daemons"
NOW = datetime.now(timezone.utc)
WINDOW = {"not_before": NOW - timedelta(days=1), "not_after": NOW + timedelta(days=365)}


@pytest.fixture(scope="module")
def tvs_capture(tmp_path_factory):
    if not DAEMONS.is_dir():
        pytest.skip(f"the CAPF/TVS daemons are not at {DAEMONS}")
    if not (loopback.TCPDUMP and os.geteuid() == 0):
        pytest.skip("needs root and tcpdump to capture on lo")
    python = daemons.oracle_python(tmp_path_factory.getbasetemp())
    if python is None:
        pytest.skip(f"no Python with {daemons.ORACLE_CRYPTOGRAPHY} for the daemons")
    tvs = pki.server_cert(None, "tvs.example.com", **WINDOW)
    callmanager = pki.server_cert(None, "cucm-pub.example.com", **WINDOW)
    stranger = pki.server_cert(None, "web.example.com", **WINDOW)
    steps = [
        daemons.TvsStep("CP-8861-SEP001122334455", callmanager),
        daemons.TvsStep("CP-8861-SEP001122334455", stranger),
        daemons.TvsStep("CP-7841-SEP00AABBCC0011", tvs),
    ]
    run = daemons.tvs_run(
        tmp_path_factory.mktemp("tvs"),
        DAEMONS,
        python,
        tvs=tvs,
        trusted=[(callmanager, ("--ccm-tftp",), 86400), (tvs, ("--ccm", "--tvs"), 3600)],
        steps=steps,
    )
    sessions = read_sessions(run.capture, run.keylog)
    assert len(sessions) == len(steps)
    return run, steps, [decode(s) for s in sessions]


def decode(session) -> TvsSession:
    decoder = TvsDecoder()
    for sender, data in session.conversation:
        decoder.feed("phone" if sender == CLIENT else "tvs", data)
    return decoder.session()


@pytest.mark.parametrize("index", range(3))
def test_each_query_agrees_with_tvsd_and_tvsc(tvs_capture, index):
    run, steps, facts = tvs_capture
    log = dict(line.split(": ", 1) for line in run.sessions[index].log)
    printed = [line.split(":", 1) for line in run.sessions[index].client_output.splitlines()]
    (query,) = facts[index].queries
    assert facts[index].problems == ()
    assert query.device == log["Device Name"] == steps[index].device
    assert query.certificate == steps[index].certificate.der
    assert hashlib.sha256(query.certificate).hexdigest() == log["Certificate Hash"]
    assert query.status == {"Valid": "trusted", "Invalid": "untrusted"}[log["Status"]]
    roles = [value.strip() for key, value in printed if key == "Role"]
    assert list(query.roles) == roles
    if "Roles" in log:
        assert ",".join(query.roles) == log["Roles"]
        assert query.ttl == int(log["TTL"])
    else:
        assert (query.roles, query.ttl) == ((), None)
    assert [(m.sender, m.command) for m in facts[index].messages] == [
        ("phone", "verify_request"),
        ("tvs", "verify_response"),
    ]


def header(command: int, body: bytes, session: int = 1) -> bytes:
    return struct.pack(">BBBBIH", 0x57, 1, command, 0, session, len(body)) + body


def test_a_question_without_an_answer_is_unknown():
    request = TVS(cmd=1, session_id=5, elements=[TvsDeviceName(text=b"CP-8861-SEP001122334455")])
    decoder = TvsDecoder()
    raw = bytes(request)
    decoder.feed("phone", raw[:7])
    decoder.feed("phone", raw[7:])
    (query,) = decoder.session().queries
    assert (query.device, query.certificate, query.status, query.ttl) == (
        "CP-8861-SEP001122334455",
        None,
        "unknown",
        None,
    )


def test_an_answer_to_nothing_and_a_wrong_protocol_are_reported():
    decoder = TvsDecoder()
    decoder.feed("tvs", header(2, bytes([7, 0, 1, 0]), session=9))
    decoder.feed("phone", b"\x55" + bytes(20))
    session = decoder.session()
    assert session.queries == ()
    assert session.problems == (
        "an answer for session 9, which asked nothing",
        "phone: not TVS (protocol id 85, expected 87); the rest was not read",
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=10))
def test_random_bodies_never_crash(body, command):
    decoder = TvsDecoder()
    decoder.feed("phone", header(command, body))
    decoder.feed("tvs", header(command + 1, body[::-1]))
    assert isinstance(decoder.session(), TvsSession)


def test_the_layers_bind_to_their_ports_only_after_load_contrib(tmp_path):
    """In a fresh scapy: clear-text CAPF/TVS on 3804/2445 dissect as such, TLS stays TLS."""
    der = bytes.fromhex("3003020101")
    tvs = bytes(TVS(cmd=1, elements=[TvsCertificate(der=der)]))
    script = textwrap.dedent(
        f"""
        from scapy.all import *
        def top(port, payload):
            packet = IP(bytes(IP() / TCP(sport=50000, dport=port) / Raw(payload)))
            return type(packet[TCP].payload).__name__
        before = top(2445, {tvs!r})
        conf.exts.load("capana")
        load_contrib("cisco_capf_tvs")
        print(before, top(2445, {tvs!r}), top(3804, bytes.fromhex("5501000000010000")),
              top(3804, bytes.fromhex("15030300020228")))
        packet = IP(bytes(IP() / TCP(sport=2445, dport=50000) / Raw({tvs!r})))
        print(packet[TvsCertificate].der.hex())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Raw", "TVS", "CAPF", "TLS", der.hex()]
