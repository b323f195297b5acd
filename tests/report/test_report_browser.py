"""report.html in a real headless browser: nothing overflows a phone (390 px) or a desktop (1280 px) screen.

Chromium lays the page out; a probe added to a copy of the page paints a fixed square green when the
document is no wider than the window and red when something sticks out sideways, and the screenshot's
corner pixel is read. Skipped where no chromium is installed (`apt-get install -y chromium`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from modelshield.assess.results import AssessmentResult
from modelshield.report import RENDERERS, ExampleGrid

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs a chromium binary")

PROBE = (
    '<div id="probe" style="position:fixed;left:0;top:0;width:40px;height:40px;z-index:99"></div>'
    '<script>window.addEventListener("load", () => {const d = document.documentElement;'
    'document.getElementById("probe").style.background = d.scrollWidth <= window.innerWidth ? "#00ff00" : "#ff0000";'
    "});</script></body>"
)


def _fits(html: str, width: int, tmp_path: Path) -> bool:
    """True when Chromium, at ``width`` CSS pixels, lays the page out without horizontal overflow."""
    from PIL import Image

    page = tmp_path / f"page-{width}.html"
    # The report forbids scripts (CSP); only this test copy drops the policy, to run the probe.
    page.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html).replace("</body>", PROBE))
    shot = tmp_path / f"shot-{width}.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={width},900",
            "--virtual-time-budget=3000",
            f"--screenshot={shot}",
            page.as_uri(),
        ],  # type: ignore[list-item]
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixel = Image.open(shot).convert("RGB").getpixel((5, 5))
    assert pixel in ((0, 255, 0), (255, 0, 0)), f"the probe did not run: {pixel}"
    return pixel == (0, 255, 0)


@pytest.mark.parametrize("width", [390, 1280])
def test_report_fits_phone_and_desktop(
    width: int,
    image_result: AssessmentResult,
    untrusted_result: AssessmentResult,
    examples: ExampleGrid,
    tmp_path: Path,
) -> None:
    assert _fits(RENDERERS["html"].render(image_result, examples), width, tmp_path)
    assert _fits(RENDERERS["html"].render(untrusted_result), width, tmp_path)


def test_the_probe_sees_an_overflowing_page(image_result: AssessmentResult, tmp_path: Path) -> None:
    html = (
        RENDERERS["html"].render(image_result).replace("<main", '<div style="width:2000px;height:4px"></div><main', 1)
    )
    assert not _fits(html, 390, tmp_path)
