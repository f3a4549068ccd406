"""Checkpoint round trip (safetensors + JSON, no pickle) and refusal of mismatching checkpoints."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from helpers.model import make_catalogue
from safetensors import safe_open

from lcm.catalogue import load_catalogue
from lcm.exceptions import CheckpointError
from lcm.model.checkpoint import load_checkpoint, save_checkpoint
from lcm.model.config import LCMConfig
from lcm.model.lcm import LCM
from lcm.model.targets import layout_from_catalogue

ROIS = [f"r{i}" for i in range(11)]


@pytest.fixture
def saved(tmp_path: Path):
    catalogue = make_catalogue(tmp_path)
    layout = layout_from_catalogue(catalogue)
    torch.manual_seed(0)
    model = LCM(LCMConfig(n_rois=11, n_queries=layout.n_queries, d_model=16, n_heads=2, d_ffn=24))
    meta = {
        "atlas": "toy",
        "n_rois": 11,
        "roi_names": ROIS,
        "catalogue": catalogue.to_dict(),
        "seed": 3,
    }
    out = save_checkpoint(tmp_path / "ckpt", model, layout, meta)
    return out, model.eval(), catalogue


def test_round_trip(saved) -> None:
    out, model, catalogue = saved
    loaded, meta = load_checkpoint(out, atlas="toy", n_rois=11, catalogue=catalogue)
    fc = torch.rand(4, 11, 11)
    torch.testing.assert_close(loaded.predict(fc), model.predict(fc))
    assert meta["seed"] == 3 and meta["config"]["d_model"] == 16
    assert {"torch", "lcm", "safetensors"} <= set(meta["versions"])
    with safe_open(str(out / "model.safetensors"), "pt") as fh:  # plain safetensors, no pickle
        assert fh.metadata()["format"] == "lcm"
        assert "queries" in fh.keys()


def test_the_training_runs_fingerprint_is_recorded_when_given_and_read_back(
    saved, tmp_path: Path
) -> None:
    from lcm.model.checkpoint import RUN_KEY, run_of

    out, model, catalogue = saved
    assert run_of(out) is None  # none given: none recorded (as in an earlier LCM's model.json)
    assert RUN_KEY not in json.loads((out / "model.json").read_text())
    layout = layout_from_catalogue(catalogue)
    again = save_checkpoint(tmp_path / "run", model, layout, {"seed": 3}, run_fingerprint="ab12")
    assert run_of(again) == "ab12"
    (again / "model.json").write_text("{not json")
    assert run_of(again) is None
    assert run_of(tmp_path / "nowhere") is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"atlas": "aal116"}, r"trained on atlas 'toy', the data use 'aal116'"),
        ({"n_rois": 116}, r"expects 11 ROIs, the data have 116"),
    ],
)
def test_refuses_other_atlas_or_size(saved, kwargs: dict, match: str) -> None:
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(saved[0], **kwargs)
    assert info.value.hint


def test_the_same_rois_under_another_atlas_name_are_told_how_to_store_them(saved) -> None:
    """Refused on the atlas name alone, the ROIs identical: "re-extract with its atlas" sent
    the user back to parcellation when storing the data under the checkpoint's name does."""
    with pytest.raises(CheckpointError, match=r"the same 11 ROIs in the same order") as info:
        load_checkpoint(saved[0], atlas="other11", n_rois=11, roi_names=ROIS)
    hint = info.value.hint or ""
    assert "lcm store --atlas toy" in hint and "--atlas toy if the store" in hint
    assert "re-extract" not in hint
    with pytest.raises(CheckpointError, match="re-extract with its atlas"):  # other ROIs
        load_checkpoint(saved[0], atlas="other11", n_rois=11, roi_names=ROIS[::-1])


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (ROIS[::-1], r"ROI 0 is 'r0' in its model.json roi_names, 'r10' in the data \(same names"),
        ([*ROIS[:4], "x", *ROIS[5:]], r"ROI 4 is 'r4' in its model.json roi_names, 'x' in the "),
    ],
)
def test_refuses_other_roi_order_or_names(saved, names: list[str], match: str) -> None:
    """Same count, another order or other names: every token would be another region."""
    load_checkpoint(saved[0], atlas="toy", n_rois=11, roi_names=ROIS)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(saved[0], atlas="toy", n_rois=11, roi_names=names)
    assert str(saved[0]) in info.value.message and "labels order" in info.value.hint


def test_a_checkpoint_without_roi_names_is_checked_for_count_only(saved, caplog) -> None:
    meta_path = saved[0] / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["roi_names"]  # written before the ROI names were recorded
    meta_path.write_text(json.dumps(meta))
    caplog.set_level(logging.DEBUG, logger="lcm.model.checkpoint")
    load_checkpoint(saved[0], n_rois=11, roi_names=ROIS[::-1])
    assert "records no roi_names" in caplog.text


def test_refuses_changed_catalogue(saved, tmp_path: Path) -> None:
    text = (tmp_path / "variables.yaml").read_text()
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "variables.yaml").write_text(text.replace("levels: [F, M]", "levels: [M, F]"))
    with pytest.raises(CheckpointError, match=r"variable 'sex' differs.*levels: checkpoint"):
        load_checkpoint(saved[0], catalogue=load_catalogue(changed / "variables.yaml"))
    bmi_lines = [line for line in text.splitlines(keepends=True) if "bmi" not in line]
    (changed / "variables.yaml").write_text("".join(bmi_lines))
    with pytest.raises(CheckpointError, match=r"queries for variable 'bmi', absent from"):
        load_checkpoint(saved[0], catalogue=load_catalogue(changed / "variables.yaml"))


def test_refuses_tampered_or_incomplete_checkpoint(saved) -> None:
    out = saved[0]
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 differs"):
        load_checkpoint(out)
    meta = json.loads((out / "model.json").read_text())
    (out / "model.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(out)
    weights.unlink()
    with pytest.raises(CheckpointError, match=r"lacks model\.safetensors"):
        load_checkpoint(out)


def test_a_checkpoint_with_non_finite_weights_is_refused(saved, tmp_path: Path) -> None:
    """A diverged training's NaN weights were taken by finetune and embed (NaN embeddings and
    models, exit 0): refused on load, naming the tensor and the fix."""
    _, model, catalogue = saved
    layout = layout_from_catalogue(catalogue)
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    out = save_checkpoint(tmp_path / "nan", model, layout, {"atlas": "toy", "n_rois": 11})
    name = next(iter(model.state_dict()))
    with pytest.raises(CheckpointError, match=rf"non-finite values .*first in {name}") as info:
        load_checkpoint(out)
    assert "lower learning rate" in info.value.hint


def test_save_refuses_layout_model_mismatch(saved, tmp_path: Path) -> None:
    _, model, catalogue = saved
    model.add_queries(2)
    with pytest.raises(CheckpointError, match="layout has 11 queries but the model 13"):
        save_checkpoint(tmp_path / "bad", model, layout_from_catalogue(catalogue), {})


def test_a_catalogue_without_the_checkpoints_variable_is_told_how_to_export_its_own(saved) -> None:
    """The hint sent the user to model.json's catalogue, a form `--catalogue` refuses; it names
    the verb that writes it as a catalogue."""
    import dataclasses

    out, _, catalogue = saved
    name = next(iter(catalogue.variables))
    fewer = dataclasses.replace(
        catalogue, variables={k: v for k, v in catalogue.variables.items() if k != name}
    )
    with pytest.raises(CheckpointError, match=f"variable {name!r}, absent") as info:
        load_checkpoint(out, catalogue=fewer)
    assert f"lcm model-info --checkpoint {out} --catalogue-out" in (info.value.hint or "")


def test_a_checkpoint_given_as_its_file_or_a_missing_folder_says_so(saved, tmp_path: Path) -> None:
    """Given model.json, the refusal said it 'lacks model.json': it names the folder to pass."""
    out = saved[0]
    with pytest.raises(CheckpointError, match=r"model\.json is a file") as info:
        load_checkpoint(out / "model.json")
    assert info.value.hint == f"Pass its folder, {out}."
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
