"""Capture what happens inside the phone's secure sessions: real peers on lo, tcpdump, key logs.

    sudo python3 pcaps/make_session_captures.py            # rewrites the captures next to it
    sudo python3 pcaps/make_session_captures.py --out DIR  # somewhere else

Needs root and tcpdump; the CAPF and TVS captures also need the usecallmanager.nz daemons at
``../shared/oracles/usecallmanager-daemons`` (or ``--daemons DIR``) and a Python with
cryptography 41 for them (``samplegen.daemons.oracle_python`` finds or makes one). Every program
runs as its own process (the SIP registrar and phone as threads of this one) on 127.0.0.1; the
certificates come from ``samplegen.pki`` (synthetic, fresh keys, valid around the time of the run).

- ``capf-lsc-install.pcap`` + ``.keys``: a CP-8861 (``capfc``) authenticates to the CAPF
  (``capfd``) with its MIC and is issued an LSC (RSA 2048) signed by ``CAPF-0992727f``;
  ``capf-lsc-install-trust/`` is that CAPF's CAPF-trust (the CAPF, the manufacturing CA and its
  root: what ``capfd`` verified the MIC with).
- ``tvs-query.pcap`` + ``.keys``: a CP-8861 (``tvsc``) asks TVS (``tvsd``) about the CallManager
  certificate (trusted, role CCM+TFTP, TTL 86400) and about an unknown web server (untrusted).
- ``sip-tls-null-register.pcap``: an authenticated-mode phone registers line 1001 over SIP-TLS
  with TLS_RSA_WITH_NULL_SHA: 401 challenge, digest answer, 200 OK; readable without keys.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from samplegen import daemons, pki, sip

HERE = Path(__file__).resolve().parent
DAEMONS = HERE.parent.parent / "shared" / "oracles" / "usecallmanager-daemons"
PHONE_MAC = "2C3124C9F8E1"
PHONE = f"SEP{PHONE_MAC}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--daemons", type=Path, default=DAEMONS)
    options = parser.parse_args()
    now = datetime.now(timezone.utc)
    window = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=365)}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        python = daemons.oracle_python(work)
        if python is None:
            print(f"no Python with {daemons.ORACLE_CRYPTOGRAPHY} for the daemons", file=sys.stderr)
            return 1
        capf = pki.capf("CAPF-0992727f", **window)
        root, manufacturing = pki.cisco_manufacturing_pki()
        mic = pki.phone_mic(manufacturing, model="CP-8861", mac=PHONE_MAC)
        (work / "capf").mkdir()
        (work / "capf" / "mic.pem").write_bytes(mic.pem + mic.key_pem)
        install = daemons.CapfStep(
            PHONE, ("-i", PHONE, "--certificate"), ("-l", "mic.pem", "-c", f"{PHONE}.pem")
        )
        capf_run = daemons.capf_run(
            work / "capf",
            options.daemons,
            python,
            capf=capf,
            steps=[install],
            verify=[manufacturing],
            port=3804,
        )
        _keep(capf_run.capture, capf_run.keylog, options.out, "capf-lsc-install")
        trust = options.out / "capf-lsc-install-trust"
        shutil.rmtree(trust, ignore_errors=True)
        trust.mkdir()
        for name, issued in (
            ("CAPF-0992727f", capf),
            ("Cisco_Manufacturing_CA_SHA2", manufacturing),
            ("Cisco_Root_CA_M2", root),
        ):
            (trust / f"{name}.pem").write_bytes(issued.pem)
        print("capfd:", *capf_run.sessions[0].log, sep="\n  ")

        tvs = pki.server_cert(None, "tvs.example.com", **window)
        callmanager = pki.server_cert(None, "cucm-pub.example.com", **window)
        web = pki.server_cert(None, "web.example.com", **window)
        device = f"CP-8861-{PHONE}"
        tvs_run = daemons.tvs_run(
            work / "tvs",
            options.daemons,
            python,
            tvs=tvs,
            trusted=[(callmanager, ("--ccm-tftp",), 86400), (tvs, ("--tvs",), 86400)],
            steps=[daemons.TvsStep(device, callmanager), daemons.TvsStep(device, web)],
            port=2445,
        )
        _keep(tvs_run.capture, tvs_run.keylog, options.out, "tvs-query")
        for session in tvs_run.sessions:
            print("tvsd:", *session.log, sep="\n  ")

        line = sip.Line("1001", "cisco123", PHONE_MAC)
        sip_run = sip.sip_register(
            work / "sip", callmanager, [line], {"1001": "cisco123"}, ciphers="NULL-SHA", port=5061
        )
        _keep(sip_run.capture, None, options.out, "sip-tls-null-register")
        print("phone received:", *sip_run.answers[0], sep="\n  ")
    return 0


def _keep(capture: Path, keylog: Path | None, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(capture, out / f"{name}.pcap")
    if keylog is not None:
        shutil.copyfile(keylog, out / f"{name}.keys")


if __name__ == "__main__":
    sys.exit(main())
