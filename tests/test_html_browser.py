"""The HTML report in a real browser: headless Chromium renders it, offline, with its colours."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

import capana
from capana.views.html import render_html

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")

# The badge colours of the page's stylesheet: trusted/ok, error, warning, info.
GREEN, RED, AMBER, BLUE = (
    (0x1E, 0x8E, 0x3E),
    (0xC5, 0x22, 0x1F),
    (0xE3, 0x74, 0x00),
    (0x1A, 0x73, 0xE8),
)


@pytest.mark.skipif(BROWSER is None, reason="chromium not installed (apt-get install chromium)")
def test_report_page_renders_with_coloured_verdicts(tmp_path: Path) -> None:
    report = capana.analyze(PCAPS / "phone-reboot.pcapng", trust=PCAPS / "phone-reboot-trust")
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    shot = tmp_path / "shot.png"
    browser = subprocess.run(
        [
            str(BROWSER),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,900",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shot.is_file(), f"no screenshot, chromium said: {browser.stderr[-2000:]}"
    # The top third holds the device table with its verdicts: decoding it is enough.
    width, height, pixels = read_png(shot.read_bytes(), rows=300)
    assert (width, height) == (1200, 900)
    counts = {colour: pixels.count(colour) for colour in (GREEN, RED, BLUE)}
    # Every badge colour is painted over a good number of pixels: the inline CSS applied.
    assert all(count > 200 for count in counts.values()), counts
    assert len(set(pixels)) > 50  # text, not a blank or single-colour page


def read_png(data: bytes, rows: int) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(width, height, RGB pixels of the first ``rows`` rows) of an 8-bit RGB/RGBA
    non-interlaced PNG, as Chromium writes it."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = {}, 8
    idat = b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IDAT":
            idat += body
        chunks.setdefault(kind, body)
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and colour in (2, 6) and interlace == 0
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    lines: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(min(rows, height)):
        start = y * (stride + 1)
        row = unfilter(
            raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, channels
        )
        lines.append(row)
        previous = row
    pixels = [tuple(row[x : x + 3]) for row in lines for x in range(0, stride, channels)]
    return width, height, pixels  # type: ignore[return-value]


def unfilter(kind: int, row: bytearray, above: bytearray, bpp: int) -> bytearray:
    """Undo one PNG scanline filter (RFC 2083, section 6)."""
    for i in range(len(row)):
        left = row[i - bpp] if i >= bpp else 0
        up = above[i]
        corner = above[i - bpp] if i >= bpp else 0
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 2:
            row[i] = (row[i] + up) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            row[i] = (row[i] + paeth(left, up, corner)) & 0xFF
    return row


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c
