"""``lcm run BIDS_DIR OUTPUT_DIR participant|group`` (issue 18, item 10): the BIDS-App front door.

The real run calls the installed ``lcm`` by absolute path, PATH left bare, from a folder outside
the repository, on a tiny BIDS dataset with fMRIPrep-style derivatives (``lcm synth``'s voxel
tier), through the store, a baseline-only evaluation and the report.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import ROOT
from helpers.workflow import BARE_ENV

from lcm.catalogue import load_catalogue
from lcm.cli import build_parser, main
from lcm.commands import run as run_cmd
from lcm.commands._run_output_dir import output_dir_held
from lcm.exceptions import ConfigError, InputDataError, OutputBusyError, OutputOwnershipError
from lcm.io import paths
from lcm.io.lock import LOCK_NAME, exclusive_lock
from lcm.store.phenotype import read_phenotype
from lcm.synth import planned_runs

LCM = Path(sys.executable).parent / "lcm"


def synth_study(base: Path, n_subjects: int = 8) -> Path:
    """A voxel-tier ABIDE-like BIDS dataset with derivatives under ``base/synth/study``."""
    cfg = {
        "variables": str(run_cmd.workflow_files() / "config" / "variables.yaml"),
        "synth": {
            "enabled": True,
            "out_dir": str(base / "synth"),
            "consortia": {
                "study": {
                    "preset": "abide",
                    "tier": "voxel",
                    "n_subjects": n_subjects,
                    "n_volumes": 40,
                    "resolution_mm": 4,
                }
            },
        },
        "datasets": {
            "study": {
                "entry": "bids",
                "path": str(base / "synth" / "study" / "rawdata"),
                "derivatives": str(base / "synth" / "study" / "derivatives" / "fmriprep"),
                "phenotype": str(base / "synth" / "study" / "rawdata" / "participants.tsv"),
                "role": "downstream",
            }
        },
    }
    path = base / "synth.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["synth", "--config", str(path), "--consortium", "study"]) == 0
    spec = cfg["synth"]["consortia"]["study"]
    for sub in sorted({r["sub"] for r in planned_runs("study", spec, 1)}):
        assert (
            main(["synth", "--config", str(path), "--consortium", "study", "--subject", sub]) == 0
        )
    # Balanced diagnoses, so that 2-fold training folds hold two subjects of each class.
    participants = base / "synth" / "study" / "rawdata" / "participants.tsv"
    table = pd.read_csv(participants, sep="\t", dtype=str, keep_default_na=False)
    table["autism"] = ["autism", "control"] * (len(table) // 2)
    table.to_csv(participants, sep="\t", index=False)
    return base / "synth" / "study"


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


@pytest.mark.slow
def test_lcm_run_from_any_folder_through_a_baseline_evaluation(tmp_path: Path) -> None:
    study = synth_study(tmp_path)
    (tmp_path / "tasks.yaml").write_text(
        yaml.safe_dump(
            {
                "tasks": {
                    "autism": {
                        "dataset": "study",
                        "label": "autism",
                        "positive": "autism",
                        "models": ["logreg"],
                    }
                },
                "evaluate": {"n_folds": 2, "label_fractions": [1.0]},
                "denoise": {"min_volumes": 20, "min_dof": None},  # short runs, kept
            }
        )
    )
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    args = [
        str(LCM),
        "run",
        "../synth/study/rawdata",
        "../out",
        "group",
        "--derivatives",
        "../synth/study/derivatives/fmriprep",
        "--dataset-name",
        "study",
        "--config-file",
        "../tasks.yaml",
        "--cores",
        "2",
    ]
    start = time.monotonic()
    proc = subprocess.run(args, cwd=cwd, env=BARE_ENV, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - start
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-6000:]
    out = tmp_path / "out"
    # The resolved config beside the outputs, with absolute paths and the BIDS dataset.
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["results_dir"] == str(out)
    assert config["datasets"]["study"]["path"] == str(study / "rawdata")
    assert config["fmriprep"]["runner"] == "existing"
    store = pd.read_parquet(out / "store" / "connectomes")
    assert set(store["dataset"].astype(str)) == {"study"} and len(store) == 8
    metrics = pd.read_parquet(out / "metrics" / "metrics.parquet")
    # The configured model, and head motion alone, which the report scores on its folds.
    assert set(metrics["model"]) == {"logreg", "motion-fd"}
    assert (out / "report" / "index.html").is_file()
    assert (out / "logs" / "store" / "study.log").is_file()
    # Existing derivatives: no container setting reaches the command (and none reruns it).
    assert "--runner existing --output-space" in text and "--work-dir" not in text
    assert not list(cwd.iterdir())  # nothing written where lcm run was called
    # The same command again: nothing to do.
    proc = subprocess.run([*args, "-n"], cwd=cwd, env=BARE_ENV, capture_output=True, text=True)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    print(f"lcm run (8 subjects, group): {elapsed:.0f} s")


def test_build_config_adds_the_dataset_and_resolves_paths(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bids = tmp_path / "my-study"
    for sub in ("01", "02", "03"):
        (bids / f"sub-{sub}" / "func").mkdir(parents=True)
        (bids / f"sub-{sub}" / "func" / f"sub-{sub}_task-rest_bold.nii.gz").write_bytes(b"")
        (bids / "derivatives" / f"sub-{sub}").mkdir(parents=True)
    (bids / "participants.tsv").write_text(
        "participant_id\tage\tsex\tdiagnosis\nsub-01\t30\tF\tx\n"
    )
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"atlas": {"name": "aal116"}}))
    args = parse(
        "my-study",
        "out",
        "participant",
        "--derivatives",
        "my-study/derivatives",
        "--participant-label",
        "sub-01",
        "02",
        "--config-file",
        "mine.yaml",
    )
    with caplog.at_level("INFO"):
        config = run_cmd.build_config(args, tmp_path, tmp_path / "out")
    # The name is not the folder's: said, with the option that sets another.
    assert "dataset 'mystudy' (from folder 'my-study'; --dataset-name" in caplog.text
    ds = config["datasets"]["mystudy"]
    assert ds == {**ds, "entry": "bids", "path": str(bids), "role": "downstream"}
    assert ds["derivatives"] == str(bids / "derivatives")
    assert config["ingest"]["select"]["mystudy"]["participants"]["include"] == ["01", "02"]
    # The packaged catalogue has no coding for the dataset: one is added, beside the outputs.
    catalogue = yaml.safe_load(Path(config["variables"]).read_text())
    assert Path(config["variables"]) == tmp_path / "out" / "variables.yaml"
    assert catalogue["datasets"]["mystudy"] == {
        "id_column": "participant_id",
        "columns": {"age": {"column": "age"}, "sex": {"column": "sex"}},
    }


DERIVATIVES = ("--derivatives", "study/derivatives/fmriprep")


def _study(tmp_path: Path) -> Path:
    bids = tmp_path / "study"
    bids.mkdir(parents=True)
    (bids / "dataset_description.json").write_text('{"Name": "study", "BIDSVersion": "1.10.0"}')
    for sub in ("01", "02", "03", "04"):
        (bids / f"sub-{sub}" / "func").mkdir(parents=True)
        (bids / f"sub-{sub}" / "func" / f"sub-{sub}_task-rest_bold.nii.gz").write_bytes(b"")
        (bids / "derivatives" / "fmriprep" / f"sub-{sub}").mkdir(parents=True)
    (bids / "participants.tsv").write_text(
        "participant_id\tage\tdiagnosis\n"
        "sub-01\t30\tpatient\nsub-02\t31\tcontrol\nsub-03\t32\tn/a\nsub-04\t33\tpatient\n"
    )
    return bids


def test_skip_bids_validation_turns_the_validator_off(tmp_path: Path) -> None:
    """fMRIPrep's flag of the same name: ingest.validate false in the written config."""
    _study(tmp_path)
    args = parse("study", "out", "participant", *DERIVATIVES)
    assert run_cmd.build_config(args, tmp_path, tmp_path / "o")["ingest"]["validate"] is True
    args = parse("study", "out", "participant", *DERIVATIVES, "--skip-bids-validation")
    assert run_cmd.build_config(args, tmp_path, tmp_path / "out")["ingest"]["validate"] is False


def test_a_task_label_of_participants_tsv_becomes_a_variable(tmp_path: Path) -> None:
    """config/README's `label: diagnosis` under lcm run: a participants.tsv column that is no
    catalogue variable (it failed in the splits job, after the participant stage)."""
    _study(tmp_path)
    task = {"dataset": "study", "label": "diagnosis", "positive": "patient", "models": ["logreg"]}
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump({"tasks": {"dx": task}}))
    args = parse("study", "out", "group", "--config-file", "tasks.yaml", *DERIVATIVES)
    config = run_cmd.build_config(args, tmp_path, tmp_path / "out")
    catalogue = yaml.safe_load(Path(config["variables"]).read_text())
    assert catalogue["variables"]["diagnosis"] == {
        "kind": "binary",
        "domain": "clinical",
        "levels": ["control", "patient"],
    }
    assert catalogue["datasets"]["study"]["columns"]["diagnosis"] == {"column": "diagnosis"}
    # A positive level the column does not hold, or a column of three values ('Control' and
    # 'control'): refused, saying what the column holds, before variables.yaml is written.
    task["positive"] = "ASD"
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump({"tasks": {"dx": task}}))
    with pytest.raises(
        ConfigError, match=r"'diagnosis' is a column .* with 2 value\(s\) \('control'"
    ):
        run_cmd.build_config(args, tmp_path, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    pheno = tmp_path / "study" / "participants.tsv"
    pheno.write_text(pheno.read_text().replace("sub-03\t32\tn/a", "sub-03\t32\tControl"))
    task["positive"] = "patient"
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump({"tasks": {"dx": task}}))
    with pytest.raises(ConfigError, match=r"with 3 value\(s\) \('Control', 'control', 'patient'\)"):
        run_cmd.build_config(args, tmp_path, tmp_path / "out3")


def test_labels_of_every_participant_select_as_no_labels_do(tmp_path: Path) -> None:
    """The selection is a param of ingest and the store: spelled out for the participants a run
    without labels processes, it reran ingest, the store and every job after them."""
    bids = tmp_path / "study"
    for sub in ("01", "02"):
        (bids / f"sub-{sub}" / "func").mkdir(parents=True)
        (bids / f"sub-{sub}" / "func" / f"sub-{sub}_task-rest_bold.nii.gz").write_bytes(b"")
    (bids / "dataset_description.json").write_text('{"Name": "s", "BIDSVersion": "1.10.0"}')
    (bids / "participants.tsv").write_text("participant_id\tage\nsub-01\t30\nsub-02\t40\n")
    (bids / "derivatives" / "sub-01").mkdir(parents=True)
    argv = ("study", "out", "participant", "--derivatives", "study/derivatives")
    plain = run_cmd.build_config(parse(*argv), tmp_path, tmp_path / "out")
    every = run_cmd.build_config(
        parse(*argv, "--participant-label", "01", "02"), tmp_path, tmp_path / "out"
    )
    assert every["ingest"] == plain["ingest"] and "study" not in every["ingest"]["select"]
    some = run_cmd.build_config(
        parse(*argv, "--participant-label", "02"), tmp_path, tmp_path / "out"
    )
    assert some["ingest"]["select"]["study"]["participants"]["include"] == ["02"]


def test_unknown_participant_labels_are_refused(tmp_path: Path) -> None:
    _study(tmp_path)
    args = parse("study", "out", "participant", "--participant-label", "01", "sub-99", "7")
    with pytest.raises(ConfigError, match=r"--participant-label 99 7: no such subject") as info:
        run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert "it has 4: 01, 02, 03, 04" in info.value.message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("derivatives", "match", "hint"),
    [
        ("study/derivatives", "holds no sub-\\* folder", "derivatives/fmriprep, which holds"),
        ("study", "is BIDS_DIR itself", "derivatives/fmriprep"),
    ],
)
def test_derivatives_without_subjects_are_refused(
    tmp_path: Path, derivatives: str, match: str, hint: str
) -> None:
    """--derivatives one folder too high (or BIDS_DIR) failed each subject's fmriprep job."""
    _study(tmp_path)
    args = parse("study", "out", "participant", "--derivatives", derivatives)
    with pytest.raises(ConfigError, match=match) as info:
        run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert hint in (info.value.hint or "")


def test_output_dir_inside_bids_dir_is_refused_but_derivatives_is_fine(tmp_path: Path) -> None:
    """LCM's outputs inside BIDS_DIR made the validator fail the dataset's own ingest."""
    bids = _study(tmp_path)
    args = parse("study", "study/lcm_out", "participant", *DERIVATIVES)
    with pytest.raises(ConfigError, match=r"OUTPUT_DIR .*lcm_out is inside BIDS_DIR") as info:
        run_cmd.build_config(args, tmp_path, bids / "lcm_out")
    assert "derivatives/lcm" in (info.value.hint or "")
    assert not (bids / "lcm_out").exists()
    out = bids / "derivatives" / "lcm"
    config = run_cmd.build_config(
        parse("study", str(out), "participant", *DERIVATIVES), tmp_path, out
    )
    assert config["results_dir"] == str(out)
    # derivatives/ itself holds fMRIPrep's outputs: refused before anything is written.
    whole = bids / "derivatives"
    before = sorted(p.name for p in whole.iterdir())
    with pytest.raises(ConfigError, match=r"is BIDS_DIR's derivatives folder itself"):
        run_cmd.build_config(
            parse("study", str(whole), "participant", *DERIVATIVES), tmp_path, whole
        )
    assert sorted(p.name for p in whole.iterdir()) == before


def test_output_dir_that_is_bids_dir_is_said_to_be_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lcm run study study participant` said OUTPUT_DIR "is inside BIDS_DIR", the two paths
    printed equal, leaving the user to spot that they are one folder."""
    bids = _study(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in bids.iterdir())
    assert main(["run", "study", "study/", "participant", *DERIVATIVES, "-n"]) == 2
    with pytest.raises(ConfigError) as info:
        run_cmd.build_config(parse("study", "study", "participant", *DERIVATIVES), tmp_path, bids)
    assert info.value.message.startswith(f"OUTPUT_DIR {bids} is BIDS_DIR itself, where the")
    assert sorted(p.name for p in bids.iterdir()) == before


def test_an_output_dir_holding_bids_dir_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`lcm run /d/study /d participant` was accepted: the dataset sat inside LCM's results
    folder, its marker and outputs written beside it."""
    bids = _study(tmp_path / "d")
    ran = _no_snakemake(monkeypatch)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in (tmp_path / "d").iterdir())
    argv = ["participant", "--derivatives", "d/study/derivatives/fmriprep", "-n"]
    for out in ("d", "."):
        assert main(["run", "d/study", out, *argv]) == ConfigError.exit_code
        err = capsys.readouterr().err
        said = f"OUTPUT_DIR {Path(out).resolve()} holds BIDS_DIR {bids}: the dataset would be"
        assert said in err and f"e.g. {bids / 'derivatives' / 'lcm'}" in err
    assert not ran and sorted(p.name for p in (tmp_path / "d").iterdir()) == before


def test_a_container_run_into_bids_derivatives_needs_a_work_folder_outside(
    tmp_path: Path,
) -> None:
    """`lcm run raw raw/derivatives/lcm` with docker: the default work folder,
    OUTPUT_DIR/work/fmriprep, is inside BIDS_DIR, which fMRIPrep refuses; every subject
    failed at its fMRIPrep job. Refused before anything is written; -w (fMRIPrep's) sets it."""
    bids = _study(tmp_path)
    (tmp_path / "license.txt").write_text("fake\n")
    fmriprep = {"runner": "docker", "image": "nipreps/fmriprep:25.2.7"}
    fmriprep["fs_license"] = "license.txt"
    (tmp_path / "docker.yaml").write_text(yaml.safe_dump({"fmriprep": fmriprep}))
    out = bids / "derivatives" / "lcm"
    argv = ("study", "study/derivatives/lcm", "participant", "--config-file", "docker.yaml")
    with pytest.raises(ConfigError, match=r"work folder .*lcm/work/fmriprep") as info:
        run_cmd.build_config(parse(*argv), tmp_path, out)
    assert "lies inside datasets.study.path" in str(info.value)
    assert "fmriprep.work_dir (lcm run: -w DIR" in (info.value.hint or "")
    assert not out.exists()
    config = run_cmd.build_config(parse(*argv, "-w", "scratch/work"), tmp_path, out)
    assert config["fmriprep"]["work_dir"] == str(tmp_path / "scratch" / "work")
    assert config["results_dir"] == str(out)
    assert not (tmp_path / "scratch").exists()  # fMRIPrep's job makes it, not lcm run


def test_an_output_space_the_atlas_is_not_in_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    """A registry atlas of MNI152NLin2009cAsym and fMRIPrep outputs in MNI152NLin6Asym: every
    run would be excluded after fMRIPrep; lcm run says so first and writes nothing."""
    _study(tmp_path)
    space = {"fmriprep": {"output_space": "MNI152NLin6Asym:res-2"}, "atlas": {"name": "aal116"}}
    (tmp_path / "six.yaml").write_text(yaml.safe_dump(space))
    argv = ("study", "out", "participant", *DERIVATIVES, "--config-file", "six.yaml")
    with pytest.raises(
        ConfigError,
        match=r"lcm run --config-file six.yaml: fmriprep.output_space is 'MNI152NLin6Asym'",
    ):
        run_cmd.build_config(parse(*argv), tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "denoise: {high_pass: 0.2, low_pass: 0.1}\n",
            "lcm run --config-file bad.yaml: denoise: high_pass (0.2 Hz) must be below",
        ),
        (
            "model: {overrides: {n_layer: 2}}\n",
            "lcm run --config-file bad.yaml: model.overrides: unknown keys ['n_layer']",
        ),
        (
            "pretrian: {epochs: 2}\n",
            "lcm run --config-file bad.yaml: unknown key 'pretrian' (did you mean 'pretrain'?)",
        ),
        ("seed: 1\nseed: 2\n", "/bad.yaml: line 2: key 'seed' is given twice"),
    ],
)
def test_lcm_run_refuses_a_bad_config_file_naming_it_before_anything_is_written(
    tmp_path: Path, text: str, said: str
) -> None:
    """Values a job refused hours into the run, and keys given twice (YAML keeps the last), are
    said before anything is written, naming the --config-file (not "lcm run" alone)."""
    _study(tmp_path)
    (tmp_path / "bad.yaml").write_text(text)
    argv = ("study", "out", "participant", *DERIVATIVES, "--config-file", "bad.yaml")
    with pytest.raises(ConfigError) as info:
        run_cmd.build_config(parse(*argv), tmp_path, tmp_path / "out")
    assert said in info.value.message, info.value.message
    assert not (tmp_path / "out").exists()


def test_the_config_files_entry_of_the_dataset_is_kept(tmp_path: Path) -> None:
    """A study whose rest runs are task-restingstate: its config file's task, repetition time
    and participant exclusions were replaced by lcm run's defaults (task rest: no run found)."""
    bids = _study(tmp_path)
    for sub in ("01", "04"):
        (bids / f"sub-{sub}" / "func" / f"sub-{sub}_task-restingstate_bold.nii.gz").touch()
    entry = {"task": "restingstate", "repetition_time": 2.0, "role": "pretrain"}
    select = {"study": {"participants": {"exclude": ["04"]}}}
    mine = {"datasets": {"study": entry}, "ingest": {"select": select}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(mine))
    argv = ("study", "out", "participant", "--config-file", "mine.yaml", *DERIVATIVES)
    config = run_cmd.build_config(
        parse(*argv, "--participant-label", "01", "04"), tmp_path, tmp_path / "out"
    )
    ds = config["datasets"]["study"]
    assert (ds["task"], ds["repetition_time"], ds["role"]) == ("restingstate", 2.0, "pretrain")
    assert ds["entry"] == "bids" and ds["path"] == str(bids)
    chosen = config["ingest"]["select"]["study"]["participants"]
    assert chosen == {"exclude": ["04"], "include": ["01", "04"]}
    # The command line's --task and --role win over the file's.
    args = parse(*argv, "--task", "rest", "--role", "downstream")
    ds = run_cmd.build_config(args, tmp_path, tmp_path / "out")["datasets"]["study"]
    assert (ds["task"], ds["role"]) == ("rest", "downstream")
    # An entry of the same name that reads another folder is refused, naming both.
    entry["path"] = str(tmp_path / "elsewhere")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(mine))
    with pytest.raises(ConfigError, match=r"datasets.study.path is .*elsewhere, but BIDS_DIR"):
        run_cmd.build_config(parse(*argv), tmp_path, tmp_path / "out")


def test_a_config_files_results_dir_gives_way_to_output_dir_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A config file written for Snakemake directly (results_dir: /scratch/old) had its
    results_dir replaced by OUTPUT_DIR without a word: the user looked for outputs there."""
    _study(tmp_path)
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"results_dir": "old_results"}))
    args = parse("study", "out", "participant", *DERIVATIVES, "--config-file", "mine.yaml")
    with caplog.at_level("INFO"):
        config = run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert config["results_dir"] == str(tmp_path / "out")
    said = f"results_dir {tmp_path / 'old_results'} of lcm run --config-file mine.yaml"
    warned = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and said in warned[0].getMessage()
    assert f"OUTPUT_DIR {tmp_path / 'out'} is used" in warned[0].getMessage()
    # The same folder, relative to the calling folder: nothing to say.
    caplog.clear()
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"results_dir": "./out/"}))
    run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_dataset_without_participants_tsv_is_refused_first(tmp_path: Path) -> None:
    """BIDS only recommends participants.tsv: without one, the store rule's missing input
    stopped Snakemake's plan with a MissingInputException."""
    bids = _study(tmp_path)
    (bids / "participants.tsv").unlink()
    with pytest.raises(ConfigError, match=r"No phenotype table: .*participants.tsv") as info:
        run_cmd.build_config(
            parse("study", "out", "participant", *DERIVATIVES), tmp_path, tmp_path / "out"
        )
    assert "datasets.study.phenotype" in (info.value.hint or "")
    assert not (tmp_path / "out").exists()


@pytest.mark.hostile
@pytest.mark.parametrize("form", ["locked", "unlocked"])
def test_a_participants_tsv_datalad_has_not_fetched_is_refused_with_datalad_get(
    tmp_path: Path, form: str
) -> None:
    """A DataLad dataset whose participants.tsv is not fetched: its dangling annex symlink was
    refused as not existing (though ``ls`` lists it), and an unlocked file's pointer was read
    as a table; both now name the ``datalad get`` to run."""
    bids = _study(tmp_path)
    table = bids / "participants.tsv"
    table.unlink()
    key = ".git/annex/objects/Xk/Pq/MD5E-s90--0a1b.tsv/MD5E-s90--0a1b.tsv"
    if form == "locked":
        table.symlink_to(key)
    else:
        table.write_text("/annex/objects/MD5E-s90--0a1b.tsv\n")
    with pytest.raises(ConfigError, match=r"participants.tsv is .*not fetched") as info:
        run_cmd.build_config(
            parse("study", "out", "participant", *DERIVATIVES), tmp_path, tmp_path / "out"
        )
    assert f"datalad get {table}" in (info.value.hint or "")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("named", [True, False], ids=["entry_named", "other_name"])
def test_a_folder_of_roi_series_as_bids_dir_points_at_snakemake(
    tmp_path: Path, named: bool
) -> None:
    """ROI time series given as BIDS_DIR: refused for its entry, or for lacking
    participants.tsv, with no word of where such data goes (Snakemake directly)."""
    series = tmp_path / "roi"
    series.mkdir()
    (series / "sub-01_timeseries.tsv").write_text("a\tb\n1\t2\n")
    name = "roi" if named else "mine"
    entry = {"entry": "roi_timeseries", "path": str(series), "repetition_time": 2.0}
    (tmp_path / "roi.yaml").write_text(yaml.safe_dump({"datasets": {name: entry}}))
    args = parse("roi", "out", "participant", "--config-file", "roi.yaml")
    said = r"lcm run reads BIDS_DIR as raw BIDS" if named else r"holds no sub-\* folder"
    with pytest.raises(ConfigError, match=said) as info:
        run_cmd.build_config(args, tmp_path, tmp_path / "out")
    files = run_cmd.workflow_files()
    assert "If BIDS_DIR is not raw BIDS (ROI time series, connectomes" in info.value.hint
    assert (
        f"snakemake participant --snakefile {files / 'Snakefile'} --profile "
        f"{files / 'profiles' / 'local'} --configfile roi.yaml"
    ) in info.value.hint
    assert not (tmp_path / "out").exists()


def test_a_derivative_dataset_as_bids_dir_points_at_snakemake(tmp_path: Path) -> None:
    """XCP-D's ROI time series with a participants.tsv given as BIDS_DIR: refused for want of
    --derivatives, or with it by the workflow's plan suggesting `entry: fmriprep`, with no
    word of where such data goes (README: "as lcm run's refusal of such a folder says")."""
    xcpd = tmp_path / "xcpd"
    (xcpd / "sub-01" / "func").mkdir(parents=True)
    (xcpd / "sub-01" / "func" / "sub-01_task-rest_seg-aal116_stat-mean_timeseries.tsv").write_text(
        "a\tb\n1\t2\n"
    )
    (xcpd / "dataset_description.json").write_text(
        '{"Name": "xcpd", "BIDSVersion": "1.10.0", "DatasetType": "derivative"}'
    )
    (xcpd / "participants.tsv").write_text("participant_id\nsub-01\n")
    with pytest.raises(ConfigError, match=r"xcpd is a derivative dataset") as info:
        run_cmd.build_config(parse("xcpd", "out", "participant"), tmp_path, tmp_path / "out")
    assert "If BIDS_DIR is not raw BIDS (ROI time series, connectomes" in info.value.hint
    assert "--derivatives" in info.value.hint
    assert not (tmp_path / "out").exists()


def test_snakemake_command_runs_the_packaged_workflow(tmp_path: Path) -> None:
    args = parse("bids", "out", "participant", "--profile", "slurm", "-n", "--", "--forceall")
    cmd = run_cmd.snakemake_command(args, tmp_path / "config.yaml", tmp_path)
    files = run_cmd.workflow_files()
    assert cmd[:5] == [sys.executable, "-m", "snakemake", "--snakefile", str(files / "Snakefile")]
    assert cmd[cmd.index("--profile") + 1] == str(files / "profiles" / "slurm")
    assert cmd[-3:] == ["--dry-run", "participant", "--forceall"]
    # The packaged files are the repository's own (a wheel holds copies).
    for part in ("Snakefile", "workflow/rules/common.smk", "config/variables.yaml", "envs"):
        assert (files / part).resolve() == (ROOT / part).resolve()


@pytest.mark.parametrize(
    "extra",
    [
        # The README's site values and groups, passed through after `--`.
        ["--default-resources", "slurm_partition=gpu", "runtime=60", "mem_mb=4000"],
        ["--groups", "fmriprep=connectome", "--set-resources", "pretrain:runtime=60"],
    ],
)
def test_options_taking_several_values_leave_the_level_target_alone(
    tmp_path: Path, extra: list[str]
) -> None:
    """The level's target came last: Snakemake read it as one more value of such an option."""
    from snakemake.cli import get_argument_parser

    args = parse("bids", "out", "group", "--profile", "slurm", "--", *extra)
    cmd = run_cmd.snakemake_command(args, tmp_path / "config.yaml", tmp_path)
    parsed = get_argument_parser().parse_args(cmd[3:])
    assert parsed.targets == [run_cmd.LEVELS["group"]]
    if parsed.groups:
        assert parsed.groups == {"fmriprep": "connectome"}
    else:
        assert {"mem_mb=4000", "runtime=60"} <= set(parsed.default_resources.args)


def test_missing_bids_dir_and_bad_config_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match=r"BIDS_DIR .* is not a folder"):
        run_cmd.build_config(parse("nope", "out", "participant"), tmp_path, tmp_path / "out")
    (tmp_path / "bids" / "sub-01").mkdir(parents=True)
    (tmp_path / "bids" / "participants.tsv").write_text("participant_id\n")
    (tmp_path / "bad.yaml").write_text("denoise: {strategy: 99P}\n")
    args = parse("bids", "out", "participant", "--config-file", "bad.yaml")
    with pytest.raises(ConfigError, match=r"denoise\.strategy"):
        run_cmd.build_config(args, tmp_path, tmp_path / "out")


def test_without_snakemake_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    real = run_cmd.importlib.util.find_spec
    monkeypatch.setattr(
        run_cmd.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "snakemake" else real(name, *a),
    )
    (tmp_path / "bids").mkdir()
    code = main(["run", str(tmp_path / "bids"), str(tmp_path / "out"), "participant"])
    assert code == 4
    line = next(x for x in capsys.readouterr().err.splitlines() if "ERROR" in x)
    assert line.endswith(
        "lcm run needs Snakemake, which this environment lacks: pip install 'lcm[workflow]'"
    )


def test_the_logged_snakemake_command_pastes_back_as_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Paths with spaces and quotes: the logged command was joined with spaces, unquoted."""
    base = tmp_path / "my 'q' dir"
    base.mkdir()
    _study(base)
    ran: list[list[str]] = []
    monkeypatch.setattr(
        run_cmd.subprocess,
        "run",
        lambda cmd, check: ran.append(cmd) or argparse.Namespace(returncode=0),
    )
    out = base / "out put"
    derivatives = str(base / "study" / "derivatives" / "fmriprep")
    argv = ["run", str(base / "study"), str(out), "participant", "--derivatives", derivatives]
    assert main([*argv, "-n"]) == 0
    err = capsys.readouterr().err
    logged = next(x for x in err.splitlines() if "running: " in x).split("running: ", 1)[1]
    assert shlex.split(logged) == ran[0]


def test_bad_profile_or_cores_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A mistyped --profile reached Snakemake after config.yaml was written in OUTPUT_DIR."""
    args = parse("bids", "out", "participant", "--profile", "slurmm")
    with pytest.raises(ConfigError, match=r"--profile slurmm: neither a shipped profile"):
        run_cmd.snakemake_command(args, tmp_path / "out" / "config.yaml", tmp_path / "out")
    mine = tmp_path / "myprofile"
    mine.mkdir()
    (mine / "config.yaml").write_text("cores: 1\n")
    cmd = run_cmd.snakemake_command(
        parse("bids", "out", "participant", "--profile", str(mine), "--cores", "all"),
        tmp_path / "config.yaml",
        tmp_path,
    )
    assert cmd[cmd.index("--profile") + 1] == str(mine) and "all" in cmd
    with pytest.raises(SystemExit):
        parse("bids", "out", "participant", "--cores", "abc")
    assert not (tmp_path / "out").exists()


def test_a_users_config_in_output_dir_is_not_replaced(tmp_path: Path) -> None:
    """OUTPUT_DIR/config.yaml and variables.yaml of the user's were replaced, even by -n."""
    _study(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("# my analysis\n")
    with pytest.raises(ConfigError, match=r"config.yaml exists and was not written by lcm run"):
        run_cmd.build_config(parse("study", "out", "participant", *DERIVATIVES), tmp_path, out)
    assert (out / "config.yaml").read_text() == "# my analysis\n"
    assert not (out / "variables.yaml").exists()
    (out / "config.yaml").write_text(f"{run_cmd.RUN_MARK}: an earlier run's\n")
    config = run_cmd.build_config(parse("study", "out", "participant", *DERIVATIVES), tmp_path, out)
    assert Path(config["variables"]).read_text().startswith(run_cmd.RUN_MARK)


def _manifest(out: Path, dataset: str, rows: list[tuple[str, str, str]]) -> Path:
    """A manifest of earlier runs in OUTPUT_DIR: (subject, reason_code, reason) per run, the
    other columns empty (written as lcm ingest writes it: lcm run reads it with read_manifest)."""
    from lcm.bids.manifest import MANIFEST_COLUMNS, manifest_frame, write_manifest

    path = Path(paths.ingest_manifest(str(out), dataset))
    table = pd.DataFrame(rows, columns=["subject", "reason_code", "reason"])
    table = table.reindex(columns=MANIFEST_COLUMNS, fill_value="")
    write_manifest(path, manifest_frame(table.assign(dataset=dataset, t_r=2.0, included=False)))
    return path


def test_participant_labels_add_to_the_participants_output_dir_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One call per participant into one OUTPUT_DIR (BIDS-App style): `--participant-label 03`
    after calls of 01 and 02 rebuilt the manifest, QC table and store with 03 alone."""
    _study(tmp_path)
    out = tmp_path / "out"
    argv = ("study", "out", "participant", *DERIVATIVES, "--participant-label", "sub-03")
    # No earlier run: the labels alone.
    config = run_cmd.build_config(parse(*argv), tmp_path, out)
    assert config["ingest"]["select"]["study"]["participants"]["include"] == ["03"]
    left_out = "not selected: subject {} is not in ingest.select participants.include"
    _manifest(
        out,
        "study",
        [
            ("01", "", ""),
            ("02", "too_short", "12 volumes"),  # selected, excluded later: stays selected
            ("03", "not_selected", left_out.format("03")),
            ("04", "not_selected", left_out.format("04")),
        ],
    )
    with caplog.at_level("INFO"):
        config = run_cmd.build_config(parse(*argv), tmp_path, out)
    assert config["ingest"]["select"]["study"]["participants"]["include"] == ["01", "02", "03"]
    assert "holds 2 other participant(s) of dataset 'study' from earlier runs (01, 02)" in (
        caplog.text
    )
    # The config file's exclude list still wins, said.
    select = {"study": {"participants": {"exclude": ["sub-01"]}}}
    (tmp_path / "ex.yaml").write_text(yaml.safe_dump({"ingest": {"select": select}}))
    caplog.clear()
    with caplog.at_level("INFO"):
        config = run_cmd.build_config(parse(*argv, "--config-file", "ex.yaml"), tmp_path, out)
    chosen = config["ingest"]["select"]["study"]["participants"]
    assert chosen == {"include": ["01", "02", "03"], "exclude": ["sub-01"]}
    assert "participant(s) 01 of earlier runs are in ingest.select.study.participants" in (
        caplog.text
    )
    # A manifest that cannot be read: refused, rather than its participants dropped.
    Path(paths.ingest_manifest(str(out), "study")).write_text("not parquet")
    with pytest.raises(InputDataError, match=r"cannot read .*manifest.parquet, the participants"):
        run_cmd.build_config(parse(*argv), tmp_path, out)


def _no_snakemake(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    ran: list[list[str]] = []
    monkeypatch.setattr(
        run_cmd.subprocess,
        "run",
        lambda cmd, check: ran.append(cmd) or argparse.Namespace(returncode=0),
    )
    return ran


def test_an_output_dir_that_is_a_file_is_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """It was "cannot write in .../afile (File exists)", from the lock, with a permissions hint;
    then a configuration error (2), where every other verb's output under a file exits 6."""
    bids = _study(tmp_path)
    ran = _no_snakemake(monkeypatch)
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    argv = ["run", str(bids), "OUT", "participant", "--derivatives"]
    argv += [str(bids / "derivatives" / "fmriprep")]
    assert main([a.replace("OUT", str(afile)) for a in argv]) == OutputOwnershipError.exit_code
    assert f"OUTPUT_DIR {afile} ({afile}) is a file, not a folder" in capsys.readouterr().err
    # A file on the way to OUTPUT_DIR: the same refusal, naming the file in the way.
    below = afile / "results"
    assert main([a.replace("OUT", str(below)) for a in argv]) == OutputOwnershipError.exit_code
    err = capsys.readouterr().err
    assert f"OUTPUT_DIR {below} ({below}) cannot be made: {afile} is a file" in err
    assert f"move {afile} away" in err
    assert not ran and afile.read_text() == "mine\n"


def test_a_second_lcm_run_into_one_output_dir_is_refused_before_it_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Two `lcm run --participant-label` calls at once into one OUTPUT_DIR (a SLURM array):
    the second replaced config.yaml, then failed on Snakemake's LockException, whose advice
    (--unlock) would have let both write one manifest and store."""
    bids = _study(tmp_path)
    ran = _no_snakemake(monkeypatch)
    out = tmp_path / "out"
    argv = ["run", str(bids), str(out), "participant", "--derivatives"]
    argv += [str(bids / "derivatives" / "fmriprep"), "--participant-label", "02"]
    with exclusive_lock(out / LOCK_NAME, "`lcm run`"):  # another call holds it
        assert main(argv) == OutputBusyError.exit_code
    err = capsys.readouterr().err
    assert f"OUTPUT_DIR {out} is in use by another `lcm run` (pid " in err
    assert "run the calls one after another" in err and "--profile slurm" in err
    assert not ran and sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    assert main(argv) == 0 and len(ran) == 1
    # Snakemake's own lock (a snakemake started by hand, or one killed): refused, saying how
    # to remove it; `-- --unlock` passes.
    (out / ".snakemake" / "locks").mkdir(parents=True)
    (out / ".snakemake" / "locks" / "0.input.lock").write_text(str(out / "x"))
    (out / "config.yaml").unlink()
    assert main(argv) == OutputBusyError.exit_code
    assert "add `-- --unlock` to this command once" in capsys.readouterr().err
    assert len(ran) == 1 and not (out / "config.yaml").exists()
    assert main([*argv, "--", "--unlock"]) == 0 and "--unlock" in ran[-1]
    # A refused call leaves no OUTPUT_DIR it created.
    new = tmp_path / "new"
    assert main([*argv[:2], str(new), *argv[3:], "--profile", str(tmp_path)]) != 0
    assert main(["run", str(tmp_path / "nope"), str(new), "participant"]) != 0
    assert not new.exists()
    # A folder of the user's is refused before the lock file is written in it.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("# my analysis\n")
    assert main([*argv[:2], str(mine), *argv[3:]]) == ConfigError.exit_code
    assert [p.name for p in mine.iterdir()] == ["config.yaml"]


def test_an_output_dir_removed_during_the_run_ends_it_without_a_traceback(tmp_path: Path) -> None:
    """OUTPUT_DIR created by the call and removed while it ran (by hand, or another job's
    cleanup of a shared scratch folder): the exit listed it and raised FileNotFoundError."""
    import shutil

    out = tmp_path / "out"
    with output_dir_held(out):
        assert (out / LOCK_NAME).exists()
        shutil.rmtree(out)
    assert not out.exists()


def test_a_participants_tsv_that_is_not_utf8_is_refused_naming_the_byte(tmp_path: Path) -> None:
    """A latin-1 participants.tsv (Köln) was read as an empty table: the task's label then
    'is not in the variable catalogue', with no word of the file's encoding."""
    bids = _study(tmp_path)
    pheno = bids / "participants.tsv"
    pheno.write_bytes(
        b"participant_id\tage\tdiagnosis\tcity\n"
        + "sub-01\t30\tpatient\tKöln\nsub-02\t31\tcontrol\tBonn\n".encode("latin-1")
    )
    task = {"dataset": "study", "label": "diagnosis", "positive": "patient", "models": ["logreg"]}
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump({"tasks": {"dx": task}}))
    args = parse("study", "out", "group", "--config-file", "tasks.yaml", *DERIVATIVES)
    with pytest.raises(InputDataError, match=r"participants.tsv is not UTF-8 text \(byte b'\\xf6'"):
        run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_generated_coding_reads_common_codings_and_leaves_out_what_does_not_fit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """participants.tsv with sex male/female (the BIDS specification's example): lcm run's
    own coding read the column unchanged, and the store stopped the participant level on
    "unknown level 'male' ... Map the dataset's codes with map:" in a file it rewrites."""
    bids = _study(tmp_path)
    pheno = bids / "participants.tsv"
    pheno.write_text(
        "participant_id\tage\tsex\tbmi\n"
        "sub-01\t30\tmale\t22\nsub-02\t31\tFemale\tn/a\nsub-03\t32\tfemale\t19\n"
        "sub-04\tn/a\tM\t300\n"
    )
    args = parse("study", "out", "participant", *DERIVATIVES)
    with caplog.at_level("INFO"):
        config = run_cmd.build_config(args, tmp_path, tmp_path / "out")
    text = Path(config["variables"]).read_text()
    coding = yaml.safe_load(text)["datasets"]["study"]["columns"]
    assert coding["sex"] == {
        "column": "sex",
        "map": {"male": "M", "Female": "F", "female": "F", "M": "M"},
    }
    assert coding["age"] == {"column": "age"}
    # A value the variable refuses (bmi 300 kg/m^2): the column is left out, said with the
    # values, the reason and the way to code it oneself.
    assert "bmi" not in coding
    warned = next(r.getMessage() for r in caplog.records if "'bmi'" in r.getMessage())
    assert "column 'bmi' (values '22', '19', '300'): row 5, value '300': 300 kg/m^2 is " in warned
    assert "give a catalogue of your own with --config-file" in warned
    assert "# Left out: column 'bmi'" in text
    # What was written is what the store reads.
    catalogue = load_catalogue(config["variables"])
    table = read_phenotype(pheno, "study", catalogue)
    assert table["sex"].tolist() == ["M", "F", "F", "M"]
    # Numbers are codes only where participants.json says so.
    pheno.write_text("participant_id\tage\tsex\nsub-01\t30\t1\nsub-02\t31\t2\n")
    caplog.clear()
    with caplog.at_level("INFO"):
        config = run_cmd.build_config(args, tmp_path, tmp_path / "out")
    coding = yaml.safe_load(Path(config["variables"]).read_text())["datasets"]["study"]
    assert "sex" not in coding["columns"]
    said = "column 'sex' (values '1', '2'): '1', '2' name(s) no level of binary variable 'sex'"
    assert said in caplog.text
    assert "no participants.json describes the codes" in caplog.text
    levels = {"sex": {"Description": "sex", "Levels": {"1": "male", "2": "female"}}}
    (bids / "participants.json").write_text(json.dumps(levels))
    config = run_cmd.build_config(args, tmp_path, tmp_path / "out")
    coding = yaml.safe_load(Path(config["variables"]).read_text())["datasets"]["study"]
    assert coding["columns"]["sex"] == {"column": "sex", "map": {"1": "M", "2": "F"}}
    # A file changed after lcm run wrote the coding: the store's error names the override,
    # not the map: of a file the next run rewrites.
    pheno.write_text("participant_id\tage\tsex\nsub-01\t30\t1\nsub-02\t31\t3\n")
    with pytest.raises(InputDataError, match=r"code not in the catalogue map") as info:
        read_phenotype(pheno, "study", load_catalogue(config["variables"]))
    assert "was generated by lcm run from the columns of" in (info.value.hint or "")
    assert "--config-file (variables: my_variables.yaml, with datasets.study" in info.value.hint
    # A task whose label's column does not fit: refused before anything runs.
    task = {"dataset": "study", "label": "sex", "positive": "M", "models": ["logreg"]}
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump({"tasks": {"sx": task}}))
    (bids / "participants.json").unlink()
    args = parse("study", "out", "group", "--config-file", "tasks.yaml", *DERIVATIVES)
    with pytest.raises(ConfigError, match=r"Task 'sx': its label's column 'sex' \(values '1', '3'"):
        run_cmd.build_config(args, tmp_path, tmp_path / "out")


def test_the_generated_coding_reads_capitalised_columns_and_warns_of_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """participants.tsv with ``Age`` and ``Sex`` columns (as many releases write them): the
    coding lcm run wrote had no column, and every participant was stored without a variable,
    with no word in any log."""
    bids = _study(tmp_path)
    pheno = bids / "participants.tsv"
    pheno.write_text("participant_id\tAge\tSex\nsub-01\t30\tm\nsub-02\t31\tF\n")
    args = parse("study", "out", "participant", *DERIVATIVES)
    with caplog.at_level("INFO"):
        config = run_cmd.build_config(args, tmp_path, tmp_path / "out")
    coding = yaml.safe_load(Path(config["variables"]).read_text())["datasets"]["study"]
    assert coding["columns"]["age"] == {"column": "Age"}
    assert coding["columns"]["sex"]["column"] == "Sex"
    table = read_phenotype(pheno, "study", load_catalogue(config["variables"]))
    assert table["age"].tolist() == [30.0, 31.0] and table["sex"].tolist() == ["M", "F"]
    assert "column 'Age' read as catalogue variable 'age'" in caplog.text
    # No column named like any variable: said, naming the columns and the fix.
    pheno.write_text("participant_id\tgender\tyears\nsub-01\tm\t30\nsub-02\tf\t31\n")
    caplog.clear()
    with caplog.at_level("INFO"):
        config = run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert yaml.safe_load(Path(config["variables"]).read_text())["datasets"]["study"] == {
        "id_column": "participant_id",
        "columns": {},
    }
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        "no column is named like a catalogue variable (columns 'gender', 'years'" in w
        and "stored without variables" in w
        for w in warned
    ), warned


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("header", "said"),
    [
        ("participant_id ", "its column 'participant_id ' is named so up to spaces or case"),
        ("subject_id", "its columns are 'subject_id', 'age'"),
    ],
    ids=["trailing_space", "other_name"],
)
def test_a_participants_tsv_without_participant_id_is_refused_before_anything_runs(
    tmp_path: Path, header: str, said: str
) -> None:
    """A spreadsheet's ``participant_id `` header (or another name): lcm run wrote a coding
    whose id_column the table lacks, and the store refused it after every subject's
    connectomes, pointing at the variables.yaml that lcm run rewrites."""
    bids = _study(tmp_path)
    (bids / "participants.tsv").write_text(f"{header}\tage\r\nsub-01\t30\r\nsub-02\t31\r\n")
    args = parse("study", "out", "participant", *DERIVATIVES)
    with pytest.raises(
        ConfigError, match=r"participants.tsv has no 'participant_id' column"
    ) as info:
        run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert said in str(info.value)
    assert "exactly participant_id" in (info.value.hint or "")
    assert not (tmp_path / "out" / "variables.yaml").exists()


@pytest.mark.hostile
def test_a_repeated_participant_id_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """sub-02 listed twice with different ages: lcm run started, and the store refused the
    table after every subject's connectomes. Refused now by the store's own rule, naming the
    file, the ID, its lines and the fix; rows alike in every value read still pass, and so
    do the rows of a participant without a folder in BIDS_DIR."""
    bids = _study(tmp_path)
    rows = "sub-01\t30\nsub-02\t31\nsub-03\t32\nsub-02\t35\nsub-04\t33\n"
    (bids / "participants.tsv").write_text(f"participant_id\tage\n{rows}")
    args = parse("study", "out", "participant", *DERIVATIVES)
    with pytest.raises(InputDataError, match=r"study/participants.tsv, row 5, column") as info:
        run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert "value 'sub-02': duplicate participant ID: row 3 has it" in str(info.value)
    assert info.value.hint == "Keep one row per participant (merge sessions or visits first)."
    # One participant written twice alike, and one no subject folder holds: the store's
    # rule lets both pass (the first kept, the other left out).
    alike = "sub-01\t30\nsub-02\t31\nsub-02\t31\nsub-09\t40\nsub-09\t41\n"
    (bids / "participants.tsv").write_text(f"participant_id\tage\n{alike}")
    config = run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert "study" in load_catalogue(config["variables"]).datasets


@pytest.mark.hostile
def test_a_run_refused_for_a_repeated_participant_id_writes_no_variables_yaml(
    tmp_path: Path,
) -> None:
    """The repeated ID was refused after variables.yaml was written: a refused run left a
    fresh coding of the table it refused (in place of an earlier run's). Refused before the
    write now: nothing new in OUTPUT_DIR, and an earlier run's file byte for byte as it was."""
    bids = _study(tmp_path)
    repeated = "participant_id\tage\nsub-01\t30\nsub-02\t31\nsub-02\t35\n"
    (bids / "participants.tsv").write_text(repeated)
    args = parse("study", "out", "participant", *DERIVATIVES)
    with pytest.raises(InputDataError, match="duplicate participant ID"):
        run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # An earlier run's coding (age and sex): the refused table (age alone) would rewrite it.
    (bids / "participants.tsv").write_text("participant_id\tage\tsex\nsub-01\t30\tM\n")
    written = Path(run_cmd.build_config(args, tmp_path, tmp_path / "out")["variables"])
    before = written.read_bytes()
    assert b"sex" in before
    (bids / "participants.tsv").write_text(repeated)
    with pytest.raises(InputDataError, match="duplicate participant ID"):
        run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert written.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["variables.yaml"]


def test_the_generated_coding_reads_participants_json_units(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A child cohort's age in months (participants.json "Units": "months"): 60-96 fell in
    the range of years and were stored as 60-96 years; units LCM cannot convert leave the
    column out, naming both."""
    bids = _study(tmp_path)
    pheno = bids / "participants.tsv"
    pheno.write_text("participant_id\tage\tsex\nsub-01\t60\tM\nsub-02\t96\tF\n")
    (bids / "participants.json").write_text(json.dumps({"age": {"Units": "months"}}))
    args = parse("study", "out", "participant", *DERIVATIVES)
    config = run_cmd.build_config(args, tmp_path, tmp_path / "out")
    catalogue = load_catalogue(config["variables"])
    assert catalogue.datasets["study"].columns["age"].column == "age"
    with caplog.at_level("INFO"):
        table = read_phenotype(pheno, "study", catalogue)
    assert table["age"].tolist() == [5.0, 8.0]
    assert "age: months -> years (x 1/12)" in caplog.text
    (bids / "participants.json").write_text(json.dumps({"age": {"Units": "cm"}}))
    caplog.clear()
    with caplog.at_level("INFO"):
        config = run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert "age" not in load_catalogue(config["variables"]).datasets["study"].columns
    assert "column 'age' in 'cm', the catalogue's 'age' is in 'years'" in caplog.text
    # One that does not parse was read as absent: 60-96 months generated as years. Refused
    # before the coding is written, naming the file.
    (bids / "participants.json").write_text('{"age": {"Units": "months"},}')
    written = Path(config["variables"]).read_bytes()
    with pytest.raises(InputDataError, match=r"participants\.json is not valid JSON") as info:
        run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert f"Fix the JSON of {bids / 'participants.json'}" in (info.value.hint or "")
    assert Path(config["variables"]).read_bytes() == written


def test_a_bids_dir_one_level_too_high_names_the_dataset_inside(tmp_path: Path) -> None:
    """BIDS_DIR given as the study folder of `study/rawdata`: refused for lacking
    participants.tsv, with no word of the dataset one level down."""
    study = tmp_path / "study"
    raw = _study(study).rename(study / "rawdata")
    (raw / "dataset_description.json").write_text('{"Name": "s", "BIDSVersion": "1.10.0"}')
    (study / "sourcedata" / "sub-01").mkdir(parents=True)
    args = parse("study", "out", "participant", "--derivatives", "study/rawdata/derivatives")
    with pytest.raises(ConfigError, match=r"BIDS_DIR .*study holds no sub-\* folder") as info:
        run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert f"{raw} holds subject folders (sourcedata too)" in info.value.message
    assert info.value.hint.startswith(f"Pass {raw} as BIDS_DIR")
    assert not (tmp_path / "out").exists()


def test_participant_labels_without_a_bold_run_of_the_task_are_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`--participant-label 03` of a subject with an anatomical scan only ran ingest and ended
    on "no included run ... not_selected: 2 runs", about the subjects it did not choose."""
    bids = _study(tmp_path)
    (bids / "sub-02" / "func" / "sub-02_task-rest_bold.nii.gz").rename(
        bids / "sub-02" / "func" / "sub-02_task-movie_bold.nii"
    )
    (bids / "sub-03" / "func" / "sub-03_task-rest_bold.nii.gz").unlink()
    (bids / "sub-03" / "anat").mkdir()
    argv = ("study", "out", "participant", *DERIVATIVES, "--participant-label")
    with pytest.raises(
        ConfigError, match=r"--participant-label 03 02: no BOLD run of task 'rest'"
    ) as info:
        run_cmd.build_config(parse(*argv, "03", "sub-02"), tmp_path, tmp_path / "out")
    assert "(sub-03: no BOLD file in func/; sub-02: BOLD runs of task(s) movie only)" in (
        info.value.message
    )
    assert "--task" in (info.value.hint or "")
    assert not (tmp_path / "out").exists()
    # With a subject that has one, the others are said and the run goes on.
    with caplog.at_level("WARNING"):
        config = run_cmd.build_config(parse(*argv, "01", "03"), tmp_path, tmp_path / "out")
    assert "no BOLD run of task 'rest' for sub-03: no BOLD file in func/" in caplog.text
    assert config["ingest"]["select"]["study"]["participants"]["include"] == ["01", "03"]
    # The task of the subject's runs, given: accepted.
    run_cmd.build_config(parse(*argv, "02", "--task", "movie"), tmp_path, tmp_path / "out")


@pytest.mark.parametrize("inside", ["", "lcm"], ids=["is_derivatives", "inside_derivatives"])
def test_an_output_dir_in_the_derivatives_folder_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inside: str
) -> None:
    """OUTPUT_DIR = --derivatives (or a folder in it): LCM wrote into fMRIPrep's derivative
    dataset, as it is refused to inside BIDS_DIR."""
    bids = _study(tmp_path)
    derivatives = bids / "derivatives" / "fmriprep"
    out = derivatives / inside if inside else derivatives
    args = parse("study", str(out), "participant", *DERIVATIVES)
    match = r"OUTPUT_DIR .*fmriprep(/lcm)? is (inside )?the --derivatives folder .*fmriprep, "
    with pytest.raises(ConfigError, match=match) as info:
        run_cmd.build_config(args, tmp_path, out)
    assert f"e.g. {bids / 'derivatives' / 'lcm'} (beside it)" in (info.value.hint or "")
    # Through the command: no lock file nor config either.
    ran = _no_snakemake(monkeypatch)
    before = sorted(p.name for p in derivatives.iterdir())
    monkeypatch.chdir(tmp_path)
    assert main(["run", "study", str(out), "participant", *DERIVATIVES]) == 2 and not ran
    assert sorted(p.name for p in derivatives.iterdir()) == before
    # A derivatives folder outside BIDS_DIR: the suggestion is beside it too.
    elsewhere = tmp_path / "preproc" / "fmriprep"
    (elsewhere / "sub-01").mkdir(parents=True)
    args = parse("study", "x", "participant", "--derivatives", str(elsewhere))
    with pytest.raises(ConfigError, match=r"is the --derivatives folder") as info:
        run_cmd.build_config(args, tmp_path, elsewhere)
    assert f"e.g. {tmp_path / 'preproc' / 'lcm'} (beside it)" in (info.value.hint or "")


def test_an_output_dir_holding_others_files_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """OUTPUT_DIR with a user's logs/important.txt: lcm run wrote its config, catalogue and
    .snakemake/ there, then the workflow refused the folder at its first job ("nothing was
    written"), and a dry run (-n) planned it without a word. Only the lock file is left."""
    _study(tmp_path)
    theirs = tmp_path / "theirs"
    (theirs / "logs").mkdir(parents=True)
    (theirs / "logs" / "important.txt").write_text("mine\n")
    ran = _no_snakemake(monkeypatch)
    monkeypatch.chdir(tmp_path)
    for dry in ([], ["-n"]):
        capsys.readouterr()
        assert main(["run", "study", "theirs", "participant", *DERIVATIVES, *dry]) == 6
        assert "logs/important.txt" in capsys.readouterr().err and not ran
        assert sorted(p.name for p in theirs.iterdir()) == [LOCK_NAME, "logs"]
    assert main(["run", "study", "mine", "participant", *DERIVATIVES]) == 0 and len(ran) == 1
    assert (tmp_path / "mine" / "config.yaml").is_file()


def _demo_config(path: Path) -> Path:
    """The demo config (synthetic consortia at ``results/synth/...``, no ``synth.out_dir``)
    with the packaged catalogue, so that it reads from any folder."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert "out_dir" not in config["synth"]
    config["variables"] = str(run_cmd.workflow_files() / "config" / "variables.yaml")
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_demo_config_from_another_folder_keeps_synthetic_paths_with_out_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # The datasets' results/synth/... paths were made absolute against the calling folder,
    # the default synth.out_dir (results/synth) left to be read from OUTPUT_DIR: the store
    # found no input (MissingInputException), or the calling folder's stale files.
    _study(tmp_path)
    demo = _demo_config(tmp_path / "demo.yaml")
    call = tmp_path / "call"
    (call / "results" / "synth").mkdir(parents=True)  # a stale folder where lcm run is called
    monkeypatch.chdir(call)
    argv = ["run", "../study", "../out", "participant"]
    argv += ["--derivatives", "../study/derivatives/fmriprep", "--config-file", str(demo)]
    argv += ["-n", "--cores", "1"]
    assert main(argv) == 0, capfd.readouterr().err[-3000:]
    text = "".join(capfd.readouterr())
    assert "MissingInputException" not in text and "synth_roi_cohort" in text
    config = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    synth = Path(config["synth"]["out_dir"])
    assert synth == tmp_path / "out" / "synth"
    for name in config["synth"]["consortia"]:
        ds = config["datasets"][name]
        for key in ("path", "derivatives", "phenotype"):
            if ds.get(key):
                assert Path(ds[key]).is_relative_to(synth / name), (name, key, ds[key])


def test_a_synthetic_dataset_outside_synth_out_dir_is_refused(tmp_path: Path) -> None:
    _study(tmp_path)
    config = yaml.safe_load(_demo_config(tmp_path / "demo.yaml").read_text())
    config["synth"]["out_dir"] = "mysynth"  # the datasets still read results/synth/...
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(config))
    args = parse("study", "out", "participant", *DERIVATIVES, "--config-file", "demo.yaml")
    with pytest.raises(ConfigError, match=r"datasets\.(\w+)\.path .* outside .*mysynth/\1,"):
        run_cmd.build_config(args, tmp_path, tmp_path / "out")


def test_a_container_runs_relative_image_licence_and_templateflow_are_the_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config-file with `image: fmriprep.sif`: lcm run's check passed in the caller's folder,
    then Snakemake, running in OUTPUT_DIR, refused it with a traceback. A licence that is no
    file passed lcm run and failed each subject's job; a relative TEMPLATEFLOW_HOME was bound
    as OUTPUT_DIR/<it>, a folder that did not exist."""
    _study(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fmriprep.sif").write_bytes(b"sif")
    fmriprep = {"runner": "apptainer", "image": "fmriprep.sif", "fs_license": "license.txt"}
    (tmp_path / "app.yaml").write_text(yaml.safe_dump({"fmriprep": fmriprep}))
    argv = ("study", "out", "participant", "--config-file", "app.yaml")
    monkeypatch.delenv("TEMPLATEFLOW_HOME", raising=False)
    with pytest.raises(ConfigError, match=r"fmriprep\.fs_license is '.*license\.txt', which"):
        run_cmd.build_config(parse(*argv), tmp_path, tmp_path / "out")
    (tmp_path / "license.txt").write_text("licence\n")
    config = run_cmd.build_config(parse(*argv), tmp_path, tmp_path / "out")
    assert config["fmriprep"]["image"] == str(tmp_path / "fmriprep.sif")
    assert config["fmriprep"]["fs_license"] == str(tmp_path / "license.txt")

    monkeypatch.setenv("TEMPLATEFLOW_HOME", "tf")
    with pytest.raises(ConfigError, match=r"TEMPLATEFLOW_HOME is 'tf' \(relative to "):
        run_cmd.build_config(parse(*argv), tmp_path, tmp_path / "out")
    (tmp_path / "tf").mkdir()
    run_cmd.build_config(parse(*argv), tmp_path, tmp_path / "out")
    run_cmd._absolute_templateflow_home(tmp_path)  # before Snakemake moves to OUTPUT_DIR
    assert os.environ["TEMPLATEFLOW_HOME"] == str(tmp_path / "tf")
    # docker takes a name, never a path
    fmriprep.update(runner="docker", image="nipreps/fmriprep:25.2.7")
    (tmp_path / "docker.yaml").write_text(yaml.safe_dump({"fmriprep": fmriprep}))
    argv = ("study", "out", "participant", "--config-file", "docker.yaml")
    config = run_cmd.build_config(parse(*argv), tmp_path, tmp_path / "out")
    assert config["fmriprep"]["image"] == "nipreps/fmriprep:25.2.7"


def test_a_record_to_force_is_read_from_the_callers_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lcm run ... -- --forcerun out/fmriprep/ds/sub-06_fmriprep.json`: Snakemake, running in
    OUTPUT_DIR, said "No rule to produce" it; rule names stay as they are."""
    monkeypatch.chdir(tmp_path)
    record = tmp_path / "out" / "fmriprep" / "ds" / "sub-06_fmriprep.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    extra = ["--forcerun", "out/fmriprep/ds/sub-06_fmriprep.json", "ingest", "-R", "fmriprep"]
    args = parse("bids", "out", "participant", "--", *extra)
    cmd = run_cmd.snakemake_command(args, tmp_path / "out" / "config.yaml", tmp_path / "out")
    assert cmd[-5:] == ["--forcerun", str(record), "ingest", "-R", "fmriprep"]


@pytest.mark.parametrize(
    ("text", "key", "received"),
    [
        ("ingest: 3\n", "ingest", "3"),
        ("ingest: {select: [study]}\n", "ingest.select", "['study']"),
        (
            "ingest: {select: {study: {participants: x}}}\n",
            "ingest.select.study.participants",
            "'x'",
        ),
        ("fmriprep: 3\n", "fmriprep", "3"),
        ("datasets:\n", "datasets", "None"),
        ("datasets: {study: 3}\n", "datasets.study", "3"),
    ],
)
def test_a_config_file_section_that_is_no_mapping_is_refused_naming_its_key(
    tmp_path: Path, text: str, key: str, received: str
) -> None:
    """`ingest: 3` or `datasets:` with nothing under it stopped lcm run with an AttributeError
    traceback, and `datasets.study: 3` was silently replaced by BIDS_DIR's entry."""
    _study(tmp_path)
    (tmp_path / "bad.yaml").write_text(text)
    argv = ("study", "out", "participant", *DERIVATIVES, "--config-file", "bad.yaml")
    with pytest.raises(ConfigError) as info:
        run_cmd.build_config(parse(*argv, "--participant-label", "01"), tmp_path, tmp_path / "out")
    assert info.value.message.startswith(
        f"lcm run --config-file bad.yaml: invalid value at key {key!r}: expected a mapping "
        f"(received {received})"
    ), info.value.message
    assert f"under {key}" in (info.value.hint or "")
    assert not (tmp_path / "out").exists()


def test_participant_labels_the_config_file_excludes_are_said_before_ingest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`--participant-label 02` with 02 in the config file's exclude list ran ingest over the
    whole dataset and stopped on "no included run", about every subject of it."""
    _study(tmp_path)
    (tmp_path / "ex.yaml").write_text(
        yaml.safe_dump({"ingest": {"select": {"study": {"participants": {"exclude": ["sub-02"]}}}}})
    )
    argv = ("study", "out", "participant", *DERIVATIVES, "--config-file", "ex.yaml")
    with pytest.raises(ConfigError) as info:
        run_cmd.build_config(parse(*argv, "--participant-label", "02"), tmp_path, tmp_path / "out")
    assert info.value.message == (
        "--participant-label 02: excluded by ingest.select.study.participants.exclude of "
        "lcm run --config-file ex.yaml; nothing to process."
    )
    assert "Remove them from ingest.select.study.participants.exclude" in (info.value.hint or "")
    assert not (tmp_path / "out").exists()
    # With a label it does not exclude, the excluded one is said and the run goes on.
    with caplog.at_level("WARNING"):
        config = run_cmd.build_config(
            parse(*argv, "--participant-label", "01", "02"), tmp_path, tmp_path / "out"
        )
    assert "--participant-label 02: excluded by" in caplog.text
    assert config["ingest"]["select"]["study"]["participants"]["include"] == ["01", "02"]


@pytest.mark.parametrize(
    ("extra", "said", "fix"),
    [
        (["--configfile", "mine.yaml"], "-- --configfile: replaces", "lcm run --config-file"),
        (["--configfiles=mine.yaml"], "-- --configfiles=mine.yaml: replaces", "--config-file"),
        (["-d", "elsewhere"], "-- -d: replaces", "run snakemake directly"),
        (["--snakefile", "Snakefile"], "-- --snakefile: replaces", "run snakemake directly"),
        (["--profile", "slurm"], "-- --profile: replaces", "lcm run --profile"),
        (["--config", "seed=1", "results_dir=/x"], "--config results_dir=/x: OUTPUT_DIR", "as OUT"),
        (["-C=results_dir=/x"], "--config results_dir=/x: OUTPUT_DIR", "as OUTPUT_DIR"),
        (["--config=results_dir=/x"], "--config results_dir=/x: OUTPUT_DIR", "as OUTPUT_DIR"),
        # What Snakemake's argparse reads as those options: abbreviations, attached values.
        (["--direc", "x"], "-- --direc (Snakemake reads it as --directory): rep", "snakemake di"),
        (["--snakef=S"], "-- --snakef=S (Snakemake reads it as --snakefile): rep", "snakemake "),
        (["--prof", "slurm"], "-- --prof (Snakemake reads it as --profile): rep", "--profile"),
        (["-sSnakefile"], "-- -sSnakefile (Snakemake reads it as --snakefile)", "snakemake d"),
        (["-F", "-nd", "x"], "-- -nd (Snakemake reads it as --directory)", "snakemake directly"),
        (["-Cresults_dir=/x"], "--config results_dir=/x: OUTPUT_DIR", "as OUTPUT_DIR"),
        (["-nC", "a=1", "results_dir=/x"], "--config results_dir=/x: OUTPUT_DIR", "as OUTPUT_D"),
    ],
)
def test_snakemake_options_that_replace_lcm_runs_own_are_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], said: str, fix: str
) -> None:
    """Snakemake keeps an option's last value: `-- --configfile mine.yaml` replaced the resolved
    config (the BIDS dataset gone), `-- --config results_dir=/x` wrote past OUTPUT_DIR."""
    _study(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = parse("study", "out", "participant", *DERIVATIVES, "--", *extra)
    with pytest.raises(ConfigError) as info:
        run_cmd.snakemake_command(args, tmp_path / "out" / "config.yaml", tmp_path / "out")
    assert said in info.value.message and "nothing was written" in info.value.message
    assert fix in (info.value.hint or "")
    assert main(["run", "study", "out", "participant", *DERIVATIVES, "--", *extra]) == 2
    assert not (tmp_path / "out").exists()


def test_snakemake_options_lcm_run_does_not_set_pass_through(tmp_path: Path) -> None:
    """Config overrides of other keys, and values that merely contain an option's name, go to
    Snakemake unchanged."""
    extra = ["--config", "denoise={fd_threshold: 0.4}", "--forcerun", "store", "-n"]
    args = parse("bids", "out", "participant", "--", *extra, "--set-resources", "a:d=1")
    cmd = run_cmd.snakemake_command(args, tmp_path / "config.yaml", tmp_path)
    assert cmd[-8:] == ["participant", *extra, "--set-resources", "a:d=1"]


@pytest.mark.parametrize(
    "extra",
    [["--configf", "x.yaml"], ["--d", "x"], ["-np", "-c4", "-j", "2"], ["-Ca=1", "results_dir"]],
    ids=["ambiguous", "ambiguous_short", "other_short_options", "attached_config_value"],
)
def test_words_snakemake_does_not_read_as_lcm_runs_options_pass_through(
    tmp_path: Path, extra: list[str]
) -> None:
    """Only what Snakemake's parser reads as --configfile, --directory ... is refused: an
    ambiguous abbreviation is Snakemake's own error, and -Ca=1 takes no further item."""
    args = parse("bids", "out", "participant", "--", *extra)
    cmd = run_cmd.snakemake_command(args, tmp_path / "config.yaml", tmp_path)
    assert cmd[-len(extra) - 1 :] == ["participant", *extra]


@pytest.mark.parametrize(
    ("given", "hint"),
    [("my-study", "--dataset-name mystudy"), ("", "letters and digits"), ("x" * 65, "x" * 64)],
)
def test_a_dataset_name_that_is_no_config_name_is_refused_naming_the_option(
    tmp_path: Path, given: str, hint: str
) -> None:
    """`--dataset-name my-study` was refused as "invalid name under key 'datasets'", never
    naming the option, and an empty one silently took the folder's name."""
    _study(tmp_path)
    args = parse("study", "out", "participant", *DERIVATIVES, f"--dataset-name={given}")
    with pytest.raises(
        ConfigError, match=r"^--dataset-name '.*': a dataset name is 1 to 64"
    ) as info:
        run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert hint in (info.value.hint or "")
    assert not (tmp_path / "out").exists()


def test_a_bids_dir_of_a_common_folder_name_is_named_after_its_study(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`lcm run /data/abide/rawdata` named the dataset 'rawdata', silently, in OUTPUT_DIR's
    folders and the store's partitions: every study so laid out got one name."""
    bids = _study(tmp_path / "abide").rename(tmp_path / "abide" / "rawdata")
    argv = ("abide/rawdata", "out", "participant", "--derivatives")
    args = parse(*argv, "abide/rawdata/derivatives/fmriprep")
    with caplog.at_level("INFO"):
        config = run_cmd.build_config(args, tmp_path, tmp_path / "out")
    assert list(config["datasets"]) == ["abide"]
    assert f"dataset 'abide' (from folder {bids}: 'rawdata' names no study" in caplog.text
    assert "--dataset-name sets another" in caplog.text
    # Its study folder a common name too: dataset_description.json's Name, in letters/digits.
    data = (tmp_path / "abide").rename(tmp_path / "data")
    (data / "rawdata" / "dataset_description.json").write_text(
        '{"Name": "ABIDE I (NYU site)", "BIDSVersion": "1.10.0"}'
    )
    args = parse(
        "data/rawdata", "out2", "participant", "--derivatives", "data/rawdata/derivatives/fmriprep"
    )
    assert list(run_cmd.build_config(args, tmp_path, tmp_path / "out2")["datasets"]) == [
        "ABIDEINYUsite"
    ]
    # An OUTPUT_DIR whose earlier lcm run named it otherwise keeps that name: another would
    # add the same participants to the store a second time.
    earlier = {"datasets": {"rawdata": {"entry": "bids", "path": str(data / "rawdata")}}}
    (tmp_path / "out2" / "config.yaml").write_text(
        "# Written by `lcm run`: earlier\n" + yaml.safe_dump(earlier)
    )
    caplog.clear()
    with caplog.at_level("INFO"):
        config = run_cmd.build_config(args, tmp_path, tmp_path / "out2")
    assert list(config["datasets"]) == ["rawdata"]
    assert "dataset 'rawdata' (its name in the earlier runs of" in caplog.text
    # Another name given now (the earlier runs' choice unseen): its participants would enter
    # the store a second time, as another dataset.
    renamed = parse(
        "data/rawdata", "out2", "participant", "--derivatives", "data/rawdata/derivatives/fmriprep",
        "--dataset-name", "abide",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"was dataset 'rawdata' in the earlier runs") as info:
        run_cmd.build_config(renamed, tmp_path, tmp_path / "out2")
    assert "--dataset-name rawdata" in info.value.hint


def test_an_output_dir_holding_the_derivatives_folder_is_refused_but_one_beside_it_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`lcm run study /scratch participant --derivatives /scratch/fmriprep` was accepted: LCM's
    folders (its own `fmriprep/` among them) were written around fMRIPrep's dataset."""
    _study(tmp_path)
    scratch = tmp_path / "scratch"
    (scratch / "fmriprep" / "sub-01").mkdir(parents=True)
    ran = _no_snakemake(monkeypatch)
    monkeypatch.chdir(tmp_path)
    argv = ["participant", "--derivatives", "scratch/fmriprep", "-n"]
    assert main(["run", "study", "scratch", *argv]) == ConfigError.exit_code
    err = capsys.readouterr().err
    said = f"OUTPUT_DIR {scratch} holds the --derivatives folder {scratch / 'fmriprep'}, fMRIPrep"
    assert said in err and f"e.g. {scratch / 'lcm'} (beside it)" in err
    assert not ran and sorted(p.name for p in scratch.iterdir()) == ["fmriprep"]
    # BIDS_DIR/derivatives/lcm beside BIDS_DIR/derivatives/fmriprep stays accepted.
    args = parse("study", "study/derivatives/lcm", "participant", *DERIVATIVES)
    out = tmp_path / "study" / "derivatives" / "lcm"
    assert run_cmd.build_config(args, tmp_path, out)["results_dir"] == str(out)


def test_a_config_file_listing_bids_dir_under_its_own_name_is_read_as_that_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`datasets.mystudy.path: <BIDS_DIR>` in --config-file: lcm run added BIDS_DIR again as
    `study`, and mystudy was refused for "'phenotype' is a required property"."""
    bids = _study(tmp_path)
    entry = {"path": "study", "task": "rest", "repetition_time": 2.0, "role": "pretrain"}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"datasets": {"mystudy": entry}}))
    argv = ("study", "out", "participant", "--config-file", "mine.yaml", *DERIVATIVES)
    config = run_cmd.build_config(parse(*argv), tmp_path, tmp_path / "out")
    assert list(config["datasets"]) == ["mystudy"]
    ds = config["datasets"]["mystudy"]
    assert (ds["path"], ds["repetition_time"], ds["role"]) == (str(bids), 2.0, "pretrain")
    assert ds["phenotype"] == str(bids / "participants.tsv")
    # The same name given: accepted; another: refused naming both, before anything is written.
    args = parse(*argv, "--dataset-name", "mystudy")
    assert list(run_cmd.build_config(args, tmp_path, tmp_path / "out")["datasets"]) == ["mystudy"]
    ran = _no_snakemake(monkeypatch)
    monkeypatch.chdir(tmp_path)
    refused = ["run", "study", "new", *argv[2:], "--dataset-name", "other", "-n"]
    assert main(refused) == ConfigError.exit_code
    err = capsys.readouterr().err
    said = f"--dataset-name other, but lcm run --config-file mine.yaml lists BIDS_DIR {bids} as"
    assert said in err and "datasets.mystudy;" in err and "--dataset-name mystudy" in err
    assert not ran and not (tmp_path / "new").exists()
