"""The ``PYTHONPATH`` that makes ``lcm`` importable in every job, and nothing else with it.

Under ``--software-deployment-method conda`` each rule runs its own env's Python, which lacks
``lcm``: the jobs get the folder above the package on ``PYTHONPATH``. For a checkout that is
the repository; for an installed ``lcm`` it was ``site-packages``, whose numpy, torch and
every other package then shadowed the env's pinned ones (a CPU torch over the env's CUDA
build, modules of another Python version). There the jobs get a folder holding a link to the
package alone.
"""

from __future__ import annotations

import os
from pathlib import Path

# Folders of installed packages: put on PYTHONPATH whole, they bring every package in them.
_INSTALL_FOLDERS = ("site-packages", "dist-packages")


def package_pythonpath(package: str | Path, scratch: str | Path) -> Path:
    """The folder to put on ``PYTHONPATH`` so that ``import lcm`` finds ``package``.

    Parameters
    ----------
    package : path-like
        The ``lcm`` package folder (``Path(lcm.__file__).parent``).
    scratch : path-like
        A folder the jobs can read (the workflow's ``.snakemake``), where a folder holding a
        link to the package is made when ``package`` is an installed one.

    Returns
    -------
    pathlib.Path
        The folder above ``package`` for a checkout; else ``<scratch>/lcm-package``, holding
        the link ``lcm`` to ``package`` only.
    """
    package = Path(package).resolve()
    if package.parent.name not in _INSTALL_FOLDERS:
        return package.parent
    shim = Path(scratch).resolve() / "lcm-package"
    link = shim / package.name
    if not (link.is_symlink() and Path(os.readlink(link)) == package):
        shim.mkdir(parents=True, exist_ok=True)
        tmp = shim / f".{package.name}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(package, target_is_directory=True)
        os.replace(tmp, link)  # one link, whole, whichever process makes it last
    return shim
