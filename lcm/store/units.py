"""Units of a phenotype column: what ``participants.json`` says, and how the store reads it.

BIDS lets ``participants.json`` give a column's ``Units`` (``"age": {"Units": "months"}`` in
infant and child datasets); the catalogue gives each variable's units after the dataset's
transform. Where the two name different units of one quantity and the conversion is exact and
well known (time: days, weeks, months, years; length: mm, cm, m; mass: g, kg), the store
converts; where they are known to differ otherwise (another quantity, or inches, feet, pounds),
the column is refused with both units and the fix. A transform the user wrote for the column
(``scale:`` or ``map:``) is the conversion: nothing is converted twice. This module decides;
:mod:`lcm.store.phenotype` applies it and :mod:`lcm.store.coding` checks a generated coding with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from lcm.catalogue import ColumnCoding, Variable


@dataclass(frozen=True)
class Unit:
    """A unit LCM knows.

    Attributes
    ----------
    name : str
        Its short name (``months``, ``cm``).
    quantity : {"time", "length", "mass"}
    size : Fraction
        Its size in the quantity's base unit (years, m, kg).
    converted : bool
        Whether the store converts it (False: known only to refuse it, with its factor).
    """

    name: str
    quantity: str
    size: Fraction
    converted: bool = True


# A Julian year of 365.25 days (the astronomical and demographic convention); a month is a
# twelfth of a year.
_YEAR_DAYS = Fraction(1461, 4)


def _plural(*words: str) -> tuple[str, ...]:
    return tuple(f for w in words for f in (w, w + "s"))


UNITS: dict[str, tuple[Unit, tuple[str, ...]]] = {
    "years": (Unit("years", "time", Fraction(1)), ("y", "yr", "yrs", "year", "years")),
    "months": (Unit("months", "time", Fraction(1, 12)), ("mo", "mos", "month", "months")),
    "weeks": (Unit("weeks", "time", 7 / _YEAR_DAYS), ("wk", "wks", "week", "weeks")),
    "days": (Unit("days", "time", 1 / _YEAR_DAYS), ("d", "day", "days")),
    "mm": (Unit("mm", "length", Fraction(1, 1000)), ("mm", *_plural("millimetre", "millimeter"))),
    "cm": (Unit("cm", "length", Fraction(1, 100)), ("cm", *_plural("centimetre", "centimeter"))),
    "m": (Unit("m", "length", Fraction(1)), ("m", *_plural("metre", "meter"))),
    "g": (Unit("g", "mass", Fraction(1, 1000)), ("g", *_plural("gram", "gramme"))),
    "kg": (Unit("kg", "mass", Fraction(1)), ("kg", *_plural("kilogram", "kilogramme", "kilo"))),
    # Exact too, but not converted: a height of 5'7" or a weight of 11 st 3 lb is no number,
    # and these are rare in BIDS tables. Known, to refuse them with the scale: that converts.
    "in": (Unit("in", "length", Fraction(254, 10000), False), ("in", "inch", "inches")),
    "ft": (Unit("ft", "length", Fraction(3048, 10000), False), ("ft", "foot", "feet")),
    "lb": (Unit("lb", "mass", Fraction(45359237, 10**8), False), ("lb", "lbs", *_plural("pound"))),
}
# Spelling (case folded) -> unit.
_SPELLINGS = {spelling: unit for unit, spellings in UNITS.values() for spelling in spellings}
# How far a user's scale may be from the exact factor before the log says so (0.0833 for 1/12).
_SCALE_TOLERANCE = 0.01


def parse_unit(text: object) -> Unit | None:
    """The unit ``text`` names, without case, singular or plural; None for any other text.

    Parameters
    ----------
    text : object
        A ``Units`` value of ``participants.json`` or a variable's ``units`` in the catalogue.

    Returns
    -------
    Unit or None
    """
    if not isinstance(text, str):
        return None
    return _SPELLINGS.get(" ".join(text.split()).casefold().removesuffix("."))


class UnitsMismatch(ValueError):
    """The column's units are known to differ from the variable's, and LCM does not convert.

    Attributes
    ----------
    reason, hint : str
        What differs, and the fix (a transform in the catalogue's dataset entry).
    """

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


@dataclass(frozen=True)
class ColumnUnits:
    """How the store reads a column whose ``participants.json`` gives other units.

    Attributes
    ----------
    variable, column : str
    declared : str
        ``participants.json``'s ``Units``, as written.
    target : str
        The catalogue variable's units.
    factor : Fraction or None
        The values are multiplied by it; None: read as written (``note`` says why).
    note : str
        What the log says when nothing is converted ("" with a conversion).
    warn : bool
        Whether the note is a warning: units LCM does not know, or a scale far from the exact
        factor.
    """

    variable: str
    column: str
    declared: str
    target: str
    factor: Fraction | None
    note: str = ""
    warn: bool = False

    def describe(self) -> str:
        """``age: months -> years (x 1/12)``, as the log and the store's provenance say it."""
        if self.factor is None:
            return f"{self.variable}: {self.note}"
        return f"{self.variable}: {self.declared} -> {self.target} (x {factor_text(self.factor)})"

    def apply(self, number: float) -> float:
        """``number`` in the catalogue's units (unchanged without a conversion).

        Parameters
        ----------
        number : float
            A value of the column, in its declared units.

        Returns
        -------
        float
        """
        if self.factor is None:
            return number
        return number * self.factor.numerator / self.factor.denominator


def column_units(
    var: Variable, col: ColumnCoding, declared: object, where: str = ""
) -> ColumnUnits | None:
    """How ``col``, in the units ``participants.json`` declares, reads as ``var``.

    Parameters
    ----------
    var : Variable
        The catalogue variable (its ``units``: after the dataset's transform).
    col : ColumnCoding
        The dataset's coding of the column: a ``scale:`` or ``map:`` of the user's is the
        conversion into ``var.units``, so nothing is converted (a ``scale:`` far from the exact
        factor is noted); ``range_midpoint`` only reads a value, which is then converted.
    declared : object
        The column's ``Units`` in ``participants.json`` (None when it gives none).
    where : str, optional
        The coding's place in the catalogue (``datasets.<name>.columns.<variable>``), named
        in the fix.

    Returns
    -------
    ColumnUnits or None
        None when nothing is declared, ``var`` is no number or has no units, or both name one
        unit (``year`` and ``years``); a conversion (``factor``); or a note (``factor`` None)
        for units LCM does not know (read as written) or a transform of the user's.

    Raises
    ------
    UnitsMismatch
        Both units are known, differ, and LCM does not convert one to the other (another
        quantity, or inches, feet, pounds), and the coding has no transform.
    """
    if not isinstance(declared, str) or not declared.strip() or not var.is_numeric:
        return None
    declared = declared.strip()
    if not var.units or declared.casefold() == var.units.strip().casefold():
        return None
    source, target = parse_unit(declared), parse_unit(var.units)
    if source is not None and source == target:
        return None

    def note(text: str, warn: bool = False) -> ColumnUnits:
        return ColumnUnits(var.name, col.column, declared, var.units, None, text, warn)

    said = f"participants.json gives column {col.column!r} in {declared!r}, the catalogue"
    exact = _factor(source, target)
    if col.scale is not None or col.map:
        transform = f"scale: {col.scale:g}" if col.scale is not None else "map:"
        text = f"{said} reads it in {var.units!r} by its {transform} (not converted again)"
        off = (
            col.scale is not None
            and exact is not None
            and not math.isclose(col.scale, float(exact), rel_tol=_SCALE_TOLERANCE)
        )
        if off:
            text += f"; {source.name} -> {target.name} is x {factor_text(exact)}: check the scale"
        return note(text, warn=off)
    if source is None or target is None:
        return note(
            f"{said} reads {var.name!r} in {var.units!r}: {declared!r} is no unit LCM converts "
            f"(it converts {', '.join(n for n, (u, _) in UNITS.items() if u.converted)}), so "
            f"its values are read as written, in {var.units!r}",
            warn=True,
        )
    if exact is not None and source.converted and target.converted:
        return ColumnUnits(var.name, col.column, declared, var.units, exact)
    place = where or f"the catalogue's dataset entry (columns.{var.name})"
    json_fix = 'the column\'s "Units" in participants.json'
    if source.quantity != target.quantity:
        raise UnitsMismatch(
            f"{said}'s {var.name!r} is in {var.units!r}: {declared!r} is a {source.quantity}, "
            f"not a {target.quantity}.",
            f"Fix {json_fix}, or write the transform into {var.units} in {place}: "
            f"{{column: {col.column}, scale: 1}} reads the values as {var.units} as written "
            "(each value is multiplied by the scale).",
        )
    foreign = declared if not source.converted else var.units
    raise UnitsMismatch(
        f"{said}'s {var.name!r} is in {var.units!r}: LCM does not convert {foreign}.",
        f"Write the conversion in {place}: {{column: {col.column}, scale: {float(exact):.10g}}} "
        f"({source.name} -> {target.name}; each value is multiplied by the scale), or fix "
        f"{json_fix}.",
    )


def factor_text(factor: Fraction) -> str:
    """A conversion factor as the log writes it: ``100``, ``1/12``, ``30.4375``, ``1/365.25``,
    else six significant digits.

    Parameters
    ----------
    factor : Fraction

    Returns
    -------
    str
    """
    if factor.denominator == 1:
        return str(factor.numerator)
    if factor.numerator == 1:
        return f"1/{factor.denominator}"
    if _is_decimal(factor):
        return f"{float(factor):g}"
    if _is_decimal(1 / factor):
        return f"1/{float(1 / factor):g}"
    return f"{float(factor):.6g}"


def _is_decimal(value: Fraction) -> bool:
    """Whether ``value`` is a finite decimal of at most six significant digits."""
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1 and len(f"{float(value):g}".replace(".", "").lstrip("0-")) <= 6


def _factor(source: Unit | None, target: Unit | None) -> Fraction | None:
    """source -> target, when both are units of one quantity."""
    if source is None or target is None or source.quantity != target.quantity:
        return None
    return source.size / target.size
