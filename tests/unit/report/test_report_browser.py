"""The report opened in headless Chromium: it renders, with its figures, and logs no error.

Skipped when Debian's ``chromium`` is not installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import html as html_lib
import io
import json
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


# A task name as long as the schema allows (64 characters, no space to break at).
LONG_TASK = "AutismSpectrumDisorderVersusTypicalControlsLeaveSiteOutCohort01"
# The printable width of an A4 page with Chromium's default margins of 1 cm, in CSS pixels.
A4_PRINTABLE_PX = 718
# Applies the page's @media print rules to the screen at the printed width, then records where
# each table ends, the headers it shows, and whether each folded <details> shows its content.
_PRINT_PROBE = """<script>
for (const sheet of document.styleSheets) {
  for (const rule of [...sheet.cssRules]) {
    if (rule.media && rule.media.mediaText === "print") {
      for (const inner of rule.cssRules) sheet.insertRule(inner.cssText, sheet.cssRules.length);
      document.body.dataset.printRules = String(rule.cssRules.length);
    }
  }
}
document.body.style.width = "WIDTHpx";
const page = document.body.getBoundingClientRect().right;
const tables = [...document.querySelectorAll("table")].map(t => ({
  overflow: t.getBoundingClientRect().right - page,
  heads: [...t.querySelectorAll("thead th")]
    .filter(th => th.getBoundingClientRect().right <= page + 1).map(th => th.textContent),
}));
const details = [...document.querySelectorAll("details")].map(d =>
  [...d.children].filter(c => c.tagName !== "SUMMARY").every(c => c.checkVisibility()));
const probe = document.createElement("pre");
probe.id = "print-probe";
probe.textContent = JSON.stringify({tables, details});
document.body.appendChild(probe);
</script>""".replace("WIDTH", str(A4_PRINTABLE_PX))


@pytest.mark.slow
def test_a_printed_page_keeps_every_column_and_unfolds_details(tmp_path):
    """At the width of an A4 page, under the page's print rules, a 64-character task name and
    a sha256 narrow their columns instead of pushing the verdict, p and the checkpoints'
    "held out" and "tasks" off the page; the folded config prints open. The page also prints
    to PDF."""
    from helpers.report import with_provenance, write_report_inputs

    plain = write_report_inputs(tmp_path / "in", {LONG_TASK: ("abidelike", 26)})
    recorded = with_provenance(plain, tmp_path / "in")
    out = run_report(
        recorded["inputs"],
        tmp_path / "report",
        ["--checkpoint", str(recorded["checkpoint"]), "--configs", str(recorded["configs"])],
    )
    page = out["html"]
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", _PRINT_PROBE + "</body>"))
    dom = _chromium(probed, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert re.search(r'data-print-rules="[1-9]', dom.stdout), "no @media print rules"
    found = re.search(r'<pre id="print-probe">(.*?)</pre>', dom.stdout, re.S)
    probe = json.loads(html_lib.unescape(found.group(1)))
    assert all(t["overflow"] <= 1 for t in probe["tables"]), probe["tables"]
    heads = {h for t in probe["tables"] for h in t["heads"]}
    assert {"verdict", "held out", "tasks", "p (larger of bootstrap and corrected t)"} <= heads
    assert probe["details"] and all(probe["details"]), probe["details"]
    assert "&quot;n_folds&quot;: 4" in page.read_text()  # the config, inside its <details>
    pdf = tmp_path / "page.pdf"
    printed = _chromium(page, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert printed.returncode == 0 and pdf.read_bytes()[:5] == b"%PDF-", printed.stderr[-2000:]
