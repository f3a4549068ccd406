"""The LCM variants through the protocol, with the real LCMClassifier and a tiny checkpoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.evaluate import TASK, make_cohort

from lcm.catalogue import Catalogue, Variable
from lcm.evaluate.protocol import EvaluationSettings, evaluate_task
from lcm.train.pretrain import pretrain


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a busy 2-core machine: one thread avoids oversubscription (10x here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pretrain(out, bei_weight: float = 1.0, dataset: str = "pretrainds"):
    """A 2-epoch tiny LCM pretrained on a separate cohort (another dataset) with an age variable."""
    catalogue = Catalogue(
        variables={"age": Variable("age", "continuous", "sociodemographic", "years", (5, 100))},
        datasets={},
        path="<test>",
    )
    cohort = make_cohort(n_subjects=30, n_unlabeled=0, seed=5)
    cohort.ids["dataset"] = dataset
    cohort.variables = cohort.variables[["age"]].assign(age=20.0 + np.arange(len(cohort)) % 30)
    settings = {"epochs": 2, "batch_size": 8, "bei_weight": bei_weight}
    pretrain(cohort, catalogue, {"preset": "tiny"}, settings, 0, out, device="cpu")
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _pretrain(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def ssl_checkpoint(tmp_path_factory):
    """The same pretraining with the BEI losses off (the lcm-ssl ablation)."""
    return _pretrain(tmp_path_factory.mktemp("ckpt_ssl"), bei_weight=0.0)


def test_ssl_only_pretraining_leaves_bei_heads_untrained(checkpoint, ssl_checkpoint):
    import pandas as pd

    full = pd.read_csv(checkpoint / "history.tsv", sep="\t")
    ssl = pd.read_csv(ssl_checkpoint / "history.tsv", sep="\t")
    assert "loss_ssl" in ssl and (ssl["loss_ssl"] > 0).all()
    # with bei_weight 0 the total is the weighted SSL loss alone
    np.testing.assert_allclose(ssl["loss_total"], 0.5 * ssl["loss_ssl"], rtol=1e-4)
    assert not np.allclose(full["loss_total"], 0.5 * full["loss_ssl"], rtol=1e-4)


def test_checkpoint_pretrained_on_task_dataset_is_refused(tmp_path):
    from lcm.exceptions import ConfigError

    leaky = _pretrain(tmp_path / "leaky", dataset="abidelike")
    settings = EvaluationSettings.from_dict({"n_folds": 2, "models": ["lcm", "logreg"]})
    with pytest.raises(ConfigError, match=r"pretrained on \['abidelike'\]"):
        evaluate_task(make_cohort(n_subjects=8), TASK, settings, master_seed=1, checkpoint=leaky)


def _age_catalogue(units: str) -> Catalogue:
    return Catalogue(
        variables={"age": Variable("age", "continuous", "sociodemographic", units, (5, 100))},
        datasets={},
        path="<months>",
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"atlas": "toy2"}, r"trained on atlas 'toy', the data use 'toy2'"),
        ({"roi_names": "reversed"}, r"ROI 0 is 'roi0' in its model.json roi_names, 'roi\d+' in"),
        ({"catalogue": "months"}, r"variable 'age' differs .*\(units: checkpoint 'years'"),
    ],
)
def test_a_checkpoint_of_other_rois_or_catalogue_is_refused_before_any_fit(
    checkpoint, monkeypatch, change: dict, match: str
):
    """The evaluation path refuses what lcm finetune refuses (one check, lcm.model.checkpoint)."""
    from lcm.evaluate import protocol
    from lcm.exceptions import CheckpointError

    cohort = make_cohort(n_subjects=8)
    if "atlas" in change:
        cohort.atlas = change["atlas"]
    if "roi_names" in change:
        cohort.roi_names = cohort.roi_names[::-1]
    catalogue = _age_catalogue(change.get("catalogue", "years"))
    monkeypatch.setattr(protocol, "run_fits", lambda *a, **k: pytest.fail("a model was fitted"))
    settings = EvaluationSettings.from_dict({"n_folds": 2, "models": ["lcm", "logreg"]})
    with pytest.raises(CheckpointError, match=match):
        evaluate_task(
            cohort, TASK, settings, master_seed=1, checkpoint=checkpoint, catalogue=catalogue
        )


@pytest.mark.parametrize("estimator", ["classifier", "regressor"])
def test_the_finetuned_estimators_refuse_other_rois(checkpoint, estimator: str):
    """Given the data's ROI names, LCMClassifier and LCMRegressor refuse another order too."""
    from lcm.exceptions import CheckpointError
    from lcm.train.finetune import LCMClassifier
    from lcm.train.regress import LCMRegressor

    cohort = make_cohort(n_subjects=8)
    names = cohort.roi_names[::-1]
    if estimator == "classifier":
        model = LCMClassifier(checkpoint, "dx", ("control", "case"), {}, 0, roi_names=names)
        y = np.arange(len(cohort)) % 2
    else:
        model = LCMRegressor(checkpoint, "score", {}, 0, roi_names=names)
        y = np.linspace(0.0, 1.0, len(cohort))
    with pytest.raises(CheckpointError, match=r"ROI 0 is 'roi0' in its model.json roi_names"):
        model.fit(cohort.fc, y)
    other = LCMRegressor(checkpoint, "score", {}, 0, atlas="toy2")
    with pytest.raises(CheckpointError, match=r"trained on atlas 'toy', the data use 'toy2'"):
        other.fit(cohort.fc, np.linspace(0.0, 1.0, len(cohort)))


def test_lcm_variants_run_in_protocol(checkpoint, ssl_checkpoint):
    models = ["lcm", "lcm-no-pseudo", "lcm-ssl", "lcm-scratch", "logreg"]
    settings = EvaluationSettings.from_dict(
        {
            "n_folds": 2,
            "seeds": [0],
            "label_fractions": [0.5],
            "models": models,
            "finetune": {"epochs": 2, "batch_size": 8},
        }
    )
    result = evaluate_task(
        make_cohort(),
        TASK,
        settings,
        master_seed=1,
        checkpoint=checkpoint,
        ssl_checkpoint=ssl_checkpoint,
    )
    assert set(result.metrics["model"]) == set(models)
    p = result.predictions
    assert p["prediction"].between(0, 1).all()
    per_model = p.groupby("model")["subject"].count()
    assert (per_model == per_model.iloc[0]).all()


@pytest.fixture
def log_file(tmp_path, caplog):
    """A file handler on the root logger at INFO, as ``lcm --log-file`` sets up."""
    import logging

    path = tmp_path / "evaluate.log"
    handler = logging.FileHandler(path)
    caplog.set_level(logging.INFO)
    logging.getLogger().addHandler(handler)
    yield path
    logging.getLogger().removeHandler(handler)
    handler.close()


@pytest.mark.parametrize("diagnosis", [True, False])
def test_the_headline_names_lcm_by_the_pseudo_labels_its_fits_used(checkpoint, diagnosis):
    """finetune.diagnosis_pseudo_labels off: the fits make none (status "off" in the record
    the report reads), and the headline said "LCM with pseudo-labels" all the same."""
    from lcm.evaluate.compare import HEADLINE_COLUMNS
    from lcm.report.findings import science_statements

    settings = EvaluationSettings.from_dict(
        {
            "n_folds": 2,
            "seeds": [0],
            "label_fractions": [0.5],
            "models": ["lcm"],
            "finetune": {"epochs": 1, "batch_size": 8, "diagnosis_pseudo_labels": diagnosis},
        }
    )
    result = evaluate_task(make_cohort(), TASK, settings, master_seed=1, checkpoint=checkpoint)
    statuses = {r["diagnosis"]["status"] for r in result.pseudo_labels}
    assert statuses == ({"made"} if diagnosis else {"off"})
    row = dict.fromkeys(HEADLINE_COLUMNS, 0.6) | {
        "task": TASK.name,
        "label_fraction": 0.5,
        "metric": "auc",
        "model": "lcm",
        "best_baseline": "logreg",
        "p_value": 0.5,
        "verdict": "no clear difference",
    }
    headline = pd.DataFrame([row], columns=list(HEADLINE_COLUMNS))
    meta = {TASK.name: {"pseudo_labels": result.pseudo_labels}}
    (said,) = science_statements(headline, {}, task_meta=meta)
    assert ("LCM with pseudo-labels" in said) is diagnosis
    assert ("LCM without diagnosis pseudo-labels" in said) is not diagnosis


def test_pooled_lcm_fits_record_their_pseudo_labels_and_log_them(checkpoint, tmp_path, log_file):
    """At 2 workers (the workflow's threads) the log lost every fit's pseudo-label line, and
    nothing recorded how many subjects lcm pseudo-labelled (none, at t=1: lcm vs
    lcm-no-pseudo then measures noise)."""
    from lcm.commands.evaluate import evaluate_and_write
    from lcm.evaluate.record import read_evaluation_records

    settings = EvaluationSettings.from_dict(
        {
            "n_folds": 2,
            "seeds": [0],
            "label_fractions": [0.5],
            "models": ["lcm", "logreg"],
            "finetune": {"epochs": 1, "batch_size": 8},
        }
    )
    result = evaluate_and_write(
        make_cohort(),
        TASK,
        settings,
        master_seed=1,
        checkpoint=checkpoint,
        out=tmp_path / "m.parquet",
        predictions=tmp_path / "p.parquet",
        workers=2,
    )
    meta = read_evaluation_records([tmp_path / "m.parquet"])["autism"]
    recorded = meta["pseudo_labels"]
    assert recorded == result.pseudo_labels
    # One entry per lcm fit (2 folds x 1 fraction x 1 seed), none for logreg.
    keys = sorted((r["model"], r["label_fraction"], r["seed"], r["fold"]) for r in recorded)
    assert keys == [("lcm", 0.5, 0, 0), ("lcm", 0.5, 0, 1)]
    for entry in recorded:
        assert entry["task"] == "autism"
        diagnosis = entry["diagnosis"]
        assert diagnosis["status"] == "made" and diagnosis["n_unlabeled"] > 0
        assert 0 <= diagnosis["n_pseudo_labelled"] <= diagnosis["n_unlabeled"]
        assert diagnosis["threshold_source"] in ("inner", "fixed")
        assert set(diagnosis["pseudo_labelled_subjects"]) == {"control", "autism"}
        assert "inner_validation_rows" not in diagnosis
        assert isinstance(entry["bei_targets_filled"], dict)  # part a on: counted per variable
    text = log_file.read_text()
    # The workers' records reached the parent's log file.
    assert text.count("diagnosis pseudo-labels: threshold") == 2
    assert "unlabeled subjects labelled" in text


def test_site_split_refits_seeded_lcm_per_seed_and_pairs_the_one_baseline_fit(
    checkpoint, prevalence_model
):
    """split: site at label fraction 1 gives every seed the same data. lcm-scratch's fit
    depends on its seed (initialisation, dropout) and was run once, so its intervals held no
    training variance; it is now refitted with each seed, while a model that ignores its seed
    (prevalence) is fitted once, and the paired comparison pairs that one fit with each seed
    of lcm-scratch (two seeds x the sites), never with itself."""
    from lcm.evaluate.compare import paired_bootstrap
    from lcm.store.cohort import Cohort

    base = make_cohort(n_subjects=24, n_unlabeled=0)
    ids = base.ids.copy()
    ids["site"] = [f"site{int(s[1:]) % 3}" for s in ids["subject"]]
    cohort = Cohort(ids, base.fc, base.variables, base.roi_names, base.atlas)
    settings = EvaluationSettings.from_dict(
        {
            "split": "site",
            "seeds": [0, 1],
            "label_fractions": [1.0],
            "models": ["lcm-scratch", prevalence_model],
            "finetune": {"epochs": 2, "batch_size": 8},
        }
    )
    result = evaluate_task(cohort, TASK, settings, master_seed=1, checkpoint=checkpoint)
    p = result.predictions
    scratch = p[p["model"] == "lcm-scratch"]
    assert sorted(scratch["seed"].unique()) == [0, 1]
    assert sorted(p.loc[p["model"] == prevalence_model, "seed"].unique()) == [0]
    assert result.n_fits_not_repeated == 3  # prevalence at seed 1, one per site
    # Two distinct fits: seed 1 initialised lcm-scratch from its own seed, not seed 0's (the
    # same subjects, each tested once per seed: leave-site-out numbers its sites per seed).
    by_seed = {s: g.sort_values("subject") for s, g in scratch.groupby("seed")}
    assert (by_seed[0]["subject"].to_numpy() == by_seed[1]["subject"].to_numpy()).all()
    assert not np.allclose(by_seed[0]["prediction"], by_seed[1]["prediction"])
    # Every (seed, fold) of lcm-scratch pairs with prevalence's one fit of that fold.
    two_class = sum(g["y_true"].nunique() == 2 for _, g in scratch.groupby(["seed", "fold"]))
    paired = paired_bootstrap(p, TASK.name, 1.0, "lcm-scratch", prevalence_model, n_boot=50)
    assert paired.n_folds == two_class == 2 * 3
    # Its own comparison with itself counts its one fit per fold once, not once per seed.
    alone = paired_bootstrap(p, TASK.name, 1.0, prevalence_model, prevalence_model, n_boot=50)
    assert alone.n_folds == 3
