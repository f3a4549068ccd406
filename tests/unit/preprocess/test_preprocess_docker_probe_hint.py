"""The Docker probe's fix, as the user runs fMRIPrep: a workflow job runs again with the workflow
(or by profiles/slurm's retries; a local run sets none), ``lcm fmriprep`` on the command line by
its user: its hint told that user "Snakemake retries the job"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lcm.bids.dataset import setting_names
from lcm.commands.fmriprep import OPTION_NAMES
from lcm.exceptions import ExternalToolError
from lcm.preprocess import fmriprep_run

# How the runner's setting is named (lcm fmriprep's option, the config's key), and the fix's end.
HOW = {
    "command_line": (OPTION_NAMES, "--runner apptainer", "Then run lcm fmriprep again"),
    "rule": (
        None,
        "fmriprep.runner: apptainer",
        "Then run the workflow again (profiles/slurm's retries resubmit a workflow job)",
    ),
}


def _docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """A ``docker`` on PATH that runs ``body`` (a shell script's lines)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "docker"
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


@pytest.mark.parametrize("how", sorted(HOW))
def test_a_daemon_not_reached_is_fixed_as_the_user_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    names, apptainer, again = HOW[how]
    _docker(tmp_path, monkeypatch, "echo 'permission denied' >&2\nexit 1")
    with pytest.raises(ExternalToolError, match="docker cannot reach its daemon") as raised:
        fmriprep_run._check_docker(setting_names("d", names)["runner"])
    assert raised.value.hint == (
        "Start the Docker daemon on this node, or give your user access to it (the docker "
        f"group, or rootless Docker); where Docker is not available, set {apptainer}. "
        f"{again}; no subject was excluded."
    )


@pytest.mark.parametrize("how", sorted(HOW))
def test_a_daemon_not_answering_is_fixed_as_the_user_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    names, _, again = HOW[how]
    _docker(tmp_path, monkeypatch, f"exec {shutil.which('sleep')} 30")
    monkeypatch.setattr(fmriprep_run, "DOCKER_PROBE_TIMEOUT_S", 0.2)
    with pytest.raises(ExternalToolError, match="did not answer") as raised:
        fmriprep_run._check_docker(setting_names("d", names)["runner"])
    assert raised.value.hint == (
        f"Check that the Docker daemon runs on this node (systemctl status docker). {again}."
    )
