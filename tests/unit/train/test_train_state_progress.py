"""A training state says itself whether its run finished: at the step training ends at.

``lcm prune-states`` removes the states of finished runs only; it reads this from the state's
JSON (:func:`lcm.train.state.progress`), by the rule the loop resumes by (a state at its final
step has nothing left to train), never from the tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.model import TINY, make_catalogue, pretrain_cohort

from lcm.model.checkpoint import run_of as model_run
from lcm.train import objective
from lcm.train.pretrain import STATE_DIR, pretrain
from lcm.train.state import META_NAME, content_digest, progress, run_of

# 50 runs, 5 held out: 45 in batches of 16, 3 a epoch (the last one short), 4 epochs.
SETTINGS = {"epochs": 4, "batch_size": 16, "lr": 0.003, "checkpoint_every": 5}

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_finished_training_state_says_so_and_a_killed_one_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(50)
    pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "done")
    state = tmp_path / "done" / STATE_DIR
    meta = json.loads((state / META_NAME).read_text())
    assert meta["step"] == meta["total_steps"]  # saved at the last step, which it records
    assert progress(state) == (True, f"step {meta['step']} of {meta['step']}")
    # Its model says which run wrote it: the fingerprint the state resumes by.
    assert run_of(state) == meta["fingerprint"] == model_run(tmp_path / "done")

    original, calls = objective.PretrainObjective.forward, []

    def dying_forward(self, fc, shard):  # killed in its 7th step: the state of step 5 is kept
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt("killed")
        return original(self, fc, shard)

    monkeypatch.setattr(objective.PretrainObjective, "forward", dying_forward)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "killed")
    total = meta["total_steps"]
    assert progress(tmp_path / "killed" / STATE_DIR) == (False, f"step 5 of {total}")


def test_a_state_that_does_not_say_where_training_ends_is_not_finished(tmp_path: Path) -> None:
    """An edited JSON, one of an LCM that did not record the final step, a missing tensors
    file, no JSON: none is taken as finished (each is said)."""
    assert progress(tmp_path) == (False, f"no {META_NAME} (no step saved yet)")
    meta = {"format_version": 2, "step": 12, "tensors_file": "train_state.step-12.safetensors"}
    (tmp_path / META_NAME).write_text(json.dumps({**meta, "content_sha256": content_digest(meta)}))
    finished, said = progress(tmp_path)
    assert not finished and "final step not recorded" in said
    assert run_of(tmp_path) is None  # (no fingerprint recorded)
    meta["total_steps"] = 12
    (tmp_path / META_NAME).write_text(json.dumps({**meta, "content_sha256": content_digest(meta)}))
    assert progress(tmp_path) == (
        False,
        "step 12 of 12, but train_state.step-12.safetensors is missing",
    )
    (tmp_path / "train_state.step-12.safetensors").write_bytes(b"tensors")
    assert progress(tmp_path) == (True, "step 12 of 12")
    (tmp_path / META_NAME).write_text(json.dumps({**meta, "content_sha256": "0" * 64}))
    assert progress(tmp_path) == (
        False,
        f"its {META_NAME} differs from its recorded content_sha256",
    )
