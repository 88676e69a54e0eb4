"""Validations per second of a 3-certificate chain (MIC <- manufacturing CA <- root anchor).

    python3 bench/validation.py [--rounds 2000]

Prints the rate for a SHA-256 chain and for the SHA-1 chain real MICs carry; each validation
builds the path by signature and checks the rules and dates at capture time.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pcaps"))

from samplegen import pki

from capana.certificates import parse_certificate
from capana.truststore import TrustStore
from capana.validation import validate_chain

CAPTURE_TIME = datetime(2024, 3, 1, tzinfo=timezone.utc)


def rate(sha2: bool, rounds: int) -> float:
    root, ca = pki.cisco_manufacturing_pki(sha2=sha2)
    mic = pki.phone_mic(ca, hash_name="sha256" if sha2 else "sha1")
    chain = [parse_certificate(mic.der), parse_certificate(ca.der)]
    store = TrustStore("callmanager", (parse_certificate(root.der),), ("bench",))
    assert validate_chain(chain, store, CAPTURE_TIME).status == "trusted"
    started = time.perf_counter()
    for _ in range(rounds):
        validate_chain(chain, store, CAPTURE_TIME)
    return rounds / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = parser.parse_args().rounds
    for label, sha2 in (("SHA-256 chain", True), ("SHA-1 chain", False)):
        print(f"{label}: {rate(sha2, rounds):,.0f} validations/s (3 certificates, {rounds} rounds)")


if __name__ == "__main__":
    main()
