"""config/README.md lists every reason code of an excluded run, and only those.

lcm/reason_codes.py defines the codes; README.md points at config/README.md's list.
"""

from __future__ import annotations

import re

from helpers import ROOT

from lcm.reason_codes import CODES


def test_the_readme_lists_every_reason_code() -> None:
    text = (ROOT / "config" / "README.md").read_text()
    section = text.split("\n## Reason codes\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z0-9_]+)` \| \S", section, re.M)
    assert len(listed) == len(set(listed)), "a code is listed twice"
    assert set(listed) == CODES
