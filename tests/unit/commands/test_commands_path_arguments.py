"""File and folder options given as the empty string, and a connectome ``--out-dir`` that is a
file: refused in one line before any work, nothing written.

``pathlib.Path("")`` is ``.``: ``lcm connectome run --out-dir ""`` (an unset shell variable)
wrote the run's derivatives into ``/`` (its paths are joined as text), ``lcm connectome
timeseries --out-dir ""`` every subject's, ``lcm ingest --path ""`` indexed the current folder
as the dataset, ``lcm ingest --out ""`` ended in a traceback. An ``--out-dir`` that is a file
ended, after the atlas was loaded and the first run parcellated, in a NotADirectoryError
traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.cli import verb_parsers
from helpers.connectome import SPACE, make_fmriprep_run, make_raw_bids

from lcm.cli import main
from lcm.commands._path_text import path_text
from lcm.exceptions import OutputOwnershipError

pytestmark = pytest.mark.hostile

# Every file and folder option of these verbs (positionals by their dest).
PATH_OPTIONS = {
    "synth": ["--config"],
    "ingest": ["--path", "--derivatives", "--out"],
    "fmriprep": ["--bids", "--derivatives", "--work-dir", "--fs-license", "--manifest", "--out"],
    "connectome run": [
        "--fmriprep-record",
        "--atlas-path",
        "--atlas-labels",
        "--out-dir",
        "--qc-out",
    ],
    "connectome settings": ["--atlas-path", "--atlas-labels", "--out"],
    "connectome dataset": [
        "--manifest",
        "--atlas-path",
        "--atlas-labels",
        "--out-dir",
        "--qc-table",
    ],
    "connectome timeseries": ["--manifest", "--out-dir", "--qc-table"],
    "connectome import": ["--manifest", "--out-dir", "--qc-table"],
    "connectome collect": ["--qc", "--manifest", "--out"],
    "store": ["--qc-table", "--phenotype", "--catalogue", "--store-dir"],
    "splits": ["--store", "--catalogue", "--out"],
    "atlases": ["--atlas-path", "--atlas-labels"],
    "pretrain": ["--store", "--catalogue", "--out-dir"],
    "run": ["bids_dir", "output_dir", "--derivatives", "--work-dir", "--config-file"],
}
CASES = [(verb, option) for verb, options in PATH_OPTIONS.items() for option in options]


@pytest.mark.parametrize(("verb", "option"), CASES, ids=[f"{v} {o}" for v, o in CASES])
def test_every_path_option_is_typed(verb: str, option: str) -> None:
    """The options listed are the parsers' own (a renamed option fails here) and each takes
    :func:`path_text`."""
    parser = verb_parsers()[verb]
    action = next(a for a in parser._actions if option in a.option_strings or a.dest == option)
    assert action.type is path_text


@pytest.mark.parametrize(("verb", "option"), CASES, ids=[f"{v} {o}" for v, o in CASES])
def test_an_empty_path_is_refused_in_one_line(
    verb: str, option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The empty string is argparse's one-line error naming the option (exit status 2), in a
    folder left empty."""
    monkeypatch.chdir(tmp_path)
    argv = [*verb.split(), *([""] if not option.startswith("-") else [option, ""])]
    if option == "output_dir":
        argv = ["run", "bids", ""]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "Traceback" not in err
    assert f"{option}: expected a path, got ''" in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", [".", "a b", "/x/y.parquet"])
def test_a_path_is_taken_as_given(text: str) -> None:
    assert path_text(text) == text


@pytest.mark.parametrize("sub", ["timeseries", "dataset", "import", "run"])
def test_an_out_dir_that_is_a_file_is_refused_before_any_run(
    sub: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal names the file in the way; the file is left as it was and no QC is written
    (the manifest or record given does not exist: the old code stopped at it instead)."""
    blocker = tmp_path / "taken"
    blocker.write_text("a user's file\n")
    qc = tmp_path / "qc" / "out.tsv"
    if sub == "run":
        argv = ["connectome", "run", "--dataset", "ds", "--fmriprep-record"]
        argv += [str(tmp_path / "rec.json"), "--run-key", "sub-01_task-rest_run-1"]
    else:
        argv = ["connectome", sub, "--dataset", "ds", "--manifest", str(tmp_path / "m.parquet")]
        argv += ["--entry", "roi_timeseries"] if sub == "dataset" else []
    argv += ["--atlas", "aal116", "--out-dir", str(blocker / "conn")]
    argv += ["--qc-out" if sub == "run" else "--qc-table", str(qc)]
    capsys.readouterr()
    # The exit code of the same refusal by lcm ingest and lcm fmriprep (their --out under a
    # file): 6, an output LCM will not write; it was 2 here.
    assert main(argv) == OutputOwnershipError.exit_code == 6
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{blocker} is a file, not a folder; nothing was computed" in err, err
    assert blocker.read_text() == "a user's file\n"
    assert not qc.parent.exists()


def test_an_output_under_a_file_exits_as_in_ingest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One condition, one exit code: ``lcm connectome``'s output under a file exited 2 where
    ``lcm ingest``'s exited 6 (an output LCM will not write)."""
    blocker = tmp_path / "taken"
    blocker.write_text("a user's file\n")
    bids = make_raw_bids(tmp_path / "bids", subjects=("01",))
    ingest = ["ingest", "--dataset", "ds", "--entry", "bids", "--path", str(bids)]
    ingest += ["--no-validate", "--out", str(blocker / "m.parquet")]
    connectome = ["connectome", "timeseries", "--dataset", "ds", "--manifest"]
    connectome += [str(tmp_path / "m.parquet"), "--atlas", "aal116"]
    connectome += ["--out-dir", str(blocker / "conn"), "--qc-table", str(tmp_path / "qc.tsv")]
    codes = {}
    for verb, argv in (("ingest", ingest), ("connectome", connectome)):
        capsys.readouterr()
        codes[verb] = main(argv)
        assert str(blocker) in capsys.readouterr().err
    assert codes == {"ingest": 6, "connectome": 6}
    assert blocker.read_text() == "a user's file\n"


@pytest.mark.parametrize("verb", ["ingest", "fmriprep"])
def test_an_out_under_a_file_is_refused_before_any_work(
    verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lcm ingest`` indexed the whole dataset (its cache beside the manifest warned as
    unreadable, "Not a directory") and ``lcm fmriprep`` ran (or checked) the subject's
    fMRIPrep before the write refused ``--out``, without a hint; now refused first, as the
    connectome verbs refuse theirs."""
    blocker = tmp_path / "taken"
    blocker.write_text("a user's file\n")
    bids = make_raw_bids(tmp_path / "bids", subjects=("01",))
    if verb == "ingest":
        argv = ["ingest", "--dataset", "ds", "--entry", "bids", "--path", str(bids)]
        argv += ["--no-validate", "--out", str(blocker / "m.parquet")]
    else:
        make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40)
        argv = ["fmriprep", "--dataset", "ds", "--bids", str(bids), "--subject", "01"]
        argv += ["--runner", "existing", "--output-space", SPACE]
        argv += ["--derivatives", str(tmp_path / "deriv"), "--out", str(blocker / "rec.json")]
    capsys.readouterr()
    assert main(["-v", *argv]) == OutputOwnershipError.exit_code
    err = capsys.readouterr().err
    assert f"{blocker} is a file, not a folder; nothing was computed" in err, err
    assert f"hint: Give another output path, or move {blocker} away." in err, err
    # Nothing before the refusal: no cache read, no run indexed nor checked.
    assert "WARNING" not in err and "INFO" not in err, err
    assert blocker.read_text() == "a user's file\n"
