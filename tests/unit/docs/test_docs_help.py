"""The commands each verb's --help shows can be copied as printed."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import PurePosixPath

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


def _examples(text: str) -> list[list[str]]:
    """The ``lcm ...`` commands of a help text, continuation lines joined, as words (a quoted
    value may span lines: ``lcm evaluate --settings '{...}'``)."""
    commands, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if current or stripped.startswith("lcm "):
            current += " " + stripped.removesuffix("\\")
            if stripped.endswith("\\"):
                continue
            try:
                commands.append(shlex.split(current))
            except ValueError:  # a quote still open: the value goes on
                continue
            current = ""
    return commands


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_an_example_writes_outside_its_feature_store(command: str) -> None:
    """Only `lcm store` writes in a store; every other verb refuses an output there (exit 6).
    `lcm splits --help` wrote its table to results/store/splits/splits.parquet."""
    for words in _examples(PARSERS[command].format_help()):
        if "--store" not in words or words[:2] == ["lcm", "store"]:
            continue
        store = PurePosixPath(words[words.index("--store") + 1])
        outputs = [
            PurePosixPath(value)
            for option, value in itertools.pairwise(words)
            if option.startswith("--out")
        ]
        inside = [str(out) for out in outputs if out.is_relative_to(store)]
        assert not inside, f"lcm {command} --help writes {inside} inside --store {store}"


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_an_indented_line_of_an_epilog_continues_a_list_not_a_paragraph(command: str) -> None:
    """An indented line right after a paragraph's sentence reads as a stray fragment:
    `lcm evaluate --help` printed the outputs' sidecar line under the continuous-label note."""
    lines = (PARSERS[command].epilog or "").splitlines()
    stray = [
        line
        for prev, line in itertools.pairwise(lines)
        if prev[:1].strip() and not prev.rstrip().endswith(":") and line.startswith(" ")
    ]
    assert not stray, f"lcm {command} --help: {stray}"
