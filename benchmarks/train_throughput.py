"""Training throughput and model-FLOP utilisation (MFU) of an LCM preset.

Trains a fixed number of steps of the real pretraining objective (BEI losses with learned task
weights, masked-ROI reconstruction, AdamW, gradient clipping; bf16 autocast on CUDA) on
synthetic connectomes, and measures in the same run the device's dense matmul throughput
(square fp32 matmuls on CPU, bf16 on CUDA). Rounds of both alternate, and each side keeps its
best round, so a busy shared machine slows both alike. Model FLOPs per sample are analytic
(``lcm.model.flops``: matmuls only, backward = 2 x forward).

Last line: JSON with ``preset, device, samples_s, model_flops_s, matmul_flops_s, mfu`` (and the
settings: batch, threads, gradient_checkpointing, parameters, train_flops_per_sample).

    python benchmarks/train_throughput.py --preset small --batch 64
    python benchmarks/train_throughput.py --preset big --batch 128 --device cuda --steps 10
    python benchmarks/train_throughput.py --quick    # seconds: tiny preset, batch 4 (make test)
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from lcm.model.config import PRESETS, LCMConfig
from lcm.model.flops import train_flops_per_sample
from lcm.model.lcm import LCM
from lcm.model.losses import sample_roi_mask
from lcm.model.targets import QueryLayout, Target
from lcm.train.loop import GRAD_CLIP_NORM, autocast, make_optimizer
from lcm.train.objective import PretrainObjective, shard_batch

# The demo catalogue's pretraining queries: sex (2 classes), five numeric variables.
LAYOUT = (
    QueryLayout()
    .append("sex", "binary", ("F", "M"))
    .append("age", "continuous")
    .append("fluid_intelligence", "continuous")
    .append("working_memory", "continuous")
    .append("bmi", "continuous")
    .append("education", "ordinal")
)


def synthetic_batch(batch: int, n_rois: int, generator: torch.Generator):
    """Symmetric FC-like matrices and complete targets for every query group."""
    a = torch.randn(batch, n_rois, n_rois, generator=generator)
    fc = torch.tanh(0.3 * (a + a.transpose(1, 2)))
    targets = {}
    for group in LAYOUT.groups:
        present = torch.ones(batch, dtype=torch.bool)
        if group.is_numeric:
            targets[group.name] = Target(torch.randn(batch, generator=generator), present)
        else:
            labels = torch.randint(group.size, (batch,), generator=generator)
            targets[group.name] = Target(torch.eye(group.size)[labels], present)
    return fc, targets


def matmul_flops_s(device: torch.device, size: int, seconds: float) -> float:
    """Dense square matmul FLOP/s (bf16 on CUDA, fp32 on CPU) over about ``seconds``."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
        if device.type == "cuda" and n % 10:
            continue
        sync(device)
    sync(device)
    return 2 * size**3 * n / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6, help="Timed steps per round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-rois", type=int, default=116)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--matmul-size", type=int, default=None)
    parser.add_argument("--matmul-seconds", type=float, default=1.0, help="per round")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long check that it runs (tiny preset, batch 4, 32 ROIs, one thread)",
    )
    args = parser.parse_args()
    if args.quick:  # the same objective, optimiser and MFU on a tiny model: run by the test suite
        args.preset, args.batch, args.steps, args.rounds, args.n_rois = "tiny", 4, 2, 1, 32
        args.matmul_size, args.matmul_seconds = args.matmul_size or 256, 0.2
        args.threads = 1  # on a loaded shared machine two threads can wait far longer than one

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    config = LCMConfig(n_rois=args.n_rois, n_queries=LAYOUT.n_queries, **PRESETS[args.preset])
    model = LCM(config)
    model.gradient_checkpointing = args.gradient_checkpointing
    objective = PretrainObjective(model, LAYOUT, ssl_weight=0.5).to(device).train()
    optimizer = make_optimizer([objective], lr=1e-4, weight_decay=0.01)
    params = [p for p in objective.parameters() if p.requires_grad]
    fc, targets = synthetic_batch(args.batch, args.n_rois, generator)
    fc = fc.to(device)

    def step() -> None:
        mask = sample_roi_mask(args.batch, args.n_rois, 0.15, generator)
        shard = shard_batch(targets, mask, args.n_rois)
        with autocast(device):
            loss, _ = objective(fc, shard)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP_NORM)
        optimizer.step()

    step()
    step()  # warm-up: allocator, kernels, optimiser state
    sync(device)
    size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    best_train, best_matmul = float("inf"), 0.0
    for _ in range(args.rounds):
        best_matmul = max(best_matmul, matmul_flops_s(device, size, args.matmul_seconds))
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync(device)
        best_train = min(best_train, time.perf_counter() - start)
    samples_s = args.batch * args.steps / best_train
    flops = train_flops_per_sample(config, ssl=True)
    result = {
        "preset": args.preset,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch": args.batch,
        "threads": args.threads,
        "gradient_checkpointing": args.gradient_checkpointing,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_flops_per_sample": flops,
        "samples_s": round(samples_s, 2),
        "model_flops_s": samples_s * flops,
        "matmul_flops_s": best_matmul,
        "mfu": round(samples_s * flops / best_matmul, 3),
    }
    if device.type == "cuda":
        result["max_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
