"""Report tables: per-task summary, QC counts, and the LCM-without-baseline warning."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from helpers.report import bare

from lcm.evaluate.metrics import METRIC_COLUMNS, SUMMARY_COLUMNS, binary_metrics, summarise
from lcm.report.html import ReportData, task_section
from lcm.report.tables import (
    model_kind,
    p_clause,
    p_text,
    qc_counts,
    qc_reasons,
    read_qc,
    task_table,
)


def _summary(models: list[str]) -> pd.DataFrame:
    rows = []
    for fraction in (1.0, 0.1):
        for model in models:
            for metric, mean in (("auc", 0.8), ("balanced_accuracy", 0.7), ("f1", 0.6)):
                rows.append(("t", model, fraction, metric, mean, mean - 0.05, mean + 0.04, 6))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def test_task_table_orders_lcm_before_baselines():
    table = task_table(_summary(["shuffled-labels", "logreg", "lcm-scratch", "lcm"]), "t")
    assert list(table.columns) == [
        "label fraction",
        "model",
        "kind",
        "AUC [95% CI]",
        "balanced accuracy [95% CI]",
        "n (AUC)",
    ]
    assert list(table["label fraction"]) == ["0.1"] * 4 + ["1"] * 4
    assert list(table["model"][:4]) == ["lcm", "lcm-scratch", "logreg", "shuffled-labels"]
    assert table.loc[0, "AUC [95% CI]"] == "0.800 [0.750, 0.840]"
    assert table.loc[0, "balanced accuracy [95% CI]"] == "0.700 [0.650, 0.740]"
    with_motion = task_table(_summary(["motion-fd", "logreg", "lcm"]), "t")
    assert list(with_motion["kind"][:3]) == ["LCM", "baseline", "confound"]
    kinds = ("lcm-no-pseudo", "logreg", "shuffled-labels", "motion-fd", "x")
    # motion-fd (mean FD alone) read "other" in the task tables: a reviewer's confound check.
    assert [model_kind(m) for m in kinds] == ["LCM", "baseline", "control", "confound", "other"]


def test_lcm_alone_is_flagged():
    summary = _summary(["lcm"])
    empty = pd.DataFrame({"task": pd.Series([], dtype=str)})
    section = bare(task_section(ReportData(pd.DataFrame(), empty, summary), "t"))
    assert "No baseline was evaluated" in section
    beside = task_section(ReportData(pd.DataFrame(), empty, _summary(["lcm", "logreg"])), "t")
    assert "No baseline was evaluated" not in beside
    assert beside.count("<img") == 1  # no predictions: ROC omitted, fraction curve kept


def test_task_table_n_is_the_n_of_its_auc_as_in_the_summary():
    """A test fold of one class has no AUC (nor balanced accuracy) but an accuracy: the page
    gave the largest n over every metric (4), summary.tsv the AUC's (3)."""
    rows = []
    for fold, y in enumerate(([0, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0])):
        scores = binary_metrics(np.array(y), np.array([0.2, 0.7, 0.4, 0.6]))
        rows += [("t", "logreg", 1.0, 0, fold, m, v) for m, v in scores.items()]
    rows.append(("t", "logreg", 1.0, 0, 3, "mae", 0.4))  # another metric beside: never shown
    summary = summarise(pd.DataFrame(rows, columns=list(METRIC_COLUMNS)))
    n = summary.set_index("metric")["n"]
    assert (n["auc"], n["accuracy"]) == (3, 4)
    empty = pd.DataFrame({"task": pd.Series([], dtype=str)})
    section = bare(task_section(ReportData(pd.DataFrame(), empty, summary), "t"))
    head, body = section.split("<tbody>", 1)
    assert body.split("</tr>", 1)[0].endswith("<td>3</td>")  # the AUC's n, not 4
    assert "<th>n (AUC)</th></tr>" in head
    table = task_table(summary, "t")
    assert table["n (AUC)"].tolist() == [n["auc"]]


def test_a_binary_task_is_tabled_as_its_record_says_not_by_its_auc_rows():
    """The table read a task with no AUC row as continuous: its accuracy rows alone (a metrics
    table holding no AUC) showed empty Pearson r, MAE and R² columns. The record says binary."""
    rows = []
    for fold, y in enumerate(([0, 1, 1], [1, 0, 0])):
        scores = binary_metrics(np.array(y), np.array([0.2, 0.7, 0.4]))
        rows += [("t", "logreg", 1.0, 0, fold, m, v) for m, v in scores.items() if m != "auc"]
    summary = summarise(pd.DataFrame(rows, columns=list(METRIC_COLUMNS)))
    table = task_table(summary, "t", kind="binary")
    assert list(table.columns)[3:] == ["AUC [95% CI]", "balanced accuracy [95% CI]", "n (AUC)"]
    assert table.loc[0, "AUC [95% CI]"] == "n/a"
    assert table.loc[0, "balanced accuracy [95% CI]"].startswith("0.")
    empty = pd.DataFrame({"task": pd.Series([], dtype=str)})
    data = ReportData(pd.DataFrame(), empty, summary, task_meta={"t": {"kind": "binary"}})
    section = bare(task_section(data, "t"))
    assert "<th>n (AUC)</th>" in section and "Pearson r [95% CI]" not in section
    # No record: the guess from the rows stays.
    assert "n (Pearson r)" in task_table(summary, "t").columns


def test_task_table_names_the_n_of_a_metric_resting_on_another():
    rows = [
        ("t", "ridge", 1.0, "pearson_r", 0.3, 0.1, 0.5, 3),
        ("t", "ridge", 1.0, "mae", 4.0, 3.0, 5.0, 4),
        ("t", "ridge", 1.0, "r2", 0.1, 0.0, 0.2, 3),
    ]
    table = task_table(pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)), "t")
    assert table.loc[0, "MAE [95% CI]"] == "4.000 [3.000, 5.000] (n = 4)"
    assert table.loc[0, "R² [95% CI]"] == "0.100 [0.000, 0.200]"
    assert table.loc[0, "n (Pearson r)"] == 3


def test_qc_counts_and_reasons():
    qc = pd.DataFrame(
        {
            "dataset": ["a", "a", "a", "b", "b"],
            "subject": ["1", "1", "2", "1", "2"],
            "included": [True, False, False, True, True],
            "reason": [None, "high motion", "high motion", None, None],
            "mean_fd": [0.1, 0.6, np.nan, 0.2, 0.3],
        }
    )
    counts = qc_counts(qc).set_index("dataset")
    assert counts.loc["a", "runs"] == 3 and counts.loc["a", "excluded"] == 2
    assert counts.loc["b", "subjects included"] == 2 and counts.loc["a", "subjects included"] == 1
    reasons = qc_reasons(qc)
    assert reasons.to_dict("records") == [{"dataset": "a", "reason": "high motion", "runs": 2}]


def test_qc_reasons_group_one_reason_of_many_files():
    """A reason naming each run's file is one row (30 files of another atlas were 30 rows)."""
    subjects = [f"{50002 + i:07d}" for i in range(30)] + ["01", "02", "03"]
    reasons = [
        f"Pitt_{s}_rois_cc200.1D is of parcellation seg-cc200, not of the configured atlas"
        for s in subjects[:30]
    ] + [
        "sub-01.csv has 100 ROI columns (57 rows) but the atlas has 116 ROIs",
        "duplicate of sub-02_task-rest_bold.nii.gz for run sub-02_task-rest (0.01 s apart)",
        "high motion",
    ]
    qc = pd.DataFrame(
        {
            "dataset": "a",
            "subject": subjects,
            "run_key": [f"sub-{s}_task-rest" for s in subjects],
            "included": False,
            "reason": reasons,
            "mean_fd": np.nan,
        }
    )
    rows = qc_reasons(qc).to_dict("records")
    assert rows[0] == {
        "dataset": "a",
        "reason": "<file> is of parcellation seg-cc200, not of the configured atlas",
        "runs": 30,
        "example": "sub-0050002_task-rest",
    }
    assert [r["reason"] for r in rows[1:]] == [
        "<file> has 100 ROI columns (57 rows) but the atlas has 116 ROIs",
        "duplicate of <file> for run <file> (0.01 s apart)",
        "high motion",
    ]


def test_qc_reasons_group_by_reason_code():
    """Runs of one code are one row whatever files their reasons name (grouped by text, two
    files of other atlases were two rows); rows without a code (older QC tables) by text."""
    qc = pd.DataFrame(
        {
            "dataset": "a",
            "subject": ["01", "02", "03", "04"],
            "run_key": ["r1", "r2", "r3", "r4"],
            "included": False,
            "reason": [
                "atlas-glasser_timeseries.tsv is of parcellation glasser",
                "atlas-schaefer_timeseries.tsv is of parcellation schaefer",
                "high motion",
                "high motion",
            ],
            "reason_code": ["other_atlas", "other_atlas", "", None],
            "mean_fd": np.nan,
        }
    )
    assert qc_reasons(qc).to_dict("records") == [
        {
            "dataset": "a",
            "reason": "high motion",
            "runs": 2,
            "example": "r3",
        },
        {
            "dataset": "a",
            "reason": "atlas-glasser_timeseries.tsv is of parcellation glasser",
            "runs": 2,
            "example": "r1",
        },
    ]


def test_qc_reasons_show_the_subject_label_a_reason_is_about():
    """An invalid listing label read "Invalid BIDS 'sub' label <file>' in listing.tsv": the
    label was masked as if it named a file, hiding the one thing to fix."""
    reasons = [
        "Invalid BIDS 'sub' label 'NAP_001' in listing.tsv: expected letters and digits only.",
        "subject 07 (sub-07) has no BOLD run: sub-07_task-rest_bold.nii.gz is missing",
    ]
    qc = pd.DataFrame(
        {"dataset": "a", "subject": ["NAP_001", "07"], "included": False, "reason": reasons}
    )
    assert qc_reasons(qc)["reason"].tolist() == [
        "Invalid BIDS 'sub' label 'NAP_001' in listing.tsv: expected letters and digits only.",
        "subject 07 (sub-07) has no BOLD run: <file> is missing",
    ]


def test_qc_reasons_keep_paths_with_spaces_and_quotes_whole():
    """A path split into words at its spaces read '/tmp/user S'1/data/raw <file>': the run's
    files are <file>, the folder they are missing in stays whole."""
    root = "/tmp/user S'1/data/raw study's/derivatives/fmriprep"
    reasons = [
        f"outputs missing in {root}: {root}/sub-{s}/func/sub-{s}_task-rest_bold.nii.gz; "
        f"'{root}/sub-{s}/func/sub-{s}_task-rest_bold.json'. Run fMRIPrep"
        for s in ("04", "05")
    ]
    qc = pd.DataFrame(
        {"dataset": "a", "subject": ["04", "05"], "included": False, "reason": reasons}
    )
    assert qc_reasons(qc).to_dict("records") == [
        {
            "dataset": "a",
            "reason": f"outputs missing in {root}: <file>; '<file>'. Run fMRIPrep",
            "runs": 2,
        }
    ]


def test_read_qc_keeps_labels_as_written(tmp_path):
    """Subject 0050002 (ABIDE) and run 01 stay as written (read as 50002 and 1 before)."""
    path = tmp_path / "qc.tsv"
    path.write_text(
        "dataset\tsubject\tsession\trun\trun_key\tincluded\treason\tmean_fd\n"
        "abide\t0050002\t01\t01\tsub-0050002_ses-01_run-01\tTrue\t\t0.1\n"
        "abide\t1\tn/a\t1\tsub-1_run-1\tFalse\tsub-1.npy is bad\t0.2\n"
    )
    qc = read_qc([path])
    assert qc["subject"].tolist() == ["0050002", "1"]
    assert qc["run"].tolist() == ["01", "1"] and qc["session"].iloc[0] == "01"
    assert qc["mean_fd"].tolist() == [0.1, 0.2]
    assert qc_reasons(qc)["reason"].tolist() == ["<file> is bad"]


def test_files_of_other_atlases_are_no_runs():
    """XCP-D ships several parcellations: 'runs 38, excluded 21' counted 18 Glasser files of
    included runs among the exclusions."""
    qc = pd.DataFrame(
        {
            "dataset": ["x"] * 5,
            "subject": ["1", "1", "2", "2", "3"],
            "included": [True, False, True, False, False],
            "reason": ["", "a.tsv is of parcellation seg-Glasser", "", "b.tsv ...", "short"],
            "reason_code": ["", "other_atlas", "", "other_atlas", ""],
            "mean_fd": [0.1, np.nan, 0.2, np.nan, 0.3],
        }
    )
    row = qc_counts(qc).iloc[0].to_dict()
    assert (row["runs"], row["included"], row["excluded"]) == (3, 2, 1)
    assert row["other-atlas files"] == 2
    assert "other-atlas files" not in qc_counts(qc.drop(columns="reason_code")).columns


def test_a_p_below_the_third_decimal_reads_less_than_0_001():
    """p = 0 (a bootstrap with no draw across 0) printed as 0.000, read as exactly 0."""
    assert [p_text(p) for p in (0.0, 0.0004, 0.001, 0.0237, float("nan"))] == [
        "< 0.001",
        "< 0.001",
        "0.001",
        "0.024",
        "n/a",
    ]
    assert (p_clause(0.0), p_clause(0.024)) == ("p < 0.001", "p = 0.024")


def test_bei_held_out_zero_width_intervals_read_no_interval_and_few_subjects_warn():
    """rev25 #10: parkinsons accuracy 0.000 [0.000, 0.000] on 6 held-out subjects; and the
    note called the interval a bootstrap without saying it leaves out pretraining's variance."""
    from lcm.report.html import bei_section

    bei = pd.DataFrame(
        {
            "variable": ["parkinsons", "age"],
            "kind": ["categorical", "continuous"],
            "metric": ["accuracy", "r2"],
            "model": [0.0, 0.66],
            "baseline": [0.5, -0.04],
            "chance": [0.5, 0.0],
            "ci_low": [0.0, 0.36],
            "ci_high": [0.0, 0.85],
            "n": [6, 36],
            "n_subjects": [6, 36],
        }
    )
    text = bei_section(bei)
    # One pretraining run: its interval resamples the held-out subjects and nothing else.
    assert (
        "the one pretrained model held fixed, so it holds the held-out subjects' variance" in text
    )
    assert "<td>no interval</td><td>no interval</td>" in text
    assert "<td>0.360</td><td>0.850</td>" in text
    assert "Too few held-out subjects to read: parkinsons (6)" in text and "age (36)" not in text
    # Two variables too few to read: one list item each, as every warning of several items.
    text = bei_section(bei.assign(n_subjects=[6, 12]))
    assert (
        '<div class="warn">Too few held-out subjects to read:<ul><li>parkinsons (6)</li>'
        "<li>age (12)</li></ul> Each has fewer than 20: its scores and intervals rest on a "
        "handful of subjects.</div>"
    ) in text


def test_a_binary_task_without_auc_rows_names_its_test_subjects_per_class():
    """The section took a task as binary only when AUC rows existed: a binary task without any
    (each test fold of one class) lost the test-subjects-per-class note explaining its n/a."""
    rows, preds = [], []
    for fold, y in enumerate(([1, 1, 1], [0, 0, 0])):  # each test fold of one class
        scores = binary_metrics(np.array(y), np.array([0.2, 0.7, 0.4]))
        rows += [("t", "logreg", 1.0, 0, fold, m, v) for m, v in scores.items() if m != "auc"]
        for i, label in enumerate(y):
            preds.append(("t", "logreg", 1.0, 0, fold, "d", f"s{fold}{i}", "x", label, 0.5))
    summary = summarise(pd.DataFrame(rows, columns=list(METRIC_COLUMNS)))
    columns = ["task", "model", "label_fraction", "seed", "fold", "dataset", "subject", "site"]
    predictions = pd.DataFrame(preds, columns=[*columns, "y_true", "prediction"])

    def section(meta: dict) -> str:
        data = ReportData(pd.DataFrame(), predictions, summary, task_meta={"t": meta})
        return bare(task_section(data, "t"))

    binary = section({"kind": "binary", "levels": ["control", "autism"]})
    assert "Test subjects: 3 autism / 3 control" in binary
    # A continuous task's record keeps the note out, whatever its labels' values.
    assert "Test subjects:" not in section({"kind": "continuous"})


def test_a_task_without_rows_of_its_metric_has_a_note_for_its_label_fraction_figure():
    """A task with no row of the plotted metric (a binary task's folds each of one class, a
    continuous task without Pearson r) had its label-fraction figure drawn empty, with a
    matplotlib warning; the page now says why there is none."""
    rows = []
    for fold, y in enumerate(([1, 1, 1], [0, 0, 0])):  # each test fold of one class: no AUC
        scores = binary_metrics(np.array(y), np.array([0.2, 0.7, 0.4]))
        rows += [("t", "logreg", 1.0, 0, fold, m, v) for m, v in scores.items() if m != "auc"]
    summary = summarise(pd.DataFrame(rows, columns=list(METRIC_COLUMNS)))
    predictions = pd.DataFrame(columns=["task", "model", "label_fraction", "y_true", "prediction"])
    for kind, name in (("binary", "AUC"), ("continuous", "Pearson r")):
        data = ReportData(pd.DataFrame(), predictions, summary, task_meta={"t": {"kind": kind}})
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # matplotlib's warning of an empty plot, an error
            text = bare(task_section(data, "t"))
        assert f"No {name} was measured for this task: no label-fraction figure." in text
        assert "against label fraction" not in text  # the figure's alt text
