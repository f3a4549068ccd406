"""A config error stops ``snakemake -n`` before any job, naming the config file and the key.

Messages began ``config:`` whatever file was given; a mistyped dataset path passed the dry run
(a raw BIDS dataset planned no run, silently) and failed the ingest job only, calling an ROI
dataset's folder a "BIDS folder" and naming ``datasets.<name>.path`` unfilled; a catalogue
(``variables``) not found skipped the tasks' check and stopped the DAG on a missing input.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import ROOT
from helpers.workflow import bids_root, snakemake


def _config(tmp_path: Path) -> dict:
    """One real dataset of each kind the checks tell apart, every file in place, no task."""
    raw, roi = tmp_path / "data" / "raw", tmp_path / "data" / "roi"
    bids_root(raw)
    roi.mkdir(parents=True)
    (tmp_path / "data" / "deriv").mkdir()
    pheno = tmp_path / "data" / "phenotype.tsv"
    pheno.write_text("participant_id\n")
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["variables"] = str(ROOT / "config" / "variables.yaml")
    cfg["synth"]["enabled"] = False
    cfg["datasets"] = {
        "rawds": {
            "entry": "bids",
            "path": str(raw),
            "derivatives": str(tmp_path / "data" / "deriv"),
            "phenotype": str(pheno),
            "role": "pretrain",
        },
        "roids": {
            "entry": "roi_timeseries",
            "path": str(roi),
            "phenotype": str(pheno),
            "role": "pretrain",
        },
    }
    cfg["tasks"] = {}
    cfg["fmriprep"]["runner"] = "existing"
    return cfg


def _dry_run(tmp_path: Path, cfg: dict, *extra: str) -> tuple[int, str, Path]:
    config = tmp_path / "my config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc = snakemake(ROOT, tmp_path, "--configfile", str(config), "-n", "-c1", *extra)
    return proc.returncode, proc.stdout + proc.stderr, config


def test_the_config_as_given_plans(tmp_path: Path) -> None:
    code, out, _ = _dry_run(tmp_path, _config(tmp_path))
    assert code == 0, out[-3000:]


@pytest.mark.parametrize(
    ("dataset", "key"),
    [
        ("roids", "path"),
        ("rawds", "path"),
        ("rawds", "derivatives"),  # read as they are with runner existing
        ("rawds", "phenotype"),
    ],
)
def test_a_missing_dataset_path_stops_the_dry_run_naming_file_and_key(
    tmp_path: Path, dataset: str, key: str
) -> None:
    cfg = _config(tmp_path)
    cfg["datasets"][dataset][key] = str(tmp_path / "data" / "typo")
    code, out, config = _dry_run(tmp_path, cfg)
    assert code != 0, out[-3000:]
    said = f"{config}: datasets.{dataset}.{key} is '{tmp_path / 'data' / 'typo'}', which does not"
    assert said in out, out[-3000:]
    assert f"hint: Set datasets.{dataset}.{key} to" in out
    assert "Job stats" not in out and not (tmp_path / "results").exists()


def test_derivatives_a_container_run_writes_need_not_exist(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    cfg["datasets"]["rawds"]["derivatives"] = str(tmp_path / "fmriprep-out")  # written by it
    cfg["fmriprep"].update(runner="docker", fs_license=str(tmp_path / "license.txt"))
    (tmp_path / "license.txt").write_text("licence\n")
    code, out, _ = _dry_run(tmp_path, cfg)
    assert code == 0, out[-3000:]


def test_an_fmriprep_entry_with_derivatives_needs_no_path(tmp_path: Path) -> None:
    """Its derivatives are the folder indexed (the schema: "the folder to index, when not
    path"); its path is not read."""
    cfg = _config(tmp_path)
    cfg["datasets"]["rawds"].update(entry="fmriprep", path=str(tmp_path / "data" / "unused"))
    code, out, _ = _dry_run(tmp_path, cfg)
    assert code == 0, out[-3000:]
    cfg["datasets"]["rawds"]["derivatives"] = str(tmp_path / "data" / "typo")
    code, out, config = _dry_run(tmp_path, cfg)
    assert code != 0 and f"{config}: datasets.rawds.derivatives is '" in out, out[-3000:]


def test_synthetic_datasets_paths_are_not_checked(tmp_path: Path) -> None:
    """The demo's datasets lie under synth.out_dir, written by the workflow itself."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["variables"] = str(ROOT / "config" / "variables.yaml")
    code, out, _ = _dry_run(tmp_path, cfg)
    assert code == 0, out[-3000:]
    assert not any(Path(ds["path"]).exists() for ds in cfg["datasets"].values())


def test_a_relative_catalogue_path_not_there_is_a_config_error(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    cfg["variables"] = "config/variables.yaml"  # the demo's, relative to another folder
    code, out, config = _dry_run(tmp_path, cfg)
    assert code != 0
    assert f"{config}: variables is 'config/variables.yaml', which is not a file" in out, out
    assert f"(relative to {tmp_path})" in out and "MissingInputException" not in out


def test_a_schema_error_names_the_file_and_the_overrides(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    cfg["denoise"]["strategy"] = "99P"
    code, out, config = _dry_run(tmp_path, cfg)
    assert code != 0 and f"{config}: invalid value at key 'denoise.strategy'" in out, out
    cfg["denoise"]["strategy"] = "24P"
    code, out, config = _dry_run(tmp_path, cfg, "--config", "seed=-1")
    assert code != 0, out[-3000:]
    assert f"{config} with --config overrides: invalid value at key 'seed'" in out, out


def test_the_demo_config_is_named_when_none_is_given(tmp_path: Path) -> None:
    proc = snakemake(ROOT, tmp_path, "-n", "-c1", "--config", "seed=-1")
    demo = ROOT / "config" / "config.yaml"
    assert proc.returncode != 0
    assert f"{demo} with --config overrides: invalid value" in proc.stdout + proc.stderr
