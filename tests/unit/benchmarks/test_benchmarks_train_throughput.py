"""benchmarks/train_throughput.py: kernel choices of a variant (quick runs: test_e2e_benchmarks)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import torch._functorch.config as functorch_config
import torch._inductor.config as inductor_config
from helpers import ROOT

SDP_BACKENDS = ("cudnn", "flash", "mem_efficient", "math")


@pytest.fixture
def throughput(monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "train_throughput_bench", ROOT / "benchmarks/train_throughput.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "train_throughput_bench", module)
    spec.loader.exec_module(module)
    # Process-wide switches: whatever a test sets is put back (config modules are saved and
    # loaded whole: their options are not plain attributes for monkeypatch).
    saved = inductor_config.save_config(), functorch_config.save_config()
    enabled = {n: getattr(torch.backends.cuda, f"{n}_sdp_enabled")() for n in SDP_BACKENDS}
    yield module
    inductor_config.load_config(saved[0])
    functorch_config.load_config(saved[1])
    for name, on in enabled.items():
        getattr(torch.backends.cuda, f"enable_{name}_sdp")(on)


def test_the_plain_step_keeps_the_compile_caches(throughput) -> None:
    throughput.set_kernels("auto", [], torch.device("cuda"))
    assert inductor_config.fx_graph_cache and functorch_config.enable_autograd_cache


@pytest.mark.parametrize(
    ("sdp", "inductor"), [("math", []), ("auto", ["combo_kernels=True"])], ids=["sdp", "inductor"]
)
def test_a_variant_compiles_afresh(throughput, sdp, inductor) -> None:
    """A cached graph of another variant (or of the plain step) is never replayed for it: the
    caches' keys leave the attention backends out."""
    throughput.set_kernels(sdp, inductor, torch.device("cuda"))
    assert not inductor_config.fx_graph_cache and not functorch_config.enable_autograd_cache
    if sdp == "math":
        assert (
            torch.backends.cuda.math_sdp_enabled() and not torch.backends.cuda.cudnn_sdp_enabled()
        )
    else:
        assert inductor_config.combo_kernels is True


@pytest.mark.parametrize("scope", ["blocks", "model"])
def test_overlap_is_refused_with_cuda_graph_trees(throughput, monkeypatch, scope) -> None:
    """``--overlap`` puts a pass on a stream of its own: CUDA graph trees record and replay on
    theirs, so it runs only inside the graphed step or without CUDA graphs."""
    argv = ["train_throughput.py", "--quick", "--overlap", "--compile", "reduce-overhead"]
    monkeypatch.setattr(sys, "argv", [*argv, "--compile-scope", scope])
    threads = torch.get_num_threads()  # main() sets the process's
    try:
        with pytest.raises(SystemExit, match="--overlap: not with --compile reduce-overhead"):
            throughput.main()
    finally:
        torch.set_num_threads(threads)


def test_busy_time_counts_overlapping_kernels_once(throughput) -> None:
    # Two streams: [0, 4) and [2, 5) overlap (busy 5 of 7 summed); [7, 8) and [7.5, 7.6)
    # nested; [10, 10) empty.
    kernels = [(2.0, 5.0), (0.0, 4.0), (7.5, 7.6), (7.0, 8.0), (10.0, 10.0)]
    assert throughput.covered_us(kernels) == pytest.approx(6.0)
    assert throughput.covered_us([]) == 0.0
    assert throughput.covered_us([(1.0, 3.0), (3.0, 4.0)]) == pytest.approx(3.0)
