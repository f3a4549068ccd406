"""Shapes, masking and configuration of the LCM modules (R=13 ROIs, batch 5, 7 queries)."""

from __future__ import annotations

import pytest
import torch

from lcm.exceptions import ConfigError
from lcm.model.config import PRESETS, LCMConfig, config_from_settings
from lcm.model.lcm import LCM

R, B, Q = 13, 5, 7


def _model(**changes) -> LCM:
    torch.manual_seed(0)
    cfg = LCMConfig(n_rois=R, n_queries=Q, d_model=24, n_heads=3, d_ffn=40, n_layers=3, **changes)
    return LCM(cfg).eval()


def _fc(batch: int = B, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, R, R, generator=g).tanh()
    return (a + a.transpose(1, 2)) / 2


def test_shapes_with_deep_supervision() -> None:
    model = _model()
    fc = _fc()
    assert model.encode(fc).shape == (B, R, 24)
    assert model(fc).shape == (3, B, Q)  # one output per decoder layer
    assert model.predict(fc).shape == (B, Q)
    mask = torch.zeros(B, R, dtype=torch.bool)
    mask[:, 2] = True
    assert model.reconstruct(fc, mask).shape == (B, R, R)
    torch.testing.assert_close(model.predict(fc), model(fc)[-1])


def test_without_deep_supervision_only_last_layer() -> None:
    model = _model(deep_supervision=False)
    assert model(_fc()).shape == (1, B, Q)


def test_prediction_is_batch_independent() -> None:
    # LayerNorm tokens: a subject's output must not depend on its batch companions.
    model = _model()
    fc = _fc()
    torch.testing.assert_close(model.predict(fc)[1:2], model.predict(fc[1:2]))
    other = torch.cat([fc[1:2], _fc(3, seed=9)])
    torch.testing.assert_close(model.predict(other)[0], model.predict(fc)[1])


def test_masked_roi_is_hidden_from_the_encoder() -> None:
    model = _model()
    fc = _fc()
    mask = torch.zeros(B, R, dtype=torch.bool)
    mask[:, 4] = True
    changed = fc.clone()
    changed[:, 4, :] = 0.9  # the masked ROI's row and (by symmetry) column
    changed[:, :, 4] = 0.9
    torch.testing.assert_close(model.encode(fc, mask), model.encode(changed, mask))
    # ... while without the mask the change is visible.
    assert not torch.allclose(model.encode(fc), model.encode(changed))


def test_add_queries_keeps_old_embeddings() -> None:
    model = _model()
    old = model.queries.detach().clone()
    model.add_queries(2, generator=torch.Generator().manual_seed(1))
    assert model.config.n_queries == Q + 2
    assert model.predict(_fc()).shape == (B, Q + 2)
    torch.testing.assert_close(model.queries[:Q].detach(), old)


def test_presets_and_overrides() -> None:
    cfg = config_from_settings({"preset": "tiny"}, n_rois=R, n_queries=Q)
    assert (cfg.d_model, cfg.n_heads, cfg.d_ffn, cfg.n_layers, cfg.n_encoder_layers) == (
        64,
        4,
        128,
        2,
        1,
    )
    assert PRESETS["big"]["d_model"] == 2048 and PRESETS["big"]["n_layers"] == 32
    cfg = config_from_settings({"preset": "small", "overrides": {"n_layers": 3}}, R, Q)
    assert cfg.n_layers == 3 and cfg.d_model == 256
    assert LCMConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"preset": "huge"}, r"model.preset: expected one of .*got 'huge'"),
        ({"overrides": {"n_rois": 5}}, r"\['n_rois'\] are set by the atlas"),
        ({"overrides": {"d_model": 30, "n_heads": 4}}, r"d_model \(30\) must be divisible"),
        ({"overrides": {"n_encoder_layers": 0}}, r"n_encoder_layers: expected an integer >= 1"),
        ({"overrides": {"width": 3}}, r"unknown keys \['width'\]"),
        ({"preset": "tiny", "extra": 1}, r"model: unknown keys \['extra'\]"),
    ],
)
def test_bad_model_settings_raise(settings: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_settings(settings, n_rois=R, n_queries=Q)
