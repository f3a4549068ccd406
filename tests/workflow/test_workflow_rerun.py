"""Reruns: after a change, Snakemake plans exactly the jobs the change can affect.

One placeholder workflow is "run" with ``--touch`` (every job recorded as done, with its params
and code), then each change is made and a dry run lists the jobs that would rerun. The workflow
is a copy of the repository, so editing ``lcm`` code cannot disturb the working tree.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import ROOT
from helpers.workflow import (
    add_subject,
    copy_repo,
    placeholder_config,
    planned_jobs,
    snakemake,
    touch_all,
    write_config,
)

SPACE = "MNI152NLin2009cAsym"
# Rules upstream of a change must not rerun; those that consume its outputs must.
PER_SUBJECT = {"ingest", "fmriprep"}
CONNECTOME = {"connectome_run", "connectome_collect"}
AFTER_STORE = {"store", "pretrain", "finetune", "evaluate", "report", "all"}
AFTER_PRETRAIN = {"pretrain", "finetune", "evaluate", "report", "all"}


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(repo copy, work dir, config) of a workflow whose every job is recorded as done."""
    base = tmp_path_factory.mktemp("rerun")
    repo = copy_repo(base / "repo")
    workdir = base / "work"
    workdir.mkdir()
    cfg, config = placeholder_config(workdir, {"hcplike": 3, "abidelike": 3}, repo=repo)
    # Ingest for real (its manifest and index cache: what the plan compares files against).
    proc = snakemake(repo, workdir, "--configfile", str(config), "--until", "ingest", "-c1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    touch_all(repo, workdir, config)
    return repo, workdir, cfg


def plan(repo: Path, workdir: Path, cfg: dict) -> dict[str, int]:
    config = write_config(workdir, cfg)
    proc = snakemake(repo, workdir, "--configfile", str(config), "-n", "--cores", "1")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return planned_jobs(proc)


def with_change(cfg: dict, section: str, key: str, value: object) -> dict:
    changed = yaml.safe_load(yaml.safe_dump(cfg))
    changed[section][key] = value
    return changed


def test_nothing_changed_nothing_runs(done: tuple[Path, Path, dict]) -> None:
    repo, workdir, cfg = done
    assert plan(repo, workdir, cfg) == {}


def test_denoise_change_reruns_connectomes_and_what_follows(done) -> None:
    repo, workdir, cfg = done
    jobs = plan(repo, workdir, with_change(cfg, "denoise", "strategy", "36P"))
    assert CONNECTOME | AFTER_STORE <= set(jobs) and not PER_SUBJECT & set(jobs)
    assert jobs["connectome_run"] == 6  # every run of both datasets


def test_model_hyperparameter_reruns_pretraining_and_downstream(done) -> None:
    repo, workdir, cfg = done
    jobs = plan(repo, workdir, with_change(cfg, "pretrain", "lr", 0.001))
    assert AFTER_PRETRAIN <= set(jobs)
    assert not (PER_SUBJECT | CONNECTOME | {"store"}) & set(jobs)


def test_code_edit_reruns_the_rules_that_run_it(done) -> None:
    repo, workdir, cfg = done
    module = repo / "lcm" / "connectome" / "denoise.py"
    original = module.read_text()
    module.write_text(original + "\n_EDITED = 1\n")
    try:
        jobs = plan(repo, workdir, cfg)
    finally:
        module.write_text(original)
    assert CONNECTOME | AFTER_STORE <= set(jobs) and not PER_SUBJECT & set(jobs)
    assert plan(repo, workdir, cfg) == {}  # reverted: the same code hash as recorded


def test_comment_and_docstring_edits_rerun_nothing(done) -> None:
    # The code hash is over the code that executes: comments, docstrings and formatting out.
    repo, workdir, cfg = done
    module = repo / "lcm" / "connectome" / "denoise.py"
    original = module.read_text()
    edited = original.replace('"""', '"""An edited docstring. ', 1) + "\n\n# a comment\n"
    module.write_text(edited)
    try:
        assert plan(repo, workdir, cfg) == {}
    finally:
        module.write_text(original)


def test_a_setting_of_ingest_and_fmriprep_reruns_both_in_one_invocation(done) -> None:
    """fmriprep.output_space is a param of ingest and of every subject's fMRIPrep job. Snakemake
    skipped the subjects' own param check once ingest reran (they read its manifest as
    ancient): the connectome jobs read the old records, and only the next invocation reran
    fMRIPrep. The settings stamp reruns them with ingest."""
    repo, workdir, cfg = done
    jobs = plan(repo, workdir, with_change(cfg, "fmriprep", "output_space", f"{SPACE}:res-2"))
    assert {k: jobs.get(k) for k in ("ingest", "fmriprep_settings", "fmriprep")} == {
        "ingest": 2,
        "fmriprep_settings": 2,
        "fmriprep": 6,  # every subject of both datasets
    }
    assert jobs["connectome_run"] == 6 and CONNECTOME | AFTER_STORE <= set(jobs)


def test_added_subject_reruns_only_its_jobs_and_aggregates(done) -> None:
    repo, workdir, cfg = done
    raw = Path(cfg["datasets"]["hcplike"]["path"])
    add_subject(raw, "99999")
    try:
        jobs = plan(repo, workdir, cfg)
    finally:
        shutil.rmtree(raw / "sub-99999")
    # The new subject's own jobs, and the aggregates (one job each); no other subject's.
    assert {k: jobs.get(k) for k in ("fmriprep", "connectome_run")} == dict.fromkeys(
        ("fmriprep", "connectome_run"), 1
    )
    assert {"ingest", "connectome_collect", *AFTER_STORE} <= set(jobs)
    assert all(n == 1 for n in jobs.values()), jobs


def test_an_edited_bold_or_derivative_reruns_only_its_subject(done) -> None:
    """A file replaced in place (same name) reruns its subject; nothing else per subject."""
    repo, workdir, cfg = done
    dataset = cfg["datasets"]["hcplike"]
    bold = Path(dataset["path"], "sub-00001", "func", "sub-00001_task-rest_run-1_bold.nii.gz")
    st = bold.stat()
    os.utime(bold, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        edited = plan(repo, workdir, cfg)
    finally:
        os.utime(bold, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert plan(repo, workdir, cfg) == {}  # the recorded stats again: nothing to do
    # fMRIPrep reads the existing derivatives (fmriprep.runner: existing): those count too.
    derivatives = Path(dataset["derivatives"])
    assert not any(derivatives.iterdir())  # placeholders: the fixture wrote none
    func = derivatives / "sub-00002" / "func"
    func.mkdir(parents=True)
    (func / "sub-00002_task-rest_run-1_desc-confounds_timeseries.tsv").write_text("a\n1\n")
    try:
        rerun = plan(repo, workdir, cfg)
    finally:
        shutil.rmtree(derivatives / "sub-00002")
    assert cfg["fmriprep"]["runner"] == "existing"
    for jobs in (edited, rerun):
        assert {k: jobs.get(k) for k in ("fmriprep", "connectome_run")} == dict.fromkeys(
            ("fmriprep", "connectome_run"), 1
        )
        assert {"connectome_collect", *AFTER_STORE} <= set(jobs)
        assert all(n == 1 for n in jobs.values()), jobs
    assert "ingest" in edited and "ingest" not in rerun  # ingest indexes the raw data


def test_the_readme_recipe_gives_a_copy_its_times_back(done) -> None:
    """Raw data copied without its times (``cp -r``) reruns every subject; the README's recipe
    for giving them back, run as written, leaves nothing to rerun. Folders count: their times
    are how the index sees a file added or removed, so the files' times alone do not suffice
    (the recipe was ``touch -r <original> <copy>``, per file)."""
    repo, workdir, cfg = done
    raw = Path(cfg["datasets"]["hcplike"]["path"])
    original = raw.with_name("rawdata.orig")
    readme = (ROOT / "README.md").read_text()
    (recipe,) = [c for c in re.findall(r"`([^`]*touch -r[^`]*)`", readme) if "<copy>" in c]
    raw.rename(original)  # as it was (times included) after the test
    try:
        subprocess.run(["cp", "-r", str(original), str(raw)], check=True)
        assert plan(repo, workdir, cfg).get("fmriprep") == 3  # every subject's, its times new
        for path in raw.rglob("*"):  # the files' times alone
            if path.is_file():
                shutil.copystat(original / path.relative_to(raw), path)
        assert plan(repo, workdir, cfg).get("fmriprep") == 3
        command = recipe.replace("<original>", shlex.quote(str(original)))
        command = command.replace("<copy>", shlex.quote(str(raw)))
        subprocess.run(["bash", "-c", command], check=True)
        assert plan(repo, workdir, cfg) == {}
    finally:
        shutil.rmtree(raw, ignore_errors=True)
        original.rename(raw)
    assert plan(repo, workdir, cfg) == {}


def test_snakemake_report_carries_the_captions(done) -> None:
    repo, workdir, cfg = done
    config = write_config(workdir, cfg)
    html = workdir / "report.html"
    proc = snakemake(repo, workdir, "--configfile", str(config), "--report", str(html))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = html.read_text()
    for caption in ("index.rst", "summary.rst", "metrics.rst"):
        first_line = (repo / "workflow" / "report" / caption).read_text().splitlines()[0]
        assert first_line.split(":")[0][:40] in text, f"caption {caption} not in the report"
    # Each table embedded with its own type: the Parquet table was text/plain (a download
    # named .parquet that browsers offered to show as text).
    assert "data:application/vnd.apache.parquet;charset=utf8;filename=metrics.parquet;" in text
    assert "data:text/tab-separated-values;charset=utf8;filename=summary.tsv;" in text
    assert "Could not detect mimetype" not in proc.stdout + proc.stderr
