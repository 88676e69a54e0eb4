"""Hostile and broken input end to end: never crash, never hang, never lie.

Broken files go through the ``capana`` command as a lab script runs it; hostile bytes on the wire
are real OpenSSL handshakes laid into TCP by ``samplegen.wire`` and then damaged on purpose.
Inputs the fuzzer (``tests/fuzz``) once failed on are kept here as regressions.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from capture_files import epb, idb, shb
from samplegen import wire
from test_scan import expected_chains, only, tls_packets

from capana.scan import scan_capture
from capana.truststore import TrustStoreError, load_trust_store


def test_timestamps_beyond_any_date_are_a_warning_not_a_crash(tmp_path: Path) -> None:
    """Fuzz regression: a pcapng timestamp past year 9999 made datetime raise."""
    frames = [wire.Link().frame(packet) for packet in tls_packets()]
    ticks = [(1 << 62) + n for n in range(len(frames))]  # seconds: far beyond year 9999
    body = b"".join(epb(0, tick, frame) for tick, frame in zip(ticks, frames, strict=True))
    path = tmp_path / "future.pcapng"
    path.write_bytes(shb() + idb(1, tsresol=0) + body)
    summary, handshakes = scan_capture(path)
    assert summary.start is None and summary.end is None
    assert any("timestamps out of range" in warning for warning in summary.warnings)
    handshake = only(handshakes)
    assert handshake.start is None
    assert [c.sha256 for c in handshake.server_chain] == expected_chains()[1]


@pytest.mark.parametrize("kind", ["CERTIFICATE", "PKCS7"])
def test_pem_block_whose_base64_does_not_decode_is_a_trust_store_error(
    tmp_path: Path, kind: str
) -> None:
    """Fuzz regression: binascii.Error escaped from the store loader (CLI: internal error)."""
    path = tmp_path / "cm-trust.pem"
    path.write_bytes(f"-----BEGIN {kind}-----\nMIIB0\n-----END {kind}-----\n".encode())
    with pytest.raises(TrustStoreError, match=r"cm-trust\.pem"):
        load_trust_store(path)
