"""The error boundary of ``lcm``: what a failing verb leaves in its ``--log-file``."""

from __future__ import annotations

import pytest

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
