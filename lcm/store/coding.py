"""A catalogue coding generated for a BIDS ``participants.tsv`` (what ``lcm run`` writes).

BIDS names the columns of ``participants.tsv`` but not their codes: sex is ``M``/``F``,
``male``/``female`` or ``1``/``2``, which ``participants.json`` may describe. Each catalogue
variable named like a column gets the coding the store reads: codes mapped to the catalogue's
levels where they are well known or ``participants.json`` names them, every value checked as
the store checks it. A column whose values do not fit the variable is left out with its
reason, instead of stopping the store on a coding the user never wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

import pandas as pd

from lcm.catalogue import ColumnCoding, Variable
from lcm.store.phenotype import declared_units, is_missing, unreadable_cells
from lcm.store.units import UnitsMismatch, column_units

log = logging.getLogger(__name__)

# Words naming a catalogue level, matched without case: the codes of the BIDS specification's
# examples and of common releases. Numbers (1/2, 0/1) are never guessed: participants.json's
# Levels name them ({"1": "male"}), or the column is left out.
LEVEL_WORDS: dict[str, tuple[str, ...]] = {
    "M": ("m", "male", "man"),
    "F": ("f", "female", "woman"),
}
# Values shown in a reason.
SHOWN = 8


class LeftOut(NamedTuple):
    """A column of the table that the generated coding leaves out."""

    column: str
    values: tuple[str, ...]  # its distinct values, missing codes aside
    reason: str

    def describe(self) -> str:
        """``column 'C' (values 'a', 'b'): reason``."""
        shown = ", ".join(repr(v) for v in self.values[:SHOWN])
        more = f" and {len(self.values) - SHOWN} more" if len(self.values) > SHOWN else ""
        return f"column {self.column!r} (values {shown}{more}): {self.reason}"


def column_of(variable: str, columns: Iterable[str]) -> str | None:
    """The column of a participants table that holds ``variable``: the one of its name, else
    the one column named so up to case (``Age``, ``Sex``: BIDS only recommends lowercase, and
    such a table had no variable stored, without a word); ``None`` when there is none.

    Parameters
    ----------
    variable : str
        A catalogue variable's name.
    columns : iterable of str
        The table's column names.
    """
    names = list(columns)
    if variable in names:
        return variable
    same = [c for c in names if str(c).casefold() == variable.casefold()]
    return same[0] if len(same) == 1 else None


def generated_columns(
    variables: dict[str, Variable], table: pd.DataFrame, sidecar: dict[str, Any] | None = None
) -> tuple[dict[str, dict[str, Any]], list[LeftOut]]:
    """The ``columns:`` of a coding for ``table``: each variable named like a column of it.

    Parameters
    ----------
    variables : dict of str to Variable
        The catalogue's variables.
    table : pandas.DataFrame
        The participants table, as text (:func:`lcm.store.phenotype.read_table`).
    sidecar : dict, optional
        ``participants.json``: ``{column: {"Levels": {code: description}}}`` names codes,
        ``{column: {"Units": units}}`` the units numbers are converted from
        (:mod:`lcm.store.units`; units known to differ that LCM does not convert leave the
        column out).

    Returns
    -------
    (dict, list of LeftOut)
        ``{variable: {"column": name[, "map": {code: level}]}}`` (the column named like the
        variable, up to case: :func:`column_of`), every value of which the
        store reads, and the columns left out, each with its reason.
    """
    columns: dict[str, dict[str, Any]] = {}
    left_out: list[LeftOut] = []
    for name, var in variables.items():
        column = column_of(name, table.columns)
        if column is None:
            continue
        values = tuple(
            dict.fromkeys(v.strip() for v in table[column].astype(str) if not is_missing(v))
        )
        spec: dict[str, Any] = {"column": column}
        if not var.is_numeric:
            mapping, unknown = _level_map(var, values, _described(sidecar, column))
            if unknown:
                shown = ", ".join(repr(v) for v in unknown[:SHOWN])
                reason = (
                    f"{shown} name(s) no level of {var.kind} variable {name!r} "
                    f"({', '.join(var.levels)})"
                    + ("" if sidecar else ", and no participants.json describes the codes")
                )
                left_out.append(LeftOut(column, values, reason))
                continue
            if any(code != level for code, level in mapping.items()):
                spec["map"] = mapping
        coding = ColumnCoding(column, map=spec.get("map", {}))
        declared = declared_units(sidecar, column)
        try:
            units = column_units(var, coding, declared)
        except UnitsMismatch as exc:
            left_out.append(LeftOut(column, values, f"{exc.reason} {exc.hint}"))
            continue
        bad = unreadable_cells(table[column], var, coding, units)
        if bad:
            more = f" (and {len(bad) - 1} more row(s))" if len(bad) > 1 else ""
            reason = f"row {bad[0].row}, value {bad[0].value!r}: {bad[0].reason}{more}"
            if var.is_numeric and var.units and declared is None and "outside" in bad[0].reason:
                # An age in months out of the range of years: the units may be what is wrong.
                reason += (
                    f' (participants.json gives no "Units" for {column!r}: if its values are '
                    f'not in {var.units}, say which there, e.g. "Units": "months")'
                )
            left_out.append(LeftOut(column, values, reason))
            continue
        columns[name] = spec
    return columns, left_out


def _described(sidecar: dict[str, Any] | None, column: str) -> dict[str, str]:
    """``participants.json``'s ``Levels`` of ``column``: code -> description."""
    entry = (sidecar or {}).get(column)
    levels = entry.get("Levels") if isinstance(entry, dict) else None
    if not isinstance(levels, dict):
        return {}
    return {str(k).strip(): str(v).strip() for k, v in levels.items() if isinstance(v, str)}


def _level_map(
    var: Variable, values: tuple[str, ...], described: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Each value's catalogue level, and the values that name none."""
    mapping: dict[str, str] = {}
    unknown: list[str] = []
    for value in values:
        level = _level(var, value)
        if level is None and value in described:
            level = _level(var, described[value])
        if level is None:
            unknown.append(value)
        else:
            mapping[value] = level
    return mapping, unknown


def _level(var: Variable, word: str) -> str | None:
    """The level ``word`` names: itself, the one level equal to it but for case, or the level
    of a well-known word (:data:`LEVEL_WORDS`)."""
    if word in var.levels:
        return word
    folded = [level for level in var.levels if level.casefold() == word.casefold()]
    if len(folded) == 1:
        return folded[0]
    named = [level for level in var.levels if word.casefold() in LEVEL_WORDS.get(level, ())]
    return named[0] if len(named) == 1 else None
