"""Regenerate the sample captures shipped in ``pcaps/`` (see pcaps/README.md).

    python pcaps/make_samples.py            # rewrites the samples next to this script
    python pcaps/make_samples.py --out DIR  # somewhere else

Every handshake is run afresh by OpenSSL with fresh keys, so the bytes (and certificate
fingerprints) change on each run while the content stays the same. All samples share one
synthetic cluster, so ``phone-reboot-trust/`` is the CallManager-trust for each of them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from samplegen.scenarios import (
    KeyRing,
    Layout,
    Scenario,
    build_cluster,
    lsc_accepted,
    mic_accepted,
    phone_reboot,
    tls13_client_cert,
)
from samplegen.wire import Link

HERE = Path(__file__).resolve().parent
TRUST_FOLDER = "phone-reboot-trust"


def make_samples(out: Path) -> list[Path]:
    """Write every shipped sample into ``out``; return the files written."""
    cluster = build_cluster(KeyRing())
    shutil.rmtree(out / TRUST_FOLDER, ignore_errors=True)
    reboot = phone_reboot(out, cluster=cluster, trust_dir=out / TRUST_FOLDER)
    written = [reboot.capture, *sorted(reboot.trust_dir.iterdir())]
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        tls13 = tls13_client_cert(tmp, cluster=cluster)
        written += _ship(tls13, out, "tls13-client-cert.pcap", keylog="tls13-client-cert.keys")
        reordered = lsc_accepted(
            tmp,
            cluster=cluster,
            layout=Layout(reorder=True, retransmit=True, odd_splits=True),
        )
        written += _ship(reordered, out, "reordered-cert.pcap")
        ipv6 = mic_accepted(
            tmp,
            cluster=cluster,
            layout=Layout(ipv6=True, ipv6_ext=True),
            link=Link(vlans=(200, 100)),
        )
        written += _ship(ipv6, out, "ipv6-vlan.pcap")
    return written


def _ship(scenario: Scenario, out: Path, name: str, keylog: str | None = None) -> list[Path]:
    files = [Path(shutil.copyfile(scenario.capture, out / name))]
    if keylog and scenario.keylog:
        files.append(Path(shutil.copyfile(scenario.keylog, out / keylog)))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the samples")
    args = parser.parse_args(argv)
    files = make_samples(args.out)
    total = sum(path.stat().st_size for path in files)
    for path in files:
        print(f"{path.stat().st_size:8d}  {path.relative_to(args.out)}")
    print(f"{total:8d}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
