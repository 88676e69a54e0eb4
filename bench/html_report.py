"""How heavy and how fast is the HTML report of a site reboot, in a real browser?

    python3 bench/html_report.py                 # 500 phones x 10 connections = 5,200 handshakes
    python3 bench/html_report.py --copies 1      # the 500-phone reboot as captured

Builds a 500-phone reboot with the sample generator (real OpenSSL handshakes, mixed verdicts),
analyses it, then repeats every connection ``--copies`` times (new client ports, 30 s apart) so
that each phone has that many connections, renders the page and loads it in headless Chromium
(Selenium + chromium-driver) at 1,280 px. Prints the page size, the time to render it in Python
and the browser's load time (navigation start to the end of the load event, layout included).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "pcaps"))
sys.path.insert(0, str(ROOT / "tests"))

from browser import CHROMEDRIVER, CHROMIUM, chromium  # noqa: E402
from samplegen import scenarios  # noqa: E402

from capana import analyze  # noqa: E402
from capana.devices import group_devices  # noqa: E402
from capana.model import HandshakeReport, Report  # noqa: E402
from capana.views.html import render_html  # noqa: E402

# The browser's own measure of a page load: from navigation start to the end of onload.
LOAD_TIME_SCRIPT = """
const t = performance.getEntriesByType('navigation')[0];
return {load: t.loadEventEnd - t.startTime, parsed: t.domContentLoadedEventEnd - t.startTime};
"""


def site_report(folder: Path, phones: int = 500) -> Report:
    """The report of a freshly built ``phones``-phone reboot (mixed verdicts)."""
    site = scenarios.site_reboot(folder, phones=phones)
    return analyze(site.capture, trust={"callmanager": site.trust_dir})


def replicated(report: Report, copies: int) -> Report:
    """Each connection ``copies`` times (30 s apart, other client ports), devices regrouped."""
    records: list[HandshakeReport] = []
    for copy in range(copies):
        for record in report.handshakes:
            handshake = record.handshake
            host, _, port = handshake.client.rpartition(":")
            shifted = dataclasses.replace(
                handshake,
                client=f"{host}:{(int(port) + 1000 * copy) % 65536}",
                start=handshake.start + timedelta(seconds=30 * copy) if handshake.start else None,
            )
            records.append(dataclasses.replace(record, handshake=shifted))
    return dataclasses.replace(report, handshakes=tuple(records), devices=group_devices(records))


def measure(page: Path, profile: Path) -> dict[str, float]:
    """Load ``page`` in headless Chromium at 1,280 px; the browser's timings, in ms."""
    with chromium(profile) as driver:
        started = time.perf_counter()
        driver.get(page.as_uri())
        wall = (time.perf_counter() - started) * 1000
        timings = driver.execute_script(LOAD_TIME_SCRIPT)
    return {"load_ms": timings["load"], "parsed_ms": timings["parsed"], "wall_ms": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phones", type=int, default=500)
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    if CHROMIUM is None or CHROMEDRIVER is None:
        print("needs chromium and chromium-driver (apt-get install chromium-driver)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report = replicated(site_report(folder, args.phones), args.copies)
        started = time.perf_counter()
        html = render_html(report)
        render_s = time.perf_counter() - started
        page = folder / "report.html"
        page.write_text(html, encoding="utf-8")
        timings = measure(page, folder / "profile")
    size = len(html.encode("utf-8"))
    print(f"{len(report.handshakes)} handshakes, {len(report.devices)} devices")
    print(f"page: {size / 1e6:.2f} MB, rendered in Python in {render_s:.2f} s")
    print(
        f"Chromium at 1280 px: load event after {timings['load_ms']:.0f} ms "
        f"(DOM parsed {timings['parsed_ms']:.0f} ms; wall {timings['wall_ms']:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
