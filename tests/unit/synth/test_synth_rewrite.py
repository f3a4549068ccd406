"""lcm synth into a folder it wrote before: a smaller or another cohort leaves only its own
subjects (the runs of the old roster entered ingest and the store), and a user's file stays."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lcm.atlas import load_atlas
from lcm.synth import plan, planned_subjects, write_cohort, write_subject

ROI = {"preset": "abide", "tier": "roi", "n_volumes": 20}
VOXEL = {"preset": "hcp", "tier": "voxel", "n_volumes": 20, "resolution_mm": 4}


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


def _kw(out: Path, atlas) -> dict:
    return {"out_dir": out, "seed": 3, "shared_structure": 0.7, "atlas": atlas}


def _subjects(folder: Path) -> set[str]:
    return {p.name.removeprefix("sub-") for p in folder.glob("sub-*")}


def test_roi_cohort_rewritten_smaller_keeps_only_its_runs(tmp_path, atlas, caplog) -> None:
    big, small = {**ROI, "n_subjects": 6}, {**ROI, "n_subjects": 3}
    write_cohort("abidex", big, **_kw(tmp_path, atlas))
    ts = tmp_path / "abidex" / "timeseries"
    old = planned_subjects("abidex", big)
    new = planned_subjects("abidex", small)
    departed = sorted(set(old) - set(new))
    assert _subjects(ts) == set(old) and len(departed) >= 2
    # A user's file beside a departed subject's run, and an interrupted write of one.
    func = ts / f"sub-{departed[0]}" / "func"
    (func / "notes.txt").write_text("mine\n")
    run = next(func.glob("*_timeseries.tsv")).name
    (func / f".{run}.lcmtmp-host-1-ab").write_text("")
    with caplog.at_level(logging.WARNING):
        write_cohort("abidex", small, **_kw(tmp_path, atlas))
    assert _subjects(ts) == {*new, departed[0]}
    assert sorted(p.name for p in func.iterdir()) == ["notes.txt"]
    assert "notes.txt" in caplog.text
    runs = sorted(p.name.split("_")[0] for p in ts.glob("sub-*/func/*_timeseries.tsv"))
    assert runs == sorted(f"sub-{s}" for s in new)


def test_voxel_cohort_rewritten_smaller_removes_departed_subjects(tmp_path, atlas) -> None:
    big, small = {**VOXEL, "n_subjects": 3}, {**VOXEL, "n_subjects": 2}
    for subject in planned_subjects("hcpvox", big):
        write_subject("hcpvox", big, subject, **_kw(tmp_path, atlas))
    write_cohort("hcpvox", big, **_kw(tmp_path, atlas))
    raw = tmp_path / "hcpvox" / "rawdata"
    deriv = tmp_path / "hcpvox" / "derivatives" / "fmriprep"
    old, new = planned_subjects("hcpvox", big), planned_subjects("hcpvox", small)
    departed = sorted(set(old) - set(new))
    assert _subjects(raw) == _subjects(deriv) == set(old) and departed
    # A user's folder in one departed subject's derivatives (its own files go, it stays).
    extra = deriv / f"sub-{departed[0]}" / "figures"
    extra.mkdir()
    (extra / "report.html").write_text("<html></html>\n")
    write_cohort("hcpvox", small, **_kw(tmp_path, atlas))
    assert _subjects(raw) == set(old) & set(new)  # the new subjects' jobs write the others
    assert _subjects(deriv) == (set(old) & set(new)) | {departed[0]}
    left = sorted(p.relative_to(deriv).as_posix() for p in deriv.rglob("*") if p.is_file())
    assert [p for p in left if p.startswith(f"sub-{departed[0]}")] == [
        f"sub-{departed[0]}/figures/report.html"
    ]
    for subject in new:
        write_subject("hcpvox", small, subject, **_kw(tmp_path, atlas))
    assert _subjects(raw) == set(new)


@pytest.mark.parametrize("tier", ["roi", "voxel"])
def test_departed_files_are_recognised_by_the_plans_names(tmp_path, atlas, monkeypatch, tier):
    """Another task label in lcm.synth.plan renames every run's files: a smaller cohort still
    removes the departed subjects' files, so what the job removes cannot drift from what it
    writes."""
    monkeypatch.setattr(plan, "TASK", "other")
    cons = ROI if tier == "roi" else VOXEL
    big, small = {**cons, "n_subjects": 4}, {**cons, "n_subjects": 2}
    old, new = planned_subjects("renamed", big), planned_subjects("renamed", small)
    assert set(old) - set(new)
    if tier == "voxel":
        for subject in old:
            write_subject("renamed", big, subject, **_kw(tmp_path, atlas))
    write_cohort("renamed", big, **_kw(tmp_path, atlas))
    root = tmp_path / "renamed"
    runs = [p for p in root.rglob("sub-*_task-*") if p.is_file()]
    assert runs and all("_task-other_" in p.name for p in runs)
    write_cohort("renamed", small, **_kw(tmp_path, atlas))
    # The ROI cohort job writes every run; a voxel subject's files are its own job's to write.
    kept = set(new) if tier == "roi" else set(old) & set(new)
    tops = ["timeseries"] if tier == "roi" else ["rawdata", "derivatives/fmriprep"]
    for top in tops:
        assert _subjects(root / top) == kept, top
