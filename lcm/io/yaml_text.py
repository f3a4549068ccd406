"""YAML read as PyYAML's safe loader reads it, but refusing a key given twice in one mapping.

PyYAML keeps the last of two equal keys silently: a second dataset of the config replaced the
first, and a second code of a catalogue's ``map`` (``"1": autism`` then ``"1": control``)
recoded every subject. The config (:mod:`lcm.config`) and the variable catalogue
(:mod:`lcm.catalogue`) read their files here.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from lcm.exceptions import ConfigError


class _DuplicateKey(yaml.YAMLError):
    """A mapping of the file gives a key twice (raised while parsing, named by the reader)."""

    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"key {key!r} at line {line}")
        self.key, self.line, self.first = key, line, first


class _AmbiguousInteger(yaml.YAMLError):
    """A plain scalar YAML 1.1 reads as an integer other than the digits written."""

    def __init__(self, text: str, value: int, line: int) -> None:
        super().__init__(f"{text} at line {line}")
        self.text, self.value, self.line = text, value, line


# Digits YAML 1.1 reads as the decimal number they spell (a sign allowed); any other integer
# (010, 0x1A, 0b101, 1_000, 1:30) it reads otherwise than most readers would.
_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9]*)")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping.

    PyYAML keeps the last of two equal keys silently: a second ``abidelike`` under
    ``datasets`` replaced the first, a second task of the same name the first task. A merge
    key (``<<: *anchor``) may still be overridden by the mapping's own keys.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """The mapping of ``node``, as :meth:`yaml.SafeLoader.construct_mapping` builds it.

        Parameters
        ----------
        node : yaml.MappingNode
            The mapping being built.
        deep : bool
            Build the values' own containers now, as PyYAML's loader takes it.

        Raises
        ------
        _DuplicateKey
            A key given twice in ``node``, with its line and the line of the first.
        """
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class says so
                break
            if first is not None:
                raise _DuplicateKey(key, line, first)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """The integer of ``node``, refusing one YAML 1.1 reads otherwise than its digits.

        ``include: [01, 010]`` read as 1 and 8 (a leading 0 is octal), so that subject sub-010
        was never selected, and a catalogue's ``map: {01: control}`` the code 1; ``1:30``
        reads as 90 (base 60) and ``1_000`` as 1000.

        Parameters
        ----------
        node : yaml.ScalarNode
            The scalar being built, resolved as an integer.

        Raises
        ------
        _AmbiguousInteger
            The scalar is not plain decimal digits, with its line and the value read.
        """
        value = super().construct_yaml_int(node)
        if not _DECIMAL.fullmatch(node.value):
            raise _AmbiguousInteger(node.value, value, node.start_mark.line + 1)
        return value


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML ``text`` as :func:`yaml.safe_load` does, refusing duplicate mapping keys.

    Parameters
    ----------
    text : str
        The file's text.
    source : str
        The file, first in messages.

    Raises
    ------
    ConfigError
        A key given twice in one mapping: the file, the line and the key; or an integer
        YAML 1.1 reads otherwise than its digits (``010`` as 8): the file, the line and both.
    yaml.YAMLError
        Any other YAML error.
    """
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except _AmbiguousInteger as exc:
        raise ConfigError(
            f"{source}: line {exc.line}: {exc.text} is read by YAML as the number {exc.value} "
            "(YAML 1.1: a leading 0 is octal, 1:30 is 90, 1_000 is 1000).",
            hint=f"Quote it ('{exc.text}') where it is a label or a code, or write the number "
            "in plain decimal digits.",
        ) from None
    except _DuplicateKey as exc:
        raise ConfigError(
            f"{source}: line {exc.line}: key {exc.key!r} is given twice in the same mapping "
            f"(first at line {exc.first}); YAML would keep only the last one.",
            hint=f"Remove or rename one of the two {exc.key!r} entries (two datasets, tasks or "
            "codes of a map need two names).",
        ) from None
