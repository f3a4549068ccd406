"""Ingest's tables are read through their owners (lcm.bids.manifest.read_manifest,
lcm.bids.summary.read_summary_table): every reader accepts what the owner accepts, and a
damaged file is one InputDataError naming it, not a pandas traceback."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lcm.bids.manifest import MANIFEST_COLUMNS, manifest_frame, read_manifest, write_manifest
from lcm.exceptions import InputDataError
from lcm.io import paths
from lcm.reason_codes import VALIDATOR


def _manifest_without_reason_code(results: Path) -> Path:
    """A manifest of three subjects whose file lacks ``reason_code`` (not a required column:
    read_manifest accepts it)."""
    manifest = Path(paths.ingest_manifest(str(results), "ds"))
    rows = [
        {**dict.fromkeys(MANIFEST_COLUMNS, ""), "dataset": "ds", "subject": s, "task": "rest",
         "run_key": f"sub-{s}_run-1", "path": f"sub-{s}.nii.gz", "t_r": 2.0,
         "included": s != "03", "reason_code": code}
        for s, code in (("01", ""), ("02", ""), ("03", f"{VALIDATOR}:x"))
    ]  # fmt: skip
    write_manifest(manifest, manifest_frame(rows))
    table = pq.read_table(manifest)
    pq.write_table(table.drop_columns(["reason_code"]), manifest)
    read_manifest(manifest)  # the owner reads it
    return manifest


def test_participant_label_keeps_the_participants_of_a_manifest_the_owner_reads(
    tmp_path: Path,
) -> None:
    """`lcm run --participant-label` read the manifest itself and refused one without
    reason_code (pyarrow's ArrowInvalid), a file read_manifest accepts."""
    from lcm.commands._run_participants import with_earlier_participants

    _manifest_without_reason_code(tmp_path)
    assert with_earlier_participants(["04"], tmp_path, "ds", []) == ["01", "02", "03", "04"]


def test_the_plan_reads_the_verdicts_of_a_manifest_the_owner_reads(tmp_path: Path) -> None:
    """The plan read the manifest itself and, for want of reason_code, took it as unreadable
    (no run included): a subject's verdict changes were never seen."""
    from lcm.workflow.plan import WorkflowPlan

    _manifest_without_reason_code(tmp_path)
    plan = WorkflowPlan.__new__(WorkflowPlan)  # the manifest's reading alone
    plan.config, plan._manifest_runs = {"results_dir": str(tmp_path)}, {}
    verdicts = plan._manifest_verdicts("ds")
    assert verdicts["01"] == ({"sub-01_run-1"}, set())
    assert verdicts["03"] == (set(), set())  # excluded, by no known reason


def test_a_participant_label_beside_a_damaged_manifest_names_it(tmp_path: Path) -> None:
    from lcm.commands._run_participants import with_earlier_participants

    manifest = Path(paths.ingest_manifest(str(tmp_path), "ds"))
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes(b"PAR1 cut short")
    with pytest.raises(InputDataError, match="--participant-label: cannot read") as info:
        with_earlier_participants(["04"], tmp_path, "ds", [])
    assert str(manifest) in info.value.message and "OUTPUT_DIR" in info.value.hint


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00bad"])
def test_an_empty_or_damaged_ingest_summary_is_one_error_naming_it(
    tmp_path: Path, content: bytes
) -> None:
    """lcm report on a 0-byte summary.tsv (a write cut short by an earlier LCM, a copy) ended
    in pandas' EmptyDataError traceback."""
    from lcm.commands.report import read_ingest_summaries

    summary = tmp_path / "summary.tsv"
    summary.write_bytes(content)
    with pytest.raises(InputDataError, match="Cannot read ingestion summary") as info:
        read_ingest_summaries([str(summary)])
    assert str(summary) in info.value.message and "lcm ingest" in info.value.hint


@pytest.mark.parametrize(
    "content", [b"hello, I am text\nnot a table\n", b"dataset\tsubject\trun_key\nds\t01\tr1\n"]
)
def test_a_table_that_is_not_an_ingest_summary_is_refused_naming_it(
    tmp_path: Path, content: bytes
) -> None:
    """A text file or another TSV given as --ingest-summary became a report section of its
    own columns, with exit code 0."""
    from lcm.commands.report import read_ingest_summaries

    summary = tmp_path / "summary.tsv"
    summary.write_bytes(content)
    with pytest.raises(InputDataError, match="is not an ingestion summary") as info:
        read_ingest_summaries([str(summary)])
    assert str(summary) in info.value.message and "'reason_code'" in info.value.message
    assert "lcm ingest" in info.value.hint
