"""Fuzzing: hypothesis properties for the parsers, and a bounded mutation run of the analysis.

The properties feed the sans-IO parsers arbitrary and almost-right bytes (real records and
certificates with their lengths and bits changed); a failure prints hypothesis's reproduction blob.
The ``fuzz``-marked test runs a fixed number of inputs of the mutation harness of ``tests/fuzz``
(about 15 s here) from a printed seed, ``CAPANA_FUZZ_SEED`` to change it; ``-m "not fuzz"`` skips
it, and ``python -m tests.fuzz --count 100000 --seed N`` is the long run for a release.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import tempfile
from functools import cache
from pathlib import Path

import pytest
from fuzz.harness import PROJECT, Seed, make_input, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tls import real_handshake, test_pki

from capana import tls
from capana.certificates import parse_certificate
from capana.model import Certificate, UnparsedCertificate
from capana.truststore import TrustStoreError, load_trust_store

PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True
)
# The CI share of the mutation fuzzing: a fixed number of inputs, so that what it covers does not
# depend on the machine's speed (5,000 inputs take about 15 s on the 2-core development machine).
FUZZ_INPUTS = 5_000
FUZZ_SEED = 20261127
FUZZ_SEED_VARIABLE = "CAPANA_FUZZ_SEED"


@cache
def server_flight() -> bytes:
    return real_handshake().sent_by("server")


@cache
def certificate_ders() -> tuple[bytes, ...]:
    return tuple(issued.der for issued in test_pki())


def damaged(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with a few bytes set to anything, or cut short."""
    edits = st.lists(
        st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), min_size=1, max_size=6
    )

    def apply(changes: list[tuple[int, int]], cut: int) -> bytes:
        out = bytearray(data)
        for at, value in changes:
            out[at] = value
        return bytes(out[:cut])

    return st.builds(apply, edits, st.integers(0, len(data)))


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[tls.TlsEvent]:
    direction = tls.TlsDirection()
    events: list[tls.TlsEvent] = []
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        events += direction.feed(data[start:end])
    return events


@PROPERTY
@given(st.data())
def test_record_layer_events_do_not_depend_on_how_bytes_arrive(data: st.DataObject) -> None:
    """Any bytes (real flights damaged, or noise), fed whole or in pieces: same events, no raise."""
    stream = data.draw(st.one_of(damaged(server_flight()), st.binary(max_size=3000)))
    cuts = data.draw(st.lists(st.integers(0, 1 << 16), max_size=12))
    assert feed_in_pieces(stream, cuts) == tls.TlsDirection().feed(stream)


@PROPERTY
@given(
    st.sampled_from(
        [tls.CLIENT_HELLO, tls.SERVER_HELLO, tls.CERTIFICATE, tls.CERTIFICATE_REQUEST, 99]
    ),
    st.binary(max_size=2000),
    st.booleans(),
)
def test_handshake_message_parsers_never_raise(message_type: int, body: bytes, tls13: bool) -> None:
    event = tls.parse_handshake_message(message_type, body, tls13)
    assert isinstance(event, tls.TlsEvent)
    assert isinstance(tls.parse_sslv2_client_hello(body), tls.TlsEvent)


@PROPERTY
@given(st.lists(st.sampled_from(range(3)), max_size=80), st.integers(-3, 3))
def test_certificate_list_gives_what_lengths_allow(picks: list[int], skew: int) -> None:
    """A Certificate message of real certificates; its list length told right or a bit wrong."""
    ders = [certificate_ders()[pick] for pick in picks]
    entries = b"".join(len(der).to_bytes(3, "big") + der for der in ders)
    declared = max(0, len(entries) + skew)
    body = declared.to_bytes(3, "big") + entries
    event = tls.parse_handshake_message(tls.CERTIFICATE, body)
    assert isinstance(event, tls.CertificateMessage)
    assert list(event.certificates) == ders[: tls.MAX_CHAIN_CERTIFICATES]
    too_many = len(ders) > tls.MAX_CHAIN_CERTIFICATES
    assert (event.problem is not None) == (declared != len(entries) or too_many)


@PROPERTY
@given(st.data())
def test_parse_certificate_never_raises_and_keeps_the_hash(data: st.DataObject) -> None:
    der = data.draw(
        st.one_of(
            st.sampled_from(certificate_ders()).flatmap(damaged),
            st.binary(max_size=600),
        )
    )
    cert = parse_certificate(der)
    assert isinstance(cert, Certificate | UnparsedCertificate)
    assert cert.sha256 == hashlib.sha256(der).hexdigest()
    assert cert.der == der


@PROPERTY
@given(st.data())
def test_trust_store_from_any_bytes_loads_or_says_why(data: st.DataObject) -> None:
    """A store file of damaged PEM, DER, PKCS#7 wrappers or noise: a store, or TrustStoreError."""
    pem = b"".join(
        b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
        for der in certificate_ders()
    )
    content = data.draw(
        st.one_of(
            damaged(pem),
            st.sampled_from(certificate_ders()).flatmap(damaged),
            st.binary(max_size=400).map(lambda b: b"-----BEGIN PKCS7-----\n" + b + b"-----END"),
            st.binary(max_size=400),
        )
    )
    suffix = data.draw(st.sampled_from([".pem", ".der", ".p7b"]))
    folder = Path(tempfile.mkdtemp(prefix="capana-store-"))
    path = folder / f"store{suffix}"
    path.write_bytes(content)
    try:
        store = load_trust_store(path)
    except TrustStoreError as error:
        assert str(path) in str(error)
    else:
        assert all(isinstance(cert, Certificate) for cert in store.certificates)
    finally:
        path.unlink()
        folder.rmdir()


def test_each_fuzz_input_depends_only_on_seed_and_index() -> None:
    """Input 41 of a run is the same made alone, after other inputs, or after other seeds."""
    captures = [
        Seed(path.name, path.read_bytes(), set(), {})
        for path in sorted((PROJECT / "pcaps").glob("*.pcap*"))
    ]
    alone = make_input(captures, 7, 41)
    for index in range(41):
        make_input(captures, 7, index)
        make_input(captures, 8, index)
    assert make_input(captures, 7, 41) == alone
    made = {make_input(captures, 7, index)[1] for index in range(40)}
    assert len(made) > 30  # different indices give different inputs


@pytest.mark.fuzz
def test_mutated_real_captures_never_crash_hang_or_lie(capsys: pytest.CaptureFixture[str]) -> None:
    """A fixed number of inputs from a printed seed; every failure names its seed and index."""
    seed = int(os.environ.get(FUZZ_SEED_VARIABLE, FUZZ_SEED))
    with capsys.disabled():
        print(f"\nfuzz: seed {seed} ({FUZZ_SEED_VARIABLE}=N to change), {FUZZ_INPUTS} inputs")
    summary = run(seed=seed, count=FUZZ_INPUTS, timeout=20)
    with capsys.disabled():
        print(f"fuzz: {summary.line()}")
    assert summary.inputs == FUZZ_INPUTS
    assert not summary.failures, "\n".join(summary.failures[:20])
