"""The connectome stage asks memory in proportion to the run's BOLD file, not a constant."""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import yaml
from helpers.workflow import ROOT, placeholder_config, snakemake, write_config
from snakemake.resources import GroupResources, Resources

from lcm.workflow.resources import (
    CONNECTOME_BASE_MB,
    FMRIPREP_CHECK_RUNTIME,
    FMRIPREP_MEM_MB,
    FMRIPREP_RUNTIME,
    MEM_MB_MAX,
    RUNTIME_MAX,
    connectome_mem_mb,
    evaluate_gpu,
    evaluate_runtime,
    file_size_mb,
    fmriprep_mem_mb,
    fmriprep_runtime,
    grown_mem_mb,
    record_bold,
)


def _write_mb(path: Path, mb: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * int(mb * 2**20))
    return path


def _record(path: Path, runs: list[dict]) -> Path:
    path.write_text(json.dumps({"output_space": "MNI152NLin2009cAsym", "runs": runs}))
    return path


def test_mem_grows_with_the_bold_named_in_the_record(tmp_path: Path) -> None:
    small = _write_mb(tmp_path / "small_bold.nii.gz", 3)
    big = _write_mb(tmp_path / "big_bold.nii.gz", 40)
    record = _record(
        tmp_path / "sub-01_fmriprep.json",
        [
            {"run_key": "sub-01_task-rest_run-1", "bold": str(small)},
            {"run_key": "sub-01_task-rest_run-2", "bold": str(big)},
        ],
    )
    mem1 = connectome_mem_mb(record, "sub-01_task-rest_run-1", None)
    mem2 = connectome_mem_mb(record, "sub-01_task-rest_run-2", None)
    assert mem1 == CONNECTOME_BASE_MB + 3
    assert mem2 == CONNECTOME_BASE_MB + 40
    # A job killed for memory is resubmitted with more.
    assert connectome_mem_mb(record, "sub-01_task-rest_run-2", None, attempt=2) == 2 * mem2
    # The record's preprocessed BOLD wins over the planned (raw) one.
    assert connectome_mem_mb(record, "sub-01_task-rest_run-1", str(big)) == mem1


def test_mem_falls_back_to_the_planned_bold_then_to_the_base(tmp_path: Path) -> None:
    raw = _write_mb(tmp_path / "raw_bold.nii.gz", 10)
    missing = tmp_path / "not-yet_fmriprep.json"  # fMRIPrep has not run
    assert record_bold(missing, "sub-01_task-rest_run-1") is None
    assert connectome_mem_mb(missing, "sub-01_task-rest_run-1", str(raw)) == 1510
    assert connectome_mem_mb(missing, "sub-01_task-rest_run-1", None) == CONNECTOME_BASE_MB
    broken = tmp_path / "broken_fmriprep.json"
    broken.write_text("{not json")
    assert connectome_mem_mb(broken, "sub-01_task-rest_run-1", str(raw)) == 1510
    assert file_size_mb(tmp_path / "nothing") == 0.0


def _big_bold(path: Path, shape: tuple[int, ...]) -> None:
    """A valid 4D .nii.gz of random int16 (it barely compresses: large on disk)."""
    data = np.random.default_rng(0).integers(-3000, 3000, shape, dtype=np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    path.write_bytes(gzip.compress(img.to_bytes(), compresslevel=1, mtime=0))


def _planned_mem(out: str) -> dict[str, int]:
    """sub-<label> -> mem_mb of each planned connectome_run job, from a dry run's job listing."""
    mem = {}
    for block in out.split("rule connectome_run:")[1:]:
        subject = re.search(r"\bsubject=([A-Za-z0-9]+)", block)
        value = re.search(r"\bmem_mb=(\d+)", block)
        if subject and value:
            mem[f"sub-{subject.group(1)}"] = int(value.group(1))
    return mem


def test_dry_run_asks_more_memory_for_a_larger_bold(tmp_path: Path) -> None:
    _, config = placeholder_config(tmp_path, {"hcplike": 2, "abidelike": 1})
    raw = tmp_path / "data" / "hcplike" / "rawdata"
    big = raw / "sub-00001" / "func" / "sub-00001_task-rest_run-1_bold.nii.gz"
    _big_bold(big, (64, 64, 40, 30))  # about 9 MB on disk
    small = raw / "sub-00000" / "func" / "sub-00000_task-rest_run-1_bold.nii.gz"
    proc = snakemake(
        ROOT,
        tmp_path,
        "--configfile",
        str(config),
        "--profile",
        str(ROOT / "profiles" / "slurm"),
        "-n",
        "--forceall",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    mem = _planned_mem(out)
    assert set(mem) == {"sub-00000", "sub-00001"}, out[-3000:]
    assert mem["sub-00001"] > mem["sub-00000"] >= CONNECTOME_BASE_MB
    # The difference is the files' size difference, in MB (1 MB per MB).
    expected = file_size_mb(big) - file_size_mb(small)
    assert abs((mem["sub-00001"] - mem["sub-00000"]) - expected) <= 1


def _profile_mem_mb(expression: object, attempt: int) -> float:
    """A profile's mem_mb at ``attempt``, evaluated as Snakemake evaluates set-resources."""
    return eval(str(expression), {"attempt": attempt})


def test_slurm_profile_memory_is_constant_for_models_and_capped_when_it_grows() -> None:
    """A job killed for memory or time is resubmitted (retries). A model's memory is the same on
    every try (a pretraining killed at its time limit once asked 192000 MB on its third try and
    sbatch refused it): constant. Memory that grows with the attempt stops at MEM_MB_MAX, in the
    profile and in the rules' own requests (fMRIPrep's, a connectome run's)."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["retries"] >= 1
    resources = profile["set-resources"]
    models = {"pretrain", "pretrain_ssl", "finetune", "evaluate", "embed"}
    assert models | {"fmriprep"} <= set(resources)
    growing = {r: res["mem_mb"] for r, res in resources.items() if "mem_mb" in res}
    for rule in models:
        mem = [_profile_mem_mb(resources[rule]["mem_mb"], a) for a in (1, 2, 3)]
        assert len(set(mem)) == 1, f"{rule}: mem_mb {mem} changes with the attempt"
    for rule, expression in growing.items():
        highest = max(_profile_mem_mb(expression, a) for a in range(1, 11))
        assert highest <= max(MEM_MB_MAX, _profile_mem_mb(expression, 1)), (rule, expression)
    assert fmriprep_mem_mb(True, 1) == FMRIPREP_MEM_MB
    assert fmriprep_mem_mb(True, 2) == 2 * FMRIPREP_MEM_MB
    assert fmriprep_mem_mb(True, 10) == MEM_MB_MAX
    assert connectome_mem_mb("no-record.json", "r", None, attempt=100) == MEM_MB_MAX
    # The ceiling bounds the growth, not a first request that is already larger.
    assert grown_mem_mb(MEM_MB_MAX + 1, 1) == grown_mem_mb(MEM_MB_MAX + 1, 3) == MEM_MB_MAX + 1


def test_a_retried_batch_of_connectome_runs_asks_at_most_the_ceiling(tmp_path: Path) -> None:
    """Each run's memory stops at MEM_MB_MAX, but a batch asked the sum of 16 runs side by side:
    the third try of 2 GB BOLD runs asked 170 GB, which sbatch refuses. Snakemake sizes the
    batch (GroupResources.basic_layered) within the profile's cores and resources."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    limits = Resources.from_mapping({**profile.get("resources", {}), "_cores": profile["cores"]})
    bold = tmp_path / "sub-01_task-rest_run-1_bold.nii.gz"
    bold.touch()
    os.truncate(bold, 2048 * 2**20)  # sparse: sized, not written
    runtime = _profile_mem_mb(profile["set-resources"]["connectome_run"]["runtime"], 3)
    asked = {}
    for attempt in (1, 2, 3):
        mem_mb = connectome_mem_mb("no-record.json", "r", str(bold), attempt)
        runs = [
            SimpleNamespace(
                resources={"_cores": 1, "mem_mb": mem_mb, "runtime": runtime}, pipe_group=None
            )
            for _ in range(50)
        ]
        batch = GroupResources.basic_layered([runs], limits, run_local=False)
        asked[attempt] = (batch["mem_mb"], batch["_cores"])
    assert asked[1] == (16 * connectome_mem_mb("no-record.json", "r", str(bold)), 16), asked
    assert all(mem <= MEM_MB_MAX for mem, _ in asked.values()), asked
    # No job of the profile's is lowered by the cap: it bounds the batches only.
    assert limits.get("mem_mb").value == MEM_MB_MAX
    for rule, res in profile["set-resources"].items():
        if "mem_mb" in res:
            assert _profile_mem_mb(res["mem_mb"], 1) <= MEM_MB_MAX, rule


def test_every_rule_that_loads_a_model_asks_for_a_gpu_on_slurm() -> None:
    """Pretraining, finetuning, evaluation and embeddings load LCM's weights: each gets a GPU
    and its own memory on SLURM, not the 4 GB default (LCM-Big's weights alone are ~4.6 GB).
    Evaluation's GPU is its rule's, from the task's models: the profile leaves it alone."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    text = "".join(p.read_text() for p in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
    loading = {"pretrain", "pretrain_ssl", "finetune", "embed", "evaluate"}
    assert loading <= set(re.findall(r"^(?:use )?rule (?:\w+ as )?(\w+)", text, re.MULTILINE))
    resources = profile["set-resources"]
    lacking = sorted(
        r for r in loading - {"evaluate"} if not {"gpu", "mem_mb"} <= set(resources.get(r, {}))
    )
    assert lacking == [], f"rules loading a model without a GPU and memory on SLURM: {lacking}"
    assert "mem_mb" in resources["evaluate"]
    assert not {"gpu", "gres", "runtime"} & set(resources["evaluate"]), resources["evaluate"]


def test_an_evaluation_asks_a_gpu_only_for_models_that_train_with_torch() -> None:
    assert evaluate_gpu(["ridge"]) == 0 and evaluate_gpu(["logreg", "shuffled-labels"]) == 0
    assert evaluate_gpu(["ridge", "lcm"]) == evaluate_gpu(["shuffled-lcm"]) == 1
    assert evaluate_runtime(["ridge"]) < evaluate_runtime(["lcm-scratch"])


def test_an_evaluation_retried_after_its_time_limit_asks_for_longer() -> None:
    """It keeps no fit between attempts: the same runtime would time out again on each retry."""
    first, second, third = (evaluate_runtime(["lcm"], attempt) for attempt in (1, 2, 3))
    assert first < second < third <= RUNTIME_MAX
    assert evaluate_runtime(["lcm"], 10) == RUNTIME_MAX
    assert evaluate_runtime(["ridge"], 2) == 2 * evaluate_runtime(["ridge"], 1)


def test_an_fmriprep_job_retried_after_its_time_limit_asks_for_longer() -> None:
    """A subject that timed out was resubmitted with the same 720 minutes and timed out again."""
    asked = [fmriprep_runtime(True, attempt) for attempt in (1, 2, 3, 10)]
    assert asked[0] == FMRIPREP_RUNTIME
    assert asked[0] < asked[1] <= asked[2] == asked[3] == RUNTIME_MAX, asked
    assert fmriprep_runtime(False, 1) == FMRIPREP_CHECK_RUNTIME < fmriprep_runtime(False, 2)
    # The profile leaves the rule's own runtime (and memory) alone: a line there replaces it.
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert not {"runtime", "mem_mb"} & set(profile["set-resources"]["fmriprep"])


def test_dry_run_asks_a_gpu_for_the_lcm_task_only(tmp_path: Path) -> None:
    """A task of baselines (age: ridge) is evaluated without a GPU on SLURM; LCM's with one."""
    cfg, _ = placeholder_config(tmp_path, {"hcplike": 1, "abidelike": 1})
    cfg["tasks"]["age"] = {"dataset": "abidelike", "label": "age", "models": ["ridge"]}
    config = write_config(tmp_path, cfg)
    profile = str(ROOT / "profiles" / "slurm")
    proc = snakemake(
        ROOT, tmp_path, "--configfile", str(config), "--profile", profile, "-n", "--forceall"
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    resources = {}
    for block in out.split("rule evaluate:")[1:]:
        task = re.search(r"\btask=(\w+)", block).group(1)
        resources[task] = re.search(r"resources: (.*)", block).group(1)
    assert set(resources) == {"autism", "age"}, out[-3000:]
    assert "gpu=1" in resources["autism"] and "runtime=480" in resources["autism"]
    assert "gpu=0" in resources["age"] and "runtime=120" in resources["age"], resources
