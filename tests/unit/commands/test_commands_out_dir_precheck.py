"""``lcm pretrain`` and ``lcm finetune`` refuse an ``--out-dir`` that is not theirs before the load.

The folder was claimed (and refused when it held a user's files or another verb's outputs)
only after the whole cohort was loaded: a mistyped ``--out-dir`` cost that load before its
refusal. The verbs now check it first, writing nothing, and claim it where they did.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.model import CLI_CATALOGUE, add_store_dataset, pretrain_argv, write_catalogue

from lcm.cli import main
from lcm.exceptions import InputDataError, OutputOwnershipError
from lcm.io.ownership import MARKER_NAME, check_claimable, claim_out_dir


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry below ``folder``: a file's bytes, None for a folder."""
    return {
        str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


def _argv(verb: str, tmp_path: Path, out: Path) -> list[str]:
    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 12, seed=0)
    if verb == "pretrain":
        return pretrain_argv(store, catalogue, out, '{"epochs": 1, "batch_size": 4}')
    argv = ["finetune", "--store", str(store), "--catalogue", str(catalogue), "--atlas", "toy"]
    argv += ["--checkpoint", str(tmp_path / "pre"), "--dataset", "alpha", "--label", "dx"]
    return [*argv, "--positive", "patient", "--out-dir", str(out), "--threads", "1"]


@pytest.fixture
def stop_at_load(monkeypatch: pytest.MonkeyPatch):
    """Make the cohort's load stop the verb (nothing is trained); returns, for an --out-dir,
    the loads reached, each with whether that folder existed then."""
    import lcm.store.read

    def watch(out: Path) -> list[tuple[str, bool]]:
        reached: list[tuple[str, bool]] = []

        def fake(store, atlas, datasets, catalogue, **kwargs):
            reached.append((str(datasets), out.exists()))
            raise InputDataError("stopped at the cohort's load", hint="(test)")

        for name in ("load_cohort", "load_streamed_cohort"):
            monkeypatch.setattr(lcm.store.read, name, fake)
        return reached

    return watch


@pytest.mark.parametrize("verb", ["pretrain", "finetune"])
@pytest.mark.parametrize("whose", ["a user's", "another verb's"])
def test_an_out_dir_that_is_not_the_verbs_is_refused_before_the_cohort_is_loaded(
    tmp_path: Path,
    verb: str,
    whose: str,
    stop_at_load,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A user's analysis folder (or another verb's model folder) given as --out-dir was
    refused only after the whole cohort had loaded; now first, and left exactly as it was."""
    out = tmp_path / "analysis"
    if whose == "a user's":
        out.mkdir()
        (out / "notes.txt").write_text("my notes\n")
        (out / "model.json").write_text(json.dumps({"mine": True}))
        said = "holds files LCM did not write (model.json, notes.txt)"
    else:
        other = "lcm finetune" if verb == "pretrain" else "lcm pretrain"
        claim_out_dir(out, other)
        (out / "history.tsv").write_text("epoch\tloss\n1\t0.5\n")
        said = f"holds the outputs of {other}"
    before = _snapshot(out)
    loads = stop_at_load(out)
    capsys.readouterr()
    assert main(_argv(verb, tmp_path, out)) == OutputOwnershipError.exit_code
    err = capsys.readouterr().err
    assert f"lcm {verb}: output folder {out} {said}" in err, err
    assert loads == []  # refused before the load
    assert _snapshot(out) == before  # no marker, no lock, nothing replaced


@pytest.mark.parametrize("verb", ["pretrain", "finetune"])
@pytest.mark.parametrize("state", ["new", "its own"])
def test_a_new_or_own_out_dir_still_reaches_the_load_untouched(
    tmp_path: Path, verb: str, state: str, stop_at_load
) -> None:
    """The check before the load writes nothing: a new folder is not made before it, and the
    verb's own folder (an earlier run's) is let through to the load unchanged."""
    out = tmp_path / "model"
    if state == "its own":
        claim_out_dir(out, f"lcm {verb}")
        (out / "history.tsv").write_text("epoch\tloss\n1\t0.5\n")
        before = _snapshot(out)
    loads = stop_at_load(out)
    assert main(_argv(verb, tmp_path, out)) == InputDataError.exit_code
    assert loads == [("['alpha']", state == "its own")]
    if state == "its own":
        assert _snapshot(out) == before
    else:
        assert not out.exists()


def test_check_claimable_refuses_as_the_claim_does_and_writes_nothing(tmp_path: Path) -> None:
    """The read-only check and the claim take the same folders: an earlier LCM's unmarked
    folder passes without being marked, a user's folder is refused in the claim's words."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.safetensors").write_bytes(b"weights")
    (old / "model.prov.json").write_text("{}")  # no record: not LCM's
    with pytest.raises(OutputOwnershipError, match="holds files LCM did not write") as checked:
        check_claimable(old, "lcm pretrain", ["model.*"])
    with pytest.raises(OutputOwnershipError) as claimed:
        claim_out_dir(old, "lcm pretrain", ["model.*"])
    assert str(checked.value) == str(claimed.value)
    assert sorted(p.name for p in old.iterdir()) == ["model.prov.json", "model.safetensors"]
    empty = tmp_path / "empty"
    empty.mkdir()
    check_claimable(empty, "lcm pretrain")
    check_claimable(tmp_path / "new" / "deeper", "lcm pretrain")
    assert list(empty.iterdir()) == [] and not (tmp_path / "new").exists()
    assert not (empty / MARKER_NAME).exists()
