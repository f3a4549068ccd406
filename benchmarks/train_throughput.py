"""Training throughput and model-FLOP utilisation (MFU) of an LCM preset.

Trains a fixed number of steps of the real pretraining step (:class:`PretrainStep`: connectome
triangles expanded on the device with the next batch prefetched, BEI losses with learned task
weights, masked-ROI reconstruction; then AdamW and gradient clipping; bf16 autocast on CUDA) on
synthetic connectomes, and measures in the same run the device's dense matmul throughput
(square fp32 matmuls on CPU, bf16 on CUDA). Rounds of both alternate, and each side keeps its
best round, so a busy shared machine slows both alike. Model FLOPs per sample are analytic
(``lcm.model.flops``: matmuls only, backward = 2 x forward): ``mfu`` counts the architecture's
(the decoder's cross-attention in its standard form, as MFU always has), ``hfu`` the FLOPs LCM
executes (that cross-attention computed with its key and value projections absorbed: fewer).

One JSON line per batch size (``--batch 128,max``; ``max`` is the largest power-of-two
multiple of the first batch that trains without running out of memory, found eagerly before
any compiling), with ``preset, device, samples_s, model_flops_s, matmul_flops_s, mfu, hfu`` and
the settings (batch, threads, gradient_checkpointing, parameters, train_flops_per_sample,
executed_flops_per_sample, compile, matmul_dtype), ``compile_s`` (warm-up time beyond six
steady steps: compiling and CUDA graph capture; ``null`` with ``compile: off``), ``warmup_s``
(the warm-up steps' whole time), ``better`` (``higher``: of ``mfu``/``hfu``), ``loss`` (the
last step's total loss) after ``steps_trained`` optimiser steps, and on CUDA
``max_memory_gib``. Threads: the job's (``--threads``, else ``OMP_NUM_THREADS``, SLURM's grant
or the CPUs available; ``--quick``: one). Every variant trains the same steps on the same data
from the same weights: where their ``steps_trained`` are equal,
their losses agree up to rounding and, with dropout, the noise of its masks (compiled graphs
and split passes draw them in other orders; ``--quick`` runs have no dropout: exact), so a
variant that trains wrongly shows. ``--compile`` takes a ``torch.compile`` mode (blocks
compiled in place, as training does) or ``off``; ``auto`` (default) compiles on CUDA only.

``--profile DIR`` then profiles three of the first batch size's steps (``torch.profiler``) and
writes ``DIR/<preset>-b<batch>-<compile>[-<variant>...].txt``: wall and kernel time per step
(summed, and busy: the time some kernel ran, so that kernels of two streams that overlap, as
``--overlap`` wants, count once), kernel launches per step, and every operator and kernel by
device time (a host-bound step shows few busy milliseconds of many, and thousands of launches);
beside it ``.trace.json.gz``, the timeline of those steps (chrome://tracing, Perfetto).

Variants of the step, for comparisons (each echoed in the JSON line): ``--compile-scope model``
compiles the forward pass whole (every layer unrolled: ``LCM.compile_whole``, as the pretrain
setting ``compile_scope: model`` does) besides each block, ``--compile-scope step`` so too
without CUDA graphs of its own, inside the whole training step captured as one CUDA graph
(:class:`lcm.train.graphed.GraphedPretrainStep`); ``--inductor KEY=VALUE`` sets an
option of torch's compiler; ``--sdp`` keeps one attention backend, ``--math-attention N`` the
math backend for self-attention over at most N tokens (the queries: ``LCM.use_math_attention``),
``--overlap`` the masked-ROI reconstruction on a CUDA stream of its own beside the decoder
(``LCM.overlap_reconstruction``; with ``--compile-scope step`` or without CUDA graphs);
``--mark-step`` drops the gradients and calls ``torch.compiler.cudagraph_mark_step_begin()``
at the start of each step.

    python benchmarks/train_throughput.py --preset small --batch 64
    python benchmarks/train_throughput.py --preset big --batch 128,max --device cuda --steps 10
    python benchmarks/train_throughput.py --preset base --compile reduce-overhead --device cuda
    python benchmarks/train_throughput.py --quick    # seconds: tiny preset, batch 4 (make test)
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import sys
import time
from pathlib import Path

import torch

from lcm.model.config import PRESETS, LCMConfig
from lcm.model.flops import train_flops_per_sample
from lcm.model.lcm import LCM
from lcm.model.targets import QueryLayout, Target
from lcm.threads import cap_threads
from lcm.train.graphed import WARMUP_STEPS as GRAPH_WARMUP_STEPS
from lcm.train.graphed import GraphedPretrainStep
from lcm.train.loop import (
    COMPILE_SCOPES,
    GRAD_CLIP_NORM,
    DeviceConnectomes,
    compile_model,
    compile_options,
    make_optimizer,
    scope_options,
)
from lcm.train.objective import PretrainObjective, PretrainStep

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


SDP_BACKENDS = ("cudnn", "flash", "mem_efficient", "math")
MASK_RATIO = 0.15  # the pretrain section's default ssl_mask_ratio


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


WARMUP_STEPS = 3  # CUDA graphs are recorded at the second or third call
# Profiled steps: a few show the pattern, and keep the timeline small enough to bring back.
PROFILE_STEPS = 3


class Bench:
    """The pretraining step of one model at a given batch size, on synthetic data."""

    def __init__(self, args: argparse.Namespace, config: LCMConfig, device: torch.device) -> None:
        self.args, self.config, self.device = args, config, device
        torch.manual_seed(0)
        self.generator = torch.Generator().manual_seed(0)
        with torch.device(device):  # built in place: LCM-Big's init on the host takes long
            self.model = LCM(config)
        self.model.gradient_checkpointing = args.gradient_checkpointing
        objective = PretrainObjective(self.model, LAYOUT, ssl_weight=0.5)
        self.objective = objective.to(device).train()
        self.optimizer = make_optimizer([self.objective], lr=1e-4, weight_decay=0.01)
        self.params = [p for p in self.objective.parameters() if p.requires_grad]
        self.batch = 0
        self.loss: torch.Tensor | None = None  # the last step's total loss (read once timed)
        self.steps = 0  # optimiser steps the model took, the search for 'max' included
        self.options: dict[str, str] | None = None  # the graphed step's losses: compiled so

    def set_batch(self, batch: int) -> None:
        self.batch = batch
        fc, targets = synthetic_batch(batch, self.args.n_rois, self.generator)
        # The step as pretraining runs it: upper triangles on the host, expanded on the device,
        # the next batch copied while this one trains; targets and masks copied by the losses.
        self.fc = DeviceConnectomes(fc, self.device)
        self.index = torch.arange(batch)
        if self.graphed:  # forward, backward, clipping and AdamW: one CUDA graph
            self.pretrain_step = GraphedPretrainStep(
                self.objective,
                self.fc,
                targets,
                MASK_RATIO,
                self.generator,
                batch,
                None,
                self.options,
            )
            self.pretrain_step.bind(self.optimizer)
            return
        self.pretrain_step = PretrainStep(
            self.objective, self.fc, targets, MASK_RATIO, self.generator
        )
        self.pretrain_step.prefetch(self.index)

    @property
    def graphed(self) -> bool:
        return self.args.compile_scope == "step"

    def step(self) -> None:
        self.steps += 1
        if self.graphed:
            self.loss, _ = self.pretrain_step(self.index)
            return
        if self.args.mark_step:  # grads of the last step dropped before graphs replay anew
            self.optimizer.zero_grad(set_to_none=True)
            torch.compiler.cudagraph_mark_step_begin()
        loss, _ = self.pretrain_step(self.index)
        self.loss = loss.detach()
        self.pretrain_step.prefetch(self.index)
        if not self.args.mark_step:  # as the training loop: after the next batch's copy starts
            self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, GRAD_CLIP_NORM)
        self.optimizer.step()
        self.objective.weighting.project_()  # as the training loop and the graphed step

    def release(self) -> None:
        """Drop the batch's device memory."""
        self.fc = self.pretrain_step = None

    def fits(self, batch: int) -> bool:
        """Whether one training step at ``batch`` runs without exhausting device memory."""
        try:
            self.set_batch(batch)
            self.step()
            sync(self.device)
            return True
        except torch.OutOfMemoryError:
            return False
        finally:
            self.release()
            self.optimizer.zero_grad(set_to_none=True)
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()


def covered_us(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals: time in which at least one kernel ran
    (kernels of two streams that overlap count once)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def profile_steps(bench: Bench, steps: int, path: Path) -> None:
    """Profile ``steps`` steps at the current batch; write their summary and operator table."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = bench.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync(bench.device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            bench.step()
        sync(bench.device)
        wall = time.perf_counter() - start
    kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    kernel_us = sum(e.time_range.elapsed_us() for e in kernels)
    busy_us = covered_us([(e.time_range.start, e.time_range.end) for e in kernels])
    summary = {
        "steps": steps,
        "wall_ms_per_step": round(1e3 * wall / steps, 3),
        # On CUDA: GPU kernel time (summed: streams that overlap count twice), the time some
        # kernel ran (overlaps once), and launches.
        "kernel_ms_per_step": round(kernel_us / 1e3 / steps, 3) if cuda else None,
        "busy_ms_per_step": round(busy_us / 1e3 / steps, 3) if cuda else None,
        "kernels_per_step": round(len(kernels) / steps, 1) if cuda else None,
        "device_busy": round(busy_us / 1e6 / wall, 3) if cuda and wall else None,
    }
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    # Every operator and kernel, not the first rows: small kernels are the point.
    table = prof.key_averages().table(sort_by=sort, row_limit=-1, max_name_column_width=120)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary) + "\n" + table)
    # The timeline, for the order of a block's kernels and the gaps between them.
    prof.export_chrome_trace(str(path.with_suffix(".trace.json.gz")))  # gzipped by torch
    print(f"profile: {json.dumps(summary)} -> {path}", file=sys.stderr, flush=True)


# torch.compile modes whose compiled regions are CUDA graph trees.
TREE_MODES = ("reduce-overhead", "max-autotune")

# Attention backends with a CPU kernel; the others exist on CUDA only.
CPU_SDP_BACKENDS = ("flash", "math")


def set_kernels(sdp: str, inductor: list[str], device: torch.device) -> None:
    """Keep only the ``sdp`` attention backend (``auto``: all) and set ``KEY=VALUE`` options,
    compiling afresh for either (no cached graphs).

    On CPU a CUDA-only backend keeps the math one beside it (said on stderr), so that a quick
    run on CPU goes through the same code as the GPU case it stands for.
    """
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    if sdp != "auto" or inductor:
        # Compiled graphs are cached on disk under keys that leave out the attention backends:
        # a variant would replay the graph an earlier run compiled with another backend (the
        # H200 run at 73c518e did: cuDNN kernels under --sdp math, compiled in 4.6 s).
        inductor_config.fx_graph_cache = False
        functorch_config.enable_autograd_cache = False
    if sdp != "auto":
        fallback = device.type == "cpu" and sdp not in CPU_SDP_BACKENDS
        if fallback:
            print(f"--sdp {sdp}: no CPU kernel; math kept beside it", file=sys.stderr)
        for name in SDP_BACKENDS:
            allowed = name == sdp or (fallback and name == "math")
            getattr(torch.backends.cuda, f"enable_{name}_sdp")(allowed)
    for item in inductor:
        key, _, value = item.partition("=")
        if not value or not hasattr(inductor_config, key):
            raise SystemExit(
                f"--inductor: expected KEY=VALUE, KEY in torch._inductor.config, got {item!r}"
            )
        setattr(inductor_config, key, ast.literal_eval(value))


def largest_batch(bench: Bench, start: int, cap: int) -> int:
    """The largest ``start * 2**k <= cap`` that trains (``start`` itself if nothing larger)."""
    batch = start
    while batch * 2 <= cap and bench.fits(batch * 2):
        batch *= 2
    return batch


def parse_batches(text: str) -> list[int | str]:
    """``"128,max"`` -> ``[128, "max"]``; ``max`` needs a number before it."""
    items: list[int | str] = [b if b == "max" else int(b) for b in text.split(",")]
    if not isinstance(items[0], int) or any(b != "max" and b < 1 for b in items):
        raise SystemExit(f"--batch: expected sizes like 128 or 128,max, got {text!r}")
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--batch", default="64", help="sizes, comma-separated; 'max' allowed")
    parser.add_argument("--max-batch", type=int, default=8192, help="cap of the 'max' search")
    parser.add_argument("--steps", type=int, default=6, help="Timed steps per round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-rois", type=int, default=116)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads",
        type=int,
        help="the job's threads (default OMP_NUM_THREADS, SLURM's grant, or the CPUs available)",
    )
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument(
        "--compile", default="auto", help="off, auto (CUDA only), default, reduce-overhead, ..."
    )
    parser.add_argument("--compile-backend", default=None, help="torch.compile backend")
    parser.add_argument(
        "--sdp",
        choices=["auto", *SDP_BACKENDS],
        default="auto",
        help="the only attention backend allowed (auto: torch chooses)",
    )
    parser.add_argument(
        "--mark-step",
        action="store_true",
        help="drop gradients and mark each step's start for CUDA graph trees",
    )
    parser.add_argument(
        "--compile-scope",
        choices=COMPILE_SCOPES,
        default=COMPILE_SCOPES[0],
        help="pretrain.compile_scope: blocks (each block, the default), model (forward whole) "
        "or step (forward whole, and the training step one CUDA graph)",
    )
    parser.add_argument(
        "--math-attention",
        type=int,
        default=0,
        metavar="TOKENS",
        help="self-attention over at most TOKENS tokens (the queries) on the math backend",
    )
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="the masked-ROI reconstruction on its own CUDA stream beside the decoder "
        "(LCM.overlap_reconstruction; not with CUDA graph trees: --compile-scope step)",
    )
    parser.add_argument(
        "--inductor",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a torch._inductor.config option, e.g. combo_kernels=True (repeatable)",
    )
    parser.add_argument("--matmul-size", type=int, default=None)
    parser.add_argument("--matmul-seconds", type=float, default=1.0, help="per round")
    parser.add_argument(
        "--profile", type=Path, default=None, help="folder for the profile of the first batch"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long check that it runs (tiny preset, batch 4, 32 ROIs, one thread)",
    )
    args = parser.parse_args()
    if args.quick:  # the same objective, optimiser and MFU on a tiny model: run by the test suite
        args.preset, args.steps, args.rounds, args.n_rois = "tiny", 2, 1, 32
        args.batch, args.max_batch = ("4,max" if "max" in args.batch else "4"), 16
        args.matmul_size, args.matmul_seconds = args.matmul_size or 256, 0.2
        args.threads = 1  # on a loaded shared machine two threads can wait far longer than one
        # Compiling proper needs a C compiler and minutes: graph capture and autograd only.
        args.compile_backend = args.compile_backend or "aot_eager"
    batches = parse_batches(args.batch)

    args.threads = cap_threads(args.threads)  # torch's and every BLAS/OpenMP pool
    device = torch.device(args.device)
    set_kernels(args.sdp, args.inductor, device)
    # Quick runs without dropout: every variant then trains exactly the same function (a pass
    # split in two, --overlap, draws its dropout masks in another order), and the test suite
    # checks that their losses agree to rounding.
    dropout = {"dropout": 0.0} if args.quick else {}
    config = LCMConfig(
        n_rois=args.n_rois, n_queries=LAYOUT.n_queries, **PRESETS[args.preset], **dropout
    )
    bench = Bench(args, config, device)
    bench.model.use_math_attention(args.math_attention)
    bench.model.overlap_reconstruction = args.overlap
    if "max" in batches:  # before compiling: each trial size would compile anew
        found = largest_batch(bench, batches[0], args.max_batch)
        batches = [found if b == "max" else b for b in batches]
    setting = {"off": False, "on": True}.get(args.compile, args.compile)
    options = compile_options(setting, device)  # for the JSON line; compiled as training does
    compile_model(bench.objective, setting, device, args.compile_scope, args.compile_backend)
    bench.options = scope_options(setting, device, args.compile_scope, args.compile_backend)
    if args.overlap and (bench.options or {}).get("mode") in TREE_MODES:
        # CUDA graph trees record and replay on a stream of their own.
        raise SystemExit(
            f"--overlap: not with --compile {args.compile} by {args.compile_scope} (CUDA graph "
            "trees); use --compile-scope step, or a mode without CUDA graphs"
        )
    size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    flops = train_flops_per_sample(config, ssl=True)
    executed = train_flops_per_sample(config, ssl=True, executed=True)
    for batch in dict.fromkeys(batches):  # in order, once each
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        bench.set_batch(batch)
        sync(device)
        start = time.perf_counter()
        # Allocator, kernels, optimiser state, compiling; the graphed step's capture follows
        # its eager steps. As many steps in every variant: the same training, the same loss.
        warmup = WARMUP_STEPS + GRAPH_WARMUP_STEPS
        for _ in range(warmup):
            bench.step()
        sync(device)
        warmup_s = time.perf_counter() - start
        best_train, best_matmul = float("inf"), 0.0
        for _ in range(args.rounds):
            best_matmul = max(best_matmul, matmul_flops_s(device, size, args.matmul_seconds))
            start = time.perf_counter()
            for _ in range(args.steps):
                bench.step()
            sync(device)
            best_train = min(best_train, time.perf_counter() - start)
        samples_s = batch * args.steps / best_train
        result = {
            "preset": args.preset,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "batch": batch,
            "threads": args.threads,
            "gradient_checkpointing": args.gradient_checkpointing,
            "compile": "off" if options is None else options.get("mode", "default"),
            "compile_scope": args.compile_scope,
            "sdp": args.sdp,
            "mark_step": args.mark_step,
            "inductor": args.inductor,
            "math_attention": args.math_attention,
            "overlap": args.overlap,
            "parameters": sum(p.numel() for p in bench.model.parameters()),
            "train_flops_per_sample": flops,
            "samples_s": round(samples_s, 2),
            "model_flops_s": samples_s * flops,
            "matmul_flops_s": best_matmul,
            "matmul_dtype": "bfloat16" if device.type == "cuda" else "float32",
            "mfu": round(samples_s * flops / best_matmul, 3),
            # The FLOPs executed (the cross-attention absorbed): the hardware's utilisation.
            "executed_flops_per_sample": executed,
            "hfu": round(samples_s * executed / best_matmul, 3),
            # Compiling and CUDA graph capture: the warm-up beyond as many steady steps, only
            # when compiling (eager, that excess is allocator and load, not compiling).
            "compile_s": (
                round(max(0.0, warmup_s - warmup * best_train / args.steps), 1)
                if options is not None
                else None
            ),
            "warmup_s": round(warmup_s, 2),
            "better": "higher",  # mfu and hfu (against the matmul of the same run)
            # The same steps on the same data in every variant with the same steps_trained:
            # their losses agree up to rounding, or a variant trains wrongly.
            "steps_trained": bench.steps,
            "loss": round(float(bench.loss), 6),
        }
        if device.type == "cuda":
            result["max_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        print(json.dumps(result), flush=True)
        if args.profile is not None and batch == batches[0]:
            tags = ["gc"] * args.gradient_checkpointing + [f"sdp_{args.sdp}"] * (args.sdp != "auto")
            tags += ["mark_step"] * args.mark_step + ["whole"] * (args.compile_scope == "model")
            tags += ["step"] * bench.graphed + [f"math{args.math_attention}"] * (
                args.math_attention > 0
            )
            tags += ["overlap"] * args.overlap + [i.replace("=", "_") for i in args.inductor]
            name = "-".join([args.preset, f"b{batch}", result["compile"], *tags]) + ".txt"
            try:  # diagnostics: a profiler failure leaves the measurement above standing
                profile_steps(bench, min(args.steps, PROFILE_STEPS), args.profile / name)
            except Exception as error:
                print(f"profile failed: {error!r}", file=sys.stderr, flush=True)
        bench.release()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
