"""The jobs' PYTHONPATH holds lcm and nothing else with it (lcm.workflow.pythonpath)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lcm.workflow.pythonpath import package_pythonpath


def _package(folder: Path) -> Path:
    package = folder / "lcm"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("WHERE = __file__\n")
    return package


def test_a_checkout_puts_its_repository_on_the_path(tmp_path: Path) -> None:
    package = _package(tmp_path / "repo")
    assert package_pythonpath(package, tmp_path / ".snakemake") == (tmp_path / "repo").resolve()
    assert not (tmp_path / ".snakemake").exists()


def test_an_installed_lcm_puts_a_folder_of_it_alone_on_the_path(tmp_path: Path) -> None:
    """site-packages on a conda job's PYTHONPATH shadowed the env's numpy and torch."""
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    package = _package(site)
    (site / "numpy").mkdir()
    (site / "numpy" / "__init__.py").write_text("raise ImportError('the venv numpy')\n")
    path = package_pythonpath(package, tmp_path / ".snakemake")
    assert path == (tmp_path / ".snakemake" / "lcm-package").resolve()
    assert sorted(os.listdir(path)) == ["lcm"]
    assert package_pythonpath(package, tmp_path / ".snakemake") == path  # again: the same link
    code = "import lcm, numpy; print(lcm.WHERE); print(numpy.__file__)"
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert Path(out[0]).resolve() == (package / "__init__.py").resolve()
    assert "site-packages" in out[1] and str(site) not in out[1]  # the interpreter's own numpy
