"""Headless Chromium driven by Selenium (Debian's chromium and chromium-driver), for the tests
that look at the HTML report as a browser lays it out."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

# As root, Chromium needs --no-sandbox; the rest keep it off the network and quiet.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

# The right edge of the last cell of every visible table, and how wide the page lays out.
OVERFLOW_SCRIPT = """
const width = document.documentElement.clientWidth;
const late = [];
for (const table of document.querySelectorAll('table')) {
  if (!table.offsetParent) continue;
  for (const row of table.rows) {
    const last = row.cells[row.cells.length - 1];
    const right = last.getBoundingClientRect().right;
    if (right > width + 0.5) late.push([table.className, row.rowIndex, right]);
  }
}
return {width: width, scroll: document.documentElement.scrollWidth, late: late.slice(0, 5)};
"""


def require_browser() -> None:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromium-driver not installed (apt-get install chromium-driver)")
    pytest.importorskip("selenium", reason="selenium not installed: pip install -e '.[test]'")


@contextmanager
def chromium(profile: Path, width: int = 1280, height: int = 900) -> Iterator[object]:
    """A headless Chromium window ``width`` x ``height``, with a fresh profile folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(120)
        yield driver
    finally:
        driver.quit()
