"""A site of one class, a site no fold tested, a task without any AUC: the page says which, where
the reader looks (per-site table, top of the page, protocol row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from helpers.report import bare, run_report, write_report_inputs

from lcm.evaluate.metrics import write_tidy_parquet
from lcm.report import findings
from lcm.report.html import table_html

_SITE_COLUMNS = ["task", "label_fraction", "site", "model", "metric", "value", "n_subjects"]


def _sites(values: dict[str, tuple[float, int]]) -> pd.DataFrame:
    """``site -> (value, test subjects)`` of task ``asd`` at label fraction 1, two models."""
    return pd.DataFrame(
        [
            ("asd", 1.0, site, model, "auc", value, n)
            for site, (value, n) in values.items()
            for model in ("logreg", "ridge")
        ],
        columns=_SITE_COLUMNS,
    )


def test_a_site_of_one_class_keeps_its_row_with_na() -> None:
    """Subject folds, site B of controls only: its all-n/a row was dropped by the pivot, while
    the note promised "n/a where a site holds one class only"."""
    text = bare(
        findings.site_fragment(_sites({"A": (0.6, 15), "B": (np.nan, 10)}), "asd", table_html)
    )
    assert "<tr><td>A</td><td>15</td><td>0.600</td><td>0.600</td></tr>" in text
    assert "<tr><td>B</td><td>10</td><td>n/a</td><td>n/a</td></tr>" in text
    assert "site B: n/a, its test subjects hold one class only (no AUC)" in text


def test_a_site_leave_site_out_skipped_is_named_not_counted_out() -> None:
    """split: site, site A skipped (training without it holds one class): the page said "the
    dataset names fewer than two sites" although it names two."""
    meta = {"split_used": "site", "sites_not_tested": {"A": {"subjects": 15, "runs": 30}}}
    text = bare(findings.site_fragment(_sites({"B": (np.nan, 10)}), "asd", table_html, meta))
    assert "fewer than two sites" not in text
    assert "<tr><td>A</td><td>0</td><td>not tested</td><td>not tested</td></tr>" in text
    assert "site A not tested (15 subjects): leave-site-out skipped its fold" in text
    # One site only, and it tested: still said so.
    one = findings.site_fragment(_sites({"A": (0.6, 15)}), "asd", table_html, {"split_used": "x"})
    assert "fewer than two sites" in one


def test_a_binary_task_without_any_auc_is_warned_of_at_the_top(tmp_path) -> None:
    """Every AUC of a task n/a (no fold held both classes): the job succeeded and the reason
    was only at the page's bottom; the protocol row said 5 folds where 1 was used."""
    inputs = write_report_inputs(tmp_path / "in")
    path = inputs["metrics"][0]
    task = path.name.split("_")[0]
    metrics = pd.read_parquet(path)
    metrics.loc[metrics["metric"] == "auc", "value"] = np.nan
    meta = {
        "task": task,
        "label": task,
        "kind": "binary",
        "split_used": "site",
        "settings": {"split": "site", "n_folds": 5, "seeds": [0, 1]},
        "folds_one_class": [{"seed": 0, "fold": 0, "sites": ["B"], "subjects": 10, "label": 0}],
        "sites_not_tested": {"A": {"subjects": 15, "runs": 30}},
    }
    own = tmp_path / path.name
    write_tidy_parquet(own, metrics, meta)
    predictions = tmp_path / inputs["predictions"][0].name
    write_tidy_parquet(predictions, pd.read_parquet(inputs["predictions"][0]), meta)
    paths = {
        "metrics": [own, *inputs["metrics"][1:]],
        "predictions": [predictions, *inputs["predictions"][1:]],
    }
    page = run_report({**inputs, **paths}, tmp_path / "out")["html"].read_text()
    warning = page.split('id="no-auc">', 1)[1].split("</p>", 1)[0]
    assert page.index('id="verdict"') < page.index('id="no-auc"') < page.index("<nav>")
    assert warning.startswith(
        f"<b>No AUC</b> for {task}: none of its folds yielded one (1 test fold(s) of one class "
        "(site B); site A not tested (15 subjects))"
    )
    assert "Leave-site-out needs both classes" in warning
    assert "alzheimers" not in warning  # its AUCs stand
    # The folds each seed used, from the metrics (3 in these tables), not evaluate.n_folds.
    protocol = bare(page.split('id="protocol"', 1)[1])
    row = protocol.split(f"<tr><td>{task}</td>", 1)[1].split("</tr>", 1)[0]
    assert "<td>3 x 2</td>" in row and "5 x 2" not in row


def test_the_protocol_row_counts_the_folds_used() -> None:
    metrics = pd.DataFrame(
        {"task": "asd", "seed": [3, 3, 3], "fold": [0, 0, 0], "metric": "auc", "value": 0.5}
    )
    site = {"split_used": "site", "settings": {"split": "site", "n_folds": 5, "seeds": [3]}}
    assert "<td>1 x 1</td>" in bare(findings.provenance_summary({"asd": site}, table_html, metrics))
    subject = {"settings": {"split": "subject", "n_folds": 5, "seeds": [0, 1]}}
    fewer = pd.DataFrame({"task": "asd", "seed": [0, 0, 0, 1, 1], "fold": [0, 1, 2, 0, 1]})
    page = bare(findings.provenance_summary({"asd": subject}, table_html, fewer))
    assert "<td>2–3 x 2 (5 asked)</td>" in page
    # Without metrics (older callers): the folds asked.
    assert "<td>5 x 2</td>" in bare(findings.provenance_summary({"asd": subject}, table_html))


def test_a_one_subject_site_is_said_to_have_one_test_subject() -> None:
    """A site of one test subject has no Pearson r; the note said "its targets or predictions
    are constant", not the real reason."""
    sites = _sites({"A": (0.4, 15), "B": (np.nan, 1), "C": (np.nan, 12)}).assign(metric="pearson_r")
    text = bare(findings.site_fragment(sites, "asd", table_html))
    assert "site B: n/a, one test subject only (no Pearson r)" in text
    assert "site C: n/a, its targets or predictions are constant" in text
    assert "site B, C" not in text
    binary = bare(
        findings.site_fragment(_sites({"A": (0.6, 15), "B": (np.nan, 1)}), "asd", table_html)
    )
    assert "site B: n/a, one test subject only (no AUC)" in binary
