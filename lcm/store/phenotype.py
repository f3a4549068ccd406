"""Phenotype ingestion: a dataset's own table -> typed catalogue variables, validated.

Each dataset names and codes its variables differently (sex as M/F, 1/2 or 0/1; age in years,
months or ranges such as "26-30"). The catalogue says how; this module applies it and refuses
anything it cannot interpret, naming file, row, column, value and the rule broken. The table's
sidecar (``participants.json`` beside ``participants.tsv``) is read here too: its ``Levels``
name codes (:mod:`lcm.store.coding`), its ``Units`` are converted to the catalogue's
(:mod:`lcm.store.units`).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lcm.catalogue import Catalogue, ColumnCoding, Variable, parse_number
from lcm.docstrings import fill_doc
from lcm.exceptions import InputDataError
from lcm.io.bids_names import check_label
from lcm.io.derivatives import exclusion_reasons, included_mask
from lcm.io.file_kind import not_a_file
from lcm.io.qc_table import INCLUDED, SUBJECT
from lcm.store.units import ColumnUnits, UnitsMismatch, column_units, factor_text

log = logging.getLogger(__name__)

# "#N/A" is what Excel shows, and exports, for a lookup that found nothing. "." (SAS, Stata) is
# left out: it could be a level, and it reads as no number anyway.
NA_VALUES = ("", "n/a", "N/A", "NA", "na", "nan", "NaN", "None", "#N/A", "-999", "-9999")
# The numeric missing codes of NA_VALUES, matched by value: "-999.0" and "-9999.00" too.
_NA_NUMBERS = (-999.0, -9999.0)
# A number written with a decimal comma: 25,5.
_DECIMAL_COMMA_RE = re.compile(r"^-?\d+,\d+$")
# What a JSON document that is no object holds, as JSON names it.
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
# Bad cells listed in one error; the rest are counted.
MAX_LISTED = 10


class BadCell(NamedTuple):
    """One phenotype value the catalogue cannot read."""

    row: int  # line of the file (the header is line 1)
    column: str
    value: str
    reason: str
    hint: str

    def describe(self) -> str:
        """``row R, column 'C', value 'V': reason``, as listed in the error."""
        return f"row {self.row}, column {self.column!r}, value {self.value!r}: {self.reason}"


class _BadValue(ValueError):
    """Raised inside the conversion of one cell; collected as a :class:`BadCell`."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def read_table(
    path: str | Path, blank_lines: bool = False, setting: str = "datasets.<name>.phenotype"
) -> pd.DataFrame:
    """Read a TSV or CSV phenotype table as strings (the separator follows the extension).

    Parameters
    ----------
    path : path-like
        The phenotype file: ``.csv`` is read as CSV, any other extension as TSV.
    blank_lines : bool, default False
        Keep empty lines as rows of empty cells, so that data row ``i`` is line ``i + 2`` of
        the file (as a spreadsheet numbers it) also after a blank line.
    setting : str, default "datasets.<name>.phenotype"
        The setting that gave ``path`` (``--phenotype`` on the command line), named in hints.

    Returns
    -------
    pandas.DataFrame
        Every cell a string, as written (no value is read as missing here).

    Raises
    ------
    InputDataError
        The file is missing, unreadable, binary, not UTF-8, not a table of its separator, or
        read as one column whose header holds another separator.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"Phenotype file {not_a_file(path)}: {path}", hint=f"Check {setting}.")
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    fix = "Save it as a UTF-8 text table: TSV, or CSV with a .csv extension."
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise InputDataError(
            f"Cannot read phenotype file {path}: {exc.strerror}.",
            hint=f"Check the file's permissions and {setting}.",
        ) from None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode Text" export
        raise InputDataError(
            f"Phenotype file {path} is UTF-16 text (a spreadsheet's 'Unicode Text' export), "
            "not UTF-8.",
            hint=fix + " (Excel: 'CSV UTF-8'; or iconv -f UTF-16 -t UTF-8.)",
        )
    # NUL bytes never occur in a text table; pandas would read them into garbled cells.
    nul = head.find(b"\0")
    if nul >= 0:
        raise InputDataError(
            f"Phenotype file {path} is binary (NUL byte at offset {nul}), not a TSV/CSV table "
            "(a spreadsheet or a compressed file?).",
            hint=fix,
        )
    try:
        table = pd.read_csv(
            path, sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=not blank_lines
        )
    except UnicodeDecodeError as exc:
        raise InputDataError(
            f"Phenotype file {path} is not UTF-8 text (byte {exc.object[exc.start : exc.end]!r}: "
            f"{exc.reason}).",
            hint=fix,
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise InputDataError(
            f"Cannot read phenotype file {path} as a {'CSV' if sep == ',' else 'TSV'} table: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}.",
            hint=fix + " One header row, one row per participant.",
        ) from None
    _check_separator(table, path, sep)
    _check_fields(path, sep)
    return table


def _check_fields(path: Path, sep: str) -> None:
    """Refuse a column name given twice, or a row with fewer fields than the header.

    pandas renamed a second ``age`` to ``age.1`` (the first was stored without a word; BIDS
    validators refuse it), and filled the fields a short row lacks with empty cells, read as
    missing values: a line cut after its fifth field stored the subject without its diagnosis.
    """
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = csv.reader(fh, delimiter=sep)
        header = next(rows, [])
        # (Unnamed columns, an export's trailing separators, are no names given twice.)
        twice = sorted({n for n in header if n.strip() and header.count(n) > 1})
        if twice:
            raise InputDataError(
                f"Phenotype file {path} has the column(s) {twice} twice in its header.",
                hint="Give every column its own name (or delete the copy), and save it again.",
            )
        short: list[tuple[int, int]] = []  # (line, fields)
        for row in rows:
            if len(row) < len(header) and any(field.strip() for field in row):
                short.append((rows.line_num, len(row)))
    if short:
        raise InputDataError(
            f"Phenotype file {path}: line(s) {_lines([line for line, _ in short])} have fewer "
            f"fields than its header's {len(header)} (line {short[0][0]}: {short[0][1]}).",
            hint="Every row needs a field for every column: write n/a for a missing value "
            "(BIDS), and check the separators of those lines.",
        )


_SEPARATORS = {",": "a comma", ";": "a semicolon", "\t": "a tab"}


def _check_separator(table: pd.DataFrame, path: Path, sep: str) -> None:
    """Refuse a table read as one column whose header holds another separator (a semicolon CSV
    from a spreadsheet set to a European locale, a TSV saved as .csv)."""
    if table.shape[1] != 1:
        return
    header = str(table.columns[0])
    other = next((c for c in _SEPARATORS if c != sep and c in header), None)
    if other is not None:
        hint = "Save it with tabs as .tsv or with commas as .csv (a spreadsheet's 'CSV UTF-8')."
        if other == ";":
            # A spreadsheet writes ';' where ',' is its decimal separator: its numbers read 1,5,
            # which LCM refuses (1,500 may be a thousand), so they are fixed before saving.
            first = header.split(";")[0]
            hint += (
                " A semicolon CSV usually has decimal commas too (1,5 for 1.5): set the "
                "spreadsheet's decimal separator to '.' before saving (Excel: File > Options > "
                "Advanced, 'Use system separators' off; LibreOffice: the locale in Tools > "
                "Options > Language Settings), or convert it with pandas, IDs kept as text: "
                f"pd.read_csv({str(path)!r}, sep=';', decimal=',', dtype={{{first!r}: str}})"
                f".to_csv({str(path.with_suffix('.tsv'))!r}, sep='\\t', index=False)."
            )
        raise InputDataError(
            f"Phenotype file {path} reads as one column {header[:80]!r}: its separator is "
            f"{_SEPARATORS[other]}, not {_SEPARATORS[sep]} as its extension says.",
            hint=hint,
        )


def sidecar_path(phenotype: str | Path) -> Path:
    """The JSON sidecar of a phenotype table: its path with a ``.json`` suffix
    (``participants.json`` beside ``participants.tsv``, as BIDS names it).

    Parameters
    ----------
    phenotype : path-like
        The phenotype table.

    Returns
    -------
    pathlib.Path
    """
    return Path(phenotype).with_suffix(".json")


def read_sidecar(phenotype: str | Path) -> dict[str, Any]:
    """``participants.json`` beside the phenotype table: ``{}`` when there is none (it is
    optional: without it, numeric codes are not mapped and units not converted).

    Parameters
    ----------
    phenotype : path-like
        The phenotype table; its sidecar is :func:`sidecar_path`.

    Returns
    -------
    dict
        The sidecar's JSON object; ``{}`` when there is no sidecar.

    Raises
    ------
    InputDataError
        The sidecar exists but is not a readable UTF-8 JSON object: naming the file, where it
        is broken, and the fix. Read as absent, an age it gives in months was stored as years.
    """
    path = sidecar_path(phenotype)
    if not path.is_file():
        return {}
    hint = (
        f"Fix the JSON of {path}, or remove the file (without it, no column's Units are "
        "converted and no Levels read)."
    )
    try:
        # utf-8-sig: a byte-order mark (some Windows editors write one) is no JSON error.
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise InputDataError(
            f"Phenotype sidecar {path} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}.",
            hint=hint,
        ) from None
    except UnicodeDecodeError as exc:
        raise InputDataError(
            f"Phenotype sidecar {path} is not UTF-8: {exc}",
            hint=f"Save {path} as UTF-8 (JSON's encoding), or remove it.",
        ) from None
    except OSError as exc:
        raise InputDataError(f"Cannot read phenotype sidecar {path}: {exc}", hint=hint) from None
    if not isinstance(data, dict):
        raise InputDataError(
            f"Phenotype sidecar {path} holds a JSON {_JSON_TYPES.get(type(data), 'value')}, not "
            'an object of columns (BIDS: {"age": {"Units": "months"}, "sex": {"Levels": ...}}).',
            hint=hint,
        )
    return data


def declared_units(sidecar: dict[str, Any] | None, column: str) -> object:
    """``participants.json``'s ``Units`` of ``column`` (None when it gives none).

    Parameters
    ----------
    sidecar : dict or None
        The sidecar, as :func:`read_sidecar` returns it.
    column : str
        A column of the phenotype table.

    Returns
    -------
    object
        The ``Units`` value as written (a string in a valid sidecar), or None.
    """
    entry = (sidecar or {}).get(column)
    return entry.get("Units") if isinstance(entry, dict) else None


def phenotype_units(
    path: str | Path, dataset: str, catalogue: Catalogue, sidecar: dict[str, Any] | None = None
) -> dict[str, ColumnUnits]:
    """The units :func:`read_phenotype` reads ``dataset``'s columns in, by variable.

    A column whose ``participants.json`` ``Units`` differ from its variable's units is
    converted where the conversion is exact and well known (:mod:`lcm.store.units`), unless
    the catalogue's coding of it has a ``scale:`` or ``map:``, the user's own conversion.

    Parameters
    ----------
    path : path-like
        The phenotype table (its sidecar is read unless ``sidecar`` is given).
    dataset : str
        Its coding in ``catalogue``.
    catalogue : Catalogue
    sidecar : dict, optional
        The sidecar, already read.

    Returns
    -------
    dict of str to ColumnUnits
        The variables whose units are converted (``factor``) or noted (``factor`` None, and
        ``note`` says why); the others are read as before.

    Raises
    ------
    InputDataError
        A column's units are known to differ from its variable's and LCM does not convert
        them: naming the sidecar, both units and the transform that fixes it.
    """
    coding = catalogue.coding(dataset)
    if sidecar is None:
        sidecar = read_sidecar(path)
    found: dict[str, ColumnUnits] = {}
    refused: list[UnitsMismatch] = []
    for name, col in coding.columns.items():
        where = f"{catalogue.path} (datasets.{dataset}.columns.{name})"
        declared = declared_units(sidecar, col.column)
        try:
            units = column_units(catalogue.variables[name], col, declared, where)
        except UnitsMismatch as exc:
            refused.append(exc)
            continue
        if units is not None:
            found[name] = units
    if refused:
        raise InputDataError(
            f"Phenotype file {path}: "
            + " ".join(r.reason for r in refused)
            + f" ({sidecar_path(path)})",
            hint=" ".join(r.hint for r in refused) + _generated_hint(catalogue, dataset, path),
        )
    return found


def read_phenotype(
    path: str | Path,
    dataset: str,
    catalogue: Catalogue,
    scanned: set[str] | None = None,
    setting: str | None = None,
) -> pd.DataFrame:
    """Read ``dataset``'s phenotype file and return typed catalogue variables.

    Every bad participant ID (invalid or duplicate) and every value the catalogue cannot read
    is collected, and one error lists them all (IDs first; the first :data:`MAX_LISTED`, then a
    count), so that a file is fixed in one pass. Rows without an ID (blank rows counted, others
    named by line) are left out, logged: no run can be theirs. Rows of one participant alike in
    every value read are kept once.

    Parameters
    ----------
    path : path-like
        TSV or CSV phenotype table.
    dataset : str
        Dataset name (its coding is looked up in ``catalogue``).
    catalogue : Catalogue
    scanned : set of str, optional
        Subject labels of the dataset's connectomes in this store run. A bad value in the row
        of a participant without one (matched as :func:`match_scanned_subjects` matches) stops
        nothing: it reads as missing, logged, as that row feeds no stored run. So does an
        invalid participant ID that no fix could make a scanned subject's label (its letters
        and digits, case aside, name none): its row is left out, logged; and so are
        the differing rows of one such participant (all left out, logged: which is meant is
        unknown, and nothing stored comes from them). Without ``scanned``, every row counts.
    setting : str, optional
        The setting that gave ``path``, named in hints: ``--phenotype`` on the command line;
        by default the config's key, ``datasets.<dataset>.phenotype``.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject`` (BIDS label), ``site`` (str, stripped; "" without a site column or
        where the cell is empty or a missing code, logged) and one column per catalogue
        variable: float64 for continuous/ordinal, object (level or None) for binary/categorical.
        Variables the dataset does not provide are all missing.

    Raises
    ------
    InputDataError
        A missing column, or invalid or duplicate participant IDs (every row, but the invalid
        IDs that name no scanned subject and the duplicates of unscanned or identical rows) and
        values the catalogue cannot read (in the rows that count), in one error: file, row
        (the file's line), column, value and rule of each.
    """
    out, bad_ids, bad, left_out, _ = _read_rows(path, dataset, catalogue, scanned, setting)
    if bad_ids or bad:
        # IDs and values in one error: a file with several bad IDs took one run per ID.
        error = _bad_cells_error(bad, path, bad_ids)
        if bad:
            error.hint = (error.hint or "") + _generated_hint(catalogue, dataset, path)
        raise error
    return out[~left_out].reset_index(drop=True)


def check_duplicate_ids(
    path: str | Path, dataset: str, catalogue: Catalogue, scanned: set[str] | None = None
) -> None:
    """Refuse, before anything is built, the repeated participant IDs :func:`read_phenotype`
    would refuse after every connectome: by its rule, so rows alike in every value read,
    and (with ``scanned``) rows of participants without scans, still pass.

    Its logs are left to the store, which reads the file again.

    Parameters
    ----------
    path : path-like
        TSV or CSV phenotype table.
    dataset : str
        Dataset name (its coding is looked up in ``catalogue``).
    catalogue : Catalogue
    scanned : set of str, optional
        Subject labels that may have connectomes, as :func:`read_phenotype` takes them.

    Raises
    ------
    InputDataError
        Naming the file, each repeated ID, its line and the line it repeats, and the fix.
    """
    log.disabled = True
    try:
        _, bad_ids, _, _, repeated = _read_rows(path, dataset, catalogue, scanned, None)
    finally:
        log.disabled = False
    duplicates = [c for c in bad_ids if c.row in repeated]
    if duplicates:
        raise _bad_cells_error([], path, duplicates)


def _read_rows(
    path: str | Path,
    dataset: str,
    catalogue: Catalogue,
    scanned: set[str] | None,
    setting: str | None,
) -> tuple[pd.DataFrame, list[BadCell], list[BadCell], np.ndarray, set[int]]:
    """:func:`read_phenotype`'s reading: its typed rows, the bad IDs and values that stop it,
    the rows left out, and the file lines of the repeated IDs."""
    coding = catalogue.coding(dataset)
    setting = setting or f"datasets.{dataset}.phenotype"
    # Data row i is line i + 2 of the file, blank lines counted.
    raw = read_table(path, blank_lines=True, setting=setting)
    needed = [coding.id_column, *(c.column for c in coding.columns.values())]
    if coding.site_column:
        needed.append(coding.site_column)
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise InputDataError(
            f"Phenotype file {path} lacks column(s) {missing} named by the catalogue for dataset "
            f"{dataset!r} (file has {list(raw.columns)[:20]}).",
            hint=f"Fix the column names in {catalogue.path} (datasets.{dataset}) or in the file."
            + _generated_hint(catalogue, dataset, path),
        )
    out = pd.DataFrame(index=raw.index)
    out["subject"], bad_ids, repeats = _subject_labels(raw[coding.id_column], coding.id_column)
    # Rows without an ID (a master sheet's trailing blank rows) can be no run's: left out.
    dropped = _rows_without_id(raw, coding.id_column, path, dataset)
    bad_ids = [c for c in bad_ids if not dropped[c.row - 2]]
    skipped = np.zeros(len(out), dtype=bool)  # rows whose invalid ID names no scanned subject
    if scanned is not None and bad_ids:
        bad_ids, skipped = _skip_unmatchable_ids(bad_ids, len(out), scanned, path, dataset)
    if coding.site_column:
        out["site"] = _sites(raw, coding.site_column, path, dataset, ~dropped)
    else:
        out["site"] = ""
    units = phenotype_units(path, dataset, catalogue)
    for unit in units.values():
        if unit.factor is not None:
            log.info("%s: %s, by %s's Units", dataset, unit.describe(), sidecar_path(path))
        else:
            log.log(logging.WARNING if unit.warn else logging.INFO, "%s: %s", dataset, unit.note)
    bad: list[BadCell] = []
    for name, var in catalogue.variables.items():
        col = coding.columns.get(name)
        if col is None:
            out[name] = np.nan if var.is_numeric else None
        else:
            fix = f"{catalogue.path} (datasets.{dataset}.columns.{name})"
            out[name], cells = _convert(raw[col.column], var, col, fix, units.get(name))
            bad += cells
    bad = [c for c in bad if not dropped[c.row - 2]]
    if repeats:
        bad_ids, repeated = _resolve_duplicates(out, repeats, bad_ids, bad, scanned, path, dataset)
        dropped = dropped | repeated
        bad = [c for c in bad if not dropped[c.row - 2]]
    if scanned is not None and bad:
        bad = _drop_unscanned(bad, out["subject"], scanned, path, dataset, skipped | dropped)
    return out, bad_ids, bad, skipped | dropped, {r + 2 for r in repeats}


def _lines(rows: list[int]) -> str:
    """``2, 6`` (file lines), the first :data:`MAX_LISTED` and a count of the rest."""
    text = ", ".join(str(r) for r in rows[:MAX_LISTED])
    return text + (f" and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else "")


def _rows_without_id(raw: pd.DataFrame, column: str, path: str | Path, dataset: str) -> np.ndarray:
    """The rows whose participant ID is empty (or a missing code), to leave out.

    No run can be such a row's, whatever its other cells hold. Blank rows (every cell empty:
    the trailing rows of an Excel export, blank lines) are counted at INFO; rows with values
    are named by line at WARNING, with the fix.
    """
    # A writable copy: pandas 3 hands out read-only views.
    no_id = np.array(raw[column].map(is_missing), dtype=bool)
    if not no_id.any():
        return no_id
    empty = raw.drop(columns=[column]).map(is_missing).all(axis=1).to_numpy(dtype=bool)
    blank = no_id & empty
    if blank.any():
        log.info("%s: %d blank row(s) of %s left out", dataset, int(blank.sum()), path)
    lines = [int(i) + 2 for i in np.flatnonzero(no_id & ~blank)]
    if lines:
        log.warning(
            "%s: %d row(s) of %s without a participant ID in column %r left out (line %s): no "
            "run can be theirs. Give each its participant ID, or delete the row",
            dataset,
            len(lines),
            path,
            column,
            _lines(lines),
        )
    return no_id


def _resolve_duplicates(
    out: pd.DataFrame,
    repeats: dict[int, tuple[int, str]],
    bad_ids: list[BadCell],
    bad: list[BadCell],
    scanned: set[str] | None,
    path: str | Path,
    dataset: str,
) -> tuple[list[BadCell], np.ndarray]:
    """The duplicate IDs that stop the store, and the rows left out instead (logged).

    A participant's rows that agree in every value LCM reads (label, or its number unless the
    scans hold both labels: :func:`_one_participant`; site, typed variables; none unreadable)
    are one participant written twice: the first is kept (INFO). Rows of labels the scans
    hold each as written (``1`` and ``001``, two subject folders) are two participants. Rows that
    differ are ambiguous: they stop the store when the participant has connectomes in this run
    (``scanned``, matched by number as :func:`match_scanned_subjects` matches; every
    participant without ``scanned``), else all of them are left out (WARNING): nothing stored
    comes from them.
    """
    groups: dict[int, list[int]] = {}
    for row, (first, _) in repeats.items():
        groups.setdefault(first, []).append(row)
    values = [c for c in out.columns if c != "subject"]
    bad_lines = {c.row for c in bad}
    stored = None if scanned is None else {_number(s) for s in scanned}
    left_out = np.zeros(len(out), dtype=bool)
    resolved: set[int] = set()  # rows whose duplicate ID no longer stops the store
    alike: list[str] = []
    unstored: list[str] = []
    for first, rows in groups.items():
        label = str(out["subject"].iloc[first])
        lines = [first + 2, *(r + 2 for r in rows)]
        described = f"{label!r} (lines {_lines(lines)})"
        written = [label, *(repeats[r][1] for r in rows)]
        if scanned is not None and len(set(written)) == len(written) and set(written) <= scanned:
            # sub-1 and sub-001 both scanned: two participants, each row its own (they stopped
            # the store as one participant written twice, with no way to go on).
            for r in rows:
                out.loc[out.index[r], "subject"] = repeats[r][1]
            resolved.update(rows)
            continue
        if (
            _one_participant({label, *(repeats[r][1] for r in rows)}, scanned)
            and not bad_lines & set(lines)
            and all(_same(out[values].iloc[first], out[values].iloc[r]) for r in rows)
        ):
            left_out[rows] = True
            resolved.update(rows)
            alike.append(described)
        elif stored is not None and _number(label) not in stored:
            left_out[[first, *rows]] = True
            resolved.update(rows)
            unstored.append(described)
    if alike:
        log.info(
            "%s: identical rows of one participant in %s, one kept: %s",
            dataset,
            path,
            ", ".join(alike[:MAX_LISTED]),
        )
    if unstored:
        log.warning(
            "%s: %d participant ID(s) of %s repeated with other values, their rows left out "
            "(participants without connectomes in this store run: nothing stored comes from "
            "them): %s%s. Keep one row per participant to store their variables",
            dataset,
            len(unstored),
            path,
            ", ".join(unstored[:MAX_LISTED]),
            f" and {len(unstored) - MAX_LISTED} more" if len(unstored) > MAX_LISTED else "",
        )
    return [c for c in bad_ids if c.row - 2 not in resolved], left_out


def _one_participant(labels: set[str], scanned: set[str] | None) -> bool:
    """Whether rows labelled ``labels`` (one number: ``1``, ``001``) are one participant's.

    They are, unless the scans hold two of those labels as written (``sub-1`` and ``sub-001``,
    two folders): then no row can be told to be either's.
    """
    return len(labels) == 1 or scanned is None or len(labels & scanned) < 2


def _same(a: pd.Series, b: pd.Series) -> bool:
    """Whether two typed rows hold the same values (missing equals missing)."""
    return all((pd.isna(x) and pd.isna(y)) or x == y for x, y in zip(a, b, strict=True))


def _skip_unmatchable_ids(
    bad_ids: list[BadCell], n_rows: int, scanned: set[str], path: str | Path, dataset: str
) -> tuple[list[BadCell], np.ndarray]:
    """The bad IDs that stop the store, and the rows skipped (logged) instead.

    An invalid ID (no BIDS label) is skipped when none of the labels it could be fixed to
    (:func:`_id_candidates`) names a scanned subject: that row feeds no stored run, as a bad
    value in an unscanned row does. Empty and duplicate IDs, and invalid IDs that could name a
    scanned subject, still stop the store.
    """
    scanned_lower = {s.lower() for s in scanned}
    scanned_numbers = {_number(s) for s in scanned if _is_number(s)}

    def may_match(label: str) -> bool:
        if _is_number(label):
            return _number(label) in scanned_numbers
        return label.lower() in scanned_lower

    keep: list[BadCell] = []
    skipped = np.zeros(n_rows, dtype=bool)
    for cell in bad_ids:
        candidates = _id_candidates(cell.value)
        # No letter or digit at all ("?"): who it is cannot be told, so it counts.
        if not candidates or any(may_match(c) for c in candidates):
            keep.append(cell)
        else:
            skipped[cell.row - 2] = True  # BadCell.row is the file's line: data row i is i + 2
    if skipped.any():
        first = next(c for c in bad_ids if skipped[c.row - 2])
        log.warning(
            "%s: %d row(s) of %s skipped: their participant IDs are no BIDS labels and name no "
            "subject with connectomes in this store run (first: %s %s)",
            dataset,
            int(skipped.sum()),
            path,
            first.describe(),
            first.hint,
        )
    return keep, skipped


def _generated_hint(catalogue: Catalogue, dataset: str, path: str | Path) -> str:
    """Where the coding of a dataset ``lcm run`` generated is replaced: a catalogue of the
    user's (its hint to edit ``map:`` in OUTPUT_DIR/variables.yaml was undone by the next run,
    which rewrites that file)."""
    if catalogue.generated != dataset:
        return ""
    return (
        f" The coding of {dataset!r} in {catalogue.path} was generated by lcm run from the "
        f"columns of {path}, and is rewritten by each run: give a catalogue of your own with "
        f"--config-file (variables: my_variables.yaml, with datasets.{dataset}: id_column, "
        "columns and their map:), or fix the values."
    )


def _drop_unscanned(
    bad: list[BadCell],
    subjects: pd.Series,
    scanned: set[str],
    path: str | Path,
    dataset: str,
    skipped: np.ndarray,
) -> list[BadCell]:
    """The bad cells of scanned participants' rows; the others (read as missing) logged.

    ``skipped`` marks the rows whose invalid ID names no scanned subject: they count as
    unscanned.
    """
    labelled = subjects.dropna()
    _, renamed = match_scanned_subjects(labelled.to_frame(), scanned)
    # A row whose ID is bad (None) counts: once its ID is fixed it may name a scanned subject,
    # unless no fix of it could (skipped).
    counted = (
        (subjects.isna().to_numpy() & ~skipped)
        | subjects.isin(scanned).to_numpy()
        | subjects.isin(list(renamed)).to_numpy()
    )
    # BadCell.row is the file's line: data row i is line i + 2.
    keep = [c for c in bad if counted[c.row - 2]]
    skipped = [c for c in bad if not counted[c.row - 2]]
    if skipped:
        log.warning(
            "%s: %d unreadable value(s) in %s, in the rows of %d participant(s) without "
            "connectomes in this store run, read as missing (first: %s)",
            dataset,
            len(skipped),
            path,
            len({c.row for c in skipped}),
            skipped[0].describe(),
        )
    return keep


def _bad_cells_error(
    bad: list[BadCell], path: str | Path, bad_ids: list[BadCell] | None = None
) -> InputDataError:
    """One error listing the first :data:`MAX_LISTED` bad cells and counting the rest.

    Bad participant IDs (``bad_ids``) come first, in file order, then the bad values.
    """
    bad_ids = sorted(bad_ids or [], key=lambda c: c.row)
    cells = bad_ids + sorted(bad, key=lambda c: c.row)
    hint = " ".join(dict.fromkeys(c.hint for c in cells))
    if len(cells) == 1:
        return InputDataError(f"Phenotype file {path}, {cells[0].describe()}", hint=hint)
    lines = [c.describe() for c in cells[:MAX_LISTED]]
    if len(cells) > MAX_LISTED:
        lines.append(f"... and {len(cells) - MAX_LISTED} more")
    counts = []
    if bad_ids:
        counts.append(f"{len(bad_ids)} bad participant ID(s) in column {bad_ids[0].column!r}")
    if bad:
        counts.append(f"{len(bad)} value(s) the catalogue cannot read")
    return InputDataError(
        f"Phenotype file {path}: {' and '.join(counts)}:\n  " + "\n  ".join(lines),
        hint=hint,
    )


def match_scanned_subjects(
    phenotype: pd.DataFrame, scanned: set[str]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Relabel phenotype subjects that name a scanned subject by number, leading zeros aside.

    Releases number subjects differently in file names and tables: ABIDE's files say
    ``0050002`` (``ROISignals_0050002.mat``, ``Pitt_0050002_rois_aal.1D``) where its phenotype's
    ``SUB_ID`` says ``50002``. A scanned label absent from the table takes the table's row whose
    label is the same number, when exactly one unmatched label on each side has that number.
    Labels that match as written are never touched.

    Parameters
    ----------
    phenotype : pandas.DataFrame
        Output of :func:`read_phenotype` (column ``subject``).
    scanned : set of str
        Subject labels of the dataset's runs (file names, listing).

    Returns
    -------
    (pandas.DataFrame, dict)
        The table with those rows relabelled (a copy when any is), and ``{phenotype label:
        scanned label}`` of the relabelled rows.
    """
    labels = set(phenotype["subject"])
    pending_scans = _by_number(scanned - labels)
    pending_rows = _by_number(labels - scanned)
    mapping = {
        rows[0]: scans[0]
        for number, scans in pending_scans.items()
        if len(scans) == 1 and len(rows := pending_rows.get(number, [])) == 1
    }
    if not mapping:
        return phenotype, {}
    out = phenotype.copy()
    out["subject"] = out["subject"].map(lambda s: mapping.get(s, s))
    return out, mapping


def log_rows_without_runs(
    phenotype: pd.DataFrame, qc: pd.DataFrame, path: str | Path, dataset: str
) -> tuple[list[str], list[str]]:
    """Log the phenotype rows that join no stored run: of subjects never scanned, and of
    scanned subjects whose every run was excluded (with the runs' reasons). No cohort holds
    them, and they were left out with no log line.

    Parameters
    ----------
    phenotype : pandas.DataFrame
        The table as matched to the scans (:func:`match_scanned_subjects`; column
        ``subject``).
    qc : pandas.DataFrame
        The dataset's rows of its QC table, included or not (``subject``, ``included``,
        ``reason``; ``reason_code``, ``run_key`` where written).
    path : path-like
        The phenotype file, named in the log lines.
    dataset : str

    Returns
    -------
    tuple of list of str
        The subjects of the rows never scanned, and of those whose runs were all excluded,
        each sorted (logged: their count and the first 10).
    """
    subjects = set(phenotype["subject"].dropna().astype(str))
    labels = qc[SUBJECT].astype(str)
    included = included_mask(qc[INCLUDED], f"QC table of {dataset!r}")
    unscanned = sorted(subjects - set(labels))
    excluded = sorted(subjects & set(labels) - set(labels[included]))
    if unscanned:
        log.info(
            "%s: %d phenotype row subject(s) of %s have no scan, so no run to join: not used (%s)",
            dataset,
            len(unscanned),
            path,
            _first(unscanned),
        )
    if excluded:
        # Why is the QC table's: the count per reason, and the first runs of each.
        log.info(
            "%s: %d phenotype row subject(s) of %s have scans but every run excluded, so no "
            "run to join: not used (%s); their runs' reasons: %s",
            dataset,
            len(excluded),
            path,
            _first(excluded),
            exclusion_reasons(qc[labels.isin(excluded)]),
        )
    return unscanned, excluded


def _first(labels: list[str], limit: int = 10) -> str:
    return ", ".join(labels[:limit]) + (", ..." if len(labels) > limit else "")


def _by_number(labels: set[str]) -> dict[str, list[str]]:
    """Digit-only labels grouped by their number (``"0050002"`` and ``"50002"`` together)."""
    groups: dict[str, list[str]] = {}
    for label in sorted(labels):
        if _is_number(label):
            groups.setdefault(_number(label), []).append(label)
    return groups


def _is_number(label: str) -> bool:
    return label.isascii() and label.isdigit()


def _number(label: str) -> str:
    """A digit-only label without its leading zeros (``"001"`` -> ``"1"``); others as they are.

    Letters are never digits, so ``"1"`` and ``"a1"`` stay apart.
    """
    return (label.lstrip("0") or "0") if _is_number(label) else label


@fill_doc
def missingness(table: pd.DataFrame, dataset: str, catalogue: Catalogue) -> pd.DataFrame:
    """Per-variable missingness of one dataset: ``dataset, variable, n, n_missing, fraction``.

    A variable the dataset maps that cannot vary here (every value missing, or one value in
    every participant) is said in ``problem``: pretraining gives it no query unless another
    dataset's values vary (:func:`lcm.model.targets.layout_from_catalogue`, whose wording
    this follows), and :func:`warn_uninformative` logs it.

    Parameters
    ----------
    table : pandas.DataFrame
        The variables of the stored participants, as :func:`read_phenotype` returns them (a
        scanned subject without a phenotype row as a row of missing values).
    %(dataset)s
    catalogue : Catalogue
        Its variables are the rows; its coding of ``dataset`` says which are provided.

    Returns
    -------
    pandas.DataFrame
        One row per catalogue variable, with columns ``dataset``, ``variable``, ``provided``
        (whether the dataset's coding maps it), ``n``, ``n_missing``, ``fraction_missing``,
        ``n_distinct`` (distinct values present) and ``problem`` (empty, or why a provided
        variable cannot vary in this dataset).
    """
    coding = catalogue.coding(dataset)
    rows = []
    for name in catalogue.variables:
        observed = table[name].dropna()
        n_missing = len(table) - len(observed)
        provided = name in coding.columns
        problem = ""
        if provided and len(table) and observed.empty:
            problem = "every value missing"
        elif provided and observed.nunique() == 1:
            problem = single_value(observed.iloc[0])
        rows.append(
            {
                "dataset": dataset,
                "variable": name,
                "provided": provided,
                "n": len(table),
                "n_missing": n_missing,
                "fraction_missing": n_missing / max(len(table), 1),
                "n_distinct": int(observed.nunique()),
                "problem": problem,
            }
        )
    return pd.DataFrame(rows)


def single_value(value: Any) -> str:
    """Why a variable whose every value is ``value`` cannot teach: ``a single value (constant:
    20)``, as the missingness report and pretraining's warning both say it.

    Parameters
    ----------
    value : Any
        The one value (a NumPy scalar is shown as its Python value).

    Returns
    -------
    str
    """
    value = value.item() if hasattr(value, "item") else value
    # 6 significant digits: a scaled 240 months is 19.999999999992 years.
    shown = f"{value:.6g}" if isinstance(value, float) else repr(value)
    return f"a single value (constant: {shown})"


def warn_uninformative(report: pd.DataFrame, path: str | Path, catalogue: Catalogue) -> list[str]:
    """Log a warning per variable that ``report`` (:func:`missingness`) says cannot vary.

    Parameters
    ----------
    report : pandas.DataFrame
        One dataset's missingness report.
    path : path-like
        The phenotype file its values came from, named in the warning.
    catalogue : Catalogue
        Its coding of the dataset names each variable's column.

    Returns
    -------
    list of str
        The variables warned about.
    """
    flagged = report[report["problem"] != ""]
    for row in flagged.itertuples():
        column = catalogue.coding(row.dataset).columns[row.variable].column
        log.warning(
            "%s: variable %r (column %r of %s) has %s in the %d stored participant(s): "
            "pretraining gives it no query unless another dataset gives it other values. "
            "Check the column and the catalogue's coding of it",
            row.dataset,
            row.variable,
            column,
            path,
            row.problem,
            row.n,
        )
    return flagged["variable"].tolist()


def is_missing(text: str) -> bool:
    """Whether a phenotype cell marks a missing value: one of :data:`NA_VALUES`, the numeric
    codes compared as numbers (``-999.0`` is ``-999``).

    Parameters
    ----------
    text : str
        The cell as read, surrounding whitespace ignored.

    Returns
    -------
    bool
    """
    text = text.strip()
    if text in NA_VALUES:
        return True
    return parse_number(text) in _NA_NUMBERS


def _sites(
    raw: pd.DataFrame, column: str, path: str | Path, dataset: str, counted: np.ndarray
) -> pd.Series:
    """The site column read by the rule of every other column: stripped, missing codes "".

    A missing site is stored as "" (the store's "no site", as for a dataset without a site
    column), never as a site named "n/a" or "-9999" that leave-site-out would make a fold of;
    " NYU" and "NYU" are one site. Only the ``counted`` rows are counted in the log (a blank row
    is no participant without a site).
    """
    sites = raw[column].map(lambda v: "" if is_missing(v) else v.strip())
    n_missing = int(((sites == "").to_numpy() & counted).sum())
    if n_missing:
        log.warning(
            "%s: %d of %d participant(s) have no site in column %r of %s (empty or a missing "
            "code); stored without one, so this dataset's tasks have no leave-site-out folds",
            dataset,
            n_missing,
            int(counted.sum()),
            column,
            path,
        )
    return sites


def _subject_labels(
    values: pd.Series, column: str
) -> tuple[list[str | None], list[BadCell], dict[int, tuple[int, str]]]:
    """The BIDS subject label of each participant ID, every bad ID, and the repeated IDs
    (``{row: (row of its first occurrence, its label)}``, rows counted from 0).

    Every row is read, so that one error lists every empty, invalid and duplicate ID (a
    duplicate names the row it repeats: ``sub-01`` and ``01`` are one participant, and so are
    ``1`` and ``001``, digit-only labels of one number, as :func:`match_scanned_subjects`
    matches them; ``01`` and ``010`` are two). A bad ID's label is None.
    """
    labels: list[str | None] = []
    bad: list[BadCell] = []
    repeats: dict[int, tuple[int, str]] = {}
    # _number(label) -> (file line, value, label) of its first row
    first: dict[str, tuple[int, str, str]] = {}
    for index, raw in enumerate(values):
        row, value = index + 2, str(raw)
        if is_missing(value):
            reason = "empty participant ID (or a missing-value code)."
            bad.append(BadCell(row, column, value, reason, "Every row needs a participant ID."))
            labels.append(None)
            continue
        try:
            label = check_label("sub", value.strip())
        except InputDataError as exc:
            bad.append(BadCell(row, column, value, *_invalid_id(value.strip(), exc.hint)))
            labels.append(None)
            continue
        if _number(label) in first:
            line, seen, seen_label = first[_number(label)]
            same = f" ({seen!r} and {value!r} name one participant)" if seen != value else ""
            if label != seen_label:  # the scans' subjects are matched so too
                same = same[:-1] + ": one number, leading zeros aside)"
            reason = f"duplicate participant ID: row {line} has it{same}."
            hint = "Keep one row per participant (merge sessions or visits first)."
            bad.append(BadCell(row, column, value, reason, hint))
            repeats[index] = (line - 2, label)
            labels.append(None)
            continue
        first[_number(label)] = (row, value, label)
        labels.append(label)
    return labels, bad, repeats


def _invalid_id(value: str, hint: str) -> tuple[str, str]:
    """Why ``value`` is no BIDS subject label, and the fix (one hint for every decimal ID)."""
    if (m := re.fullmatch(r"sub[^A-Za-z0-9]+([A-Za-z0-9]+)", value, re.IGNORECASE)) and not (
        value.startswith("sub-")
    ):
        return (
            "invalid BIDS 'sub' label: the prefix is not 'sub-'.",
            f"BIDS writes the prefix in lower case with '-': write sub-{m.group(1)} (or "
            f"{m.group(1)}).",
        )
    label = value.removeprefix("sub-")
    if re.fullmatch(r"[0-9]+\.0+", label):
        return (
            "invalid BIDS 'sub' label: a number written as a decimal.",
            "A spreadsheet saved the ID column as numbers (1.0 for 1): save it as text, "
            "without '.0'.",
        )
    if re.fullmatch(r"[A-Za-z0-9_-]+", label) and re.search(r"[A-Za-z0-9]", label):
        # ABCD's NDAR_INV001: BIDS converters (heudiconv, dcm2bids) drop the '_' and '-'.
        stripped = re.sub(r"[_-]", "", label)
        return (
            "invalid BIDS 'sub' label: expected letters and digits only.",
            f"BIDS labels are alphanumeric; converters write {label} as {stripped}: write that "
            "in the phenotype file.",
        )
    return ("invalid BIDS 'sub' label: expected letters and digits only.", hint)


def _id_candidates(value: str) -> set[str] | None:
    """The labels an invalid participant ID could be fixed to; None for a valid or empty ID.

    Its letters and digits (``NDAR_INV001`` -> ``NDARINV001``, ``1 02`` -> ``102``), without a
    ``sub`` prefix and separator (``sub_06`` -> ``06``), and a number written as a decimal as
    its integer (``3.0`` -> ``3``).
    """
    text = value.strip()
    if is_missing(text):
        return None
    try:
        check_label("sub", text)
    except InputDataError:
        pass
    else:
        return None
    # The prefix in any case: a sheet's SUB-003 and Sub_003 are sub-003.
    label = re.sub(r"^sub-", "", text, flags=re.IGNORECASE)
    candidates = {re.sub(r"[^A-Za-z0-9]", "", label)}
    unprefixed = re.sub(r"^sub[^A-Za-z0-9]+", "", label, flags=re.IGNORECASE)
    candidates.add(re.sub(r"[^A-Za-z0-9]", "", unprefixed))
    if m := re.fullmatch(r"([0-9]+)\.0+", label):
        candidates.add(m.group(1))
    return candidates - {""}


def unreadable_cells(
    values: pd.Series, var: Variable, col: ColumnCoding, units: ColumnUnits | None = None
) -> list[BadCell]:
    """The cells of the column ``values`` that the coding ``col`` of ``var`` cannot read, as
    :func:`read_phenotype` reads them (before a coding is written: :mod:`lcm.store.coding`).

    Parameters
    ----------
    values : pandas.Series
        The column's cells, as strings (:func:`read_table`).
    var : Variable
        The catalogue variable the column codes.
    col : ColumnCoding
        The dataset's coding of that column.
    units : ColumnUnits, optional
        The conversion from the column's declared units (:func:`phenotype_units`).

    Returns
    -------
    list of BadCell
        Empty when every cell reads.
    """
    return _convert(values, var, col, units=units)[1]


def _convert(
    values: pd.Series,
    var: Variable,
    col: ColumnCoding,
    coding: str = "",
    units: ColumnUnits | None = None,
) -> tuple[pd.Series, list[BadCell]]:
    """``values`` typed as ``var`` by its column coding ``col`` (named by ``coding`` in hints),
    numbers converted from their declared ``units``.

    Returns the typed column, a bad cell read as missing, and every bad cell.
    """
    out: list[object] = []
    bad: list[BadCell] = []
    for row, raw in enumerate(values):
        text = str(raw).strip()
        if is_missing(text) and not _declared(text, var, col):
            out.append(np.nan if var.is_numeric else None)
            continue
        try:
            out.append(_value(text, var, col, coding, units))
        except _BadValue as exc:
            bad.append(BadCell(row + 2, col.column, str(raw), exc.reason, exc.hint))
            out.append(np.nan if var.is_numeric else None)
    typed = pd.Series(out, index=values.index, dtype="float64" if var.is_numeric else "object")
    return typed, bad


def _declared(text: str, var: Variable, col: ColumnCoding) -> bool:
    """Whether the catalogue names the missing-value code ``text`` as a value: a code of the
    column's map, or (unmapped) a level of ``var``.

    Written there, it is that value: a medication map's ``"None": none`` and a region level
    ``NA`` (North America) were read as missing, every such cell of the cohort.
    """
    if col.map:
        return _map_key(text, col.map) is not None
    return not var.is_numeric and text in var.levels


def _value(
    text: str, var: Variable, col: ColumnCoding, coding: str, units: ColumnUnits | None = None
) -> object:
    """One non-missing cell typed as ``var`` (missing where its code maps to null);
    :class:`_BadValue` saying why it cannot be."""
    value: object = text
    if col.map:
        key = _map_key(text, col.map)
        if key is None:
            raise _BadValue(
                f"code not in the catalogue map for {var.name!r} (known codes {sorted(col.map)}).",
                f"Add the code to the map in {coding or 'the catalogue'} (mapped to null, it "
                "reads as missing: a dataset's own missing code), or fix the value (a code is "
                "matched as written, or as an integer: 1.0 is 1, 1.9 none).",
            )
        value = col.map[key]
        if value is None:  # the dataset's own missing code
            return np.nan if var.is_numeric else None
    if var.is_numeric:
        return _numeric(value, var, col, units)
    level = str(value)
    if level not in var.levels:
        raise _BadValue(
            f"unknown level {level!r} for {var.kind} variable {var.name!r} "
            f"(allowed {list(var.levels)}).",
            "Map the dataset's codes to the catalogue levels with `map:`.",
        )
    return level


def _map_key(text: str, mapping: dict) -> str | None:
    """The map's code ``text`` names: itself, or the integer code of an integral number.

    "1.0" in a file and 1 in YAML name the same code; "1.9" names none (never code 1).
    """
    if text in mapping:
        return text
    number = parse_number(text)
    if number is None or not number.is_integer():  # also inf and nan
        return None
    as_int = str(int(number))
    return as_int if as_int in mapping else None


def _numeric(
    value: object, var: Variable, col: ColumnCoding, units: ColumnUnits | None = None
) -> float:
    number = col.number(value)
    if number is None and _DECIMAL_COMMA_RE.match(str(value)):
        # 25,5 from a spreadsheet set to a European locale; 1,500 may be a thousands separator.
        thousands = len(str(value).split(",")[1]) == 3
        raise _BadValue(
            f"not a number for {var.kind} variable {var.name!r}: it looks like a decimal "
            f"comma (a table exported in a European locale)"
            + (", or a thousands separator." if thousands else "."),
            "Save the table with '.' as the decimal separator (25.5, not 25,5)"
            + (" and numbers without thousands separators." if thousands else "."),
        )
    if number is None:
        raise _BadValue(
            f"not a number for {var.kind} variable {var.name!r}.",
            "Fix the value, mark it missing (n/a), or set range_midpoint for ranges.",
        )
    if not np.isfinite(number):
        raise _BadValue(
            f"not a finite number for {var.name!r}.", "Fix the value, or mark it missing (n/a)."
        )
    written = number
    if col.scale is not None:
        number *= col.scale
    converted = ""
    if units is not None and units.factor is not None:
        number = units.apply(number)
        converted = f" ({written:g} {units.declared} x {factor_text(units.factor)})"
    if var.range is not None and not (var.range[0] <= number <= var.range[1]):
        raise _BadValue(
            f"{number:g} {var.units}{converted} is outside the allowed range "
            f"[{var.range[0]:g}, {var.range[1]:g}] of {var.name!r}.",
            "Check the units (scale:) and the value; out-of-range values are not clipped.",
        )
    return number
