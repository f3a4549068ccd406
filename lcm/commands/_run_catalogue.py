"""``lcm run``'s variable catalogue: a coding of BIDS_DIR's ``participants.tsv`` when the
catalogue has none, written to ``OUTPUT_DIR/variables.yaml``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lcm.catalogue import generated_header, parse_catalogue, parse_variable
from lcm.exceptions import ConfigError
from lcm.io.atomic import write_text
from lcm.store.coding import SHOWN, column_of, generated_columns
from lcm.store.phenotype import check_duplicate_ids, is_missing, read_sidecar, read_table

log = logging.getLogger(__name__)

# The column of subject labels BIDS names in participants.tsv, and the coding reads.
ID_COLUMN = "participant_id"


def catalogue_with(
    catalogue: str,
    dataset: str,
    phenotype: str,
    out: Path,
    tasks: dict[str, dict[str, Any]] | None = None,
    scanned: set[str] | None = None,
) -> str:
    """The variable catalogue, with a coding for ``dataset`` added when it has none.

    The added coding reads ``participant_id`` and each catalogue variable whose name is a
    column of ``participants.tsv``, its codes mapped to the catalogue's levels where they are
    well known (``male``/``female`` for ``M``/``F``) or ``participants.json`` names them
    (:mod:`lcm.store.coding`); a column whose values do not fit its variable is left out,
    logged with the fix (a task's label is refused). A task of ``dataset`` whose label is a
    ``participants.tsv`` column but no catalogue variable (``diagnosis``, say) adds it: a
    binary clinical variable of the column's two values, when it has two and ``positive`` is
    one. It is written to ``OUTPUT_DIR/variables.yaml`` (the given catalogue is never
    modified). A catalogue that codes the dataset is used as is.

    Parameters
    ----------
    catalogue : str
        The variable catalogue the configuration names.
    dataset : str
        The dataset's name in the config.
    phenotype : str
        Its phenotype table (BIDS_DIR's ``participants.tsv`` by default).
    out : pathlib.Path
        OUTPUT_DIR, absolute.
    tasks : dict, optional
        The config's tasks of ``dataset``, by name.
    scanned : set of str, optional
        Labels of the subjects that may have connectomes (BIDS_DIR's): a repeated
        participant ID the store would refuse is refused now (its rule:
        :func:`lcm.store.phenotype.check_duplicate_ids`), not after every connectome.
    """
    path = Path(catalogue)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"variables: cannot read the catalogue {path}: {exc}") from None
    if dataset in (raw.get("datasets") or {}):
        return str(path)
    # The store's reader: a table it cannot read (not UTF-8, not a table) is refused here, with
    # its reason; read as empty, it gave a coding of no column and a misleading error later.
    table = read_table(phenotype)
    _check_id_column(table, phenotype)
    variables = raw.setdefault("variables", {})
    for task in (tasks or {}).values():
        label, positive = task["label"], task.get("positive")
        if label in variables or label not in table.columns or positive is None:
            continue
        levels = sorted(v for v in set(table[label]) if not is_missing(str(v)))
        if len(levels) != 2 or positive not in levels:
            # Said here, before variables.yaml is written: the catalogue check would only
            # say the label is no variable.
            shown = ", ".join(repr(v) for v in levels[:8]) + (" ..." if len(levels) > 8 else "")
            raise ConfigError(
                f"Task label {label!r} is a column of {phenotype} with {len(levels)} value(s) "
                f"({shown}); a binary task needs two, one of them positive: {positive!r}.",
                hint=f"Code the column with two values (e.g. fix case: 'control' vs 'Control'),"
                f" or add {label!r} to a catalogue of your own (variables: in --config-file).",
            )
        negative = next(level for level in levels if level != positive)
        variables[label] = {"kind": "binary", "domain": "clinical"}
        variables[label]["levels"] = [negative, positive]
        log.info("task label %r: binary variable of %s, levels %s", label, phenotype, levels)
    named = {
        v: parse_variable(path, v, variables[v])
        for v in variables
        if column_of(v, table.columns) is not None
    }
    columns, left_out = generated_columns(named, table, read_sidecar(phenotype))
    own = (
        f"give a catalogue of your own with --config-file (variables: my_variables.yaml, with "
        f"datasets.{dataset}: id_column participant_id and columns, e.g. "
        "sex: {column: sex, map: {'1': M, '2': F}})"
    )
    for task_name, task in (tasks or {}).items():
        gone = next((x for x in left_out if x.column == task["label"]), None)
        if gone is not None:
            raise ConfigError(
                f"Task {task_name!r}: its label's {gone.describe()}, in {phenotype}.",
                hint=f"Fix the column's values, or {own}.",
            )
    for gone in left_out:
        log.warning(
            "%s: %s; left out of the coding lcm run generates for %r (its variable is missing "
            "for every participant). To store it, %s",
            phenotype,
            gone.describe(),
            dataset,
            own,
        )
    if not columns and not left_out:
        # Said, as a column left out is: the store would keep every participant without a
        # variable, and pretraining would have nothing of theirs to predict.
        others = [c for c in table.columns if c != ID_COLUMN]
        log.warning(
            "%s: no column is named like a catalogue variable (%s; catalogue %s: %s): %r is "
            "stored without variables. To store them, rename the columns as the catalogue "
            "names them, or %s",
            phenotype,
            f"columns {', '.join(map(repr, others))}" if others else "no column but ids",
            path,
            ", ".join(variables),
            dataset,
            own,
        )
    for name, spec in columns.items():
        if spec["column"] != name:
            log.info("%s: column %r read as catalogue variable %r", phenotype, spec["column"], name)
        if "map" in spec:
            codes = ", ".join(f"{code} -> {level}" for code, level in spec["map"].items())
            log.info("%s: column %r read as catalogue levels: %s", phenotype, spec["column"], codes)
    raw.setdefault("datasets", {})[dataset] = {"id_column": ID_COLUMN, "columns": columns}
    target = out / "variables.yaml"
    # ASCII, as yaml.safe_dump writes: the file is read back in the locale's encoding.
    notes = "".join(f"# Left out: {x.describe()}.\n" for x in left_out)
    notes = notes.encode("ascii", "backslashreplace").decode()
    text = generated_header(path, dataset) + "\n" + notes + yaml.safe_dump(raw, sort_keys=False)
    # Read by the coding about to be written, as the store reads it (the store refused a
    # repeated ID only after every subject's connectomes), and before the write: a refused
    # run leaves no new variables.yaml, and an earlier run's as it was.
    check_duplicate_ids(phenotype, dataset, parse_catalogue(text, target), scanned)
    out.mkdir(parents=True, exist_ok=True)
    write_text(target, text)
    log.info("catalogue %s has no coding for %s: wrote %s", path, dataset, target)
    return str(target)


def _check_id_column(table: pd.DataFrame, phenotype: str) -> None:
    """Refuse, before anything runs, a table without the ``participant_id`` column the coding
    names: the store refused it only after every subject's connectomes, pointing at the
    ``variables.yaml`` that lcm run rewrites. ``"participant_id "`` (a spreadsheet's trailing
    space) is named as such."""
    if ID_COLUMN in table.columns:
        return
    near = [c for c in table.columns if str(c).strip().casefold() == ID_COLUMN]
    said = f" (its column {near[0]!r} is named so up to spaces or case)" if near else ""
    shown = ", ".join(repr(c) for c in table.columns[:SHOWN])
    raise ConfigError(
        f"Phenotype table {phenotype} has no {ID_COLUMN!r} column{said}: its columns are "
        f"{shown}{' ...' if len(table.columns) > SHOWN else ''}.",
        hint=f"Name the column of subject labels exactly {ID_COLUMN} (sub-01, ...), as BIDS "
        "asks, or give a catalogue of your own with --config-file (variables: "
        "my_variables.yaml, with datasets.<name>.id_column naming it).",
    )
