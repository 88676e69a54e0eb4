"""TVS queries from real daemons, read end to end by ``capana.analyze`` with the key log, held
to what tvsd logged, what tvsc printed, and tshark's decryption of the same capture.

``tvsd`` (the Trust Verification Service, on 127.0.0.1:2445) and ``tvsc`` (the phone) run as
separate processes on 127.0.0.1 (``samplegen.daemons``), captured by tcpdump with the server's
key log.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest
from daemon_runs import DAEMONS, WINDOW, daemon_python
from samplegen import daemons, pki
from session_capture import by_client_port, service_port, tshark_tls_streams
from tshark_oracle import TSHARK

from capana import analyze
from capana.dissectors.cisco_capf_tvs import TVS, TvsCertificate, TvsDeviceName
from capana.model import HandshakeReport, Report
from capana.tvs import TvsDecoder
from capana.views.records import handshake_record


@dataclass(frozen=True)
class TvsRun:
    run: daemons.DaemonRun
    steps: tuple[daemons.TvsStep, ...]
    report: Report  # capana.analyze of the capture with the key log
    records: tuple[HandshakeReport, ...]  # one per step, in order


@pytest.fixture(scope="module")
def tvs(tmp_path_factory) -> TvsRun:
    python = daemon_python(tmp_path_factory)
    port = service_port(2445)
    tvs = pki.server_cert(None, "tvs.example.com", **WINDOW)
    callmanager = pki.server_cert(None, "cucm-pub.example.com", **WINDOW)
    stranger = pki.server_cert(None, "web.example.com", **WINDOW)
    steps = (
        daemons.TvsStep("CP-8861-SEP001122334455", callmanager),
        daemons.TvsStep("CP-8861-SEP001122334455", stranger),
        daemons.TvsStep("CP-7841-SEP00AABBCC0011", tvs),
    )
    run = daemons.tvs_run(
        tmp_path_factory.mktemp("tvs"),
        DAEMONS,
        python,
        tvs=tvs,
        trusted=[(callmanager, ("--ccm-tftp",), 86400), (tvs, ("--ccm", "--tvs"), 3600)],
        steps=steps,
        port=port,
    )
    report = analyze(run.capture, keylog=run.keylog)
    records = by_client_port(report, port)
    assert len(records) == len(steps) == len(run.sessions)
    return TvsRun(run, steps, report, tuple(records[s.client_port] for s in run.sessions))


@pytest.mark.parametrize("index", range(3))
def test_each_query_agrees_with_tvsd_and_tvsc(tvs, index):
    log = dict(line.split(": ", 1) for line in tvs.run.sessions[index].log)
    printed = [line.split(":", 1) for line in tvs.run.sessions[index].client_output.splitlines()]
    record = handshake_record(tvs.records[index])
    assert (record["service"], record["decryption"], record["problems"]) == (
        "tvs",
        "decrypted",
        [],
    )
    (query,) = record["tvs"]["queries"]
    step = tvs.steps[index]
    assert query["device"] == log["Device Name"] == step.device
    assert query["certificate"]["sha256"] == log["Certificate Hash"]
    assert query["certificate"]["sha256"] == hashlib.sha256(step.certificate.der).hexdigest()
    # RFC 4514 writes the name last RDN first; tvsd logs it in the certificate's order.
    assert ",".join(reversed(query["certificate"]["subject"].split(","))) == log["Subject Name"]
    assert query["status"] == {"Valid": "trusted", "Invalid": "untrusted"}[log["Status"]]
    roles = [value.strip() for key, value in printed if key == "Role"]
    assert query["roles"] == roles
    if "Roles" in log:
        assert ",".join(query["roles"]) == log["Roles"]
        assert query["ttl"] == int(log["TTL"])
    else:
        assert (query["roles"], query["ttl"]) == ([], None)
    messages = tvs.records[index].tvs.session.messages
    assert [(m.sender, m.command) for m in messages] == [
        ("phone", "verify_request"),
        ("tvs", "verify_response"),
    ]


def test_each_phone_is_a_device_named_as_it_asked(tvs):
    addresses = {record.handshake.client_host for record in tvs.records}
    assert addresses == {"127.0.0.1"}  # one address: the names still tell the phones apart
    devices = {(d.name, d.model) for d in tvs.report.devices}
    assert devices == {("SEP001122334455", "CP-8861"), ("SEP00AABBCC0011", "CP-7841")}


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_capana_reads_what_tshark_decrypts(tvs):
    streams = tshark_tls_streams(tvs.run.capture, tvs.run.keylog, tls_ports=(2445,))
    for session, record in zip(tvs.run.sessions, tvs.records, strict=True):
        client, server = streams[session.client_port]
        decoder = TvsDecoder()
        decoder.feed("phone", client)
        decoder.feed("tvs", server)
        assert decoder.session() == record.tvs.session
        assert decoder.problems == ()


# --- hand-made messages -------------------------------------------------------------------------


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


def test_an_answer_to_nothing_is_reported():
    decoder = TvsDecoder()
    decoder.feed("tvs", bytes(TVS(cmd=2, session_id=9)))
    assert decoder.session().queries == ()
    assert [p.text for p in decoder.problems] == ["an answer for session 9, which asked nothing"]


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
