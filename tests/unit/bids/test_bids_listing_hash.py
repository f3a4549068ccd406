"""The workflow sees a parcellated dataset's files change, not only files added or removed.

Data no rule produces reach Snakemake through the ingest rule's listing hash. Only file names
were hashed before: a sidecar given its missing RepetitionTime (the fix a QC reason asks for) or
an edited series reran nothing, while `lcm provenance verify` reported the input changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcm.evaluate.config_schema import validate_config
from lcm.workflow.plan import WorkflowPlan


def _hash(entry: str, path: Path) -> str:
    dataset = {"entry": entry, "path": str(path), "phenotype": "p.tsv", "role": "pretrain"}
    return WorkflowPlan(validate_config({"datasets": {"d": dataset}})).listing_hash("d")


def _later(file: Path) -> None:
    """Set the file's modification time one second on (what an edit does, on any clock)."""
    st = file.stat()
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _folder(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True)
    series = root / "sub-01_task-rest_timeseries.tsv"
    pd.DataFrame(np.ones((5, 3)), columns=["a", "b", "c"]).to_csv(series, sep="\t", index=False)
    sidecar = root / "sub-01_task-rest_timeseries.json"
    sidecar.write_text("{}")
    return {"series": series, "sidecar": sidecar}


@pytest.mark.parametrize("layout", ["folder", "xcpd_tree", "listing"])
def test_an_edited_file_or_sidecar_changes_the_hash(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "data"
    files = _folder(root / "sub-01" / "func" if layout == "xcpd_tree" else root)
    path = root
    if layout == "xcpd_tree":
        (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9"}')
    if layout == "listing":
        path = tmp_path / "listing.tsv"
        path.write_text(f"participant_id\tpath\n01\tdata/{files['series'].name}\n")
    first = _hash("roi_timeseries", path)
    assert _hash("roi_timeseries", path) == first  # nothing changed: no rerun
    files["sidecar"].write_text(json.dumps({"RepetitionTime": 0.8}))
    fixed = _hash("roi_timeseries", path)
    assert fixed != first
    _later(files["series"])
    assert _hash("roi_timeseries", path) != fixed


def test_a_broken_link_in_a_tree_does_not_stop_planning(tmp_path: Path) -> None:
    root = tmp_path / "xcpd"
    _folder(root / "sub-01" / "func")
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9"}')
    (root / "sub-01" / "func" / "gone.tsv").symlink_to(tmp_path / "nowhere.tsv")
    assert len(_hash("roi_timeseries", root)) == 64


@pytest.mark.parametrize("entry", ["bids", "fmriprep", "bids+existing"])
def test_an_edited_bold_reruns_its_subject_only(tmp_path: Path, entry: str) -> None:
    """Voxel datasets: the fMRIPrep job's `sources` param changes for the edited subject.

    Its inputs (the manifest, read as ancient) do not change when a BOLD file is replaced in
    place, so only this digest (and the ingest listing hash) can rerun it.
    """
    from helpers.connectome import make_fmriprep_run, make_raw_bids

    dataset = {"entry": "fmriprep", "phenotype": "p.tsv", "role": "pretrain"}
    runner = "docker"
    if entry == "bids":
        root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
        bold = root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.nii.gz"
        sidecar = bold.with_name("sub-01_task-rest_run-1_bold.json")
        dataset.update(entry="bids", path=str(root))
    else:
        deriv = tmp_path / "deriv"
        files = make_fmriprep_run(deriv, "sub-01_task-rest_run-1")
        make_fmriprep_run(deriv, "sub-02_task-rest_run-1")
        bold, sidecar = files["bold"], files["sidecar"]
        dataset["path"] = str(deriv)
        if entry == "bids+existing":  # raw data, and the derivatives the jobs read
            runner = "existing"
            raw = make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
            dataset.update(entry="bids", path=str(raw), derivatives=str(deriv))

    def digests() -> tuple[str, str, str]:
        license = str(tmp_path / "license.txt")  # checked by fmriprep jobs, not the plan
        config = {"datasets": {"d": dataset}, "fmriprep": {"runner": runner}}
        config["fmriprep"]["fs_license"] = license
        plan = WorkflowPlan(validate_config(config))
        return (
            plan.subject_sources("d", "01"),
            plan.subject_sources("d", "02"),
            plan.listing_hash("d"),
        )

    first = digests()
    assert all(len(d) == 64 for d in first)
    assert digests() == first  # nothing changed: nothing reruns
    _later(bold)
    edited = digests()
    assert edited[0] != first[0] and edited[1] == first[1]
    # Ingest indexes the raw data only; it reruns when those change.
    assert (edited[2] != first[2]) == (entry != "bids+existing")
    sidecar.write_text(json.dumps({"RepetitionTime": 2.0, "TaskName": "rest", "x": 1}))
    assert digests()[0] != edited[0]
