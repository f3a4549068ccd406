"""The device training picks (lcm.train.loop.pick_device): a GPU job with a CPU-only torch."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from lcm.exceptions import ConfigError
from lcm.train import loop
from lcm.train.loop import pick_device

GRANTS = ("SLURM_GPUS_ON_NODE", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES")


@pytest.fixture
def no_cuda(monkeypatch, tmp_path: Path) -> Path:
    """torch sees no GPU, no GPU is granted; returns where the driver would list GPUs."""
    for name in GRANTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loop, "_warned_grants", set(), raising=False)
    listing = tmp_path / "proc_driver_nvidia_gpus"
    monkeypatch.setattr(loop, "NVIDIA_GPUS", listing, raising=False)
    return listing


@pytest.mark.parametrize(
    ("name", "value"),
    [("SLURM_GPUS_ON_NODE", "4"), ("SLURM_JOB_GPUS", "0,1"), ("CUDA_VISIBLE_DEVICES", "0")],
)
def test_gpus_granted_on_an_nvidia_node_with_a_cpu_only_torch_are_refused(
    no_cuda: Path, monkeypatch, name: str, value: str
) -> None:
    (no_cuda / "0000:3b:00.0").mkdir(parents=True)  # the driver lists a GPU
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=rf"given GPUs \({name}={value}\) but torch") as info:
        pick_device(None)
    assert "it would train on the CPU" in info.value.message and "\n" not in info.value.message
    assert "CONDA_OVERRIDE_CUDA" in info.value.hint
    assert pick_device("cpu") == torch.device("cpu")  # the CPU asked for is no surprise


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (None, None),
        ("CUDA_VISIBLE_DEVICES", ""),
        ("CUDA_VISIBLE_DEVICES", "-1"),
        ("CUDA_VISIBLE_DEVICES", "NoDevFiles"),
        ("SLURM_GPUS_ON_NODE", "0"),
    ],
)
def test_no_gpu_granted_trains_on_the_cpu_quietly(
    no_cuda: Path, monkeypatch, caplog, name, value
) -> None:
    (no_cuda / "0000:3b:00.0").mkdir(parents=True)
    if name:
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING):
        assert pick_device(None) == torch.device("cpu")
    assert not caplog.records


def test_a_granted_gpu_no_driver_lists_is_a_warning(no_cuda: Path, monkeypatch, caplog) -> None:
    # The SLURM test cluster's fake GPU (Gres backed by /dev/null): SLURM grants it, no NVIDIA
    # driver is there, and the job trains on the CPU, saying so once.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with caplog.at_level(logging.WARNING):
        assert pick_device(None) == torch.device("cpu")
        assert pick_device(None) == torch.device("cpu")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "training on the CPU" in warnings[0], warnings
    assert "CUDA_VISIBLE_DEVICES=0" in warnings[0] and "CONDA_OVERRIDE_CUDA" in warnings[0]
