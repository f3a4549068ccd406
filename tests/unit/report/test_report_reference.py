"""A task's published reference range (``tasks.<name>.reference``) on the report: a neutral
sentence placing every model's mean, a warning for a mean above the range, nothing without one."""

from __future__ import annotations

import html
import json
import re

import pandas as pd
import pytest
from helpers.report import run_report

from lcm.exceptions import ConfigError
from lcm.io.provenance import provenance_path
from lcm.report.reference import reference_fragment, reference_rows, reference_verdict

AUC = {"metric": "auc", "range": [0.65, 0.72], "source": "Author et al. 2020"}
PEARSON = {"metric": "pearson_r", "range": [0.2, 0.4], "source": "Author et al. 2021"}
HOSTILE = "<script>alert(1)</script> & \"Smith\" 'et al.' $(touch x)"


def summary(task: str, metric: str, means: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    """Summary rows of ``task`` at label fractions 0.1 and 1: ``model -> (mean, low, high)``
    at 1, each 0.1 lower at 0.1; and a row of another metric well above any range."""
    rows = []
    for model, (mean, low, high) in means.items():
        for fraction, shift in ((0.1, -0.1), (1.0, 0.0)):
            rows.append(
                {
                    "task": task,
                    "model": model,
                    "label_fraction": fraction,
                    "metric": metric,
                    "mean": mean + shift,
                    "ci_low": low + shift,
                    "ci_high": high + shift,
                    "n": 6,
                }
            )
        rows.append({**rows[-1], "metric": "f1", "mean": 0.99, "ci_low": 0.98, "ci_high": 1.0})
    return pd.DataFrame(rows)


BINARY = summary(
    "autism",
    "auc",
    {
        "lcm": (0.85, 0.80, 0.90),  # above, the interval too
        "logreg": (0.68, 0.62, 0.74),  # within
        "svm": (0.75, 0.70, 0.80),  # above, the interval reaching into the range
        "shuffled-labels": (0.50, 0.44, 0.56),  # below, the interval too
    },
)
CONTINUOUS = summary(
    "age",
    "pearson_r",
    {"lcm": (0.15, 0.05, 0.25), "ridge": (0.30, 0.22, 0.38), "cpm": (0.55, 0.45, 0.65)},
)


def sentence(fragment: str) -> str:
    """The neutral note of a fragment."""
    found = re.search(r'<p class="note">(.*?)</p>', fragment)
    assert found, fragment
    return found.group(1)


def warning(fragment: str) -> str:
    """The warning of a fragment (``""`` when it has none)."""
    found = re.search(r'<div class="warn">(.*?)</div>', fragment, re.DOTALL)
    return found.group(1) if found else ""


@pytest.mark.parametrize(
    ("frame", "task", "reference", "above", "within", "below"),
    [
        (BINARY, "autism", AUC, {"lcm", "svm"}, {"logreg"}, {"shuffled-labels"}),
        (CONTINUOUS, "age", PEARSON, {"cpm"}, {"ridge"}, {"lcm"}),
    ],
)
def test_each_models_mean_is_placed_against_the_range(
    frame, task, reference, above, within, below
) -> None:
    """Placed by its mean at the largest label fraction (the range's metric only: the F1 of
    0.99 above everything is no AUC), the means as summary.tsv has them."""
    rows = reference_rows(frame, task, reference)
    at_one = rows[rows["label_fraction"] == 1.0].set_index("model")["position"]
    assert {m for m, p in at_one.items() if p == "above"} == above
    assert {m for m, p in at_one.items() if p == "within"} == within
    assert {m for m, p in at_one.items() if p == "below"} == below
    fragment = reference_fragment(frame, task, reference)
    text = sentence(fragment)
    low, high = reference["range"]
    assert text.startswith(f"Published range for {'AUC' if task == 'autism' else 'Pearson r'}: ")
    assert f"[{low:.3f}, {high:.3f}] ({reference['source']})" in text
    assert "label fraction 1:" in text
    for _, r in rows[rows["label_fraction"] == 1.0].iterrows():
        interval = f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        said = f"{r['model']} {r['mean']:.3f} {interval}, {r['position']} it"
        assert said in text, (said, text)
    # A mean outside the range says whether its interval reaches into it.
    overlapping = rows[(rows["label_fraction"] == 1.0) & rows["overlaps"]]["model"]
    outside = [m for m in overlapping if m in above | below]
    for model in outside:
        assert re.search(
            rf"{re.escape(model)} [^;]*, (above|below) it \(its interval overlaps", text
        )
    # The warning lists every mean above the range, at each label fraction, and only those.
    box = warning(fragment)
    listed = set(re.findall(r"<li>(\S+) at label fraction (\S+):", box))
    expected = {
        (m, f"{f:g}")
        for m, f, p in zip(rows["model"], rows["label_fraction"], rows["position"], strict=True)
        if p == "above"
    }
    assert listed == expected and expected
    assert "<b>Above the published range</b>" in box
    for check in ("shuffled-label control", "motion-fd", "evaluate.split: site", "same subject"):
        assert check in box


def test_models_within_or_below_the_range_get_no_warning() -> None:
    calm = BINARY[BINARY["model"].isin(["logreg", "shuffled-labels"])]
    fragment = reference_fragment(calm, "autism", AUC)
    assert "within it" in sentence(fragment) and "below it" in sentence(fragment)
    assert 'class="warn"' not in fragment
    assert reference_verdict(calm, {"autism": AUC}) == ""


def test_without_a_range_nothing_is_said() -> None:
    assert reference_fragment(BINARY, "autism", None) == ""
    assert reference_verdict(BINARY, {}) == ""


def test_a_range_of_a_metric_the_task_lacks_says_so() -> None:
    fragment = reference_fragment(BINARY, "autism", {**AUC, "metric": "balanced_accuracy"})
    assert "has no balanced accuracy to compare" in fragment
    assert 'class="warn"' not in fragment


def test_a_mean_without_interval_says_why_as_the_task_table_does() -> None:
    # One fit (n = 1): the note, the warning and the opening line name it as the table does.
    one = BINARY[BINARY["model"] == "lcm"].assign(ci_low=float("nan"), ci_high=float("nan"), n=1)
    fragment = reference_fragment(one, "autism", AUC)
    assert "lcm 0.850, no interval (one value), above it" in sentence(fragment)
    assert "0.850, no interval (one value)" in warning(fragment)
    assert "0.850, no interval (one value)" in reference_verdict(one, {"autism": AUC})


def test_the_opening_warning_names_lcm_models_and_the_best_baseline_only() -> None:
    """svm is above the range at fraction 1; it is named at the top only where the headline
    made it the best baseline. lcm is named at both fractions it is above."""
    headline = pd.DataFrame(
        {
            "task": ["autism", "autism"],
            "label_fraction": [0.1, 1.0],
            "best_baseline": ["logreg"] * 2,
        }
    )
    top = reference_verdict(BINARY, {"autism": AUC}, headline)
    assert re.findall(r"<li>autism: (\S+) \(([^)]*)\) at label fraction (\S+),", top) == [
        ("lcm", "an LCM model", "0.1"),
        ("lcm", "an LCM model", "1"),
    ]
    headline["best_baseline"] = ["logreg", "svm"]
    top = reference_verdict(BINARY, {"autism": AUC}, headline)
    assert "svm (the best baseline) at label fraction 1, 0.750 [0.700, 0.800]" in top
    assert "svm (the best baseline) at label fraction 0.1" not in top  # not above there
    assert "Author et al. 2020" in top and "leakage" in top


def test_a_hostile_source_is_escaped_everywhere() -> None:
    reference = {**AUC, "source": HOSTILE}
    headline = pd.DataFrame({"task": ["autism"], "label_fraction": [1.0], "best_baseline": ["svm"]})
    for fragment in (
        reference_fragment(BINARY, "autism", reference),
        reference_verdict(BINARY, {"autism": reference}, headline),
    ):
        assert "<script>" not in fragment and HOSTILE not in fragment
        assert html.escape(HOSTILE) in fragment


# --- through lcm report ------------------------------------------------------------------------


def section(page: str, task: str) -> str:
    """A task's section of the page, from its heading to the next."""
    start = page.index(f'<h2 id="task-{task}"')
    return page[start : page.index("<h2", start + 1)]


def test_lcm_report_warns_above_a_range_and_escapes_its_source(inputs, tmp_path) -> None:
    """One task's range set under its lcm's mean (from the summary of a first run), the other's
    over every model: the first is warned about in its section and at the top, the second gets
    the sentence alone; the hostile source reaches the page escaped."""
    first = run_report(inputs, tmp_path / "plain")
    plain = first["html"].read_text()
    summary = pd.read_csv(first["summary"], sep="\t")
    auc = summary[(summary["metric"] == "auc") & (summary["label_fraction"] == 1.0)]
    lcm = float(auc[(auc["task"] == "autism") & (auc["model"] == "lcm")]["mean"].iloc[0])
    top = float(auc[auc["task"] == "alzheimers"]["mean"].max())
    references = {
        "autism": {"metric": "auc", "range": [lcm - 0.2, lcm - 0.01], "source": HOSTILE},
        "alzheimers": {"metric": "auc", "range": [0.0, min(top + 0.01, 1.0)], "source": "s"},
    }
    out = run_report(inputs, tmp_path / "ranged", ["--references", json.dumps(references)])
    page = out["html"].read_text()
    assert "<script>alert" not in page and html.escape(HOSTILE) in page
    autism, alzheimers = (section(page, t) for t in ("autism", "alzheimers"))
    assert "<b>Above the published range</b>" in autism
    # One mean above: the box is one paragraph (lcm.report.boxes.box), several: a list.
    assert re.search(rf"(<li>|: )lcm at label fraction 1: {lcm:.3f}", autism)
    assert "Published range for AUC" in alzheimers
    assert "<b>Above the published range</b>" not in alzheimers
    opening = page[: page.index("<nav>")]
    assert re.search(
        rf"(<li>|\. )autism: lcm \(an LCM model\) at label fraction 1, {lcm:.3f}", opening
    )
    assert "alzheimers:" not in opening
    # Without --references the page says nothing of a range.
    assert "Published range" not in plain and "reference-range" not in plain
    # The page's record (index.json) keeps the ranges it compared with, none when none was set.
    assert json.loads(provenance_path(out["html"]).read_text())["references"] == references
    assert "references" not in json.loads(provenance_path(first["html"]).read_text())


def test_lcm_report_refuses_a_range_of_the_wrong_kind_naming_it(inputs, tmp_path) -> None:
    bad = json.dumps({"autism": {**AUC, "metric": "pearson_r"}})
    with pytest.raises(ConfigError, match=r"--references: key 'autism\.metric'.*binary task"):
        run_report(inputs, tmp_path, ["--references", bad])
    unknown = json.dumps({"adhd": AUC})
    with pytest.raises(ConfigError, match=r"--references: names task 'adhd'"):
        run_report(inputs, tmp_path, ["--references", unknown])
    assert not (tmp_path / "report" / "index.html").exists()
