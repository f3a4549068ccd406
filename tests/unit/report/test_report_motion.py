"""Head motion alone (motion-fd): scored on the models' folds, said first when it matches them."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from lcm.evaluate.compare import contrast_table
from lcm.evaluate.metrics import regression_metrics, summarise
from lcm.evaluate.motion import MOTION_MODEL, motion_scores
from lcm.report.findings import science_statements
from lcm.report.motion import motion_fragment, motion_verdict


def _cohort(n: int = 40, folds: int = 4, models=("lcm", "logreg"), noise: float = 1.0):
    """Predictions of ``models`` (weak: AUC about 0.6) on ``n`` subjects in ``folds`` folds, at
    label fractions 0.25 and 1.0, and a QC table whose mean FD separates the classes."""
    rng = np.random.default_rng(0)
    y = np.array([i % 2 for i in range(n)], dtype=float)
    subjects = [f"s{i:02d}" for i in range(n)]
    fold = (np.arange(n) // 2) % folds  # each fold holds both classes
    frames = []
    for fraction in (0.25, 1.0):
        for model in models:
            frames.append(
                pd.DataFrame(
                    {
                        "task": "asd",
                        "model": model,
                        "label_fraction": fraction,
                        "seed": 0,
                        "fold": fold,
                        "dataset": "d",
                        "subject": subjects,
                        "site": "",
                        "y_true": y,
                        "prediction": 1 / (1 + np.exp(-(0.3 * y + noise * rng.normal(size=n)))),
                    }
                )
            )
    predictions = pd.concat(frames, ignore_index=True)
    qc = pd.DataFrame(
        {
            "dataset": "d",
            "subject": subjects,
            "included": True,
            "mean_fd": 0.2 + 0.15 * y + 0.05 * rng.normal(size=n),
        }
    )
    record = {
        "levels": ["control", "autism"],
        "labelled_subjects": [
            {
                "seed": 0,
                "fold": f,
                "label_fraction": frac,
                "labelled": {"control": k, "autism": k},
            }
            for f in range(folds)
            for frac, k in ((0.25, 4), (1.0, 15))
        ],
    }
    return predictions, qc, {"asd": record}


def _metrics_of(predictions: pd.DataFrame) -> pd.DataFrame:
    from lcm.evaluate.metrics import binary_metrics

    rows = []
    keys = ["task", "model", "label_fraction", "seed", "fold"]
    for key, at in predictions.groupby(keys):
        scores = binary_metrics(at["y_true"].to_numpy().astype(int), at["prediction"].to_numpy())
        rows += [
            {**dict(zip(keys, key, strict=True)), "metric": m, "value": v}
            for m, v in scores.items()
        ]
    return pd.DataFrame(rows)


def test_motion_fd_is_scored_out_of_sample_on_the_models_folds_and_subjects():
    predictions, qc, records = _cohort()
    metrics, preds, not_scored = motion_scores(qc, predictions, records)
    assert not_scored == {}
    assert set(metrics["model"]) == {MOTION_MODEL}
    # One fit per label fraction x seed x fold of the models, on the same test subjects.
    ours = preds.groupby(["label_fraction", "seed", "fold"])["subject"].apply(frozenset)
    theirs = (
        predictions[predictions["model"] == "lcm"]
        .groupby(["label_fraction", "seed", "fold"])["subject"]
        .apply(frozenset)
    )
    assert ours.to_dict() == theirs.to_dict()
    auc = metrics[metrics["metric"] == "auc"]
    assert auc["value"].mean() > 0.8  # FD separates the classes here


def test_motion_fd_is_not_scored_without_mean_fd_and_the_page_says_so():
    predictions, _, records = _cohort()
    metrics, _, not_scored = motion_scores(None, predictions, records)
    assert metrics.empty and "asd" in not_scored
    text = motion_verdict(None, not_scored)
    assert "not scored" in text and "asd" in text and 'class="warn"' in text


def test_motion_alone_beating_every_model_is_said_first_and_warned():
    """FD at AUC ~0.9 against models near 0.6: the page's first warning, the headline bullet
    and the task's motion paragraph all say motion alone matches or beats the models."""
    predictions, qc, records = _cohort()
    motion_metrics, motion_preds, _ = motion_scores(qc, predictions, records)
    metrics = pd.concat([_metrics_of(predictions), motion_metrics], ignore_index=True)
    summary = summarise(metrics)
    first = motion_verdict(summary, {})
    assert 'class="warn"' in first and "Head motion alone matches or beats" in first
    assert "asd at 0.25 of the labels" in first and "every model" in first
    headline = pd.DataFrame(
        [
            {
                "task": "asd",
                "label_fraction": 0.25,
                "metric": "auc",
                "model": "lcm",
                "model_mean": 0.6,
                "model_ci_low": 0.5,
                "model_ci_high": 0.7,
                "best_baseline": "logreg",
                "baseline_mean": 0.6,
                "baseline_ci_low": 0.5,
                "baseline_ci_high": 0.7,
                "difference": 0.0,
                "difference_ci_low": -0.1,
                "difference_ci_high": 0.1,
                "p_value": 0.9,
                "verdict": "no clear difference",
            }
        ]
    )
    bullet = science_statements(headline, {}, summary=summary)[0]
    assert bullet.index("head motion alone matches or beats") < bullet.index("LCM does")
    fragment = motion_fragment(0.9, summary, "asd")
    # One warning box; a paragraph for one label fraction, a list for several.
    assert fragment.startswith(('<p class="warn">', '<div class="warn">'))
    assert "matches or beats" in fragment
    assert "at 0.25 of the labels: motion-fd AUC" in fragment
    # The paired contrast lcm - motion-fd on the same folds.
    both = pd.concat([predictions, motion_preds], ignore_index=True)
    table = contrast_table(metrics, both)
    row = table[table["contrast"] == "over head motion alone"]
    assert len(row) == 2 and (row["model_b"] == MOTION_MODEL).all()
    assert (row["difference"] < 0).all()


def test_motion_below_every_model_is_a_note_not_a_warning():
    predictions, qc, records = _cohort(noise=0.05)  # models near AUC 1
    qc = qc.assign(mean_fd=0.2 + 0.01 * np.random.default_rng(1).normal(size=len(qc)))
    motion_metrics, _, _ = motion_scores(qc, predictions, records)
    summary = summarise(pd.concat([_metrics_of(predictions), motion_metrics], ignore_index=True))
    assert motion_verdict(summary, {}) == ""
    assert motion_fragment(0.5, summary, "asd").startswith('<p class="note">')


def test_roc_curves_say_visibly_that_they_pool_folds_and_name_large_gaps():
    """rev25 #7: a model whose scores shift between folds ranks well within each fold (fold
    mean AUC 1) but not pooled; the caption under the curves says so in visible text."""
    from lcm.report.findings import roc_caption

    predictions, _, _ = _cohort()
    shifted = predictions["model"] == "lcm"
    y = predictions["y_true"]
    predictions.loc[shifted, "prediction"] = (0.1 * y + 0.5 * (predictions["fold"] % 2))[shifted]
    summary = summarise(_metrics_of(predictions))
    text = roc_caption(predictions, summary, "asd")
    assert "<b>pool</b>" in text and "not the fold-mean AUC" in text
    assert "lcm at 0.25: pooled" in text and "fold mean 1.000" in text
    assert "logreg at 0.25" not in text


def test_the_test_subjects_per_class_are_given():
    """rev25 #9: the tables' n counts fold values; the subjects per class are said too."""
    from lcm.report.findings import test_subjects_note

    predictions, _, _ = _cohort()
    text = test_subjects_note(predictions, "asd", ["control", "autism"])
    assert "Test subjects: 20 autism / 20 control over a seed's folds; per fold 5 / 5" in text
    assert test_subjects_note(predictions, "other") == ""


@pytest.mark.slow
def test_lcm_report_says_motion_alone_was_not_scored_where_the_qc_lacks_its_subjects(
    inputs, tmp_path
):
    """The fixture's QC tables cover a few subjects only: no motion-fd rows, and the page
    says, before its first sentence, that motion alone was not scored and why."""
    import json

    from helpers.report import run_report

    out = run_report(inputs, tmp_path / "report")
    assert MOTION_MODEL not in set(pd.read_parquet(out["metrics"])["model"])
    page = out["html"].read_text()
    said = page.index("Head motion alone was not scored</b> on")
    assert said < page.index('id="verdict"')
    # One item per task, each naming why.
    box = page[said:].split("</div>", 1)[0]
    items = re.findall(r"<li>(.*?)</li>", box)
    assert [i.split(" ", 1)[0] for i in items] == ["alzheimers", "autism"], box
    assert all("test subjects have no mean FD in the QC tables" in i for i in items), box
    sidecar = json.loads(out["metrics"].with_suffix(".json").read_text())
    assert not any("qc" in str(source) for source in sidecar["Sources"])


@pytest.mark.parametrize("column", ["included", "mean_fd"])
def test_both_motion_checks_refuse_a_qc_table_without_a_motion_column(column):
    """The report's two readers of the QC tables' motion disagreed: without ``included``,
    motion_confound stopped on a bare KeyError while motion_scores took every run as included;
    without ``mean_fd`` both said nothing (the task read "not scored: no mean FD")."""
    from lcm.evaluate.compare import motion_confound
    from lcm.exceptions import InputDataError

    predictions, qc, records = _cohort()
    bad = qc.drop(columns=column)
    expected = rf"QC table lacks column\(s\) \['{column}'\]"
    with pytest.raises(InputDataError, match=expected):
        motion_confound(bad, predictions)
    with pytest.raises(InputDataError, match=expected):
        motion_scores(bad, predictions, records)


def test_motion_above_some_baselines_is_not_said_below_every_model():
    """A baselines-only task where motion-fd beats logreg but not tangent-logreg: the task's
    note said "every model's mean AUC here is above it" and pointed at lcm's contrast."""
    rows = [
        ("tangent-logreg", 0.711),
        ("logreg", 0.553),
        ("svm", 0.60),
        ("shuffled-labels", 0.70),  # a control: neither the best model nor one beaten
        (MOTION_MODEL, 0.658),
    ]
    summary = pd.DataFrame(
        [
            {
                "task": "dx",
                "model": m,
                "label_fraction": 1.0,
                "metric": "auc",
                "mean": v,
                "ci_low": v - 0.1,
                "ci_high": min(1.0, v + 0.1),
                "n": 4,
            }
            for m, v in rows
        ]
    )
    assert motion_verdict(summary, {}) == ""  # neither lcm nor the best model is matched
    note = motion_fragment(0.4, summary, "dx")
    text = re.sub(r"<[^>]+>", "", note)
    assert "every model's mean AUC here is above it" not in text
    assert "logreg with every label (0.553" in text and "svm with every label (0.600" in text
    assert "tangent-logreg" not in text and "shuffled-labels" not in text
    assert "'over head motion alone' contrast" not in text  # no lcm, so no such contrast


def test_motion_fd_is_scored_for_a_continuous_task_and_the_page_names_its_pearson_r():
    """Age and motion are often confounded: a continuous task got no motion-fd and its page
    said nothing. It is a linear regression on mean FD on the same folds, fitted at 0.25 on as
    many subjects per half of the target as the models had labelled."""
    rng = np.random.default_rng(2)
    n, folds = 40, 4
    age = rng.uniform(8, 60, size=n)
    subjects = [f"s{i:02d}" for i in range(n)]
    fold = np.arange(n) % folds
    predictions = pd.concat(
        [
            pd.DataFrame(
                {
                    "task": "age",
                    "model": model,
                    "label_fraction": fraction,
                    "seed": 0,
                    "fold": fold,
                    "dataset": "d",
                    "subject": subjects,
                    "site": "",
                    "y_true": age,
                    "prediction": age + rng.normal(scale=40, size=n),  # weak models
                }
            )
            for fraction in (0.25, 1.0)
            for model in ("lcm", "ridge")
        ],
        ignore_index=True,
    )
    qc = pd.DataFrame(
        {
            "dataset": "d",
            "subject": subjects,
            "included": True,
            "mean_fd": 0.1 + 0.004 * age + rng.normal(scale=0.02, size=n),
        }
    )
    halves = ("lower half of age", "upper half of age")
    record = {
        "kind": "continuous",
        "levels": [],
        "labelled_subjects": [
            {"seed": 0, "fold": f, "label_fraction": frac, "labelled": dict.fromkeys(halves, k)}
            for f in range(folds)
            for frac, k in ((0.25, 2), (1.0, 15))
        ],
    }
    metrics, preds, not_scored = motion_scores(qc, predictions, {"age": record})
    assert not_scored == {} and set(metrics["model"]) == {MOTION_MODEL}
    r = metrics[metrics["metric"] == "pearson_r"]
    assert len(r) == 2 * folds and (r["value"] > 0.7).all()
    # At 0.25, fitted on 2 + 2 subjects: its test predictions differ from the fit on all 30.
    at = preds.set_index(["label_fraction", "fold", "subject"])["prediction"]
    assert not np.allclose(at.loc[0.25].to_numpy(), at.loc[1.0].to_numpy())
    model_metrics = pd.DataFrame(
        [
            {"task": "age", "model": m, "label_fraction": fr, "seed": 0, "fold": f}
            | {"metric": k, "value": v}
            for (m, fr, f), g in predictions.groupby(["model", "label_fraction", "fold"])
            for k, v in regression_metrics(g["y_true"], g["prediction"]).items()
        ]
    )
    summary = summarise(pd.concat([model_metrics, metrics], ignore_index=True))
    fragment = motion_fragment(None, summary, "age")
    assert "matches or beats" in fragment and "motion-fd Pearson r" in fragment
    assert "linear for a continuous target" in motion_verdict(summary, {})


def _age_task(slope: float, n: int = 30) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """A continuous task (age) of ``n`` subjects in 3 folds, each with a mean FD of
    ``0.2 + slope * age`` plus noise, split over two included runs (and an excluded run of
    a high FD that must not count); the predictions, the QC table and each subject's mean FD."""
    rng = np.random.default_rng(7)
    age = rng.uniform(8, 60, size=n)
    subjects = [f"s{i:02d}" for i in range(n)]
    fd = 0.2 + slope * age + rng.normal(scale=0.02, size=n)
    predictions = pd.DataFrame(
        {
            "task": "age",
            "model": "lcm",
            "label_fraction": 1.0,
            "seed": 0,
            "fold": np.arange(n) % 3,
            "dataset": "d",
            "subject": subjects,
            "site": "",
            "y_true": age,
            "prediction": age + rng.normal(scale=20, size=n),
        }
    )
    qc = pd.DataFrame(
        {
            "dataset": "d",
            "subject": subjects * 3,
            "included": [True] * (2 * n) + [False] * n,
            "mean_fd": np.concatenate([fd - 0.01, fd + 0.01, np.full(n, 5.0)]),
        }
    )
    return predictions, qc, fd


@pytest.mark.parametrize("slope", [0.004, -0.004])
def test_a_continuous_task_says_whether_higher_targets_move_more(slope: float) -> None:
    """The in-sample direction (which class moves more) was a binary task's only: a continuous
    task's section said nothing of whether older subjects (higher targets) move more. Now the
    target's Pearson r with mean FD is read, over the included runs, and named with its sign."""
    from helpers.report import bare
    from scipy.stats import pearsonr

    from lcm.evaluate.compare import motion_confound, motion_correlation
    from lcm.evaluate.kinds import recorded_kinds
    from lcm.report.html import ReportData, task_section

    predictions, qc, fd = _age_task(slope)
    kinds = recorded_kinds({"age": {"kind": "continuous"}})
    r = motion_correlation(qc, predictions, kinds)
    expected = pearsonr(predictions["y_true"], fd).statistic
    assert r == {"age": pytest.approx(expected)}
    assert abs(expected) > 0.9 and np.sign(expected) == np.sign(slope)
    assert motion_confound(qc, predictions, kinds) == {}  # no AUC of a continuous target
    assert motion_correlation(None, predictions, kinds) == {}

    summary = summarise(
        pd.DataFrame(
            [
                {"task": "age", "model": "lcm", "label_fraction": 1.0, "seed": 0, "fold": f}
                | {"metric": k, "value": v}
                for f, g in predictions.groupby("fold")
                for k, v in regression_metrics(g["y_true"], g["prediction"]).items()
            ]
        )
    )
    data = ReportData(
        pd.DataFrame(), predictions, summary, task_meta={"age": {"kind": "continuous"}}
    )
    section = bare(task_section(data, "age"))
    assert "Motion confound check" not in section  # no r, no motion-fd: nothing to say
    data.motion_r = r
    section = bare(task_section(data, "age"))
    which = "higher" if slope > 0 else "lower"
    assert "head motion alone was not scored out of sample on this task" in section
    assert (
        f"the subjects with {which} targets move more: the Pearson r of the target with mean FD "
        f"is {expected:.3f}." in section
    )
