"""WorkflowPlan.subject_changed: a run the config lets in again reruns its subject's fMRIPrep job.

Its files unchanged, the job (which reads the manifest as ancient) did not rerun when a run was
brought back: by ``ingest.select`` (the record does not list it) or by ``ingest.validate:
false`` (the record lists it as excluded at ingest by the validator), and the run's connectome
job failed, or kept the old exclusion, at every invocation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.workflow import add_subject, bids_root

from lcm.evaluate.config_schema import validate_config
from lcm.io import paths
from lcm.workflow.plan import WorkflowPlan

RUN = "sub-01_task-rest_run-1"


def _plan(tmp_path: Path, validate: bool = True) -> WorkflowPlan:
    raw = tmp_path / "raw"
    bids_root(raw)
    add_subject(raw, "01")
    (tmp_path / "deriv").mkdir(exist_ok=True)
    dataset = {
        "entry": "bids",
        "path": str(raw),
        "derivatives": str(tmp_path / "deriv"),
        "phenotype": str(tmp_path / "p.tsv"),
        "role": "pretrain",
    }
    config = {
        "results_dir": str(tmp_path / "results"),
        "datasets": {"ds": dataset},
        "ingest": {"validate": validate},
    }
    return WorkflowPlan(validate_config(config))


def _record(tmp_path: Path, runs: list[str], excluded: dict[str, str]) -> None:
    path = Path(paths.fmriprep_record(str(tmp_path / "results"), "ds", "01"))
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "runs": [{"run_key": key} for key in runs],
        "excluded": [
            {"run_key": key, "reason_code": code, "reason": f"excluded at ingest: {code}"}
            for key, code in excluded.items()
        ],
    }
    path.write_text(json.dumps(record))


def test_a_run_its_record_lists_is_as_planned(tmp_path: Path) -> None:
    _record(tmp_path, [RUN], {})
    assert _plan(tmp_path).subject_changed("ds", "01") is False


def test_a_run_its_record_does_not_list_reruns_it(tmp_path: Path) -> None:
    _record(tmp_path, [], {"sub-01_task-rest_run-2": "fmriprep_outputs_missing"})
    assert _plan(tmp_path).subject_changed("ds", "01") is True


@pytest.mark.parametrize(
    ("code", "validate", "changed"),
    [
        ("validator:SYMLINK_BROKEN", True, False),  # the validator still runs: still excluded
        ("validator:SYMLINK_BROKEN", False, True),  # validate false lets it in
        ("no_repetition_time", True, True),  # ingest's reason, which the plan no longer has
        ("fmriprep_outputs_missing", True, False),  # the derivatives' (their edits rerun it)
    ],
)
def test_a_run_excluded_by_its_record(
    tmp_path: Path, code: str, validate: bool, changed: bool
) -> None:
    _record(tmp_path, [], {RUN: code})
    assert _plan(tmp_path, validate).subject_changed("ds", "01") is changed


@pytest.mark.parametrize("content", [None, ""])
def test_a_record_not_made_or_unreadable_is_left_to_its_jobs(
    tmp_path: Path, content: str | None
) -> None:
    """Not made: its job runs anyway; empty (``--touch``): the connectome jobs name it."""
    if content is not None:
        path = Path(paths.fmriprep_record(str(tmp_path / "results"), "ds", "01"))
        path.parent.mkdir(parents=True)
        path.write_text(content)
    assert _plan(tmp_path).subject_changed("ds", "01") is False


def _ingested(tmp_path: Path, inputs: dict, excluded_by_validator: bool = True) -> None:
    """An ingest manifest excluding RUN by the validator, its summary recording ``inputs``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = Path(paths.ingest_manifest(str(tmp_path / "results"), "ds"))
    manifest.parent.mkdir(parents=True, exist_ok=True)
    code = "validator:NOT_INCLUDED" if excluded_by_validator else ""
    table = {"subject": ["01"], "run_key": [RUN], "included": [not code], "reason_code": [code]}
    pq.write_table(pa.table(table), manifest)
    summary = Path(paths.ingest_summary(str(manifest), ".json"))
    summary.write_text(json.dumps({"validator": {"inputs": inputs}}))


@pytest.mark.parametrize(
    ("ingest_inputs", "bidsignore", "changed"),
    [
        # ingest ran in its own conda env, whose validator version this process cannot see
        ({"validator": "9.9.9", "bidsignore": None}, None, False),
        ({"validator": "", "bidsignore": None}, None, False),
        # the .bidsignore pattern the validator's message recommends: the subject reruns
        ({"validator": "", "bidsignore": None}, "*_notes.txt\n", True),
        (None, None, True),  # an ingest of an older LCM recorded nothing: once
    ],
)
def test_a_validator_exclusion_reruns_for_bidsignore_not_for_another_envs_version(
    tmp_path: Path, ingest_inputs: dict | None, bidsignore: str | None, changed: bool
) -> None:
    _record(tmp_path, [], {RUN: "validator:NOT_INCLUDED"})
    _ingested(tmp_path, ingest_inputs)
    plan = _plan(tmp_path)
    if bidsignore is not None:
        (tmp_path / "raw" / ".bidsignore").write_text(bidsignore)
    assert plan.subject_changed("ds", "01") is changed
