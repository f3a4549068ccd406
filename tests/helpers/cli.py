"""The command line's parsers, walked: every verb's and every sub-command's."""

from __future__ import annotations

import argparse

from lcm.cli import build_parser


def verb_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every verb's parser and every sub-command's, by command line (``connectome import``)."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        found[prefix] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{prefix} {name}".strip())

    walk(build_parser(), "")
    return {k: v for k, v in found.items() if k}
