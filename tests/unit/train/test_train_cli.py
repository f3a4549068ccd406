"""`lcm pretrain` and `lcm finetune` end to end on a real (tiny) Parquet feature store."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from helpers.model import (
    CLI_CATALOGUE,
    TINY,
    add_store_dataset,
    pretrain_argv,
    write_catalogue,
)
from safetensors.torch import load_file

from lcm.catalogue import load_catalogue
from lcm.cli import build_parser, main, requested_verb
from lcm.train.bei_maps import MAPS_FILE, BEIMaps


def test_pretrain_then_finetune_from_the_command_line(tmp_path: Path, capsys) -> None:
    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 30, seed=0)
    add_store_dataset(tmp_path, store, catalogue, "beta", "toy", 20, seed=1)
    add_store_dataset(tmp_path, store, catalogue, "beta", "toy2", 20, seed=1)
    pre = tmp_path / "pretrained"
    code = main(pretrain_argv(store, catalogue, pre))
    assert code == 0
    meta = json.loads((pre / "model.json").read_text())
    assert meta["data"]["datasets"] == ["alpha"] and meta["data"]["n_runs"] == 30
    assert "dx" not in [g["name"] for g in meta["query_layout"]]  # never seen in pretraining

    finetune = [
        "finetune",
        "--checkpoint",
        str(pre),
        "--store",
        str(store),
        "--catalogue",
        str(catalogue),
        "--dataset",
        "beta",
        "--label",
        "dx",
        "--positive",
        "patient",
        "--settings",
        '{"epochs": 2, "batch_size": 8}',
        "--seed",
        "0",
        "--threads",
        "1",
    ]
    out = tmp_path / "finetuned"
    assert main([*finetune, "--atlas", "toy", "--out-dir", str(out)]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["label"]["positive"] == "patient" and meta["query_layout"][-1]["name"] == "dx"
    # Finetuning on a pretraining dataset is said to be no independent result (said nothing).
    capsys.readouterr()
    on_alpha = [*finetune, "--atlas", "toy", "--out-dir", str(tmp_path / "a")]
    on_alpha[on_alpha.index("--dataset") + 1] = "alpha"
    main(on_alpha)  # alpha has no diagnosis: refused after the warning
    assert "was pretrained on alpha" in capsys.readouterr().err
    # What a checkpoint is, from the command line (model-info read presets only).
    capsys.readouterr()
    assert main(["model-info", "--checkpoint", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["kind"], info["label"], info["positive"]) == ("finetuned", "dx", "patient")
    assert info["atlas"] == "toy" and info["queries"][-1] == "dx"
    assert info["parameters"]["total"] > 0
    assert info["weights_check"] == "matches model.json"
    # An edited model.json (a traceback), weights cut short (the record's sha256 printed).
    odd = tmp_path / "odd"
    shutil.copytree(out, odd)
    meta = json.loads((odd / "model.json").read_text())
    (odd / "model.json").write_text(json.dumps({**meta, "data": "x", "label": "y"}))
    (odd / "model.safetensors").write_bytes((odd / "model.safetensors").read_bytes()[:1000])
    assert main(["model-info", "--checkpoint", str(odd), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["datasets"] is None and info["label"] is None
    assert info["weights_check"] == f"DIFFERS from model.json's {meta['weights_sha256']}"
    (odd / "model.json").write_text(json.dumps({**meta, "query_layout": [1]}))
    assert main(["model-info", "--checkpoint", str(odd)]) != 0
    # Which checkpoint's model.json: the message named only "model.json".
    assert f"{odd / 'model.json'}: missing or malformed query_layout" in capsys.readouterr().err
    assert (
        main(
            [
                *finetune,
                "--atlas",
                "toy",
                "--init",
                "scratch",
                "--out-dir",
                str(tmp_path / "scratch"),
            ]
        )
        == 0
    )
    # A checkpoint of another atlas is refused (CheckpointError: exit code 5) before training.
    assert main([*finetune, "--atlas", "toy2", "--out-dir", str(tmp_path / "x")]) == 5
    assert not (tmp_path / "x").exists()
    bad = [*finetune, "--atlas", "toy", "--out-dir", str(tmp_path / "y")]
    bad[bad.index("--positive") + 1] = "sick"
    assert main(bad) == 2  # ConfigError naming the levels
    # A catalogue whose levels are not the stored values: refused, not every 'control' a
    # negative of 'HC' (it trained on 0 positives of a renamed level and said nothing).
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(catalogue.read_text().replace("[control, patient]", "[HC, patient]"))
    bad = [*finetune, "--atlas", "toy", "--out-dir", str(tmp_path / "z")]
    bad[bad.index("--catalogue") + 1] = str(renamed)
    assert main(bad) == 3  # InputDataError: 'dx' holds ['control'], expected only HC, patient
    assert not (tmp_path / "z").exists()
    # Every labelled subject of one class: refused (it trained, exit 0).
    (tmp_path / "one").mkdir()
    one = write_catalogue(
        tmp_path / "one",
        CLI_CATALOGUE.replace(
            "      dx: {column: DX}\n",
            "      dx: {column: DX, map: {control: patient, patient: patient}}\n",
        ),
    )
    add_store_dataset(tmp_path / "one", tmp_path / "one" / "store", one, "beta", "toy", 20, seed=1)
    bad = [*finetune, "--atlas", "toy", "--out-dir", str(tmp_path / "w")]
    bad[bad.index("--catalogue") + 1] = str(one)
    bad[bad.index("--store") + 1] = str(tmp_path / "one" / "store")
    assert main(bad) == 3
    err = capsys.readouterr().err
    assert "no labelled subject is 'control'" in err
    # Runs and subjects counted apart ("60 labelled" counted runs where there were 40 people).
    assert re.search(r"\(\d+ labelled run\(s\) of \d+ subject\(s\), all 'patient'\)", err)

    # Embeddings and query attention of the finetuned model, as Parquet tables.
    emb, att = tmp_path / "emb.parquet", tmp_path / "att.parquet"
    assert (
        main(
            [
                "embed",
                "--checkpoint",
                str(out),
                "--store",
                str(store),
                "--atlas",
                "toy",
                "--catalogue",
                str(catalogue),
                "--datasets",
                "beta",
                "--out",
                str(emb),
                "--attention-out",
                str(att),
            ]
        )
        == 0
    )
    table = pd.read_parquet(emb)
    assert len(table) == 20 and table.filter(like="emb_").shape[1] == TINY["overrides"]["d_model"]
    assert {"dataset", "subject"} <= set(table.columns)
    attention = pd.read_parquet(att)
    n_queries = json.loads((out / "model.json").read_text())["config"]["n_queries"]
    assert len(attention) == 20 * n_queries and "dx=patient" in set(attention["query"])
    rois = [c for c in attention.columns if c.startswith("roi")]
    np.testing.assert_allclose(attention[rois].sum(axis=1), 1.0, rtol=1e-5)
    assert b"lcm.weights_sha256" in pq.read_schema(att).metadata


def test_finetune_splits_by_subject_not_by_row(tmp_path: Path, monkeypatch) -> None:
    """lcm finetune hands the classifier each run's subject, as lcm evaluate does: its inner
    validation split (pseudo-label threshold, probe penalty) never splits a subject's runs."""
    from lcm.train.finetune import LCMClassifier

    seen: list = []
    original = LCMClassifier.fit

    def spy(self, fc, y, variables=None, groups=None):
        seen.append(groups)
        return original(self, fc, y, variables, groups)

    monkeypatch.setattr(LCMClassifier, "fit", spy)
    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 30, seed=0)
    add_store_dataset(tmp_path, store, catalogue, "beta", "toy", 20, seed=1)
    common = ["--store", str(store), "--catalogue", str(catalogue), "--atlas", "toy"]
    common += ["--settings", '{"epochs": 1, "batch_size": 8}', "--threads", "1"]
    pre = ["pretrain", *common, "--datasets", "alpha", "--model", json.dumps(TINY)]
    assert main([*pre, "--out-dir", str(tmp_path / "pre")]) == 0
    argv = ["finetune", *common, "--checkpoint", str(tmp_path / "pre"), "--dataset", "beta"]
    argv += ["--label", "dx", "--positive", "patient", "--out-dir", str(tmp_path / "ft")]
    assert main(argv) == 0
    (groups,) = seen
    assert groups is not None and len(groups) == 20
    assert all(str(g).startswith("beta/") for g in groups)


def test_every_verb_refuses_a_checkpoint_of_other_rois_or_catalogue(tmp_path: Path, capsys) -> None:
    """evaluate, finetune and embed refuse, before any fit, a checkpoint of (a) another atlas of
    the same ROI count, (b) the same ROI names in another order, (c) a catalogue in which a
    variable of its queries has other levels. Each ran to exit 0 on wrong tokens before. The
    atlas and ROI-count errors name the store the data come from (the fix may be there)."""
    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    store, reversed_store = tmp_path / "store", tmp_path / "reversed"
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 30, seed=0)
    add_store_dataset(tmp_path, store, catalogue, "beta", "toy", 20, seed=1)
    add_store_dataset(tmp_path, store, catalogue, "beta", "toy2", 20, seed=1)
    (tmp_path / "r").mkdir()
    order = list(range(13))[::-1]
    add_store_dataset(tmp_path / "r", reversed_store, catalogue, "beta", "toy", 20, 1, order)
    common = ["--catalogue", str(catalogue), "--threads", "1"]
    pre = tmp_path / "pre"
    pretrain = ["pretrain", "--store", str(store), *common, "--atlas", "toy", "--datasets"]
    pretrain += ["alpha", "--model", json.dumps(TINY), "--settings", '{"epochs": 1}']
    assert main([*pretrain, "--out-dir", str(pre)]) == 0
    # The ridge maps of bei-linear record what they read too.
    maps_argv = ["bei-maps", "--store", str(store), *common, "--atlas", "toy"]
    assert main([*maps_argv, "--datasets", "alpha", "--out-dir", str(pre)]) == 0
    maps = BEIMaps.load(pre / MAPS_FILE)
    assert maps.atlas == "toy" and maps.roi_names == [f"roi{i}" for i in range(13)]
    settings = {"n_folds": 2, "seeds": [0], "models": ["lcm"], "finetune": {"epochs": 1}}
    task = ["--dataset", "beta", "--label", "dx", "--positive", "patient", "--seed", "1"]

    def run(verb: str, store_dir: Path, atlas: str, cat: Path = catalogue, ckpt: Path = pre) -> str:
        out = tmp_path / f"{verb}-{store_dir.name}-{atlas}-{cat.stem}-{ckpt.name}"
        argv = [verb, "--store", str(store_dir), "--atlas", atlas, "--checkpoint", str(ckpt)]
        argv += ["--catalogue", str(cat)]
        if verb != "embed":
            argv += ["--threads", "1"]
        if verb == "evaluate":
            argv += [*task, "--task", "dx", "--settings", json.dumps(settings)]
            argv += ["--out", f"{out}.parquet", "--predictions", f"{out}-p.parquet"]
        elif verb == "finetune":
            argv += [*task, "--settings", '{"epochs": 1}', "--out-dir", str(out)]
        else:
            argv += ["--datasets", "beta", "--out", f"{out}.parquet"]
        capsys.readouterr()
        assert main(argv) == 5, verb  # CheckpointError
        assert not list(tmp_path.glob(f"{out.name}*")), "refused after writing"
        err = capsys.readouterr().err
        assert "fit lcm" not in err and str(ckpt) in err
        return err

    # A checkpoint recording another ROI count (one of another atlas stored under this name).
    fewer = tmp_path / "fewer"
    shutil.copytree(pre, fewer)
    meta = json.loads((fewer / "model.json").read_text())
    (fewer / "model.json").write_text(json.dumps({**meta, "n_rois": 12}))
    for verb in ("evaluate", "finetune", "embed"):
        # Each names the store its connectomes come from.
        data = f"the data (store {store})"
        assert f"trained on atlas 'toy', {data} use 'toy2'" in run(verb, store, "toy2")
        err = run(verb, store, "toy", ckpt=fewer)
        assert f"expects 12 ROIs, {data} have 13" in err, err
        err = run(verb, reversed_store, "toy")
        assert "ROI 0 is 'roi0' in its model.json roi_names, 'roi12' in the data" in err
        assert "labels order" in err
    (tmp_path / "levels").mkdir()
    flipped = write_catalogue(
        tmp_path / "levels", catalogue.read_text().replace("[F, M]", "[M, F]")
    )
    err = run("evaluate", store, "toy", flipped)
    assert "variable 'sex' differs" in err and "levels: checkpoint ['F', 'M']" in err


def _maps_cli_store(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A store of a pretraining dataset (alpha) and a downstream one (beta); common options."""
    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 30, seed=0)
    add_store_dataset(tmp_path, store, catalogue, "beta", "toy", 20, seed=1)
    common = ["--store", str(store), "--atlas", "toy", "--catalogue", str(catalogue)]
    return store, catalogue, [*common, "--seed", "3", "--threads", "1"]


def test_bei_maps_are_a_verb_of_their_own_beside_the_checkpoint(tmp_path: Path, capsys) -> None:
    """`lcm bei-maps` fits the maps `lcm pretrain` fitted after training (the same cohort,
    seed and hold-out: the same arrays), into the checkpoint's folder before or after the
    checkpoint; lcm evaluate's bei-linear reads them there. Maps of other data than the
    checkpoint's (here: fitted on the task's own dataset too) are refused: the check that
    pretraining never saw a test subject is the checkpoint's, and says nothing of them."""
    from lcm.store.read import load_cohort
    from lcm.train.bei_maps import fit_bei_maps

    store, catalogue, common = _maps_cli_store(tmp_path)
    pre = tmp_path / "pre"
    # The maps first (a fresh folder, claimed in lcm pretrain's name), then the checkpoint.
    assert main(["bei-maps", *common, "--datasets", "alpha", "--out-dir", str(pre)]) == 0
    pretrain = ["pretrain", *common, "--datasets", "alpha", "--model", json.dumps(TINY)]
    assert main([*pretrain, "--settings", '{"epochs": 1}', "--out-dir", str(pre)]) == 0
    maps = BEIMaps.load(pre / MAPS_FILE)
    cat = load_catalogue(catalogue)
    cohort = load_cohort(store, "toy", ["alpha"], cat)
    expected = fit_bei_maps(cohort.fc, cohort.variables, cohort.groups, 3)
    for name in ("x_mean", "x_scale", "coef", "intercept", "alpha"):
        assert np.array_equal(getattr(maps, name), getattr(expected, name)), name
    meta = json.loads((pre / "model.json").read_text())
    assert maps.data_fingerprint == meta["data_fingerprint"] == cohort.fingerprint(cat)
    record = json.loads((pre / "bei_linear.json").read_text())
    assert len(record["Sources"]) == 3  # alpha's two partitions and the catalogue
    assert record["Provenance"]["code_sha256"]  # the bei_maps verb's (`bei-maps` typed)
    # bei-linear reads them; the metrics record them as a source (and only then).
    settings = {"n_folds": 2, "seeds": [0], "label_fractions": [1.0], "models": ["bei-linear"]}
    evaluate = ["evaluate", *common, "--checkpoint", str(pre), "--dataset", "beta"]
    evaluate += ["--label", "dx", "--positive", "patient", "--task", "dx"]
    evaluate += ["--settings", json.dumps(settings)]
    out = tmp_path / "m.parquet"
    assert main([*evaluate, "--out", str(out), "--predictions", str(tmp_path / "p.parquet")]) == 0
    sources = json.loads(out.with_suffix(".json").read_text())["Sources"]
    assert any(str(s).endswith("bei_linear.npz") for s in sources)
    # Maps fitted on the task's dataset too, beside a checkpoint pretrained on alpha alone.
    both = ["bei-maps", *common, "--datasets", "alpha", "beta", "--out-dir", str(pre)]
    assert main(both) == 0
    capsys.readouterr()
    out2 = tmp_path / "m2.parquet"
    argv = [*evaluate, "--out", str(out2), "--predictions", str(tmp_path / "p2.parquet")]
    assert main(argv) == 5  # CheckpointError
    err = capsys.readouterr().err
    assert "were fitted on other data than the checkpoint beside them" in err
    assert "lcm bei-maps" in err and not out2.exists()


def test_pretrain_bei_maps_option_is_deprecated(tmp_path: Path, capsys) -> None:
    """Pretraining writes no maps: `--bei-maps yes` is refused before any training, naming
    the verb that writes them; `--bei-maps no` (what it does now) is accepted."""
    _, _, common = _maps_cli_store(tmp_path)
    pretrain = ["pretrain", *common, "--datasets", "alpha", "--model", json.dumps(TINY)]
    pretrain += ["--settings", '{"epochs": 1}', "--out-dir", str(tmp_path / "pre")]
    capsys.readouterr()
    assert main([*pretrain, "--bei-maps", "yes"]) == 2  # ConfigError
    err = capsys.readouterr().err
    assert "no longer writes" in err and "lcm bei-maps" in err
    assert not (tmp_path / "pre").exists()
    assert main([*pretrain, "--bei-maps", "no"]) == 0
    assert "deprecated" in capsys.readouterr().err
    assert not (tmp_path / "pre" / MAPS_FILE).exists()


@pytest.mark.parametrize("verb", ["pretrain", "bei-maps", "finetune", "model-info", "embed"])
def test_help_has_example(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([verb, "--help"])
    text = capsys.readouterr().out
    assert "example" in text and f"lcm {verb}" in text


@pytest.mark.parametrize(
    ("argv", "verb"),
    [
        ([], None),
        (["--help"], None),
        (["--version"], None),
        (["nope", "--x"], None),
        (["-v", "--log-file", "a.log", "--rule", "r", "evaluate", "--task", "t"], "evaluate"),
        (["--log-file=a.log", "model-info", "--checkpoint", "c"], "model_info"),
    ],
)
def test_requested_verb(argv: list[str], verb: str | None) -> None:
    assert requested_verb(argv) == verb


def test_a_verb_imports_only_its_own_command_module() -> None:
    """Each workflow job pays for its own verb's imports, not scikit-learn/matplotlib/torch."""
    code = (
        "import sys; from lcm import cli; "
        "cli.build_parser(cli.requested_verb(['--rule', 'r', 'provenance', 'verify', 'x']));"
        "print(sorted(m for m in sys.modules if m.startswith('lcm.commands.')"
        " and not m.startswith('lcm.commands._')), 'torch' in sys.modules,"
        " 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["['lcm.commands.provenance']", "False", "False"]


def test_an_unknown_verb_still_lists_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_exit(["nope"]) == 2
    assert "model-info" in capsys.readouterr().err


def main_exit(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code)


@pytest.mark.parametrize(
    "device",
    [
        "gpu0",
        pytest.param(
            "cuda", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")
        ),
    ],
)
def test_a_device_this_machine_lacks_is_refused_first(tmp_path: Path, capsys, device: str) -> None:
    """A traceback after the data loaded, and an empty output folder, before."""
    args = ["pretrain", "--store", str(tmp_path / "nostore"), "--atlas", "toy", "--catalogue"]
    args += [str(tmp_path / "none.yaml"), "--datasets", "alpha", "--device", device]
    assert main([*args, "--out-dir", str(tmp_path / "out")]) == 2
    assert "--device" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_batch_the_processes_cannot_split_is_refused_before_the_data_load(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """torchrun with 2 processes and batch_size 9: refused after every rank loaded the store,
    exit 1, leaving an output folder holding only LCM's marker and lock."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = ["pretrain", "--store", str(tmp_path / "nostore"), "--atlas", "toy", "--catalogue"]
    args += [str(tmp_path / "none.yaml"), "--datasets", "alpha"]
    args += ["--settings", '{"batch_size": 9}', "--out-dir", str(tmp_path / "out")]
    assert main(args) == 2
    assert "batch_size 9 is not divisible by the 2" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_checkpoints_variables_export_as_a_catalogue_finetune_accepts(
    tmp_path: Path, capsys
) -> None:
    """The README told a user with only a checkpoint to use the catalogue in its model.json,
    whose form (range: null, levels: [] on every variable) the catalogue schema refuses;
    `lcm model-info --catalogue-out` writes it in the catalogue's own form."""
    _, catalogue, common = _maps_cli_store(tmp_path)
    pre = tmp_path / "pre"
    pretrain = ["pretrain", *common, "--datasets", "alpha", "--model", json.dumps(TINY)]
    assert main([*pretrain, "--settings", '{"epochs": 1}', "--out-dir", str(pre)]) == 0
    exported = tmp_path / "from_ckpt.yaml"
    info = ["model-info", "--checkpoint", str(pre), "--catalogue-out", str(exported)]
    assert main([*info, "--datasets-from", str(catalogue)]) == 0
    cat = load_catalogue(exported)
    assert cat.to_dict() == json.loads((pre / "model.json").read_text())["catalogue"]
    finetune = ["finetune", "--checkpoint", str(pre), *common, "--dataset", "beta"]
    finetune += ["--label", "dx", "--positive", "patient", "--settings", '{"epochs": 1}']
    common_cat = finetune.index("--catalogue") + 1
    finetune[common_cat] = str(exported)
    assert main([*finetune, "--out-dir", str(tmp_path / "ft")]) == 0
    # Rewritten by the same option; without --datasets-from a commented section to fill in.
    capsys.readouterr()
    assert main(info) == 0
    assert "add your datasets" in capsys.readouterr().out
    assert "#   mycohort:" in exported.read_text()
    # A file the option did not write is not replaced (OutputOwnershipError: exit code 6).
    mine = tmp_path / "mine.yaml"
    mine.write_text("variables: {}\n")
    assert main(["model-info", "--checkpoint", str(pre), "--catalogue-out", str(mine)]) == 6
    assert mine.read_text() == "variables: {}\n"


def test_pretrain_retried_after_its_outputs_were_written_trains_nothing_again(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A job killed at its time limit after the model was written (Snakemake's wrapper still
    running) is retried with its declared outputs deleted: the retry writes them again from the
    state kept at the final step, the same weights, without training from step 0."""
    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 30, seed=0)
    pre = tmp_path / "pretrained"

    def pretrain(settings: str, every: str = "2") -> int:
        return main(pretrain_argv(store, catalogue, pre, settings, 4, "--checkpoint-every", every))

    # 3 epochs of 4 steps: 12, saved every 5 and at the last step.
    assert pretrain('{"epochs": 3, "batch_size": 8}', every="5") == 0
    first = json.loads((pre / "model.json").read_text())
    total = json.loads((pre / "train_state" / "train_state.json").read_text())["step"]
    assert total % 5 and [s["from_step"] for s in first["training_sessions"]] == [0]
    outputs = ("model.safetensors", "model.json", "history.tsv", "bei_eval.tsv")
    before = {name: (pre / name).read_bytes() for name in outputs[2:]}
    weights = load_file(str(pre / "model.safetensors"))
    for name in outputs:  # what Snakemake deletes before the retry
        (pre / name).unlink()

    capfd.readouterr()
    assert pretrain('{"epochs": 3, "batch_size": 8}', every="5") == 0
    again = json.loads((pre / "model.json").read_text())
    assert [s["from_step"] for s in again["training_sessions"]] == [0, total]
    assert f"at the final step {total}: nothing left to train" in capfd.readouterr().err
    retried = load_file(str(pre / "model.safetensors"))
    assert retried.keys() == weights.keys()
    assert all(torch.equal(weights[k], retried[k]) for k in weights)
    assert {name: (pre / name).read_bytes() for name in outputs[2:]} == before
    assert main(["provenance", "verify", str(pre)]) == 0  # the kept state breaks no record

    # Other settings: the state of the earlier run is removed (never resumed, not kept).
    assert pretrain('{"epochs": 2, "batch_size": 8}', every="0") == 0
    assert not (pre / "train_state").exists()
    assert [
        s["from_step"] for s in json.loads((pre / "model.json").read_text())["training_sessions"]
    ] == [0]


def test_finetune_refuses_a_class_of_one_subject() -> None:
    # One positive among 437 labelled subjects (2 runs each): it trained, and its log blamed
    # "too few labelled subjects"; lcm evaluate refused the same store.
    from lcm.commands.finetune import check_label_classes
    from lcm.exceptions import InputDataError

    groups = np.repeat([f"beta/s{i:03d}" for i in range(500)], 2)
    y = np.repeat(np.r_[[1], np.zeros(436, int), -np.ones(63, int)], 2)
    levels = ("control", "patient")
    with pytest.raises(InputDataError) as caught:
        check_label_classes(y, groups, levels, "beta", "dx")
    message = str(caught.value)
    assert "1 labelled subject is 'patient'" in message
    assert "{'control': 436, 'patient': 1}" in message and "874 labelled run(s)" in message
    assert "Add 'patient' subjects" in caught.value.hint and "lcm store" in caught.value.hint
    with pytest.raises(InputDataError, match="no labelled subject is 'patient'"):
        check_label_classes(np.where(y == 1, 0, y), groups, levels, "beta", "dx")
    y[2:4] = 1  # two positives: trained, as lcm evaluate would
    check_label_classes(y, groups, levels, "beta", "dx")


def test_a_file_where_the_state_folder_goes_is_refused_before_anything_is_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It failed at the first state save: after training, the earlier model already replaced."""
    from lcm.exceptions import OutputOwnershipError

    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 30, seed=0)
    pre = tmp_path / "pretrained"
    settings = '{"epochs": 1, "batch_size": 8}'
    assert main(pretrain_argv(store, catalogue, pre, settings)) == 0
    model = (pre / "model.safetensors").read_bytes()
    shutil.rmtree(pre / "train_state")
    (pre / "train_state").write_text("x\n")
    code = main(pretrain_argv(store, catalogue, pre, '{"epochs": 2, "batch_size": 8}'))
    assert code == OutputOwnershipError.exit_code
    assert f"{pre / 'train_state'} is a file, not the folder" in capsys.readouterr().err
    assert (pre / "model.safetensors").read_bytes() == model


STORE = ["--store", "s", "--atlas", "aal116", "--catalogue", "c.yaml"]
EVALUATE = ["evaluate", "--task", "t", "--dataset", "a", "--label", "dx", *STORE]
EVALUATE += ["--out", "m.parquet", "--predictions", "p.parquet"]
FINETUNE = ["finetune", *STORE, "--checkpoint", "ck", "--dataset", "a", "--label", "dx"]
FINETUNE += ["--positive", "1", "--out-dir", "o"]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["pretrain", *STORE, "--datasets", "a", "--out-dir", "o", "--settings", '{"lr": -1}'],
            "lcm pretrain --settings: invalid value at key 'lr': ",
        ),
        (
            ["pretrain", *STORE, "--datasets", "a", "--out-dir", "o", "--settings", '{"lrr": 1}'],
            "lcm pretrain --settings: unknown key 'lrr' (did you mean 'lr'?)",
        ),
        (
            [*FINETUNE, "--settings", '{"epochs": 0}'],
            "lcm finetune --settings: invalid value at key 'epochs': ",
        ),
        (
            [*EVALUATE, "--settings", '{"models": ["logreg"], "finetune": {"epochs": 0}}'],
            "lcm evaluate --settings' finetune: invalid value at key 'epochs': ",
        ),
    ],
)
def test_bad_settings_options_are_named_as_given_before_any_data_is_read(
    argv: list[str], said: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """`lcm pretrain --settings '{"lr": -1}'` was told of pretrain.lr and pointed at the
    package's schema file; lcm evaluate's finetune settings were checked only in a fit, after
    the data load, named evaluate.finetune.epochs."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2  # a ConfigError, before the store (absent here) is opened
    err = capsys.readouterr().err
    assert said in err
    assert "pretrain." not in err and "finetune." not in err and "schema.yaml" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("models", "fix"),
    [
        (["lcm"], "drop them from --settings' models"),
        (["lcm-ssl"], "drop lcm-ssl from --settings'"),
    ],
)
def test_a_model_without_its_checkpoint_is_hinted_by_the_settings_option(
    models: list[str], fix: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """`lcm evaluate --settings '{"models": ["lcm"]}'` without --checkpoint was told to drop the
    model from evaluate.models, a key of a config the command-line user never wrote."""
    monkeypatch.chdir(tmp_path)
    assert main([*EVALUATE, "--settings", json.dumps({"models": models})]) == 2
    err = capsys.readouterr().err
    assert fix in err and "evaluate.models" not in err
