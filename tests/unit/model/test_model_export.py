"""Query attention, embeddings, gradient checkpointing, analytic FLOPs and the attention map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lcm.model.config import PRESETS, LCMConfig
from lcm.model.export import attention_frame, embedding_frame, embeddings, query_names
from lcm.model.flops import forward_flops, train_flops_per_sample
from lcm.model.lcm import LCM
from lcm.model.targets import QueryLayout
from lcm.report.attention import attention_brain_figure, mean_query_attention

# Distinct sizes: 11 ROIs, 5 queries, batch 3, d 24, 2 decoder layers.
CFG = LCMConfig(n_rois=11, n_queries=5, d_model=24, n_heads=4, d_ffn=40, n_layers=2, dropout=0.0)
LAYOUT = QueryLayout().append("age", "continuous").append("dx", "binary", ("c", "p", "n/a"))
LAYOUT = LAYOUT.append("bmi", "continuous")


def _fc(n: int, r: int = 11) -> torch.Tensor:
    a = torch.randn(n, r, r, generator=torch.Generator().manual_seed(n))
    return torch.tanh(a + a.transpose(1, 2))


def test_attention_shapes_and_rows_sum_to_one() -> None:
    torch.manual_seed(0)
    model = LCM(CFG).eval()
    att = model.attention(_fc(3))
    assert att.shape == (2, 3, 5, 11)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 3, 5))
    # The attention path computes the same outputs as the plain forward.
    emb = model.embed(_fc(3))
    assert emb.shape == (3, 24)
    assert query_names(LAYOUT) == ["age", "dx=c", "dx=p", "dx=n/a", "bmi"]


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(1)
    plain = LCM(CFG).train()
    ckpt = LCM(CFG).train()
    ckpt.load_state_dict(plain.state_dict())
    ckpt.gradient_checkpointing = True
    x = _fc(4)
    for model in (plain, ckpt):
        model(x).pow(2).mean().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, msg=name)


def test_analytic_flops_match_torch_counter() -> None:
    model = LCM(CFG.replace(n_encoder_layers=2)).eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(_fc(1))
    executed = forward_flops(model.config, ssl=False, executed=True)["total"]
    # torch's counter skips the fused CPU attention kernel of the self-attention (scores Q K^T
    # and A V) of 2 encoder and 2 decoder layers: add them.
    r, q, d, h = 11, 5, 24, 4
    scores = 2 * (2 * r * r * d) * 2 + 2 * (2 * q * q * d) * 2
    assert counter.get_total_flops() + scores == executed
    # The architecture's count has each decoder layer's cross-attention in its standard form:
    # q (2 q d^2), k and v of every ROI (2 r d 2d), scores and sums (2 x 2 q r d), output
    # (2 q d^2); LCM computes q, each head's query at width d, scores and sums over the full
    # width for every head (2 x 2 h q r d), the values from them, output (4 x 2 q d^2).
    standard = 2 * q * d * d + 2 * r * d * 2 * d + 2 * 2 * q * r * d + 2 * q * d * d
    absorbed = 4 * 2 * q * d * d + 2 * 2 * h * q * r * d
    architecture = forward_flops(model.config, ssl=False)["total"]
    assert architecture - executed == 2 * (standard - absorbed)


def test_lcm_presets_execute_fewer_flops_than_their_architecture() -> None:
    # The demo's 7 BEI queries over 116 ROIs: per training sample, LCM executes fewer FLOPs
    # than the architecture's count (which MFU uses), the more so the wider the model.
    ratios = []
    for preset in ("tiny", "small", "base", "big"):
        config = LCMConfig(n_rois=116, n_queries=7, **PRESETS[preset])
        executed = train_flops_per_sample(config, executed=True)
        ratios.append(executed / train_flops_per_sample(config))
    assert ratios == sorted(ratios, reverse=True) and ratios[0] < 1, ratios


def test_tables_and_brain_map() -> None:
    torch.manual_seed(0)
    model = LCM(CFG)
    ids = pd.DataFrame({"dataset": ["a"] * 3, "subject": ["1", "2", "3"]})
    emb = embedding_frame(ids, embeddings(model, _fc(3).numpy()))
    assert list(emb.columns[:3]) == ["dataset", "subject", "emb_000"] and emb.shape == (3, 26)
    rois = [f"r{i}" for i in range(11)]
    att = model.attention(_fc(3)).detach()[-1].numpy()
    table = attention_frame(ids, att, LAYOUT, rois)
    assert table.shape == (15, 2 + 1 + 11)
    weights = mean_query_attention(table, "dx=p", rois)
    np.testing.assert_allclose(weights, att[:, 2].mean(0), rtol=1e-6)
    with pytest.raises(KeyError, match="'sex=F' not in the attention table"):
        mean_query_attention(table, "sex=F", rois)
    centroids = np.random.default_rng(0).uniform(-70, 70, (11, 3))
    centroids[4] = np.nan  # an ROI absent from the image is skipped
    fig = attention_brain_figure(weights, centroids, "dx=p", roi_names=rois)
    assert len(fig.axes) == 4 and "top: " in fig._suptitle.get_text()
