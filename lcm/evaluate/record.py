"""The protocol record of one ``lcm evaluate`` run: built, stored and read here only.

``lcm evaluate`` stores it as JSON in both of its Parquet tables (schema metadata key ``lcm``,
:func:`lcm.evaluate.metrics.write_tidy_parquet`) and in their JSON sidecars; the report reads
it back by task. Its keys are those of :func:`evaluation_record`; metrics of an older
``lcm evaluate`` lack the later ones (``labelled_subjects``, ``pseudo_labels``,
``permutation_scores``, ``permutation_tests``, ``models_not_repeated``), which readers
treat as not recorded. Its ``kind`` is read by :func:`lcm.evaluate.kinds.recorded_kinds`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lcm.evaluate.compare import permutation_tests
from lcm.evaluate.metrics import METADATA_KEY, read_table_schema
from lcm.evaluate.protocol import EvaluationResult, EvaluationSettings, Task
from lcm.exceptions import InputDataError


def evaluation_record(
    task: Task,
    settings: EvaluationSettings,
    result: EvaluationResult,
    *,
    master_seed: int,
    checkpoint: str | Path | None,
    ssl_checkpoint: str | Path | None,
    splits_table: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of one task's evaluation: its settings and what the protocol decided.

    Parameters
    ----------
    task, settings, result
        The task evaluated, its settings and :func:`lcm.evaluate.protocol.evaluate_task`'s
        result.
    master_seed : int
        The seed every fit's seed derives from.
    checkpoint, ssl_checkpoint : path-like or None
        The pretrained checkpoints the LCM variants started from.
    splits_table : str or None
        The splits table read (its ``source``), None when the folds were drawn here.
    extra : dict, optional
        Further keys (the caller's), added last.

    Returns
    -------
    dict
        JSON-serialisable (paths as strings).
    """
    return {
        "task": task.name,
        "label": task.label,
        "kind": task.kind,
        "levels": list(task.levels),
        "master_seed": master_seed,
        "settings": {
            "n_folds": settings.n_folds,
            "seeds": list(settings.seeds),
            "label_fractions": list(settings.label_fractions),
            "models": list(settings.models),
            "finetune": settings.finetune,
            "split": settings.split,
        },
        "split_used": result.split,
        "splits_table": splits_table,
        "models_evaluated": result.models,
        "models_skipped": result.skipped,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "ssl_checkpoint": str(ssl_checkpoint) if ssl_checkpoint else None,
        "n_runs": result.n_runs,
        "n_runs_dropped_no_label": result.n_dropped,
        "runs_dropped": result.runs_dropped,
        # Leave-site-out skips a site that would leave a class without training subjects:
        # the runs tested can be fewer than the cohort's labelled runs.
        "n_runs_tested": result.n_runs_tested,
        "sites_not_tested": result.sites_not_tested,
        "n_fits_not_repeated": result.n_fits_not_repeated,
        # Which models those fits are (models that ignore their seed); an older lcm evaluate
        # did not record it, and left out the refits of every model, LCM's included.
        "models_not_repeated": result.models_not_repeated,
        "folds_one_class": result.folds_one_class,
        # What each fold value of a control averages: the report says "4 folds x 10 permutations".
        "control_permutations": result.control_permutations,
        # Each control fit's metric per permutation, and the permutation p they give the
        # model the control permutes (logreg, ridge or lcm; compare.permutation_tests).
        "permutation_scores": result.permutation_scores,
        "permutation_tests": _json_rows(
            permutation_tests(result.metrics, result.permutation_scores)
        ),
        # Subjects per class labelled in each training fold at each fraction (at least 2
        # per class): the report sets the fraction labelled beside the nominal one.
        "labelled_subjects": result.labelled_subjects,
        # What each LCM fit's pseudo-labelling did (EvaluationResult.pseudo_labels): the report
        # says when lcm made none, so that lcm vs lcm-no-pseudo measures nothing but noise.
        "pseudo_labels": result.pseudo_labels,
        **(extra or {}),
    }


def _json_rows(frame: Any) -> list[dict[str, Any]]:
    """Rows of a table as dicts of plain Python values, NaN as None (valid JSON)."""

    def plain(value: Any) -> Any:
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def read_evaluation_records(paths: Sequence[str | os.PathLike[str]]) -> dict[str, dict]:
    """The records stored in metrics or predictions tables of ``lcm evaluate``, by task.

    Parameters
    ----------
    paths : sequence of path-like
        Parquet tables written by ``lcm evaluate``; one without a record (written otherwise)
        is passed over.

    Returns
    -------
    dict
        ``task -> record`` (:func:`evaluation_record`); of two tables of one task, the later.
    """
    out: dict[str, dict] = {}
    for path in paths:
        raw = (read_table_schema(path).metadata or {}).get(METADATA_KEY)
        if raw:
            record = json.loads(raw)
            if "task" in record:
                out[str(record["task"])] = record
    return out


def check_evaluation_pairs(
    metrics: Sequence[str | os.PathLike[str]], predictions: Sequence[str | os.PathLike[str]]
) -> None:
    """Refuse metrics and predictions tables that are not the pairs one evaluation wrote.

    ``lcm evaluate`` writes one record into both of its tables. The report read the means
    from one evaluation and ROC curves, per-site numbers and bootstrap differences from the
    predictions of another (4 folds and 5 on one page), merged two evaluations of one task,
    and for a task without predictions said it was "not evaluated" beside its means. Tables
    without a record (written otherwise) are passed over.

    Parameters
    ----------
    metrics, predictions : sequence of path-like
        The report's ``--metrics`` and ``--predictions`` tables.

    Raises
    ------
    InputDataError
        Naming the task and the tables, with the fix.
    """

    def records(paths: Sequence[str | os.PathLike[str]], what: str) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}  # task -> (table, record as JSON)
        for path in paths:
            raw = (read_table_schema(path).metadata or {}).get(METADATA_KEY)
            record = json.loads(raw) if raw else {}
            if "task" not in record:
                continue
            task = str(record["task"])
            if task in found:
                raise InputDataError(
                    f"{what} {found[task][0]} and {path} are two evaluations of task {task!r}; "
                    "a report shows one.",
                    hint=f"Give one {what} table per task (the latest lcm evaluate's).",
                )
            found[task] = (str(path), json.dumps(record, sort_keys=True))
        return found

    by_metrics = records(metrics, "--metrics")
    by_predictions = records(predictions, "--predictions")
    for task, (table, record) in by_metrics.items():
        if task not in by_predictions:
            raise InputDataError(
                f"Task {task!r} has metrics ({table}) but no --predictions table of its own.",
                hint="Pass the predictions table lcm evaluate wrote with those metrics.",
            )
        other, recorded = by_predictions[task]
        if recorded != record:
            raise InputDataError(
                f"{table} and {other} come from different runs of lcm evaluate (task {task!r}: "
                "their records differ).",
                hint="Pass the metrics and predictions tables one lcm evaluate run wrote "
                "together (rerun it to write both).",
            )
    for task, (table, _) in by_predictions.items():
        if task not in by_metrics:
            raise InputDataError(
                f"Task {task!r} has predictions ({table}) but no --metrics table of its own.",
                hint="Pass the metrics table lcm evaluate wrote with those predictions.",
            )
