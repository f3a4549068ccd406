"""Derivative tables shared by several stages: what "included" means and why runs were left out.

The connectome stage writes a QC table per dataset (and ingest a manifest), the store reads it
to pick the runs it keeps, and the report and error messages summarise the runs left out. They
parse the ``included`` column and phrase the exclusion reasons here, once, so that a run the
report calls included is a run the store keeps.
"""

from __future__ import annotations

import pandas as pd

from lcm.exceptions import InputDataError

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def included_mask(values: pd.Series, source: str) -> pd.Series:
    """The ``included`` column of a manifest or QC table as booleans.

    Parameters
    ----------
    values : pandas.Series
        The column as read (booleans, or the strings ``true``/``false``, ``1``/``0``).
    source : str
        The table's path, named in the error.

    Raises
    ------
    InputDataError
        A value other than true/false (a hand-edited ``yes`` is refused, not guessed).
    """
    text = values.astype(str).str.strip().str.lower()
    bad = sorted(set(text) - _TRUE - _FALSE)
    if bad:
        raise InputDataError(
            f"{source}: column 'included' must be true or false, got {bad[:3]}.",
            hint="Rewrite the table with LCM (rerun the stage that wrote it).",
        )
    return text.isin(_TRUE)


def exclusion_reasons(table: pd.DataFrame, limit: int = 3) -> str:
    """Why the runs of ``table`` were excluded, in one line: counts per reason, examples.

    ``table`` is a manifest (``reason_code``, ``reason``) or a QC table (``reason``); runs are
    counted per code where there is one, else per reason text.
    """
    excluded = table[~included_mask(table["included"], "table")]
    if excluded.empty:
        return "no run listed"
    reasons = excluded["reason"].fillna("").astype(str).str.replace("\n", " ")
    codes = excluded["reason_code"].fillna("").astype(str) if "reason_code" in excluded else None
    keys = codes.where(codes != "", reasons) if codes is not None else reasons
    parts = []
    for key, count in keys.value_counts().head(limit).items():
        example = reasons[keys == key].iloc[0]
        parts.append(f"{count} x {key}" + (f" (e.g. {example})" if example != key else ""))
    more = keys.nunique() - limit
    return "; ".join(parts) + (f"; and {more} other reason(s)" if more > 0 else "")
