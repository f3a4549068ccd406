"""`lcm bei-maps` in bounded memory: the former maps, from connectomes read in pieces.

The reference is the former fit (every feature in memory, scikit-learn ``Ridge`` refits),
kept in ``benchmarks/bei_maps_memory.py`` as the benchmark's reference.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT
from helpers.benchmarks import load_benchmark
from helpers.evaluate import bei_cohort
from helpers.model import CLI_CATALOGUE, add_store_dataset, write_catalogue

from lcm.catalogue import load_catalogue
from lcm.cli import main
from lcm.exceptions import ConfigError, InputDataError
from lcm.store.read import load_cohort
from lcm.train import bei_maps
from lcm.train.bei_maps import MAPS_FILE, BEIMaps, check_solve_memory, fit_bei_maps


@pytest.fixture(scope="module")
def bench():
    """benchmarks/bei_maps_memory.py as a module (its reference fit and store writer)."""
    return load_benchmark("bei_maps_memory.py", register=True)


def _cohort(n: int, n_rois: int, seed: int = 3) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Two runs per subject, 80 time points a run (:func:`helpers.evaluate.bei_cohort`)."""
    return bei_cohort(n, n_rois, 80, runs_per_subject=2, seed=seed)


def _close(new: np.ndarray, old: np.ndarray, name: str) -> None:
    """Equal within 1e-8 of the array's largest magnitude (NaN where the other is NaN)."""
    assert np.array_equal(np.isnan(new), np.isnan(old)), name
    scale = np.nanmax(np.abs(old))
    assert np.nanmax(np.abs(new - old)) <= 1e-8 * scale, name


@pytest.mark.parametrize(
    ("n", "n_rois"),
    [(120, 20), (160, 9)],  # 102 training runs < 190 edges (dual); 136 > 36 edges (primal)
    ids=["runs-fewer-than-edges", "runs-more-than-edges"],
)
@pytest.mark.parametrize("block_bytes", [None, 4096], ids=["one-block", "many-blocks"])
def test_the_fit_gives_the_former_maps(bench, monkeypatch, n, n_rois, block_bytes) -> None:
    """Streamed by blocks (one Gram matrix, one eigendecomposition for the hold-out and the
    maps) or not, the maps are the former fit's (scikit-learn Ridge refits of the features
    held whole): the same penalties, coefficients, intercepts, held-out R² and scaling."""
    if block_bytes:
        monkeypatch.setattr(bei_maps, "BLOCK_BYTES", block_bytes)
    fc, variables, groups = _cohort(n, n_rois)
    new = fit_bei_maps(fc, variables, groups, seed=1)
    old = bench.reference_fit_bei_maps(fc, variables, groups, seed=1)
    assert new.names == old.names == ["age", "sex=M", "group=a", "group=b", "group=c"]
    assert np.array_equal(new.alpha, old.alpha)
    assert len(set(new.alpha)) > 1  # the hold-out chose, not one default for all
    for name in ("coef", "intercept", "heldout_r2", "x_mean", "x_scale"):
        _close(getattr(new, name), getattr(old, name), name)
    assert new.heldout_r2[0] > 0.3  # age is read from edge (0, 1)


def test_connectomes_with_nan_are_refused() -> None:
    fc, variables, groups = _cohort(40, 9)
    fc[5, 0, 1] = np.nan
    with pytest.raises(InputDataError, match=r"1 connectome.* NaN or infinite"):
        fit_bei_maps(fc, variables, groups)


@pytest.mark.parametrize(("n", "n_rois"), [(120, 20), (160, 9)], ids=["dual", "primal"])
def test_a_variable_of_held_out_runs_only_gets_no_map(n, n_rois, caplog) -> None:
    """A variable whose values all fall in the held-out subjects (one small dataset's, say)
    has no training value to fit: a map of it would predict NaN for every run (its intercept,
    the training mean, NaN), and bei-linear's classifier refuses NaN features. It is left out,
    named in the log and the maps' record with its 0 training values; the other variables'
    maps are those fitted with it."""
    fc, variables, groups = _cohort(n, n_rois)
    held = bei_maps.holdout_rows(groups, 1)
    variables["only_held"] = np.where(held, np.arange(n, dtype=float), np.nan)
    assert np.isfinite(variables["only_held"]).sum() >= bei_maps.MIN_PRESENT
    maps = fit_bei_maps(fc, variables, groups, seed=1)
    assert "only_held" not in maps.names
    assert np.isfinite(maps.intercept).all() and np.isfinite(maps.transform(fc[:5])).all()
    assert "only_held (0 training subjects: all its values in the subjects held out" in caplog.text
    assert maps.left_out == {"only_held": 0}
    without = fit_bei_maps(fc, variables.drop(columns="only_held"), groups, seed=1)
    assert maps.names == without.names
    assert np.array_equal(maps.alpha, without.alpha)
    np.testing.assert_allclose(maps.coef, without.coef, rtol=1e-10, atol=1e-12)


def test_a_gram_matrix_beyond_memory_is_refused_naming_the_sizes() -> None:
    with pytest.raises(ConfigError) as info:
        check_solve_memory(34_000, 6_000, 400, 12, "ukb (schaefer400)", memory=16 * 10**9)
    message = info.value.message
    assert "34000 training and 6000 held-out runs, 400 ROIs: 79800 edges" in message
    assert "34000 x 34000 Gram matrix, 20.8 GB" in message and "can use 16.0 GB" in message
    assert "fewer runs" in info.value.hint and "fewer ROIs" in info.value.hint
    assert "more memory" in info.value.hint
    check_solve_memory(34_000, 6_000, 400, 12, "ukb", memory=32 * 10**9)  # fits: no error
    # More runs than edges: the Gram matrix is edges x edges, whatever the runs.
    check_solve_memory(10**6, 10**5, 116, 12, "ukb (aal116)", memory=4 * 10**9)


def _bench_store(bench, tmp_path: Path, n: int, n_rois: int) -> tuple[list[str], Path, Path]:
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(bench.CATALOGUE)
    store = tmp_path / "store"
    bench.write_store(store, catalogue, n, n_rois)
    argv = ["bei-maps", "--store", str(store), "--atlas", bench.ATLAS, "--catalogue"]
    return [*argv, str(catalogue), "--datasets", "bench", "--threads", "1"], store, catalogue


def test_bei_maps_refuses_a_job_too_small_before_reading_a_connectome(
    bench, tmp_path: Path, monkeypatch, capfd
) -> None:
    """The refusal comes before the stream is opened, with nothing written."""
    argv, _, _ = _bench_store(bench, tmp_path, 60, 12)
    monkeypatch.setattr(bei_maps, "available_memory", lambda: 1000, raising=False)

    def no_stream(*args, **kwargs):
        raise AssertionError("a connectome was read before the refusal")

    monkeypatch.setattr("lcm.store.read.load_cohort", no_stream)
    monkeypatch.setattr("lcm.train.streamed.cohort_stream", no_stream)
    out = tmp_path / "pre"
    assert main([*argv, "--out-dir", str(out)]) == 2  # ConfigError
    err = capfd.readouterr().err
    assert "Gram matrix" in err and "this job can use 0.0 GB" in err and "fewer runs" in err
    assert not (out / MAPS_FILE).exists()


def test_bei_maps_never_holds_the_cohorts_features(bench, tmp_path: Path, monkeypatch) -> None:
    """600 runs x 120 ROIs: 34 MB of float64 Fisher-z features, which the former code held
    several times over (the cohort's float32 matrices, the features, their standardised copy,
    Ridge's copies: 170 MB traced). Read in pieces, the command's traced peak stays below half
    of one copy (Gram matrix 2 MB, blocks of edges, batches of runs), and the maps are those
    of the cohort loaded whole."""
    monkeypatch.setattr(bei_maps, "BLOCK_BYTES", 2**20, raising=False)
    n, n_rois = 600, 120
    argv, store, catalogue = _bench_store(bench, tmp_path, n, n_rois)
    features = n * n_rois * (n_rois - 1) // 2 * 8
    tracemalloc.start()
    try:
        assert main([*argv, "--out-dir", str(tmp_path / "pre")]) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < features / 2, f"peak {peak / 1e6:.1f} MB, features {features / 1e6:.1f} MB"
    maps = BEIMaps.load(tmp_path / "pre" / MAPS_FILE)
    cat = load_catalogue(catalogue)
    cohort = load_cohort(store, bench.ATLAS, ["bench"], cat)
    whole = fit_bei_maps(cohort.fc, cohort.variables, cohort.groups)
    for name in ("x_mean", "x_scale", "coef", "intercept", "alpha", "heldout_r2"):
        assert np.array_equal(getattr(maps, name), getattr(whole, name), equal_nan=True), name
    assert maps.data_fingerprint == cohort.fingerprint(cat)


def test_bei_maps_from_a_folder_outside_the_repository(tmp_path: Path) -> None:
    """As a user runs it: `python -m lcm bei-maps` in their own folder with relative paths;
    the temporary file of the edges is gone afterwards."""
    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    add_store_dataset(tmp_path, tmp_path / "store", catalogue, "alpha", "toy", 30, seed=0)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    argv = [sys.executable, "-m", "lcm", "bei-maps", "--store", "store", "--atlas", "toy"]
    argv += ["--catalogue", catalogue.name, "--datasets", "alpha", "--out-dir", "models/pre"]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    maps = BEIMaps.load(tmp_path / "models" / "pre" / MAPS_FILE)
    assert maps.atlas == "toy" and maps.names and maps.coef.shape[0] == 13 * 12 // 2
    assert not list(scratch.iterdir())
    # 30 runs: some variables have fewer than 20 training subjects; the log names each.
    assert maps.min_values == 20 and maps.left_out
    for name, count in maps.left_out.items():
        assert re.search(rf"{re.escape(name)} \([^)]*\b{count}\b", proc.stderr), name
    assert "at least 20 training subjects" in proc.stderr


def test_a_full_temporary_folder_is_refused_naming_it(monkeypatch) -> None:
    """A map on a full disk dies of SIGBUS when a page is written: the space is taken first."""

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    fc, variables, groups = _cohort(30, 9)
    with pytest.raises(ConfigError, match="no room for the cohort's edges") as info:
        fit_bei_maps(fc, variables, groups)
    assert "TMPDIR" in info.value.hint
    # What it needs and where, readable at any size (30 runs x 36 edges x 4 bytes, not
    # "0.0 GB"), and the room left there.
    message = info.value.message
    assert f"4.2 KiB in a temporary file in {tempfile.gettempdir()} (TMPDIR)" in message
    assert re.search(r"; [0-9.]+ [KMGT]?i?B(ytes)? free there", message), message


def test_a_temporary_folder_on_a_small_file_system_is_refused(tmp_path, monkeypatch) -> None:
    """The refusal without faking fallocate: a file system of 64 KiB (a tmpfs, where the
    test may mount one), as a user's full TMPDIR."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(small))
        fc, variables, groups = _cohort(200, 12)  # 200 runs x 66 edges x 4 bytes: 52 KiB
        fc = np.concatenate([fc] * 2)  # 103 KiB
        groups = np.concatenate([groups, [g + "b" for g in groups]])
        variables = pd.concat([variables] * 2, ignore_index=True)
        with pytest.raises(ConfigError, match=f"103.1 KiB in a temporary file in {small}"):
            fit_bei_maps(fc, variables, groups)
        assert not list(small.iterdir())
    finally:
        subprocess.run(["umount", str(small)], check=True)


def _few(groups: np.ndarray, held: np.ndarray, k: int) -> np.ndarray:
    """Runs of the first ``k`` training subjects (``held`` False)."""
    return np.isin(groups, pd.unique(groups[~held])[:k])


@pytest.mark.parametrize(("n", "n_rois"), [(120, 20), (160, 9)], ids=["dual", "primal"])
def test_a_variable_with_too_few_training_values_gets_no_map(n, n_rois, caplog) -> None:
    """A ridge map of every edge fitted on 5 subjects is noise that bei-linear would read as a
    feature: a variable with fewer training subjects than the threshold (a level's indicator:
    fewer training subjects in the level, or outside it) gets no map, and is named with its count
    and the threshold in the log and in the maps' record, as one of held-out runs only is.
    The other variables' maps are those fitted without it; a rare level of a categorical
    variable loses its own map only."""
    fc, variables, groups = _cohort(n, n_rois)
    held = bei_maps.holdout_rows(groups, 1)
    five = _few(groups, held, 5)
    # 5 training subjects (and every held-out run: enough values overall, as MIN_PRESENT counts).
    variables["rare"] = np.where(five | held, np.arange(n, dtype=float), np.nan)
    variables["smoker"] = pd.Series(np.where(five, "yes", "no"), dtype=object)  # 5 smokers
    variables["only_held"] = np.where(held, np.arange(n, dtype=float), np.nan)
    group = variables["group"].to_numpy(dtype=object).copy()
    group[(group == "c") & ~_few(groups, held, 12)] = "b"  # c: among the first 12 subjects
    variables["group"] = pd.Series(group, dtype=object)
    n_c = len(np.unique(groups[(group == "c") & ~held]))
    assert 0 < n_c < 20  # the default threshold
    with caplog.at_level("INFO", logger="lcm.train.bei_maps"):
        maps = fit_bei_maps(fc, variables, groups, seed=1)
    assert maps.names == ["age", "sex=M", "group=a", "group=b"]
    assert maps.left_out == {"rare": 5, "smoker=yes": 5, "only_held": 0, "group=c": n_c}
    assert maps.min_values == bei_maps.MIN_TRAIN_VALUES == 20
    log = caplog.text
    assert "rare (5 training subjects)" in log and f"at least {maps.min_values}" in log
    assert "smoker=yes (5 training subjects in the level" in log and "--min-values" in log
    assert "only_held (0 training subjects: all its values in the subjects held out" in log
    assert np.isfinite(maps.transform(fc[:5])).all()
    without = fit_bei_maps(
        fc, variables.drop(columns=["rare", "smoker", "only_held"]), groups, seed=1
    )
    assert without.names == maps.names and np.array_equal(maps.alpha, without.alpha)
    np.testing.assert_allclose(maps.coef, without.coef, rtol=1e-10, atol=1e-12)
    # Lowered, the threshold lets the rare variable have its map.
    lowered = fit_bei_maps(fc, variables, groups, seed=1, min_values=5)
    assert "rare" in lowered.names and "smoker=yes" in lowered.names
    assert lowered.left_out == {"only_held": 0} and lowered.min_values == 5


@pytest.mark.parametrize(("n", "n_rois"), [(120, 20), (160, 9)], ids=["dual", "primal"])
def test_the_threshold_counts_subjects_not_runs(n, n_rois, caplog) -> None:
    """The hold-out choosing a penalty is drawn by subject and a subject's runs share its
    values, so 5 subjects of 4 runs each are 5 values, not 20: a variable (or a level) on the
    runs of 5 training subjects gets no map at the default threshold of 20, named with its 5
    subjects, though it has 20 training runs."""
    fc, variables, groups = bei_cohort(n, n_rois, 80, runs_per_subject=4, seed=3)
    held = bei_maps.holdout_rows(groups, 1)
    five = np.isin(groups, np.unique(groups[~held])[:5])  # 5 training subjects, 20 runs
    assert (five & ~held).sum() == 20 and not (five & held).any()
    subject_age = {g: 20.0 + i for i, g in enumerate(np.unique(groups))}
    variables["few"] = np.where(five | held, [subject_age[g] for g in groups], np.nan)
    variables["smoker"] = pd.Series(np.where(five, "yes", "no"), dtype=object)
    with caplog.at_level("INFO", logger="lcm.train.bei_maps"):
        maps = fit_bei_maps(fc, variables, groups, seed=1)
    assert "few" not in maps.names and "smoker=yes" not in maps.names
    assert maps.left_out["few"] == 5 and maps.left_out["smoker=yes"] == 5
    assert "few (5 training subjects)" in caplog.text
    assert "smoker=yes (5 training subjects in the level" in caplog.text
    assert "at least 20 training subjects" in caplog.text


def test_the_left_out_variables_and_threshold_are_saved_with_the_maps(tmp_path: Path) -> None:
    """The record travels with the maps (a .npz without pickles); maps written before it
    read as recording none."""
    fc, variables, groups = _cohort(120, 9)
    variables["rare"] = np.where(np.arange(120) < 6, 1.0, np.nan)
    maps = fit_bei_maps(fc, variables, groups, seed=1)
    again = BEIMaps.load(maps.save(tmp_path / MAPS_FILE))
    assert again.left_out == maps.left_out and set(again.left_out) == {"rare"}
    assert again.min_values == 20 and isinstance(again.min_values, int)
    with np.load(tmp_path / MAPS_FILE) as z:  # as written before the record: none of its keys
        old = {k: z[k] for k in z.files if k not in ("left_out_names", "left_out_counts")}
        old.pop("min_values")
    np.savez(tmp_path / "old.npz", **old)
    before = BEIMaps.load(tmp_path / "old.npz")
    assert before.left_out == {} and before.min_values is None


def test_the_default_threshold_lets_the_hold_out_score_a_penalty() -> None:
    """The default's reason, held to: its training values come with at least the 3 held-out
    values the hold-out needs to score a penalty (``_not_scorable``), on average."""
    expected_held = bei_maps.MIN_TRAIN_VALUES * bei_maps.HOLDOUT_FRACTION
    expected_held /= 1 - bei_maps.HOLDOUT_FRACTION
    assert expected_held >= 3
    assert bei_maps._not_scorable(np.arange(2.0), 1.0) and not bei_maps._not_scorable(
        np.arange(3.0), 1.0
    )


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "20"])
def test_a_threshold_that_is_not_a_count_is_refused(bad) -> None:
    fc, variables, groups = _cohort(40, 9)
    with pytest.raises(ConfigError, match=r"min_values .* whole number of training subjects"):
        fit_bei_maps(fc, variables, groups, min_values=bad)


def test_a_cohort_whose_every_variable_is_too_rare_gets_maps_of_none(
    tmp_path: Path, caplog
) -> None:
    """A small pretraining cohort (a first trial) would stop every task at a default baseline:
    instead the maps map no variable, record each with its count and the threshold (saved
    and read back), and the log names them, the threshold and both fixes."""
    fc, variables, groups = _cohort(40, 9)
    with caplog.at_level("WARNING", logger="lcm.train.bei_maps"):
        maps = fit_bei_maps(fc, variables, groups, min_values=1000, atlas="toy")
    assert maps.names == [] and maps.min_values == 1000
    assert set(maps.left_out) == {"age", "sex=M", "group=a", "group=b", "group=c"}
    assert all(0 < count < 1000 for count in maps.left_out.values())
    assert maps.transform(fc[:3]).shape == (3, 0)
    log = caplog.text
    assert "no map of any BEI variable" in log and "age (" in log
    assert "at least 1000 training subjects" in log and "--min-values" in log
    assert "add pretraining datasets" in log and "lcm evaluate skips bei-linear" in log
    again = BEIMaps.load(maps.save(tmp_path / MAPS_FILE))
    assert again.names == [] and again.left_out == maps.left_out and again.atlas == "toy"
    assert again.coef.shape == (36, 0) and again.transform(fc[:2]).shape == (2, 0)


@pytest.mark.parametrize("min_values", [1, 1000], ids=["others-mapped", "none-mapped"])
def test_a_variable_without_any_value_is_named_in_the_warning(
    tmp_path: Path, caplog, min_values: int
) -> None:
    """A variable that no run records (a numeric one, a categorical one) had no target column
    and went unnamed: the warning listed the variables too rare, as if it did not exist."""
    fc, variables, groups = _cohort(40, 9)
    variables = variables.assign(
        iq=pd.Series(np.nan, index=variables.index, dtype=float),
        site=pd.Series(pd.NA, index=variables.index, dtype="string"),
    )
    with caplog.at_level("WARNING", logger="lcm.train.bei_maps"):
        maps = fit_bei_maps(fc, variables, groups, min_values=min_values)
    assert "iq (0 training subjects: no value in any run)" in caplog.text, caplog.text
    assert "site (0 training subjects: no value in any run)" in caplog.text, caplog.text
    assert maps.left_out["iq"] == maps.left_out["site"] == 0
    assert ("age" in maps.names) == (min_values == 1)
    again = BEIMaps.load(maps.save(tmp_path / MAPS_FILE))
    assert again.left_out == maps.left_out


@pytest.mark.parametrize(("n", "n_rois"), [(120, 20), (160, 9)], ids=["dual", "primal"])
def test_a_variable_of_one_value_gets_no_map_and_is_recorded(tmp_path: Path, n, n_rois) -> None:
    """A variable of one value in every run (a site's field strength, a cohort of one age)
    has nothing to map: it gets no map, is recorded as constant with the maps (saved and read
    back; maps written before the record read as recording none), and the other variables'
    maps are those fitted without it."""
    fc, variables, groups = _cohort(n, n_rois)
    variables["field"] = 3.0
    maps = fit_bei_maps(fc, variables, groups, seed=1)
    assert maps.constant == ["field"] and "field" not in maps.names and maps.left_out == {}
    without = fit_bei_maps(fc, variables.drop(columns="field"), groups, seed=1)
    assert without.names == maps.names and without.constant == []
    np.testing.assert_allclose(maps.coef, without.coef, rtol=1e-10, atol=1e-12)
    again = BEIMaps.load(maps.save(tmp_path / MAPS_FILE))
    assert again.constant == ["field"]
    with np.load(tmp_path / MAPS_FILE) as z:
        old = {k: z[k] for k in z.files if k != "constant_names"}
    np.savez(tmp_path / "old.npz", **old)
    assert BEIMaps.load(tmp_path / "old.npz").constant == []


def test_a_cohort_whose_variables_are_constant_or_too_rare_gets_maps_of_none(
    tmp_path: Path, caplog
) -> None:
    """Every variable with enough training subjects of one value, the others too rare: as
    with every variable too rare, the maps map none (lcm evaluate skips bei-linear) instead
    of stopping every task, recording each variable with its reason; the log names both
    reasons, and the threshold's fix only because a variable was too rare."""
    fc, variables, groups = _cohort(120, 9)
    variables = pd.DataFrame(
        {
            "field": np.full(len(fc), 3.0),
            "rare": np.where(np.arange(len(fc)) < 6, np.arange(len(fc), dtype=float), np.nan),
        }
    )
    with caplog.at_level("WARNING", logger="lcm.train.bei_maps"):
        maps = fit_bei_maps(fc, variables, groups, atlas="toy")
    assert maps.names == [] and maps.constant == ["field"] and set(maps.left_out) == {"rare"}
    assert maps.transform(fc[:3]).shape == (3, 0)
    log = caplog.text
    assert "no map of any BEI variable" in log and "field (one value in every run)" in log
    assert "rare (" in log and "--min-values" in log and "lower the threshold" in log
    again = BEIMaps.load(maps.save(tmp_path / MAPS_FILE))
    assert again.names == [] and again.constant == ["field"] and again.left_out == maps.left_out
    # Constant only: no threshold to lower, so none is suggested.
    caplog.clear()
    with caplog.at_level("WARNING", logger="lcm.train.bei_maps"):
        only = fit_bei_maps(fc, variables[["field"]], groups)
    assert only.names == [] and only.constant == ["field"] and only.left_out == {}
    assert "field (one value in every run)" in caplog.text
    assert "threshold" not in caplog.text and "--min-values" not in caplog.text


def test_lcm_bei_maps_min_values_through_the_command(bench, tmp_path: Path, capfd) -> None:
    """Through `lcm bei-maps` on a store: with --min-values 10, age and sex of 60 runs have
    maps; by default (20), above sex's men or women among the training subjects, sex=M gets
    none, named in the log with its count and the threshold and in the maps' record. A
    threshold below 1 is a usage error naming the option, before any data is read."""
    argv, _, _ = _bench_store(bench, tmp_path, 60, 12)
    assert main([*argv, "--out-dir", str(tmp_path / "low"), "--min-values", "10"]) == 0
    low = BEIMaps.load(tmp_path / "low" / MAPS_FILE)
    assert low.names == ["age", "sex=M"] and low.left_out == {}
    assert low.min_values == 10
    capfd.readouterr()
    assert main([*argv, "--out-dir", str(tmp_path / "default")]) == 0
    default = BEIMaps.load(tmp_path / "default" / MAPS_FILE)
    assert default.names == ["age"] and default.min_values == 20
    (count,) = default.left_out.values()
    assert list(default.left_out) == ["sex=M"] and 10 <= count < 20
    err = capfd.readouterr().err
    assert f"sex=M ({count} training subjects in the level" in err and "at least 20" in err
    # Above every variable's count: maps of none, written (the workflow goes on without
    # bei-linear), the log naming each variable.
    assert main([*argv, "--out-dir", str(tmp_path / "high"), "--min-values", "1000"]) == 0
    high = BEIMaps.load(tmp_path / "high" / MAPS_FILE)
    assert high.names == [] and set(high.left_out) == {"age", "sex=M"}
    assert high.min_values == 1000 and (tmp_path / "high" / "bei_linear.json").is_file()
    err = capfd.readouterr().err
    assert "no map of any BEI variable" in err and "lcm evaluate skips bei-linear" in err
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out-dir", str(tmp_path / "zero"), "--min-values", "0"])
    assert exit_info.value.code == 2
    assert "--min-values" in capfd.readouterr().err
    assert not (tmp_path / "zero").exists()


def test_the_help_gives_the_default_threshold_of_the_fit(capsys) -> None:
    """`lcm bei-maps --help` states the default that lcm.train.bei_maps owns (the option's
    default is resolved there, not copied)."""
    with pytest.raises(SystemExit):
        main(["bei-maps", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default {bei_maps.MIN_TRAIN_VALUES}: the hold-out" in text


@pytest.mark.parametrize("case", ["empty", "text", "truncated", "damaged-member"])
def test_unreadable_maps_are_named_with_the_fix(tmp_path: Path, case: str) -> None:
    """A maps file that is not a whole .npz (empty, text, cut short, a member's bytes changed)
    is one InputDataError naming it, not numpy's EOFError, BadZipFile or pickle message."""
    fc, variables, groups = _cohort(40, 6)
    path = fit_bei_maps(fc, variables, groups, seed=1, min_values=5).save(tmp_path / MAPS_FILE)
    data = path.read_bytes()
    broken = {
        "empty": b"",
        "text": b"hello, I am text\n",
        "truncated": data[: len(data) // 2],
        # np.savez stores members uncompressed: a changed byte fails the member's CRC.
        "damaged-member": data[:200] + bytes([data[200] ^ 0xFF]) + data[201:],
    }[case]
    path.write_bytes(broken)
    with pytest.raises(InputDataError, match=re.escape(f"Cannot read the BEI ridge maps {path}")):
        BEIMaps.load(path)
