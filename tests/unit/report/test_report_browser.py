"""The report opened in headless Chromium: it renders, with its figures, and logs no error.

Skipped when Debian's ``chromium`` is not installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import pytest
from helpers.report import run_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1200,3000",
)
# Chromium's own start-up noise (no D-Bus, no GPU in a container) is not the page's fault.
_BENIGN = re.compile(r"dbus|bus\.cc|gpu|viz|Fontconfig|sandbox|gcm|ozone|vaapi|crashpad", re.I)


def _chromium(page, tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_report_renders_in_chromium(inputs, tmp_path):
    out = run_report(inputs, tmp_path / "report")
    page = out["html"]
    dom = _chromium(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<h1>LCM evaluation report</h1>" in html and 'id="headline"' in html
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= 6  # per task: label-fraction curve and ROC; losses; motion
    from matplotlib.image import imread

    for alt, data in images:  # every figure is a decodable, non-empty PNG
        pixels = imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0, alt
    problems = [
        line
        for line in dom.stderr.splitlines()
        if re.search(r"CONSOLE|Uncaught|Failed to load|ERR_|Refused to", line)
        and not _BENIGN.search(line)
    ]
    assert not problems, problems
    shot = tmp_path / "page.png"
    done = _chromium(page, tmp_path, f"--screenshot={shot}")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from matplotlib.image import imread as read_png

    screen = read_png(shot)
    assert screen.shape[1] == 1200 and screen.std() > 0.05  # text and figures, not a blank page
