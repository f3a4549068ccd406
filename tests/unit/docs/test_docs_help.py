"""The commands each verb's --help shows can be copied as printed."""

from __future__ import annotations

import re

import pytest
from helpers.cli import verb_parsers

PARSERS = verb_parsers()


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_an_example_continued_on_the_next_line_shows_its_backslash(command: str) -> None:
    """A ``\\`` at the end of a line of a plain (not raw) epilog string joins the lines in
    Python: `lcm ingest --help` printed 'abide/listing.tsv       --repetition-time 2.0'."""
    text = PARSERS[command].format_help()
    joined = [line for line in text.splitlines() if re.search(r"^\s+lcm .*\S {3,}--", line)]
    assert not joined, joined
