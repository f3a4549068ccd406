"""Atlases given by files: a label image and its table, a labels table alone, a TemplateFlow tree.

A user atlas is a label NIfTI plus a TSV with columns ``index`` and ``name`` (one row per
non-zero label). A TemplateFlow atlas is looked up in a local ``$TEMPLATEFLOW_HOME`` tree
(:func:`templateflow_atlas`). ROI time series and precomputed connectomes need no image: a
labels table alone makes a *labels-only* atlas (:func:`labels_only_atlas`; names, optional
``index``, ``x``/``y``/``z`` coordinates and ``network``; not a FreeSurfer colour table, which
names more labels than an atlas holds), refused where voxels are parcellated.

One reader reads every table, with an image or without (:func:`_labels_cells`): a header by
its column names, headerless ``<index><TAB><name>`` rows, or one name per line (nilearn's lists).
Tables are tab-separated (or space-separated: ``index name`` rows, FreeSurfer colour tables);
a line starting with ``#`` is a comment, and cells are read as written (a region named ``NA``,
``None`` or ``ROI #1`` keeps its name). A comma-separated table is refused with the fix, and so
is an index (or coordinates) a spreadsheet wrote with thousands separators or decimal commas
(``1,001``: the re-save of :mod:`lcm.io.csv_dialect`, the ROI tables' check).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from lcm.atlas.model import NO_SPACE, Atlas, setting_names
from lcm.exceptions import AtlasError
from lcm.io.csv_dialect import grouped_numbers_reason, is_grouped_number
from lcm.io.file_kind import not_a_file

log = logging.getLogger(__name__)

# Voxel values this close to an integer are that label: a float32 image or a scaled integer
# one (scl_slope 1.0000001) holds 1.0000001 for label 1, which nilearn's maskers take as 1.
LABEL_ATOL = 1e-4
LABEL_RTOL = 1e-6
# The largest label a label image holds: its voxels are read as int32 (:func:`load_label_files`).
LABEL_MAX = int(np.iinfo(np.int32).max)


def labels_only_atlas(
    name: str, labels: str | Path, names: Mapping[str, str] | None = None
) -> Atlas:
    """An atlas given by its labels table alone (no image), for ROI time series and connectomes.

    Parameters
    ----------
    name : str
        Atlas name (``seg-<name>`` of outputs).
    labels : path-like
        A TSV with a header naming a ``name`` (or ``label``) column (optional ``index``,
        ``x``, ``y``, ``z``, ``network``; other columns ignored), or headerless
        ``<index><TAB><name>`` rows, or one name per line (a first ``Background`` dropped):
        :func:`_labels_cells`, the reader of image tables too. ROIs keep the file's order when
        no ``index`` is given (1, 2, ...).
    names : mapping of str to str, optional
        How the user gave the settings (:func:`setting_names`), named in hints.

    Returns
    -------
    Atlas
        With ``img=None`` and space :data:`NO_SPACE`.

    Raises
    ------
    AtlasError
        Missing or unreadable file, no names, repeated names or indices, non-numeric
        coordinates; a FreeSurfer colour table (:func:`_refuse_lookup_alone`); one region
        alone (:func:`_refuse_one_region`).
    """
    path = Path(labels)
    if not path.is_file():
        raise AtlasError(
            f"Atlas {name!r}: labels file {not_a_file(path)}: {path}",
            hint=f"Check {setting_names(names)['labels']}.",
        )
    cells, header = _labels_cells(path)
    if LOOKUP in cells.columns:
        _refuse_lookup_alone(name, path, len(cells), names)
    table = _named_columns(cells, header, path)
    if len(table) < 2:
        _refuse_one_region(name, path, str(table["name"].iloc[0]), names)
    if "index" not in table.columns:
        table.insert(0, "index", np.arange(1, len(table) + 1))  # the file's order
    files = (str(path.resolve()),)
    return Atlas(name=name, img=None, labels=table, space=NO_SPACE, files=files)


def _refuse_one_region(name: str, path: Path, region: str, names: Mapping[str, str] | None) -> None:
    """Refuse a labels table alone that names one region.

    One name per line is a labels table, so any one-line text file (a note, a path, a file
    given for another option) was an atlas of one region named by that line: ``lcm report
    --attention`` then drew nothing and said only that the ROIs were not the atlas's. A
    connectome is the correlations between regions: one region gives none.
    """
    keys = setting_names(names)
    raise AtlasError(
        f"Atlas {name!r}: labels file {path} names one region ({region[:60]!r}): a connectome "
        "is the correlations between regions, so an atlas has two or more.",
        hint=f"Check {keys['labels']}: it is the atlas's labels table, one row per region "
        "(<index><TAB><name>, a header naming a 'name' column, or one name per line).",
    )


def _refuse_lookup_alone(
    name: str, path: Path, n_rows: int, names: Mapping[str, str] | None
) -> None:
    """Refuse a FreeSurfer colour table (:data:`LOOKUP`) given without its image.

    Such a table names the labels it knows (FreeSurferColorLUT.txt: over a thousand), not the
    ones an atlas holds; with an image its other rows are left out (:func:`load_label_files`).
    Alone, every row was a region, and each dataset's ROI time series or connectomes were then
    refused for their column count, the data blamed. The image says which rows are regions;
    without it, a table of the atlas's regions does.
    """
    keys = setting_names(names)
    raise AtlasError(
        f"Atlas {name!r}: labels table {path} is a FreeSurfer colour table ({n_rows} rows of "
        "'index name R G B [A]', as FreeSurferColorLUT.txt), given without an atlas image: a "
        "colour table names the labels it has colours for, not which of them are the atlas's "
        "regions, so the regions cannot be told from it alone.",
        hint=f"Give the atlas image too ({keys['path']}): the table's rows of labels the image "
        f"lacks are left out. Or, for ROI-level data without an image, set {keys['labels']} to "
        "a table of the atlas's regions only, rows <index><TAB><name>.",
    )


# A header's column names (lower case) that name the ROIs: ``name`` (TemplateFlow, nilearn),
# else ``label`` (XCP-D's atlas tables); and the names that mark a first line as a header.
NAME_COLUMNS = ("name", "label")
HEADER_WORDS = frozenset({"index", *NAME_COLUMNS})
# Headers other tables give their column of label values, read as ``index`` where the table has
# none (``label<TAB>name``, MIST's ``roi``).
INDEX_ALIASES = ("label", "labels", "id", "idx", "value", "key", "roi", "number")


def _is_number(cell: str) -> bool:
    """Whether ``cell`` is written as a finite number (``1``, ``1.0``, ``1e3``)."""
    value = pd.to_numeric(pd.Series([cell.strip()]), errors="coerce").iloc[0]
    return bool(np.isfinite(value))


def _number_like(cell: str) -> bool:
    """Whether ``cell`` is a number as written, for a reader or for a person (``1,001``, ``1,0``:
    a spreadsheet's, refused with its re-save by :func:`_refuse_spreadsheet_numbers`)."""
    return _is_number(cell) or is_grouped_number(cell)


def _labels_cells(path: Path) -> tuple[pd.DataFrame, str | None]:
    """A labels table's cells (str) under column names, and the first line if read as a header
    (:func:`_read_cells`), its numbers as a reader reads them.

    Raises
    ------
    AtlasError
        :func:`_read_cells`' reasons; an index or coordinates written with thousands
        separators or decimal commas (:func:`_refuse_spreadsheet_numbers`).
    """
    cells, header, sep = _read_cells(path)
    columns = None if header is None else header.split("\t" if sep == "\t" else None)
    if "index" in cells.columns:
        text = cells["index"].fillna("").astype(str).str.strip()
        value = pd.to_numeric(text, errors="coerce")
        bad = text[value.isna() | (value % 1 != 0)].tolist()  # 1,001 and 1.001 alike
        _refuse_spreadsheet_numbers(bad, path, sep, columns, integers=True)
    for col in ("x", "y", "z"):
        if col in cells.columns:
            text = cells[col].fillna("").astype(str).str.strip()
            bad = text[pd.to_numeric(text, errors="coerce").isna()].tolist()
            _refuse_spreadsheet_numbers(bad, path, sep, columns)
    return cells, header


def _refuse_spreadsheet_numbers(
    cells: list[str], path: Path, sep: str, header: list[str] | None, integers: bool = False
) -> None:
    """Refuse a table whose ``cells`` (of its index or coordinates) are all numbers written
    with thousands separators or decimal commas: the ROI tables' reason and re-save
    (:func:`lcm.io.csv_dialect.grouped_numbers_reason`). Read as text, ``1,001`` was refused
    as lacking an integer index with the fix to write one, which the file seems to do; under
    a header such as ``id``, its names were paired with the image's labels by rank. Label
    values are ``integers``: ``1,001`` and ``1.001`` are a thousand and one."""
    if not cells:
        return
    title = f"Labels table {path}"
    reason = grouped_numbers_reason(path, sep, cells, header, name=title, integers=integers)
    if reason is not None:
        raise AtlasError(reason[0], hint=reason[1])


def _read_cells(path: Path) -> tuple[pd.DataFrame, str | None, str]:
    """A labels table's cells (str) under column names, the first line if read as a header,
    and the table's separator (a tab, or ``" "`` for space-separated rows).

    One reader for every table, with an image or without. The columns: ``name`` always,
    ``index`` where the file numbers its regions, and ``x``, ``y``, ``z``, ``network`` where a
    header names them. The forms:

    - a header naming ``index`` and ``name`` (or XCP-D's ``label``), in any order, with any
      further columns: read by name;
    - no header: ``<index><TAB><name>[<TAB>...]`` rows (the first cell a number, ``1`` or
      ``1.0``), ``index name`` space-separated rows, FreeSurfer colour tables;
    - one name per line, no index (nilearn's label lists; a header ``name`` allowed).

    Raises
    ------
    AtlasError
        A first column without a header (pandas' ``to_csv`` writes its index so), a header
        without a ``name`` (or ``label``) column, a first line that is neither a header nor a
        row.
    """
    raw = _read_table(path)
    first = [str(c).strip() for c in raw.iloc[0]]
    line = "\t".join(first)
    if raw.shape[1] == 1:
        words = first[0].lower().split()
        header = bool(set(words) & HEADER_WORDS) and not _is_number(words[0])
        rows = raw.iloc[1:, 0] if header else raw.iloc[:, 0]
        fields = rows.str.strip().str.split()
        indexed = bool(len(rows)) and all(len(f) >= 2 and _number_like(f[0]) for f in fields)
        if indexed:  # ``1 Precentral_L``, a FreeSurfer colour table
            cells = _space_separated(rows, path).rename(columns={0: "index", 1: "name"})
            if header and "index" not in words:
                _refuse_header(words, line, path)
            return cells.reset_index(drop=True), line if header else None, " "
        if header and words != ["name"] and words != ["label"]:
            _refuse_header(words, line, path)
        # One name per line: the file's order is the regions' order.
        names = rows.str.strip().reset_index(drop=True)
        _refuse_number_lines(names, path)
        return pd.DataFrame({"name": names}), line if header else None, "\t"
    lower = [c.lower() for c in first]
    if set(lower) & HEADER_WORDS:
        if first[0] == "":
            raise AtlasError(
                f"Labels table {path}: its first column has no header (first line {line!r}): "
                "a row number, as pandas' to_csv writes its index, not the label values.",
                hint="Save it without the row numbers: to_csv(path, sep='\\t', index=False); "
                "or delete the first column.",
            )
        key = next((c for c in NAME_COLUMNS if c in lower), None)
        if key is None:
            _refuse_header(lower, line, path)
        cells = raw.iloc[1:].copy()
        cells.columns = lower
        if "index" not in lower:
            cells = _aliased_index(cells, key, first, path)
            lower = list(cells.columns)
        wanted = ["index", key, "x", "y", "z", "network"]
        cells = cells[[c for c in wanted if c in lower]].rename(columns={key: "name"})
        return cells.reset_index(drop=True), line, "\t"
    if not _number_like(first[0]):
        raise AtlasError(
            f"Labels table {path}: its first line {line!r} is neither a header naming 'index' "
            "and 'name' (or 'label') nor a row <index><TAB><name>.",
            hint="Start the table with the header index<TAB>name, or with the first region's "
            "row; a table whose label values stand in another column (AAL's ROI_MNI_V4.txt: "
            "abbreviation, name, value) needs a header naming them, e.g. "
            "abbr<TAB>name<TAB>index.",
        )
    if raw.shape[1] == 3:
        _repeats_index(raw.iloc[:, 0], raw.iloc[:, 2], path)
    return raw.iloc[:, :2].set_axis(["index", "name"], axis=1), None, "\t"


def _repeats_index(first: pd.Series, last: pd.Series, path: Path) -> bool:
    """Whether ``<number> <name> <number>`` rows repeat their index last (AAL3's ``1
    Precentral_L 1``); refused when the numbers differ (AAL's ``1 Precentral_L 2001``: a row
    number, then the image's value): which is the label value cannot be told, and reading the
    first paired names with the wrong regions wherever the two orders differ. ``False`` when the
    last cells are not whole numbers (a name's last word)."""
    a, b = (pd.to_numeric(c.astype(str).str.strip(), errors="coerce") for c in (first, last))
    if not (len(b) and b.notna().all() and (b % 1 == 0).all()):
        return False
    if (a == b).all():
        return True
    row = int(np.flatnonzero((a != b).to_numpy())[0])
    raise AtlasError(
        f"Labels table {path}: rows <number> <name> <number> whose numbers differ (e.g. "
        f"{first.iloc[row]!r} and {last.iloc[row]!r}, row {row + 1}), as AAL's tables write a "
        "row number and the image's value: which column holds the label values in the image "
        "cannot be told.",
        hint="Give the table a tab-separated header naming the column of image values 'index' "
        "and the names 'name', e.g. row<TAB>name<TAB>index (AAL: the last column is the value "
        "in the image); or, if the last number is part of the name ('Area 44'), write rows "
        "<index><TAB><name>.",
    )


def _refuse_number_lines(names: pd.Series, path: Path) -> None:
    """Refuse a list of names holding lines of numbers only (Schaefer's ``_order_info.txt``:
    each name, then a line ``1 120 18 134 0``): read as names, its regions were doubled."""
    numbers = names[names.map(lambda n: len(n.split()) > 1 and all(map(_number_like, n.split())))]
    if numbers.empty:
        return
    raise AtlasError(
        f"Labels table {path}: {len(numbers)} of its {len(names)} lines hold numbers only (e.g. "
        f"line {int(numbers.index[0]) + 1}: {numbers.iloc[0]!r}), not region names; a list of "
        "names has one name per line (Schaefer's _order_info.txt alternates each name with its "
        "index and colour).",
        hint="Use a table of rows <index><TAB><name> (Schaefer2018: the _order.txt or _order.lut "
        "next to it).",
    )


def _aliased_index(cells: pd.DataFrame, key: str, first: list[str], path: Path) -> pd.DataFrame:
    """``cells`` whose column of label values, under another header than ``index``, is renamed
    ``index``; refused when whole numbers stand in a column that cannot be told to be them, or
    numbers a spreadsheet wrote with thousands separators (``1,001``).

    Read as a list of names, such a table's regions were paired with the image's labels in
    ascending order, whatever its numbers said: names silently on the wrong regions.
    """
    line = "\t".join(first)
    for col in cells.columns:
        text = cells[col].fillna("").astype(str).str.strip()
        if (
            col not in (key, "x", "y", "z", "network")
            and len(text)
            and text.map(_number_like).all()
        ):
            grouped = [c for c in text if not _is_number(c)]
            _refuse_spreadsheet_numbers(grouped, path, "\t", first, integers=True)
    numbered = [
        c
        for c in cells.columns
        if c not in (key, "x", "y", "z", "network") and _whole_numbers(cells[c])
    ]
    if not numbered:
        return cells
    aliases = [c for c in numbered if c in INDEX_ALIASES]
    if len(aliases) == 1:
        log.info("Labels table %s: column %r read as the index (label values)", path, aliases[0])
        return cells.rename(columns={aliases[0]: "index"})
    raise AtlasError(
        f"Labels table {path}: its header {line!r} names no 'index' column, but "
        f"{'columns' if len(numbered) > 1 else 'column'} {numbered} hold whole numbers: which, "
        "if any, are the label values in the image cannot be told, and a list of names would "
        "be paired with the image's labels in ascending order.",
        hint="Name the column of label values 'index'; or, to pair the names with the labels "
        "in ascending order, drop the columns of numbers.",
    )


def _whole_numbers(column: pd.Series) -> bool:
    """Whether every cell of ``column`` is a whole number (``3``, ``3.0``)."""
    values = pd.to_numeric(column.astype(str).str.strip(), errors="coerce")
    return bool(len(values)) and bool(values.notna().all()) and bool((values % 1 == 0).all())


def _refuse_header(columns: list[str], line: str, path: Path) -> None:
    raise AtlasError(
        f"Labels table {path}: its header {line!r} names no 'index' and 'name' (or 'label') "
        f"columns (received {columns}).",
        hint="Name the columns of label values 'index' and of region names 'name' (XCP-D: "
        "'label'); or write headerless rows <index><TAB><name>.",
    )


def _named_columns(table: pd.DataFrame, header: str | None, path: Path) -> pd.DataFrame:
    """The regions of :func:`_labels_cells`' cells, checked: ``name``, ``index`` if the file
    gives one (integers, the background row 0 dropped), ``x``, ``y``, ``z``, ``network``;
    sorted by index. A list's first name ``Background`` (nilearn's) is dropped."""
    read = f" (its first line {header!r} read as the header)" if header else ""
    names = table["name"].fillna("").astype(str).str.strip()
    if names.empty:
        # A header alone (a file cut short after its first line) said "0 row(s) without a
        # name (0 rows)".
        raise AtlasError(
            f"Labels table {path} holds no rows{read}.",
            hint="Write one row per region below the header: <index><TAB><name>.",
        )
    if (names == "").any():
        raise AtlasError(
            f"Labels table {path}: {int((names == '').sum())} row(s) without a name "
            f"({len(names)} rows){read}.",
            hint="Give every ROI a name: one row per label, <index><TAB><name>.",
        )
    out = pd.DataFrame({"name": names.to_numpy()})
    if "index" in table.columns:
        cells = table["index"].fillna("").astype(str).str.strip()
        index = pd.to_numeric(cells, errors="coerce")
        bad = index.isna() | ~np.isfinite(index) | (index % 1 != 0)
        if bad.any():
            raise AtlasError(
                f"Labels table {path}: rows {(np.flatnonzero(bad)[:5] + 1).tolist()} lack an "
                f"integer index (received {cells[bad].tolist()[:3]}){read}.",
                hint="Write one row per label: <index><TAB><name>, the index the label's value "
                "in the image.",
            )
        outside = (index < 0) | (index > LABEL_MAX)
        if outside.any():
            # Past int64, 1e20 was cast to -9223372036854775808; -4 was a region of its own.
            raise AtlasError(
                f"Labels table {path}: row(s) {(np.flatnonzero(outside)[:5] + 1).tolist()} hold "
                f"an index no label image holds (received {cells[outside].tolist()[:3]}){read}: "
                f"labels are 0 (the background) or positive integers up to {LABEL_MAX}.",
                hint="Renumber the regions to positive integers, each index the region's value "
                "in the image; or remove the row(s).",
            )
        out.insert(0, "index", index.astype(np.int64).to_numpy())
    for col in ("x", "y", "z"):
        if col in table.columns:
            values = pd.to_numeric(table[col].str.strip(), errors="coerce")
            if values.isna().any():
                raise AtlasError(
                    f"Labels table {path}: column {col!r} holds non-numbers "
                    f"{table[col][values.isna()].tolist()[:3]}.",
                    hint="Write coordinates in mm, or drop the x, y, z columns.",
                )
            out[col] = values.to_numpy(np.float64)
    if "network" in table.columns:
        out["network"] = table["network"].fillna("").astype(str).str.strip().to_numpy()
    if "index" in out.columns:
        out = _without_background(out, path)
    elif len(out) and out["name"].iloc[0].lower() == "background":
        # nilearn's label lists start with the background (value 0), never a region.
        log.info(
            "Labels table %s: its first entry %r is the background; not a region",
            path.name,
            out["name"].iloc[0],
        )
        out = out.iloc[1:].reset_index(drop=True)
    keys = ["index", "name"] if "index" in out.columns else ["name"]
    dup = out[keys].apply(lambda col: col.duplicated(keep=False)).any(axis=1)
    if dup.any():
        raise AtlasError(
            f"Labels table {path} repeats an index or a name: "
            f"{out.loc[dup, keys].values.tolist()[:4]}.",
            hint="Each ROI needs a unique index and a unique name.",
        )
    if "index" in out.columns:
        out = out.sort_values("index", kind="stable")
    return out.reset_index(drop=True)


def load_label_files(
    name: str,
    img_path: Path,
    labels_path: Path,
    space: str,
    drop_absent: bool = False,
    names: Mapping[str, str] | None = None,
) -> Atlas:
    """An atlas from a 3D label image and its labels table (:func:`read_labels`), checked.

    Parameters
    ----------
    name : str
        Atlas name (``seg-<name>`` of outputs).
    img_path, labels_path : pathlib.Path
        The label NIfTI and its table.
    space : str
        Template space of the image.
    drop_absent : bool, default False
        Drop table rows whose label the image lacks (a published table listing more labels
        than its image) instead of refusing the pair.
    names : mapping of str to str, optional
        How the user gave the settings (:func:`setting_names`), named in hints.

    Raises
    ------
    AtlasError
        A missing or unreadable file, a non-3D image, labels that do not match the image.
    """
    for p in (img_path, labels_path):
        if not p.is_file():
            keys = setting_names(names)
            raise AtlasError(
                f"Atlas {name!r}: file {not_a_file(p)}: {p}",
                hint=f"Check {keys['path']} and {keys['labels']}.",
            )
    try:
        img = nib.load(img_path)
        data = np.asarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for a broken file
        # Said what nibabel said and no fix: an empty, truncated or non-NIfTI file.
        raise AtlasError(
            f"Atlas {name!r}: cannot read {img_path} as a label NIfTI image: {exc}",
            hint=f"Give {setting_names(names)['path']} a label image (.nii or .nii.gz); if it "
            "is one, it is truncated or corrupt: copy it again from its source.",
        ) from exc
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]  # (X, Y, Z, 1): one volume, a 3D image (as nilearn reads it)
    if data.ndim != 3:
        raise AtlasError(
            f"Atlas image {img_path} is {data.ndim}D; a 3D label image is expected.",
            hint="A 4D image is usually a probabilistic atlas (one map per region, as DiFuMo "
            "and MSDL): voxel-level data is parcellated with a 3D label image only; "
            "probabilistic atlases are not supported. Use the atlas's deterministic (label) "
            "version, or make one: each voxel the region of its largest map above a threshold "
            "(argmax over the 4th axis, 0 below it), with a table index<TAB>name.",
        )
    data = _label_values(data, img_path)
    table, lookup = _read_labels(labels_path)
    present = set(np.unique(data[data != 0]).astype(int).tolist())
    if "index" not in table.columns:
        table = _by_rank(table, present, labels_path, img_path)
    declared = set(table["index"].tolist())
    # A FreeSurfer colour table names every label FreeSurfer knows: its other rows are left out
    # (names stay paired by index; a label of the image it lacks is still refused).
    if (drop_absent or (lookup and present & declared)) and declared - present:
        log.info(
            "Atlas %r: labels %s of %s are not in the image; dropped",
            name,
            _some(declared - present),
            labels_path.name,
        )
        table = table[table["index"].isin(present)].reset_index(drop=True)
        declared = present & declared
    if present - declared or declared - present:
        raise _mismatch(present, declared, labels_path, img_path)
    # int32: labels above 32767 (some atlases number regions 1001-2035 or 10001-...) stay whole.
    img = nib.Nifti1Image(data.astype(np.int32), img.affine)
    files = tuple(str(p.resolve()) for p in (img_path, labels_path))
    return Atlas(name=name, img=img, labels=table, space=space, files=files)


def _some(labels: set[int], shown: int = 10) -> str:
    """``[a, b]``, or the first ``shown`` labels and how many there are in all."""
    values = sorted(labels)
    listed = ", ".join(str(v) for v in values[:shown])
    return f"[{listed}, ...] ({len(values)} in all)" if len(values) > shown else f"[{listed}]"


def _mismatch(
    present: set[int], declared: set[int], labels_path: Path, img_path: Path
) -> AtlasError:
    """The error of a labels table that does not match its image, with the fix that fits.

    A table whose indices are all shifted (the image numbers its regions 1001-1116, the table
    1-116) is named so, with the offset: removing the rows the image lacks, the hint for a
    region lost in cropping, would remove every row.
    """
    image_only, table_only = present - declared, declared - present
    message = (
        f"Atlas labels {labels_path} do not match image {img_path}: in the image only "
        f"{_some(image_only)}, in the table only {_some(table_only)} (of {len(present)} labels "
        f"in the image, {len(declared)} in the table)."
    )
    offsets = {a - b for a, b in zip(sorted(present), sorted(declared), strict=False)}
    if len(present) == len(declared) and len(offsets) == 1 and offsets != {0}:
        (offset,) = offsets
        sign = "+" if offset > 0 else "-"
        return AtlasError(
            f"{message} Every label of the image is the table's {sign} {abs(offset)} "
            f"({min(declared)} {sign} {abs(offset)} = {min(present)}, ...).",
            hint=f"Add {offset} to every index of {labels_path.name} (the image numbers its "
            f"regions {min(present)} to {max(present)}), or use the table that belongs to this "
            "image.",
        )
    hints = []
    if image_only:
        hints.append("Every non-zero value of the image needs one row in the labels table.")
    if table_only and not present & declared:
        hints.append(
            f"No label of {labels_path.name} is in the image: it is the table of another "
            "image; use the image that table belongs to, or that image's table."
        )
    elif table_only:
        # A table row whose label no voxel carries: a region lost when the image was
        # cropped or resampled, or a table of another version of the atlas.
        hints.append(
            f"Remove the rows of labels {_some(table_only)} from {labels_path.name}, or use the "
            "image that table belongs to (a region can vanish when an image is cropped or "
            "resampled)."
        )
    return AtlasError(message, hint=" ".join(hints))


def file_space(path: str | Path) -> str | None:
    """The template a label image's file name says, or ``None``.

    Its ``tpl-`` entity (TemplateFlow's and XCP-D's atlases:
    ``tpl-MNI152NLin6Asym_atlas-X_res-02_dseg.nii.gz``), else its ``space-`` entity (BIDS
    derivatives: ``space-MNI152NLin2009cAsym_..._dseg.nii.gz``).

    Parameters
    ----------
    path : str or Path
        The label image; only its file name is read.
    """
    entities = dict(
        part.split("-", 1) for part in Path(path).name.split(".")[0].split("_") if "-" in part
    )
    return entities.get("tpl") or entities.get("space") or None


def _label_values(data: np.ndarray, img_path: Path) -> np.ndarray:
    """The image's labels: float values within :data:`LABEL_ATOL` (or :data:`LABEL_RTOL`) of an
    integer rounded to it; refused when they are not labels: fractions, NaN, or beyond int32."""
    if np.issubdtype(data.dtype, np.floating):
        whole = np.round(data)
        odd = data[~np.isclose(data, whole, rtol=LABEL_RTOL, atol=LABEL_ATOL)]
        n_nan = int(np.isnan(odd).sum())
        if n_nan:
            # A background saved as NaN (some resampling tools write it): no region, not a map.
            raise AtlasError(
                f"Atlas image {img_path} holds {n_nan} NaN voxel(s); a label image has 0 for "
                "the background and one integer per region.",
                hint="Set its NaN voxels to 0 (e.g. nibabel: np.nan_to_num(data, nan=0)) and "
                "save it again.",
            )
        if odd.size:
            # str() of a NumPy float: the shortest digits that give back the value (1.0001 as
            # 1.0001, not 1 as :g writes it).
            raise AtlasError(
                f"Atlas image {img_path} holds {odd.size} voxel values that are not whole "
                f"numbers (e.g. {odd[0]!s}); a label image has one integer per region.",
                hint="Use the atlas's deterministic (label) version, not a probabilistic map; "
                "if you resampled it, resample with nearest-neighbour interpolation.",
            )
        data = whole
    if data.size and (data.min() < 0 or data.max() > np.iinfo(np.int32).max):
        raise AtlasError(
            f"Atlas image {img_path} holds labels from {data.min():g} to {data.max():g}; "
            "labels are 0 (background) or positive integers below 2^31.",
            hint="Renumber the regions (and the labels table's index) to positive integers.",
        )
    return data


def _read_table(path: Path) -> pd.DataFrame:
    """The rows of a labels table as tab-separated string cells, kept as written.

    Blank lines and lines starting with ``#`` (FreeSurfer's comments) are left out; a ``#``
    inside a row and cells such as ``NA`` or ``None`` are text (region names). Whitespace
    ending a line is left out, a tab as a space: a stray tab after a name made its row a cell
    longer than the others, which pandas refused.

    Raises
    ------
    AtlasError
        An unreadable or empty file, a comma-separated table (refused with the fix), a row
        with more cells than the first line (named by its line in the file).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AtlasError(f"Cannot read atlas labels {path}: {exc}") from exc
    numbered = [
        (number, line.rstrip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    lines = [line for _, line in numbered]
    if not lines:
        raise AtlasError(f"Labels table {path} holds no rows.", hint="Write one row per region.")
    if lines[0].lstrip().startswith("<"):
        # Read as a list of names, its XML lines were the regions of a labels-only atlas.
        raise AtlasError(
            f"Labels table {path} is XML (first line {lines[0].strip()[:60]!r}), as FSL's atlas "
            "descriptions (Harvard-Oxford, Juelich) are: not a labels table.",
            hint="Write its regions as rows <index><TAB><name>, each index the region's value in "
            'the image (FSL atlases number <label index="0"> from 0: its value in the label '
            "image is index + 1; check against the image).",
        )
    _refuse_comma_separated(lines, path)
    try:
        return pd.read_csv(
            io.StringIO("\n".join(lines)), sep="\t", header=None, dtype=str, keep_default_na=False
        )
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found is None:
            raise AtlasError(f"Cannot read atlas labels {path}: {exc}") from exc
        expected, row, saw = (int(g) for g in found.groups())
        number, line = numbered[row - 1]  # pandas counts the lines left, comments out
        raise AtlasError(
            f"Labels table {path}: line {number} has {saw} tab-separated cells, the first line "
            f"{expected} ({line!r}).",
            hint="Remove the stray tab (two tabs between an index and its name leave an empty "
            "cell), or give the first line a header for every column.",
        ) from exc


def _refuse_comma_separated(lines: list[str], path: Path) -> None:
    """Refuse a comma-separated table: rows without a tab, each with the same number of commas,
    and a header naming ``name`` or ``index`` or integer first fields (``1,A``). A list of
    names some of which hold a comma (``Frontal Pole``, ``Insular Cortex, anterior``) is not."""
    if any("\t" in line for line in lines):
        return
    fields = [line.split(",") for line in lines]
    if len({len(f) for f in fields}) != 1 or len(fields[0]) < 2:
        return
    # By word: Schaefer2018's Centroid_RAS.csv header is "ROI Label,ROI Name,R,A,S".
    header = bool({w for f in fields[0] for w in f.lower().split()} & {"name", "index", "label"})
    if header or all(f[0].strip().isdigit() for f in fields):
        raise AtlasError(
            f"Labels table {path} is comma-separated (first line {lines[0]!r}); labels "
            "tables are tab-separated.",
            hint="Save it with tabs between the columns, e.g. pandas' "
            "to_csv(path, sep='\\t', index=False).",
        )


def read_labels(path: Path) -> pd.DataFrame:
    """``index``, ``name`` of a label image's table (:func:`_labels_cells`' forms), sorted.

    A list of names without indices gives ``name`` only: :func:`load_label_files` maps it to the
    image's labels by rank, as nilearn does.

    Parameters
    ----------
    path : Path
        The labels table: a table with a header, index-name rows, a FreeSurfer colour table or
        one name per line.

    Raises
    ------
    AtlasError
        An unreadable table, rows without an integer index or a name, repeats.
    """
    return _read_labels(path)[0]


def _read_labels(path: Path) -> tuple[pd.DataFrame, bool]:
    """:func:`read_labels`' table, and whether it is a FreeSurfer colour table (:data:`LOOKUP`)."""
    cells, header = _labels_cells(path)
    table = _named_columns(cells, header, path)
    return table[[c for c in ("index", "name") if c in table.columns]], LOOKUP in cells.columns


def _by_rank(
    table: pd.DataFrame, present: set[int], labels_path: Path, img_path: Path
) -> pd.DataFrame:
    """A list of names (no index) given the image's labels in ascending order, as nilearn's
    maskers pair a label list with an image; refused unless the counts are equal."""
    values = sorted(present)
    if len(values) != len(table):
        raise AtlasError(
            f"Labels table {labels_path} is a list of {len(table)} names without indices (one "
            f"name per line), but image {img_path} holds {len(values)} labels: which name "
            "goes with which label is not known.",
            hint="Write one row per label, <index><TAB><name> (the index its value in the "
            "image); a list is read in order of the image's values only when the counts match.",
        )
    log.info(
        "Labels table %s lists names without indices: given the image's %d labels in "
        "ascending order (%d..%d), as nilearn does",
        labels_path.name,
        len(values),
        values[0] if values else 0,
        values[-1] if values else 0,
    )
    return pd.DataFrame({"index": values, "name": table["name"].to_numpy()})


def _without_background(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``table`` without its index 0 row: the background (FreeSurfer colour tables and nilearn's
    label lists name it), never a region."""
    background = table["index"] == 0
    if not background.any():
        return table
    log.info(
        "Labels table %s: index 0 (%s) is the background; not a region",
        path.name,
        table.loc[background, "name"].iloc[0],
    )
    return table[~background].reset_index(drop=True)


def _space_separated(lines: pd.Series, path: Path) -> pd.DataFrame:
    """Rows of a space-separated labels table as ``index, name`` columns.

    ``1 Precentral_L`` (the HCPEx tables): the name is the rest of the line, spaces included.
    ``1 Left-Thalamus 0 118 14 0`` (a FreeSurfer colour table: index, name, then R, G, B and
    optionally A, each 0-255, on every line; a trailing ``# ...`` ignored): the name is the
    second field, and the column :data:`LOOKUP` marks the table as one listing more labels than
    an image holds. ``1 0.471 0.071 0.525 7Networks_LH_Vis_1`` (Schaefer2018's ``.lut``,
    FSLeyes': index, R, G, B, then the name): the name is the rest of the line.
    ``1 Precentral_L 1`` (AAL3's tables, the index repeated on every row or on some:
    ``113 Vermis_1_2 113``): the name is the second field; rows whose two numbers differ are
    refused (:func:`_repeats_index`).
    """
    fields = lines.str.strip().str.split()
    if len(fields) and fields.map(_is_colour_row).all():
        return pd.DataFrame({0: fields.str[0], 1: fields.str[1], LOOKUP: True})
    if len(fields) and fields.map(_is_fsleyes_row).all():
        return lines.str.strip().str.split(n=4, expand=True)[[0, 4]].set_axis([0, 1], axis=1)
    three = fields[fields.map(len) == 3]
    if fields.map(len).isin([2, 3]).all() and _repeats_index(three.str[0], three.str[2], path):
        return pd.DataFrame({0: fields.str[0], 1: fields.str[1]})
    return lines.str.strip().str.split(n=1, expand=True)


# A column :func:`_space_separated` adds to a FreeSurfer colour table's cells: such a table
# (FreeSurferColorLUT.txt) names every label FreeSurfer knows, its rows beyond an image's
# labels dropped by :func:`load_label_files` (as nilearn's lookup tables are sanitized).
LOOKUP = "lookup"


def _is_fsleyes_row(fields: list[str]) -> bool:
    """Whether ``fields`` are an FSLeyes lookup table's ``index R G B name`` (colours 0-1 or
    0-255), as Schaefer2018's ``.lut`` files are."""
    return (
        len(fields) >= 5
        and all(_is_number(c) and 0 <= float(c) <= 255 for c in fields[1:4])
        and not _is_number(fields[4])
    )


def _is_colour_row(fields: list[str]) -> bool:
    """Whether ``fields`` are a colour table's ``index name R G B [A]`` (each colour 0-255)."""
    end = next((i for i, f in enumerate(fields) if i >= 2 and f.startswith("#")), len(fields))
    colours = fields[2:end]
    return len(colours) in (3, 4) and all(
        c.isascii() and c.isdigit() and int(c) <= 255 for c in colours
    )


TEMPLATEFLOW_ENV = "TEMPLATEFLOW_HOME"


def templateflow_atlas(
    template: str,
    atlas: str,
    desc: str | None = None,
    resolution: int | None = None,
    home: str | Path | None = None,
    names: Mapping[str, str] | None = None,
) -> Atlas:
    """An atlas resolved in a local TemplateFlow tree, offline.

    Looks for ``tpl-<template>/tpl-<template>[_res-<NN>]_atlas-<atlas>[_desc-<desc>]_dseg.nii.gz``
    and its ``..._dseg.tsv`` (columns ``index`` and ``name``) under ``home``; nothing is
    downloaded (set ``TEMPLATEFLOW_AUTOUPDATE=0`` for the ``templateflow`` client too).

    Parameters
    ----------
    template : str
        e.g. ``MNI152NLin2009cAsym``.
    atlas : str
        e.g. ``Schaefer2018``.
    desc : str, optional
        e.g. ``400Parcels7Networks``.
    resolution : int, optional
        ``res-`` entity (1 = ``res-01``); required when several resolutions exist.
    home : path-like, optional
        TemplateFlow root; default ``$TEMPLATEFLOW_HOME``.
    names : mapping of str to str, optional
        How the user gave the settings (:func:`setting_names`), named in hints.

    Returns
    -------
    Atlas
        Named ``<atlas><desc>`` (alphanumerics only), in space ``template``.

    Raises
    ------
    AtlasError
        If the root is unset or missing, no file or several files match, or a match is a
        0-byte placeholder (left by an interrupted download).
    """
    import os

    keys = setting_names(names)
    root = Path(home) if home is not None else None
    if root is None:
        if not os.environ.get(TEMPLATEFLOW_ENV):
            raise AtlasError(
                f"TemplateFlow atlas {atlas!r} requested but {TEMPLATEFLOW_ENV} is not set.",
                hint="Point TEMPLATEFLOW_HOME at a pre-filled TemplateFlow folder.",
            )
        root = Path(os.environ[TEMPLATEFLOW_ENV])
    folder = root / f"tpl-{template}"
    if not folder.is_dir():
        raise AtlasError(
            f"TemplateFlow template folder {folder} not found.",
            hint=f"Fetch tpl-{template} into {root} on a machine with internet access.",
        )
    parts = f"_atlas-{atlas}" + (f"_desc-{desc}" if desc else "")
    wanted = f"{parts}_dseg.nii.gz"
    images = []
    for p in sorted(folder.glob(f"tpl-{template}*_dseg.nii.gz")):
        ents = dict(e.split("-", 1) for e in p.name[: -len("_dseg.nii.gz")].split("_"))
        res_ok = resolution is None or (
            "res" in ents and ents["res"].isdigit() and int(ents["res"]) == resolution
        )
        if p.name.endswith(wanted) and ents.get("atlas") == atlas and res_ok:
            if desc is None and "desc" in ents:
                continue
            images.append(p)
    probabilistic = sorted(
        p.name
        for p in folder.glob(f"*_atlas-{atlas}_*probseg.nii.gz")
        if desc is None or f"_desc-{desc}_" in p.name
    )
    if not images and probabilistic:
        # DiFuMo and the like are probseg only: "found 0" and a hint to set desc misled.
        raise AtlasError(
            f"TemplateFlow atlas {atlas!r} in {folder} is probabilistic ({probabilistic[:3]}): "
            "voxel-level data is parcellated with a label image (_dseg) only.",
            hint="Use a deterministic atlas (a _dseg image with its _dseg.tsv), or make one "
            "from the maps: each voxel the region of its largest map above a threshold, with a "
            f"table index<TAB>name, given by path ({keys['path']}, {keys['labels']}).",
        )
    if len(images) != 1:
        found = [p.name for p in folder.glob(f"*atlas-{atlas}*_dseg.nii.gz")][:6]
        raise AtlasError(
            f"TemplateFlow query template={template} atlas={atlas} desc={desc} "
            f"res={resolution}: expected one image in {folder}, found {len(images)} "
            f"(files of this atlas: {found}).",
            hint=f"Set desc or resolution in {keys['templateflow']} to pick one file.",
        )
    labels = folder / f"tpl-{template}{parts}_dseg.tsv"
    for p in (images[0], labels):
        if not p.is_file():
            raise AtlasError(f"TemplateFlow file {p} not found.", hint="Fetch it into the tree.")
        if p.stat().st_size == 0:
            raise AtlasError(
                f"TemplateFlow file {p} is empty (0 bytes): a placeholder of a failed download.",
                hint="Delete it and fetch the file again on a machine with internet access.",
            )
    name = "".join(ch for ch in f"{atlas}{desc or ''}" if ch.isalnum())
    return load_label_files(name, images[0], labels, space=template, names=names)
