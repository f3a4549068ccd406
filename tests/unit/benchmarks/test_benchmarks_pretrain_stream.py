"""benchmarks/pretrain_stream.py: a fair reference (--quick runs in test_e2e_benchmarks)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers.benchmarks import load_benchmark


def write_outputs(out: Path, n: int, *, samples: int | None = None, loss_ssl: float = 0.27) -> None:
    """What ``lcm pretrain`` leaves for the benchmark to read: model.json, the final training
    state and history.tsv (the losses are the quick run's, measured)."""
    data = {"n_runs": n, "heldout_subjects": ["s000001"], "run_digests": "d" * 8}
    meta = {"data": data, "data_fingerprint": "f" * 8, "standardisation": {"age": [50, 17]}}
    (out / "train_state").mkdir(parents=True)
    (out / "model.json").write_text(json.dumps(meta))
    trained = n - 1 if samples is None else samples
    state = {"step": -(-trained // 16), "counts": {"loss_total": trained}}
    (out / "train_state" / "train_state.json").write_text(json.dumps(state))
    history = "epoch\tloss_total\tloss_ssl\ttrain_eval_loss\tval_loss\n"
    (out / "history.tsv").write_text(history + f"1\t2.2\t{loss_ssl}\t0.84\t0.96\n")


@pytest.fixture
def bench():
    return load_benchmark("pretrain_stream.py")


def test_at_the_headline_size_each_contender_goes_first_once(bench, monkeypatch, tmp_path, capsys):
    """The headline ratio is at 2n, where streaming always ran first; the first child of a
    size ran 2-5x slower, whichever it was, so the ratio was charged against streaming."""
    order: list[tuple[str, int]] = []

    def run_pretrain(root, catalogue, out: Path, loading, epochs, batch, threads):
        n = int(root.name.split("-")[1])
        order.append((loading, n))
        write_outputs(out, n)
        # The first child of a size is slow, as measured: a fair ratio is still 1.
        first = sum(1 for _, m in order if m == n) == 1
        return (4.0 if first else 1.0), 100 * 2**20

    monkeypatch.setattr(bench, "write_store", lambda root, *args: root.mkdir())
    monkeypatch.setattr(bench, "run_pretrain", run_pretrain)
    monkeypatch.setattr(bench, "pairing_errors", lambda *args: ([], 1))
    monkeypatch.setattr(sys, "argv", ["pretrain_stream.py", "--n", "10", "--dir", str(tmp_path)])
    assert bench.main() == 0
    at_2n = [loading for loading, n in order if n == 20]
    assert at_2n == ["stream", "memory", "memory", "stream"]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ratio"] == 1.0


@pytest.mark.parametrize(
    ("fault", "found"),
    [
        ({"samples": 100}, "counts differs"),  # half the batches skipped: fast, and wrong
        ({"loss_ssl": 0.20}, "loss_ssl 0.2 (stream) vs 0.27 (memory)"),  # zero connectomes
        ({"loss_ssl": float("nan")}, "loss_ssl nan (stream)"),
    ],
)
def test_a_stream_that_trains_otherwise_than_memory_fails_the_benchmark(
    bench, monkeypatch, tmp_path, capsys, fault, found
):
    """Nothing compared the two runs' training: a stream that skipped batches or fed other
    connectomes reported a fine ratio and exited 0."""

    def run_pretrain(root, catalogue, out: Path, loading, epochs, batch, threads):
        n = int(root.name.split("-")[1])
        write_outputs(out, n, **(fault if loading == "stream" else {}))
        return 1.0, 100 * 2**20

    monkeypatch.setattr(bench, "write_store", lambda root, *args: root.mkdir())
    monkeypatch.setattr(bench, "run_pretrain", run_pretrain)
    monkeypatch.setattr(bench, "pairing_errors", lambda *args: ([], 1))
    argv = ["pretrain_stream.py", "--n", "10", "--repeats", "1", "--dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    assert bench.main() == 1
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["same_training"] is False
    for n in (10, 20):  # the run and what differed, at both sizes
        assert [m for m in result["mismatches"] if m.startswith(f"{n} runs, round 1: {found}")]
    assert found in err


def test_losses_apart_by_batch_order_alone_pass(bench, tmp_path):
    """The stream orders its batches its own way: last-epoch losses 4% apart (as measured at
    --quick) are the same training, not a mismatch."""
    write_outputs(tmp_path / "memory", 20)
    write_outputs(tmp_path / "stream", 20, loss_ssl=0.27 * 1.04)
    assert bench.disagreements(tmp_path / "memory", tmp_path / "stream") == []


def test_a_stream_pairing_targets_with_another_runs_connectome_fails_the_check(
    bench, monkeypatch, tmp_path
):
    """The targets were random: a stream that gave each run's targets another run's connectome
    trained on the same values in the same counts, and its losses matched memory's."""
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(bench.CATALOGUE)
    bench.write_store(tmp_path / "store", catalogue, 70, 6)
    errors, checked = bench.pairing_errors(tmp_path / "store", catalogue, 6, 2, 8)
    assert errors == [] and checked >= 2 * 64  # both epochs' batches, every sample checked
    # The targets are the connectome's: the stored ones are recomputed from it, and they vary.
    cohort = bench.load_streamed_cohort(
        tmp_path / "store", "bench", ["bench"], bench.load_catalogue(catalogue)
    )
    assert cohort.variables["age"].nunique() > 10 and cohort.variables["sex"].nunique() == 2
    real = bench.StreamedConnectomes.host_rows

    def mispaired(self, index):  # each sample gets the batch's next sample's connectome
        return real(self, index).roll(1, dims=0)

    monkeypatch.setattr(bench.StreamedConnectomes, "host_rows", mispaired)
    errors, _ = bench.pairing_errors(tmp_path / "store", catalogue, 6, 2, 8)
    assert len(errors) == 2 and "streamed sample(s) carried another run's connectome" in errors[0]
