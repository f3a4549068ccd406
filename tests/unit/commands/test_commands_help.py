"""Every command's --help reads as written: no format escapes left in, an example per verb."""

from __future__ import annotations

import pytest
from helpers.cli import verb_parsers

PARSERS = verb_parsers()


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_help_has_no_format_escapes(command: str) -> None:
    """argparse %-formats option help, not descriptions: a '%%' there is printed as is
    (`lcm pretrain --help` said 'hold out 10%% of subjects')."""
    text = PARSERS[command].format_help()
    assert "%%" not in text, command
    assert "%(" not in text, command
