"""Windowed FC as samples: connectome windows -> one store row each -> per-run evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.connectome import cli, connectome_timeseries, read_qc_table, write_roi_run
from sklearn.metrics import roc_auc_score

from lcm.atlas import load_atlas
from lcm.bids.ingest import ingest
from lcm.catalogue import load_catalogue
from lcm.commands import store as store_cmd
from lcm.evaluate.protocol import (
    EvaluationSettings,
    Task,
    evaluate_task,
    register_model,
    unregister_model,
)
from lcm.evaluate.splits import outer_folds
from lcm.evaluate.windows import mean_per_run, run_groups
from lcm.exceptions import InputDataError
from lcm.io.paths import connectome_path
from lcm.io.provenance import provenance_path
from lcm.io.relmat import read_relmat
from lcm.store.cohort import Cohort
from lcm.store.layout import matrix_to_vec
from lcm.store.loader import ConnectomeStream
from lcm.store.read import load_cohort, read_runs
from lcm.store.splits import make_splits
from lcm.store.writer import write_connectome_arrays

WINDOW = 40
# Kept volumes per subject -> full windows of 40: 130 -> 3, 85 -> 2, 36 -> none (whole run).
VOLUMES = {"01": 130, "02": 85, "03": 36}
CATALOGUE = """
variables:
  sex: {kind: binary, domain: sociodemographic, levels: [F, M]}
datasets:
  ts:
    id_column: participant_id
    site_column: site
    columns:
      sex: {column: sex}
"""


def _signals(n_vol: int, n_rois: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_vol, 3)) @ rng.standard_normal((3, n_rois))
    return x + rng.standard_normal((n_vol, n_rois))


@pytest.fixture(scope="module")
def windowed_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ROI time series -> ``lcm connectome timeseries`` (windows of 40) -> ``lcm store``."""
    tmp = tmp_path_factory.mktemp("windows")
    root = tmp / "ts"
    names = load_atlas("aal116").labels["name"].tolist()
    for sub, n_vol in VOLUMES.items():
        frame = pd.DataFrame(_signals(n_vol, len(names), int(sub)), columns=names)
        write_roi_run(root, sub, frame)
    manifest = tmp / "manifest.parquet"
    ingest("ts", "roi_timeseries", root, manifest)
    qc = tmp / "qc.tsv"
    rc = connectome_timeseries(
        manifest,
        out_dir=tmp / "conn",
        qc_table=qc,
        denoise={"min_volumes": 20, "min_dof": None},  # short series
        connectome={"fisher_z": True, "window": {"length": WINDOW}},
    )
    assert rc == 0
    pheno = tmp / "participants.tsv"
    pheno.write_text("participant_id\tsite\tsex\nsub-01\tA\tF\nsub-02\tA\tM\nsub-03\tB\tF\n")
    catalogue = tmp / "variables.yaml"
    catalogue.write_text(CATALOGUE)
    store = tmp / "store"
    assert (
        cli(
            store_cmd,
            [
                "store",
                "--dataset",
                "ts",
                "--qc-table",
                str(qc),
                "--phenotype",
                str(pheno),
                "--catalogue",
                str(catalogue),
                "--atlas",
                "aal116",
                "--store-dir",
                str(store),
            ],
        )
        == 0
    )
    return {"qc": qc, "store": store, "catalogue": catalogue}


def test_store_has_one_row_per_window(windowed_store: dict[str, Path]) -> None:
    qc = read_qc_table(windowed_store["qc"]).set_index("subject")
    assert qc["n_windows"].to_dict() == {"01": 3, "02": 2, "03": 0}
    part = connectome_path(windowed_store["store"], "aal116", "ts")
    table = pq.read_table(part)
    assert table.schema.field("window").type == pa.int32()
    assert table.schema.metadata[b"lcm.schema_version"] == b"5"
    frame = table.to_pandas()
    assert list(zip(frame["subject"], frame["window"], strict=True)) == [
        ("01", 0),
        ("01", 1),
        ("01", 2),
        ("02", 0),
        ("02", 1),
        ("03", -1),
    ]
    edges = np.frombuffer(b"".join(frame["connectome"]), "<f4").reshape(len(frame), -1)
    expected = []
    for sub, window in zip(frame["subject"], frame["window"], strict=True):
        listed = qc.loc[sub, "window_relmats"].split(",")
        path = listed[window] if window >= 0 else qc.loc[sub, "relmat"]
        if window >= 0:  # the window file itself, not its Fisher-z twin
            assert Path(path).name.endswith(
                f"desc-win{window:03d}_stat-pearsoncorrelation_relmat.tsv"
            )
        expected.append(matrix_to_vec(read_relmat(path)[1]))
    np.testing.assert_allclose(edges, np.stack(expected), atol=1e-6)
    # Windows of one run differ from each other and from the whole run.
    whole = matrix_to_vec(read_relmat(qc.loc["01", "relmat"])[1])
    assert not np.allclose(edges[0], edges[1], atol=1e-3)
    assert not np.allclose(edges[0], whole, atol=1e-3)
    # QC values repeat on every window row; the sidecar lists the window files read.
    assert (frame.loc[frame["subject"] == "01", "n_volumes_kept"] == 130).all()
    sources = json.loads(provenance_path(part).read_text())["Sources"]
    assert set(qc.loc["01", "window_relmats"].split(",")) <= set(sources)
    assert qc.loc["03", "relmat"] in sources and str(windowed_store["qc"]) in sources


def test_readers_expose_window(windowed_store: dict[str, Path]) -> None:
    store = windowed_store["store"]
    catalogue = load_catalogue(windowed_store["catalogue"])
    cohort = load_cohort(store, "aal116", ["ts"], catalogue)
    assert cohort.ids["window"].tolist() == [0, 1, 2, 0, 1, -1]
    assert cohort.variables["sex"].tolist() == ["F", "F", "F", "M", "M", "F"]
    assert read_runs(store, "aal116", ["ts"])["window"].tolist() == [0, 1, 2, 0, 1, -1]
    stream = ConnectomeStream(store, "aal116", ["ts"], shuffle=False, batch_size=6)
    batch = next(iter(stream))
    assert stream.runs["window"].tolist() == [0, 1, 2, 0, 1, -1]
    np.testing.assert_array_equal(
        batch["connectome"].numpy(), matrix_to_vec(cohort.fc[batch["index"].numpy()])
    )
    # Excluding a subject drops all its windows.
    kept = load_cohort(
        store,
        "aal116",
        ["ts"],
        catalogue,
        exclude=pd.DataFrame({"dataset": ["ts"], "subject": ["01"]}),
    )
    assert kept.ids["subject"].tolist() == ["02", "02", "03"]


def test_store_without_window_column_reads_as_whole_runs(tmp_path: Path) -> None:
    rois = [f"r{i}" for i in range(5)]
    out = write_connectome_arrays(
        tmp_path,
        "toy",
        "old",
        pd.DataFrame({"subject": ["a", "b"]}),
        np.zeros((2, 10), np.float32),
        rois,
    )
    table = pq.read_table(out)
    pq.write_table(table.drop(["window"]).replace_schema_metadata(table.schema.metadata), out)
    runs = read_runs(tmp_path, "toy", ["old"])
    assert runs["window"].tolist() == [-1, -1] and runs["window"].dtype == np.int32


def test_runs_told_apart_by_acq_or_dir_only_are_runs_of_their_own(tmp_path: Path) -> None:
    """An AP and a PA run (same subject, task and run number) are two runs, stored and then
    scored as two, not a duplicate that stopped the dataset's store."""
    rois = [f"r{i}" for i in range(5)]
    keys = ["sub-03_task-rest_dir-AP_run-01", "sub-03_task-rest_dir-PA_run-01"]
    runs = pd.DataFrame(
        {"subject": "03", "task": "rest", "run": "01", "run_key": keys * 2, "window": [0, 0, 1, 1]}
    )
    write_connectome_arrays(tmp_path, "toy", "d", runs, np.zeros((4, 10), np.float32), rois)
    stored = read_runs(tmp_path, "toy", ["d"])
    assert sorted(stored["run_key"].unique()) == keys and len(stored) == 4
    assert len(set(run_groups(stored))) == 2  # each run's two windows, not one run of four


def test_writer_refuses_bad_or_duplicate_windows(tmp_path: Path) -> None:
    rois = [f"r{i}" for i in range(5)]
    vec = np.zeros((2, 10), np.float32)
    with pytest.raises(InputDataError, match=r"duplicate run.*'window': 0"):
        write_connectome_arrays(
            tmp_path, "toy", "d", pd.DataFrame({"subject": ["a", "a"], "window": [0, 0]}), vec, rois
        )
    with pytest.raises(InputDataError, match=r"'window' must hold integers >= -1"):
        write_connectome_arrays(
            tmp_path,
            "toy",
            "d",
            pd.DataFrame({"subject": ["a", "a"], "window": [0, -2]}),
            vec,
            rois,
        )


def _windowed_cohort(n_subjects: int = 24, n_windows: int = 3, seed: int = 0) -> Cohort:
    """One run per subject cut into ``n_windows`` windows; the class shifts ROIs 0-2's FC."""
    rng = np.random.default_rng(seed)
    ids, fcs, labels = [], [], []
    for s in range(n_subjects):
        cls = s % 2
        for w in range(n_windows):
            ts = rng.normal(size=(40, 6))
            ts[:, :3] += (0.9 if cls else 0.2) * rng.normal(size=(40, 1))
            fcs.append(np.corrcoef(ts.T).astype(np.float32))
            ids.append(("ds", f"s{s:02d}", "", "rest", "1", f"site{s % 3}", w))
            labels.append(("control", "autism")[cls])
    columns = ["dataset", "subject", "session", "task", "run", "site", "window"]
    return Cohort(
        pd.DataFrame(ids, columns=columns),
        np.stack(fcs),
        pd.DataFrame({"autism": pd.Series(labels, dtype=object)}),
        [f"roi{i}" for i in range(6)],
        "toy",
    )


def test_windows_of_a_subject_never_straddle_folds() -> None:
    cohort = _windowed_cohort()
    y = (cohort.variables["autism"] == "autism").to_numpy().astype(int)
    sites = cohort.ids["site"].to_numpy()
    for split in ("subject", "site"):
        _, folds = outer_folds(y, cohort.groups, sites, split, 4, seed=3)
        for train, test in folds:
            assert not set(cohort.groups[train]) & set(cohort.groups[test])
    table = make_splits(
        cohort.ids.assign(label=y), n_folds=4, seed=1, schemes=("subject",), label="label"
    )
    assert len(table[table["scheme"] == "subject"]) == 24  # one row per subject, not per window
    _, folds = outer_folds(y, cohort.groups, sites, "subject", 4, 0, table, repeat=1)
    for train, test in folds:
        assert not set(cohort.groups[train]) & set(cohort.groups[test])
        assert len(test) % 3 == 0  # all three windows of each test subject


def test_mean_per_run_averages_windows_only() -> None:
    ids = pd.DataFrame(
        {
            "dataset": "d",
            "subject": ["a", "a", "a", "b", "b", "c"],
            "session": "",
            "task": "rest",
            "run": ["1", "1", "1", "1", "2", "1"],
            "window": [0, 1, 2, -1, -1, 0],
        }
    )
    codes = run_groups(ids)
    assert len(set(codes)) == 4  # a's three windows merge; b's two whole runs stay apart
    preds = np.array([[0.1, 0.2, 0.6, 0.7, 0.8, 0.9], [1, 2, 3, 4, 5, 6.0]])
    first, means = mean_per_run(codes, preds)
    assert first.tolist() == [0, 3, 4, 5]
    np.testing.assert_allclose(means, [[0.3, 0.7, 0.8, 0.9], [2, 4, 5, 6]])
    # Whole-run rows (or no window column): unchanged, in order.
    first, same = mean_per_run(run_groups(ids.drop(columns="window")), preds)
    assert first.tolist() == list(range(6)) and np.array_equal(same, preds)


class EdgeModel:
    """Predicts P(positive) = (r01 + 1) / 2 of each sample; records how many rows it trained on."""

    n_fit: ClassVar[list[int]] = []

    def fit(self, fc, y, variables):
        EdgeModel.n_fit.append(len(fc))
        return self

    def predict_proba(self, fc):
        p = (fc[:, 0, 1].astype(float) + 1) / 2
        return np.column_stack([1 - p, p])


@pytest.fixture
def edge_model():
    EdgeModel.n_fit = []
    register_model("edge", lambda ctx: EdgeModel(), replace=True)
    yield EdgeModel
    unregister_model("edge")


def test_evaluation_trains_on_windows_and_scores_each_run_once(edge_model) -> None:
    cohort = _windowed_cohort()
    task = Task(name="autism", label="autism", negative="control", positive="autism")
    settings = EvaluationSettings(n_folds=3, label_fractions=(1.0,), models=("edge", "logreg"))
    result = evaluate_task(cohort, task, settings, master_seed=0)
    # Training: every window of the 16 training subjects is a sample.
    assert edge_model.n_fit == [16 * 3] * 3
    pred = result.predictions
    edge = pred[pred["model"] == "edge"].set_index("subject")
    # One prediction row per test run (24 subjects x 3 windows in the cohort), per model.
    assert len(edge) == 24 and len(pred) == 48
    assert not pred.duplicated(["model", "seed", "fold", "subject"]).any()
    # Each is the mean of the run's window predictions, and y_true its subject's label.
    p_window = (cohort.fc[:, 0, 1].astype(float) + 1) / 2
    expected = pd.Series(p_window).groupby(cohort.ids["subject"].to_numpy()).mean()
    np.testing.assert_allclose(edge["prediction"], expected[edge.index], rtol=1e-6)
    labels = cohort.variables["autism"].groupby(cohort.ids["subject"].to_numpy()).first()
    assert (edge["y_true"] == (labels[edge.index] == "autism").astype(float)).all()
    # Metrics are computed on those per-run predictions: the AUC of fold 0 recomputed.
    fold0 = pred[(pred["model"] == "edge") & (pred["fold"] == 0)]
    auc = result.metrics.query("model == 'edge' and fold == 0 and metric == 'auc'")["value"]
    assert auc.item() == pytest.approx(roc_auc_score(fold0["y_true"], fold0["prediction"]))


def test_a_subject_with_several_runs_counts_once(edge_model) -> None:
    """Metrics are per subject: a subject's four runs are one test observation, not four
    (per run, the many-run positives outvoted the rest: AUC 0.80 where per subject it is 0.50)."""
    rng = np.random.default_rng(4)
    ids, fcs, labels = [], [], []
    for s in range(24):
        cls = s % 2
        # Positives alternate: four runs that look positive, or one that looks negative.
        n_runs, r01 = (4, 0.8) if s % 4 == 1 else (1, -0.6 if cls else rng.uniform(-0.2, 0.2))
        for run in range(n_runs):
            fc = np.eye(6, dtype=np.float32)
            fc[0, 1] = fc[1, 0] = r01 + 0.01 * run
            fcs.append(fc)
            ids.append(("ds", f"s{s:02d}", "", "rest", str(run + 1), f"site{s % 3}"))
            labels.append(("control", "autism")[cls])
    columns = ["dataset", "subject", "session", "task", "run", "site"]
    cohort = Cohort(
        pd.DataFrame(ids, columns=columns),
        np.stack(fcs),
        pd.DataFrame({"autism": pd.Series(labels, dtype=object)}),
        [f"roi{i}" for i in range(6)],
        "toy",
    )
    task = Task(name="autism", label="autism", negative="control", positive="autism")
    settings = EvaluationSettings(n_folds=3, label_fractions=(1.0,), models=("edge", "logreg"))
    result = evaluate_task(cohort, task, settings, master_seed=0)
    pred = result.predictions
    edge = pred[pred["model"] == "edge"].set_index("subject")
    assert len(edge) == 24  # 42 runs, one row per subject
    p_run = (cohort.fc[:, 0, 1].astype(float) + 1) / 2
    expected = pd.Series(p_run).groupby(cohort.ids["subject"].to_numpy()).mean()
    np.testing.assert_allclose(edge["prediction"], expected[edge.index], rtol=1e-6)
    aucs = result.metrics.query("model == 'edge' and metric == 'auc'").set_index("fold")["value"]
    for fold, rows in edge.groupby("fold"):
        assert aucs[fold] == pytest.approx(roc_auc_score(rows["y_true"], rows["prediction"]))
    # Per run, the many-run positives would have counted several times over.
    per_run = roc_auc_score((cohort.variables["autism"] == "autism").astype(int), p_run)
    per_subject = roc_auc_score(edge["y_true"], edge["prediction"])
    assert per_run > per_subject + 0.1
