"""A config error stops ``snakemake -n`` before any job, naming the config file and the key.

Messages began ``config:`` whatever file was given; a mistyped dataset path passed the dry run
(a raw BIDS dataset planned no run, silently) and failed the ingest job only, calling an ROI
dataset's folder a "BIDS folder" and naming ``datasets.<name>.path`` unfilled; a catalogue
(``variables``) not found skipped the tasks' check and stopped the DAG on a missing input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import ROOT
from helpers.workflow import bids_root, code_datasets, dataset, snakemake, user_config


def _config(tmp_path: Path) -> dict:
    """One real dataset of each kind the checks tell apart, every file in place, no task."""
    raw, roi = tmp_path / "data" / "raw", tmp_path / "data" / "roi"
    bids_root(raw)
    roi.mkdir(parents=True)
    (tmp_path / "data" / "deriv").mkdir()
    pheno = tmp_path / "data" / "phenotype.tsv"
    pheno.write_text("participant_id\n")
    datasets = {
        "rawds": dataset("bids", raw, pheno, derivatives=tmp_path / "data" / "deriv"),
        "roids": dataset("roi_timeseries", roi, pheno),
    }
    cfg = user_config(datasets)
    cfg["fmriprep"]["runner"] = "existing"
    code_datasets(cfg, tmp_path / "data", list(datasets))
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


def test_a_dataset_the_catalogue_does_not_code_stops_the_dry_run(tmp_path: Path) -> None:
    """It passed the dry run and stopped its store job, after every ingest, fMRIPrep and
    connectome job of the run had finished."""
    cfg = _config(tmp_path)
    cfg["datasets"]["mystudy"] = cfg["datasets"]["roids"]
    code, out, config = _dry_run(tmp_path, cfg)
    assert code != 0, out[-3000:]
    said = f"{config}: the variable catalogue {cfg['variables']} (variables) codes no phenotype"
    assert said in out and "dataset(s) ['mystudy'] (it codes [" in out, out[-3000:]
    assert "hint: Add datasets.mystudy: {id_column: <its participant ID column>" in out
    assert "Job stats" not in out and not (tmp_path / "results").exists()


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


def _set(cfg: dict, key: str, value: object) -> None:
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        (
            {"denoise.high_pass": 0.2, "denoise.low_pass": 0.1},
            "denoise: high_pass (0.2 Hz) must be below low_pass (0.1 Hz)",
        ),
        (
            {"datasets.roids.denoise": {"high_pass": 0.3}},
            "datasets.roids.denoise: high_pass (0.3 Hz) must be below low_pass (0.1 Hz)",
        ),
        (
            {
                "denoise.strategy": "scrubbing",
                "denoise.fd_threshold": None,
                "denoise.dvars_threshold": None,
            },
            "denoise: strategy 'scrubbing' scrubs volumes, but fd_threshold and dvars_threshold",
        ),
        (
            {"connectome.window": {"length": None, "step": 10}},
            "connectome: window.step (10) is set but window.length is null",
        ),
        ({"model.overrides": {"n_layer": 2}}, "model.overrides: unknown keys ['n_layer']"),
        (
            {"model.overrides": {"d_model": -4}},
            "invalid value at key 'model.overrides.d_model': -4 is less than the minimum of 1",
        ),
        (
            {"datasets.rawds": None, "atlas": {"name": "schaefer"}},
            "atlas.name is 'schaefer', which is not in the offline registry",
        ),
        (
            {"ingest.select": {"roid": {"participants": {"include": ["01"]}}}},
            "ingest.select names ['roid'], not under datasets (have ['rawds', 'roids'])",
        ),
        ({"variables": None}, "variables is not set, and its default 'config/variables.yaml'"),
    ],
)
def test_a_value_a_job_would_refuse_stops_the_dry_run(
    tmp_path: Path, changes: dict, said: str
) -> None:
    """Each passed `snakemake -n` and stopped the run at the job that read it (connectome,
    pretrain, ingest) or was silently ignored (a selection of no dataset)."""
    cfg = _config(tmp_path)
    for key, value in changes.items():
        if value is None and key in ("datasets.rawds", "variables"):
            cfg["datasets"].pop("rawds") if key == "datasets.rawds" else cfg.pop(key)
        else:
            _set(cfg, key, value)
    code, out, config = _dry_run(tmp_path, cfg)
    assert code != 0, out[-3000:]
    assert f"{config}: {said}" in out, out[-3000:]


def test_a_dataset_given_twice_in_the_config_file_stops_the_dry_run(tmp_path: Path) -> None:
    """YAML keeps the last of two equal keys: a second dataset of the same name replaced the
    first, silently."""
    cfg = _config(tmp_path)
    roids = json.dumps(cfg["datasets"]["roids"])  # one line of flow YAML
    text = yaml.safe_dump(cfg).replace("datasets:\n", f"datasets:\n  roids: {roids}\n", 1)
    config = tmp_path / "my.yaml"
    config.write_text(text)
    lines = text.splitlines()
    first = lines.index(f"  roids: {roids}") + 1
    second = lines.index("  roids:") + 1
    proc = snakemake(ROOT, tmp_path, "--configfile", str(config), "-n", "-c1")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    said = f"Config file {config}: line {second}: key 'roids' is given twice in the same mapping "
    assert said + f"(first at line {first})" in out, out[-3000:]


@pytest.mark.parametrize("runner", ["docker", "apptainer"])
def test_a_container_runs_missing_licence_stops_the_dry_run(
    tmp_path: Path, runner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A licence path that is no file passed the dry run and ingest; every subject's fMRIPrep
    job then failed on it (on SLURM, once per attempt)."""
    monkeypatch.delenv("TEMPLATEFLOW_HOME", raising=False)
    cfg = _config(tmp_path)
    cfg["datasets"]["rawds"].pop("derivatives")  # the container run writes them
    cfg["fmriprep"].update(runner=runner, fs_license=str(tmp_path / "no licence.txt"))
    if runner == "apptainer":
        cfg["fmriprep"]["image"] = "docker://nipreps/fmriprep:25.2.7"
    code, out, config = _dry_run(tmp_path, cfg)
    assert code != 0, out[-3000:]
    said = f"{config}: fmriprep.fs_license is '{tmp_path / 'no licence.txt'}', which is not a file"
    assert said in out, out[-3000:]
    assert "Job stats" not in out and not (tmp_path / "results").exists()
    (tmp_path / "no licence.txt").write_text("licence\n")
    code, out, _ = _dry_run(tmp_path, cfg)
    assert code == 0, out[-3000:]
    if runner == "apptainer":  # a TemplateFlow folder that does not exist: no bind possible
        monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "tf"))
        code, out, _ = _dry_run(tmp_path, cfg)
        assert code != 0 and f"TEMPLATEFLOW_HOME is '{tmp_path / 'tf'}'" in out, out[-3000:]
        assert "Job stats" not in out


def test_a_raw_dataset_without_its_description_stops_the_dry_run(tmp_path: Path) -> None:
    """It planned fine and failed in the ingest job."""
    cfg = _config(tmp_path)
    (tmp_path / "data" / "raw" / "dataset_description.json").unlink()
    code, out, config = _dry_run(tmp_path, cfg)
    assert code != 0, out[-3000:]
    raw = tmp_path / "data" / "raw"
    assert f"{config}: datasets.rawds.path is '{raw}', which has no dataset_description.json" in out
    assert "Job stats" not in out
