"""The pretraining step captured whole (lcm.train.graphed) trains as the eager step does.

There is no GPU here: the graphed step runs its captured work eagerly (``capture=False``), the
same code a CUDA graph records, against :class:`PretrainStep` driven by the same loop on the
same data, in float32 on CPU. Batches miss variables (one is never observed, one only now and
then), the last batch is short (padded), and dropout is on.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

from lcm.exceptions import ConfigError
from lcm.model.config import LCMConfig
from lcm.model.lcm import LCM
from lcm.model.targets import QueryLayout, Target
from lcm.train import loop
from lcm.train.graphed import GraphedPretrainStep, StepInputs
from lcm.train.loop import DeviceConnectomes, compile_model, train_epochs
from lcm.train.objective import PretrainObjective, PretrainStep

pytestmark = pytest.mark.usefixtures("one_thread")

LAYOUT = (
    QueryLayout()
    .append("sex", "binary", ("F", "M"))
    .append("age", "continuous")
    .append("site", "categorical", ("a", "b", "c"))
    .append("education", "ordinal")
)
N, R, BATCH = 22, 10, 4  # 6 batches a epoch, the last of 2 samples


def _data(seed: int = 0) -> tuple[np.ndarray, dict[str, Target]]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((N, R, R)).astype(np.float32)
    fc = np.tanh(0.3 * (a + a.transpose(0, 2, 1)))
    everyone = torch.ones(N, dtype=torch.bool)
    rare = torch.zeros(N, dtype=torch.bool)
    rare[[2, 9, 17]] = True  # absent from most batches
    sex = torch.eye(2)[torch.as_tensor(rng.integers(0, 2, N))]
    site = torch.softmax(torch.as_tensor(rng.standard_normal((N, 3)), dtype=torch.float32), 1)
    targets = {
        "sex": Target(sex, everyone),
        "age": Target(torch.as_tensor(rng.standard_normal(N), dtype=torch.float32), rare),
        "site": Target(site, everyone),
        "education": Target(torch.zeros(N), torch.zeros(N, dtype=torch.bool)),  # never known
    }
    return fc, targets


def _objective(ssl_weight: float = 0.5) -> PretrainObjective:
    torch.manual_seed(0)
    config = LCMConfig(n_rois=R, n_queries=LAYOUT.n_queries, d_model=16, n_heads=2, d_ffn=24)
    return PretrainObjective(LCM(config), LAYOUT, ssl_weight=ssl_weight)


def _train(
    graphed: bool,
    mask_ratio: float = 0.2,
    epochs: int = 2,
    ssl_weight: float = 0.5,
    overlap: bool = False,
    log_vars: dict[str, float] | None = None,
):
    fc, targets = _data()
    objective = _objective(ssl_weight)
    objective.model.overlap_reconstruction = overlap
    with torch.no_grad():  # task weights set before training
        for name, value in (log_vars or {}).items():
            objective.weighting.log_vars[name].fill_(value)
    connectomes = DeviceConnectomes(fc, torch.device("cpu"), resident=True)
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(2)  # dropout
    if graphed:
        step = GraphedPretrainStep(
            objective, connectomes, targets, mask_ratio, generator, BATCH, capture=False
        )
    else:
        step = PretrainStep(objective, connectomes, targets, mask_ratio, generator, pad_to=BATCH)
    history = train_epochs(
        [objective], N, epochs, BATCH, 3e-3, 0.01, generator, step, "t", quiet=True
    )
    return objective, history


@pytest.mark.parametrize(
    ("mask_ratio", "overlap"),
    [(0.2, False), (0.0, False), (0.2, True)],
    ids=["with-ssl", "bei-only", "with-ssl-overlapped"],
)
def test_the_graphed_step_trains_as_the_eager_step(mask_ratio: float, overlap: bool) -> None:
    # Overlapped: the reconstruction as a pass of its own (on CUDA on its own stream), in both.
    eager, eager_history = _train(False, mask_ratio, overlap=overlap)
    graphed, graphed_history = _train(True, mask_ratio, overlap=overlap)
    reference = eager.state_dict()
    d = 16  # d_model
    for name, value in graphed.state_dict().items():
        expected = reference[name]
        if name.endswith("attn.in_proj_bias"):
            # The keys' bias has an exact gradient of zero (a shift of every score of a query,
            # which the softmax removes); computed, it is rounding noise, which AdamW turns into
            # steps of the learning rate's size, different in any two summation orders.
            value, expected = (
                torch.cat([value[:d], value[2 * d :]]),
                torch.cat([expected[:d], expected[2 * d :]]),
            )
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=name)
    assert [set(row) for row in graphed_history] == [set(row) for row in eager_history]
    for ours, theirs in zip(graphed_history, eager_history, strict=True):
        for key, value in theirs.items():
            assert ours[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    # The rare variable was absent from some batches and present in others.
    assert "loss_age" in eager_history[0] and "loss_education" not in eager_history[0]


def test_absent_variables_keep_their_task_weight_and_its_optimiser_state() -> None:
    """A task weight without a target in a batch moves in neither the eager step (no gradient)
    nor the graphed one (its update undone in the step): ``education`` is never observed."""
    graphed, _ = _train(True)
    log_vars = graphed.weighting.log_vars
    assert log_vars["education"].item() == 0.0
    assert all(log_vars[name].item() != 0.0 for name in ("sex", "age", "site"))


def test_task_weights_past_their_bounds_are_projected_back_as_in_the_eager_step() -> None:
    """Inside the step (the captured work on CUDA), after AdamW, as the loop does after the
    eager step: a log-variance past a bound, where it has no gradient, is put back on it and
    learns again; the never observed ``education`` too, its update undone first."""
    past = {"sex": -6.0, "site": 5.0, "education": -7.0}
    eager, _ = _train(False, log_vars=past)
    graphed, _ = _train(True, log_vars=past)
    for name, value in graphed.weighting.log_vars.items():
        expected = eager.weighting.log_vars[name]
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=name)
        assert -4.0 <= value.item() <= 4.0, name
    assert graphed.weighting.log_vars["education"].item() == -4.0  # projected, never trained
    assert -4.0 < graphed.weighting.log_vars["sex"].item() < 4.0  # off the bound: it learned
    assert -4.0 < graphed.weighting.log_vars["site"].item() < 4.0


def test_a_batch_with_nothing_to_learn_makes_no_update() -> None:
    fc, targets = _data()
    targets = {"education": targets["education"]}  # never present
    objective = _objective()
    before = copy.deepcopy(objective.state_dict())
    connectomes = DeviceConnectomes(fc, torch.device("cpu"), resident=False)
    generator = torch.Generator().manual_seed(1)
    step = GraphedPretrainStep(objective, connectomes, targets, 0.0, generator, BATCH, False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train_epochs(
            [objective], N, 1, BATCH, 1e-2, 0.01, generator, step, "t", quiet=True
        )
    # The schedule advanced without an update, on purpose: torch's warning of that is not shown.
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    assert history[0]["loss_total"] == 0.0
    after = objective.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_a_step_that_a_graph_cannot_hold_stops_with_the_setting_to_change(monkeypatch) -> None:
    """torch's capture error (an operation not permitted while capturing) becomes a
    ConfigError naming ``compile_scope: step`` and the scopes that work instead."""
    import contextlib

    fc, targets = _data()
    objective = _objective()
    connectomes = DeviceConnectomes(fc, torch.device("cpu"), resident=True)
    step = GraphedPretrainStep(
        objective, connectomes, targets, 0.2, torch.Generator(), BATCH, capture=True
    )
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    monkeypatch.setattr(torch.cuda, "graph", lambda graph: contextlib.nullcontext())

    def body(captured: bool) -> None:
        assert captured
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore")

    monkeypatch.setattr(step, "_body", body)
    step.steps = 3
    with pytest.raises(ConfigError) as caught:
        step._capture()
    text = str(caught.value)
    assert "compile_scope: step" in text and "after 3 eager steps" in text
    assert "operation not permitted when stream is capturing" in text and "more" not in text
    assert "compile_scope: model (or blocks)" in text
    assert step.graph is None


def test_host_connectomes_give_the_same_training_as_resident_ones() -> None:
    runs = []
    for resident in (True, False):
        fc, targets = _data()
        objective = _objective()
        connectomes = DeviceConnectomes(fc, torch.device("cpu"), resident=resident)
        generator = torch.Generator().manual_seed(1)
        torch.manual_seed(2)
        step = GraphedPretrainStep(objective, connectomes, targets, 0.2, generator, BATCH, False)
        train_epochs([objective], N, 1, BATCH, 3e-3, 0.01, generator, step, "t", quiet=True)
        runs.append(objective.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_step_inputs_round_trip_through_one_buffer() -> None:
    inputs = StepInputs(
        [
            ("index", torch.long, (5,)),
            ("mask", torch.bool, (5, 3)),
            ("scalar", torch.float32, ()),
            ("values", torch.float32, (5, 2)),
        ],
        torch.device("cpu"),
    )
    values = {
        "index": torch.arange(5) * 10**9,
        "mask": torch.rand(5, 3) > 0.5,
        "scalar": torch.tensor(2.5),
        "values": torch.randn(5, 2),
    }
    inputs.load(values)
    for name, value in values.items():
        assert inputs[name].dtype == value.dtype and torch.equal(inputs[name], value), name
    # Every field starts 16-byte aligned (a view of any dtype is valid on every device).
    assert all(f.offset % 16 == 0 for f in inputs.fields.values())


def test_step_scope_compiles_the_model_whole_without_cuda_graphs_of_its_own(monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(LCM, "compile_whole", lambda self, **options: seen.append(options))
    objective = _objective()
    cpu = torch.device("cpu")
    assert compile_model(objective, "reduce-overhead", cpu, "step")
    assert compile_model(objective, "max-autotune", cpu, "step")
    assert compile_model(objective, True, cpu, "step")
    assert seen == [{"mode": "default"}, {"mode": "max-autotune-no-cudagraphs"}, {}]
    assert not compile_model(objective, "auto", cpu, "step")  # CPU stays eager
    with pytest.raises(ConfigError, match="blocks \\(the default\\), model or step"):
        compile_model(objective, True, cpu, "everything")
    assert "step" in loop.COMPILE_SCOPES


def test_pretraining_with_the_step_scope_resumes_exactly_after_a_kill(
    tmp_path, monkeypatch
) -> None:
    """``pretrain.compile_scope: step`` on CPU: the graphed step run eagerly by ``pretrain``,
    killed inside its 8th step and resumed from the state of step 6, ends bit-identical to an
    uninterrupted run (task weights' optimiser state included), and close to the default
    scope's run (the same training, other summation orders; without dropout, whose draws
    differ where the graphed step pads an epoch's last batch and the eager one does not)."""
    from helpers.model import TINY, make_catalogue, pretrain_cohort
    from safetensors.torch import load_file

    from lcm.train import graphed
    from lcm.train.pretrain import pretrain

    settings = {"epochs": 4, "batch_size": 16, "lr": 0.003, "checkpoint_every": 3}
    step_scope = {**settings, "compile_scope": "step"}
    model = {**TINY, "overrides": {**TINY["overrides"], "dropout": 0.0}}
    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(50)
    pretrain(cohort, catalogue, model, step_scope, seed=4, out_dir=tmp_path / "whole")
    pretrain(cohort, catalogue, model, settings, seed=4, out_dir=tmp_path / "blocks")
    original, calls = graphed.GraphedPretrainStep._body, []

    def dying_body(self, captured):
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt("killed")
        return original(self, captured)

    monkeypatch.setattr(graphed.GraphedPretrainStep, "_body", dying_body)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cohort, catalogue, model, step_scope, seed=4, out_dir=tmp_path / "resumed")
    monkeypatch.setattr(graphed.GraphedPretrainStep, "_body", original)
    pretrain(cohort, catalogue, model, step_scope, seed=4, out_dir=tmp_path / "resumed")
    whole, resumed, blocks = (
        load_file(str(tmp_path / d / "model.safetensors")) for d in ("whole", "resumed", "blocks")
    )
    assert whole.keys() == resumed.keys() == blocks.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    for name, value in whole.items():
        if not name.endswith("attn.in_proj_bias"):  # see the test above: the keys' bias
            torch.testing.assert_close(value, blocks[name], rtol=1e-4, atol=1e-5, msg=name)


def test_the_step_scope_is_refused_for_data_parallel_runs(tmp_path, monkeypatch) -> None:
    from helpers.model import TINY, make_catalogue, pretrain_cohort

    from lcm.train import distributed
    from lcm.train.pretrain import pretrain

    monkeypatch.setattr(distributed, "setup", lambda dev: distributed.Distributed(0, 2, 0, dev))
    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(20)
    settings = {"epochs": 1, "batch_size": 8, "compile_scope": "step"}
    with pytest.raises(ConfigError, match="compile_scope: step captures one process") as error:
        pretrain(cohort, catalogue, TINY, settings, seed=1, out_dir=tmp_path / "out")
    assert "compile_scope: model" in error.value.hint
    assert not (tmp_path / "out").exists()


def test_the_step_scope_is_refused_with_gradient_checkpointing(tmp_path) -> None:
    from helpers.model import TINY, make_catalogue, pretrain_cohort

    from lcm.train.pretrain import pretrain

    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(20)
    settings = {"epochs": 1, "batch_size": 8, "compile_scope": "step"}
    settings["gradient_checkpointing"] = True
    with pytest.raises(ConfigError, match="does not combine with gradient_checkpointing"):
        pretrain(cohort, catalogue, TINY, settings, seed=1, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_losses_compile_as_one_graph_and_train_the_same() -> None:
    """With compile options the graphed step's losses (BEI losses, task weighting, masked-ROI
    loss: a few dozen small operations) are one dynamo graph, and training is unchanged."""
    import torch._dynamo as dynamo

    def run(options):
        fc, targets = _data()
        objective = _objective()
        connectomes = DeviceConnectomes(fc, torch.device("cpu"), resident=True)
        generator = torch.Generator().manual_seed(1)
        torch.manual_seed(2)
        step = GraphedPretrainStep(
            objective, connectomes, targets, 0.2, generator, BATCH, False, options
        )
        train_epochs([objective], N, 1, BATCH, 3e-3, 0.01, generator, step, "t", quiet=True)
        return objective.state_dict(), step

    dynamo.reset()
    compiled, step = run({"backend": "aot_eager"})
    eager, _ = run(None)
    for name, value in compiled.items():
        if not name.endswith("attn.in_proj_bias"):  # the keys' bias: see above
            torch.testing.assert_close(value, eager[name], rtol=1e-5, atol=1e-6, msg=name)
    inputs = step.inputs
    outputs, reconstructed = step.objective.model.forward_and_reconstruct(
        step.fc.expand(step.fc.triangles[:BATCH]), inputs["mask"]
    )
    found = dynamo.explain(step._terms)(
        outputs,
        reconstructed,
        step.fc.expand(step.fc.triangles[:BATCH]),
        inputs["mask"],
        inputs["values"],
        inputs["present"],
        inputs["ssl_denominator"],
    )
    assert found.graph_count == 1 and found.graph_break_count == 0, found.break_reasons
