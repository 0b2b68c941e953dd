"""The status page in a real browser: Debian's Chromium, headless, on the real demo.

`saas-quota-exporter demo` runs as a subprocess (the simulated vendors, the real
adapters, the real HTTP server); once its first poll round is done, Chromium loads
`/` three times: once to dump the DOM it built (the demo's exhausted VertaaUX free
account must be the first meter row), and once each at desktop and phone width for
a screenshot, which must be the window's size, not blank, and show the exhausted
meter's red above the fold.
"""

from __future__ import annotations

import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from tests.support.processes import ExporterProcess, require_binary

pytestmark = pytest.mark.e2e

DESKTOP = (1280, 900)
PHONE = (390, 844)
# The page's --red (#c62828): the exhausted meter's bar, and its card's edge on a phone.
RED = (0xC6, 0x28, 0x28)


def chromium(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run with a fresh profile and nothing phoning home."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",  # the tests run as root in CI
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


class MeterRows(HTMLParser):
    """The meter rows of the DOM: (data-meter, class) in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-meter"):
            self.rows.append((str(a["data-meter"]), str(a.get("class"))))


def red_pixels(image: Image.Image, top: int) -> int:
    """Pixels within a few levels of RED in the top `top` rows."""
    band = image.convert("RGB").crop((0, 0, image.width, top))
    total = 0
    for count, colour in band.getcolors(band.width * band.height) or []:
        assert isinstance(colour, tuple)  # an RGB image's colours are (r, g, b)
        if all(abs(c - r) <= 8 for c, r in zip(colour, RED, strict=True)):
            total += count
    return total


def test_the_demo_status_page_shows_the_exhausted_meter_first_on_desktop_and_phone(
    tmp_path: Path,
) -> None:
    binary = require_binary("chromium")
    with ExporterProcess(["demo"], tmp_path / "log") as proc:  # ready: first round done
        url = proc.url + "/"
        dumped = chromium(binary, "--dump-dom", url)
        assert dumped.returncode == 0, dumped.stderr[-2000:]
        dom = dumped.stdout
        rows = MeterRows()
        rows.feed(dom)
        assert rows.rows, f"no meter rows in the DOM Chromium built:\n{dom[:3000]}"
        assert rows.rows[0] == ("vertaaux/audits/credits", "meter u-exhausted"), rows.rows[:5]
        # Every demo account's meters are there, and none of the demo's keys is.
        assert {m.split("/")[0] for m, _ in rows.rows} >= {
            "pictory",
            "tornado",
            "piloterr",
            "vidnavigator",
            "vertaaux",
        }
        assert "demo-" not in dom, "keys never on the page"

        for name, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
            shot = tmp_path / f"status-page-{name}.png"
            taken = chromium(binary, f"--screenshot={shot}", f"--window-size={width},{height}", url)
            assert taken.returncode == 0, taken.stderr[-2000:]
            assert shot.exists(), taken.stderr[-2000:]
            with Image.open(shot) as image:
                assert image.size == (width, height)
                # Not blank: a page of text, bars and cards varies a lot.
                spread = ImageStat.Stat(image.convert("L")).stddev[0]
                assert spread > 10, f"{name} screenshot looks blank (stddev {spread:.1f})"
                # The exhausted meter comes first, so its red shows in the top half.
                assert red_pixels(image, height // 2) > 200, f"no exhausted red in {name} view"
