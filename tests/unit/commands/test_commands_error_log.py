"""The error boundary of ``lcm``: what a failing verb leaves in its ``--log-file``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from lcm.cli import main, setup_logging
from lcm.commands import atlases
from lcm.exceptions import InputDataError


@pytest.fixture
def log_file(tmp_path):
    """A job's log as the workflow's rules give it; the file handler is closed afterwards."""
    yield tmp_path / "job.log"
    setup_logging()


def test_an_unexpected_error_is_logged_with_its_traceback(monkeypatch, log_file) -> None:
    """A bug's traceback went to stderr alone: the rule's log (``--log-file``, where Snakemake
    points the user) stayed empty while the job failed."""

    def crash(args):
        raise ValueError("zero-size array to reduction operation maximum")

    monkeypatch.setattr(atlases, "run", crash)
    assert main(["--log-file", str(log_file), "atlases"]) == 1
    text = log_file.read_text()
    assert "lcm atlases failed with an unexpected error" in text
    assert "Traceback" in text and "in crash" in text
    assert "ValueError: zero-size array to reduction operation maximum" in text


def test_an_lcm_error_keeps_its_exit_code_and_one_line(monkeypatch, log_file) -> None:
    def refuse(args):
        raise InputDataError("no such table")

    monkeypatch.setattr(atlases, "run", refuse)
    assert main(["--log-file", str(log_file), "atlases"]) == InputDataError.exit_code
    text = log_file.read_text()
    assert "no such table" in text and "Traceback" not in text


def test_a_verb_that_fails_to_import_says_so_in_its_log(monkeypatch, log_file) -> None:
    """The verb's module is imported before the log is set up: a missing dependency's
    ModuleNotFoundError reached the console alone, and the job's log stayed empty."""
    monkeypatch.setitem(sys.modules, "lcm.commands.atlases", None)  # its import fails
    assert main(["--log-file", str(log_file), "atlases"]) == 1
    text = log_file.read_text()
    assert "lcm atlases could not start: importing its code failed" in text
    assert "Traceback" in text and "ModuleNotFoundError" in text


@pytest.mark.parametrize(
    ("module", "verb"),
    [
        ("lcm/store/writer.py", "store"),  # a module of the verb (lcm.cli imports it)
        ("lcm/io/provenance.py", "store"),  # a module lcm.cli imports (python -m lcm)
    ],
)
def test_python_m_lcm_logs_an_import_error_to_its_log_file(
    tmp_path: Path, module: str, verb: str
) -> None:
    """As a rule runs it: ``python -m lcm --log-file LOG <verb> ...`` with a module of the
    package importing a module that is not installed."""
    shutil.copytree(ROOT / "lcm", tmp_path / "lcm", ignore=shutil.ignore_patterns("__pycache__"))
    with (tmp_path / module).open("a") as fh:
        fh.write("\nimport nonexistent_mod_xyz  # noqa\n")
    log = tmp_path / "logs" / "store.log"
    log.parent.mkdir()
    log.write_text("")  # as Snakemake leaves it: created, empty
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "lcm", "--log-file", str(log), "--rule", "store", verb, "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    text = log.read_text()
    assert "ModuleNotFoundError: No module named 'nonexistent_mod_xyz'" in text, text
    assert "could not start" in text and str(tmp_path / module) in text
    # Once on the console too (stderr, which Snakemake shows), not twice.
    assert proc.stderr.count("ModuleNotFoundError: No module named") == 1, proc.stderr
