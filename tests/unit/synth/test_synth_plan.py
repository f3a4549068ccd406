"""lcm synth: planned subjects and outputs match what the jobs write, byte-for-byte reruns."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from lcm.atlas import load_atlas
from lcm.commands import synth as synth_cmd
from lcm.exceptions import ConfigError, InputDataError, OutputOwnershipError
from lcm.io.ownership import MARKER_NAME
from lcm.synth import (
    cohort_outputs,
    plan,
    planned_runs,
    planned_subjects,
    subject_outputs,
    write_cohort,
    write_subject,
)

ROI = {"preset": "adni", "tier": "roi", "n_subjects": 7, "n_volumes": 23}
VOXEL = {"preset": "hcp", "tier": "voxel", "n_subjects": 3, "n_volumes": 21, "resolution_mm": 4}


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


def _files(root: Path) -> set[str]:
    """Files written, but the ownership markers (not outputs: see lcm.io.ownership)."""
    return {str(p) for p in root.rglob("*") if p.is_file() and p.name != MARKER_NAME}


def _gen(out: Path, atlas, name: str, cons: dict, subject: str | None = None) -> None:
    kw = {"out_dir": out, "seed": 3, "shared_structure": 0.5, "atlas": atlas}
    if subject:
        write_subject(name, cons, subject, **kw)
    else:
        write_cohort(name, cons, **kw)


@pytest.mark.parametrize(
    ("preset", "pattern"),
    [("hcp", r"^\d{6}$"), ("ukb", r"^\d{7}$"), ("abide", r"^\d{5}$"), ("adni", r"^\d{3}S\d{4}$")],
)
def test_planned_subjects_are_unique_alphanumeric_ids(preset, pattern):
    cons = {"preset": preset, "n_subjects": 37}
    subjects = planned_subjects("x", cons, 0)
    assert len(subjects) == 37 == len(set(subjects))
    assert all(re.match(pattern, s) for s in subjects)
    assert subjects == planned_subjects("x", cons, 99)  # paths do not move with the seed
    assert subjects != planned_subjects("y", cons, 0)
    runs = planned_runs("x", cons, 0)
    assert runs[0] == {"sub": subjects[0], "ses": None, "task": "rest", "run": "1"}


def test_roi_cohort_writes_exactly_its_outputs_and_reruns_identically(tmp_path, atlas):
    a, b = tmp_path / "a", tmp_path / "b"
    _gen(a, atlas, "adnilike", ROI)
    _gen(b, atlas, "adnilike", ROI)
    assert _files(a) == set(cohort_outputs("adnilike", ROI, a))
    assert len(cohort_outputs("adnilike", ROI, a)) == 3 + 2 * 7
    for path in a.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (b / path.relative_to(a)).read_bytes(), path


def test_workers_write_the_same_bytes(tmp_path, atlas):
    kw = {"seed": 3, "shared_structure": 0.5, "atlas": atlas}
    cons = {"preset": "ppmi", "n_subjects": 9, "n_volumes": 21}
    write_cohort("ppmilike", cons, out_dir=tmp_path / "one", **kw)
    written = write_cohort("ppmilike", cons, out_dir=tmp_path / "two", workers=2, **kw)
    assert {str(p) for p in written} == set(cohort_outputs("ppmilike", cons, tmp_path / "two"))
    for path in (tmp_path / "one").rglob("*"):
        if path.is_file():
            twin = tmp_path / "two" / path.relative_to(tmp_path / "one")
            assert path.read_bytes() == twin.read_bytes(), path


def test_voxel_subject_job_alone_writes_exactly_its_outputs(tmp_path, atlas):
    subject = planned_subjects("demo", VOXEL)[1]
    a, b = tmp_path / "a", tmp_path / "b"
    _gen(a, atlas, "demo", VOXEL, subject)  # no cohort job before it
    _gen(b, atlas, "demo", VOXEL, "sub-" + subject)
    assert _files(a) == set(subject_outputs("demo", VOXEL, a, subject))
    for path in a.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (b / path.relative_to(a)).read_bytes(), path
    cohort = tmp_path / "c"
    _gen(cohort, atlas, "demo", VOXEL)
    assert _files(cohort) == set(cohort_outputs("demo", VOXEL, cohort))
    spaced = subject_outputs("demo", VOXEL, a, subject, output_space="MNI152NLin6Asym")
    assert sum("space-MNI152NLin6Asym" in p for p in spaced) == 3


# A new name for each file and folder lcm.synth.plan spells (dataset_description.json is
# BIDS's, written by lcm.io.provenance).
RENAMED = {
    "GROUND_TRUTH": "truth-x.json",
    "PHENOTYPE": "pheno-x.tsv",
    "TIMESERIES_DIR": "ts-x",
    "RAWDATA_DIR": "raw-x",
    "FMRIPREP_DIR": "deriv-x/fmriprep-x",
    "PARTICIPANTS": "people-x.tsv",
    "PARTICIPANTS_JSON": "people-x.json",
    "README": "README-x",
    "CHANGES": "CHANGES-x",
}


def test_the_writers_take_every_name_from_the_plan(tmp_path, atlas, monkeypatch):
    """Rename each file and folder in lcm.synth.plan (the synth rules' outputs): both jobs write
    under the new names, and exactly the files the plan lists, so the two cannot drift."""
    for constant, name in RENAMED.items():
        monkeypatch.setattr(plan, constant, name, raising=False)
    subject = planned_subjects("demo", VOXEL)[0]
    _gen(tmp_path, atlas, "adnilike", ROI)
    _gen(tmp_path, atlas, "demo", VOXEL)
    _gen(tmp_path, atlas, "demo", VOXEL, subject)
    listed = {
        *cohort_outputs("adnilike", ROI, tmp_path),
        *cohort_outputs("demo", VOXEL, tmp_path),
        *subject_outputs("demo", VOXEL, tmp_path, subject),
    }
    assert _files(tmp_path) == listed
    relative = {"/" + Path(p).relative_to(tmp_path).as_posix() for p in listed}
    for name in RENAMED.values():
        assert any(f"/{name}" in p for p in relative), name


def test_subject_errors_name_the_problem(tmp_path):
    with pytest.raises(InputDataError, match="not on the roster"):
        subject_outputs("demo", VOXEL, tmp_path, "000001")
    with pytest.raises(InputDataError, match="tier 'roi'"):
        subject_outputs("adnilike", ROI, tmp_path, planned_subjects("adnilike", ROI)[0])
    with pytest.raises(InputDataError, match="Invalid BIDS 'sub' label"):
        subject_outputs("demo", VOXEL, tmp_path, "../x")
    with pytest.raises(ConfigError, match=r"synth.consortia.demo.preset.*'hpc'"):
        planned_subjects("demo", {"preset": "hpc"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lcm")
    synth_cmd.register(parser.add_subparsers(dest="verb"))
    return parser


def test_cli_writes_cohort_and_subject(tmp_path, capsys):
    out = tmp_path / "synth"
    config = {
        "seed": 2,
        "synth": {"enabled": True, "out_dir": str(out), "consortia": {"demo": VOXEL}},
        "datasets": {
            "demo": {
                "entry": "bids",
                "path": str(out / "demo" / "rawdata"),
                "phenotype": str(out / "demo" / "rawdata" / "participants.tsv"),
                "derivatives": str(out / "demo" / "derivatives" / "fmriprep"),
                "role": "pretrain",
            }
        },
    }
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    parser = _parser()
    args = parser.parse_args(["synth", "--config", str(cfg), "--consortium", "demo"])
    assert args.func(args) == 0
    subject = planned_subjects("demo", VOXEL)[0]
    args = parser.parse_args(
        ["synth", "--config", str(cfg), "--consortium", "demo", "--subject", subject]
    )
    assert args.func(args) == 0
    expected = set(cohort_outputs("demo", VOXEL, out)) | set(
        subject_outputs("demo", VOXEL, out, subject)
    )
    assert _files(out) == expected
    args = parser.parse_args(["synth", "--config", str(cfg), "--consortium", "nope"])
    with pytest.raises(ConfigError, match="has no 'nope'"):
        args.func(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["synth", "--help"])
    assert "lcm synth --config config/config.yaml --consortium" in capsys.readouterr().out


@pytest.mark.parametrize("subject", [None, "first"])
def test_a_folder_with_files_lcm_did_not_write_is_refused(tmp_path, atlas, subject):
    """synth.out_dir/NAME holding a real dataset is never written into (cohort or subject job)."""
    cons = ROI if subject is None else VOXEL
    name = "adnilike" if subject is None else "hcplike"
    root = tmp_path / name
    theirs = root / "rawdata" / "participants.tsv"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("participant_id\nsub-real\n")
    label = planned_subjects(name, cons, 3)[0] if subject else None
    with pytest.raises(OutputOwnershipError, match="holds files LCM did not write"):
        _gen(tmp_path, atlas, name, cons, label)
    assert theirs.read_text() == "participant_id\nsub-real\n"
    assert {p.name for p in root.rglob("*")} == {"rawdata", "participants.tsv"}


def test_empty_folders_and_trees_written_before_markers_are_ours(tmp_path, atlas):
    """Folders Snakemake made before a job are claimed; an unmarked tree LCM wrote is reused."""
    (tmp_path / "adnilike" / "timeseries").mkdir(parents=True)
    _gen(tmp_path, atlas, "adnilike", ROI)
    assert (tmp_path / "adnilike" / MARKER_NAME).is_file()
    (tmp_path / "adnilike" / MARKER_NAME).unlink()  # as written by an LCM without markers
    _gen(tmp_path, atlas, "adnilike", ROI)  # its ground truth vouches for it
    label = planned_subjects("hcplike", VOXEL, 3)[0]
    _gen(tmp_path, atlas, "hcplike", VOXEL, label)  # a subject job first, then the cohort's
    _gen(tmp_path, atlas, "hcplike", VOXEL)
    assert _files(tmp_path / "hcplike") >= set(cohort_outputs("hcplike", VOXEL, tmp_path))


@pytest.mark.parametrize("subject", [None, "first"])
def test_a_marker_being_written_by_another_job_is_not_someone_elses_file(tmp_path, atlas, subject):
    """A voxel cohort's subject jobs run side by side and each claims the consortium's folder:
    one found the other's marker half-written (its temporary, ``..lcm-owned.lcmtmp-...``) and
    refused the folder as holding files LCM did not write, failing the job (seen in CI). LCM's
    own temporaries vouch for the folder; a user's file beside them still refuses it."""
    root = tmp_path / "hcplike"
    root.mkdir()
    in_flight = root / f".{MARKER_NAME}.lcmtmp-othernode-4242-0a1b2c3d"
    in_flight.write_text("Written by lcm synth: LCM may replace its outputs here.\n")
    label = planned_subjects("hcplike", VOXEL, 3)[0] if subject else None
    _gen(tmp_path, atlas, "hcplike", VOXEL, label)
    assert (root / MARKER_NAME).is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / f".{MARKER_NAME}.lcmtmp-othernode-4242-0a1b2c3d").write_text("x")
    (other / "notes.txt").write_text("mine")
    with pytest.raises(OutputOwnershipError, match="holds files LCM did not write"):
        _gen(tmp_path, atlas, "other", VOXEL, planned_subjects("other", VOXEL, 3)[0])
    assert (other / "notes.txt").read_text() == "mine"
