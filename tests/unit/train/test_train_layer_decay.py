"""``evaluate.finetune.layer_decay``: early layers learn slower while finetuning."""

from __future__ import annotations

import pytest
import torch

from lcm.model.config import LCMConfig
from lcm.model.lcm import LCM
from lcm.train.loop import layer_lr_scales, make_optimizer


def _model() -> LCM:
    torch.manual_seed(0)
    return LCM(LCMConfig(n_rois=6, n_queries=3, d_model=8, n_heads=2, d_ffn=16))


def test_scales_fall_with_depth_from_the_top() -> None:
    model = _model()
    scales = layer_lr_scales(model, 0.5)
    n_enc, n_dec = len(model.encoder), len(model.decoder)
    top = n_enc + 1 + n_dec
    assert scales[id(model.head.weight)] == 1.0
    assert scales[id(model.queries)] == 1.0
    assert scales[id(model.tokenizer.proj.weight)] == pytest.approx(0.5**top)
    assert scales[id(model.encoder[0].attn.in_proj_weight)] == pytest.approx(0.5 ** (top - 1))
    assert scales[id(model.decoder[-1].ffn.net[0].weight)] == pytest.approx(0.5)
    assert set(layer_lr_scales(model, 1.0).values()) == {1.0}


def test_optimizer_groups_carry_the_scaled_rates() -> None:
    model = _model()
    plain = make_optimizer([model], 0.01, 0.1)
    assert [g["lr"] for g in plain.param_groups] == [0.01, 0.01]  # as before: decay, no decay
    scales = layer_lr_scales(model, 0.5)
    opt = make_optimizer([model], 0.01, 0.1, scales)
    by_param = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert by_param == {id(p): pytest.approx(0.01 * scales[id(p)]) for p in model.parameters()}
    weight_decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert weight_decay[id(model.head.bias)] == 0.0
    assert weight_decay[id(model.tokenizer.proj.weight)] == 0.1
    # One step of equal gradients moves the tokenizer less than the head.
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in model.named_parameters()}
    assert moved["tokenizer.proj.bias"] < moved["head.bias"] / 4
