"""The check of a container image reference that needs no container tool.

Apptainer runs a local image file or pulls a ``scheme://`` URI (``docker://``, ``library://``,
``oras://``); a bare Docker name such as ``nipreps/fmriprep:25.2.7`` (the default image, made for
the docker runner) is neither, and each subject's fMRIPrep job failed on it after queueing.
The config (when it loads) and ``lcm fmriprep`` (``--settings-only`` too) refuse it first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from lcm.exceptions import ConfigError

# A URI apptainer pulls from: docker://, library://, oras://, shub://, https://...
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S")


def check_apptainer_image(image: str | None, option: str) -> None:
    """Refuse an apptainer image that is neither an existing file nor a ``scheme://`` URI.

    Parameters
    ----------
    image : str or None
        The image as configured (a path is taken relative to the current folder).
    option : str
        The setting to name (``fmriprep.image``, ``--image``).

    Raises
    ------
    ConfigError
        No image, or one that is no file here and no URI.
    """
    if image and (_URI.match(image) or Path(image).is_file()):
        return
    raise ConfigError(
        f"{option} {image!r} is neither an existing image file nor a URI apptainer can pull "
        "(fMRIPrep runner 'apptainer'); every subject's fMRIPrep job would fail on it.",
        hint=f"Set {option} to a local .sif (built on a node with internet: 'apptainer build "
        "fmriprep.sif docker://nipreps/fmriprep:<version>') or to a docker:// URI, "
        f"e.g. docker://{image or 'nipreps/fmriprep:<version>'}.",
    )


# fMRIPrep's version in an image name: nipreps/fmriprep:20.2.7, poldracklab/fmriprep:1.5.8,
# docker://nipreps/fmriprep:23.1.0, fmriprep-20.2.7.sif, fmriprep_24.1.1.sif.
_VERSION = re.compile(r"fmriprep[^/]*?[:_-]v?(\d+)\.(\d+)", re.IGNORECASE)


def check_output_layout(
    image: str | None,
    extra_args: list[str],
    option: str,
    names: Mapping[str, str] | None = None,
) -> None:
    """Refuse a container run whose fMRIPrep writes its outputs below ``<out>/fmriprep/``.

    fMRIPrep's legacy layout (the only one before 20.2, the default of 20.2.x, and
    ``--output-layout legacy`` after) puts ``sub-<label>/`` in ``<out>/fmriprep/``, not in the
    derivatives folder LCM gives it: LCM found no output of any subject, wrote no stamp, and
    launched fMRIPrep again, for hours per subject, at every rerun.

    Parameters
    ----------
    image : str or None
        The image (its tag or file name gives fMRIPrep's version, where it says one).
    extra_args : list of str
        ``fmriprep.extra_args``.
    option : str
        Who checks, named first (the config file, ``lcm fmriprep``).
    names : mapping of str to str, optional
        How the user gave the ``image`` and ``extra_args`` settings, named in the message and
        fix: ``--image`` and ``--extra-args`` to ``lcm fmriprep``'s command-line user
        (:func:`lcm.bids.dataset.setting_names`); None: the config's keys.

    Raises
    ------
    ConfigError
        ``--output-layout legacy``, an fMRIPrep before 20.2, or a 20.2.x without
        ``--output-layout bids``.
    """
    said = {"image": "fmriprep.image", "extra_args": "fmriprep.extra_args", **(names or {})}
    layout = None
    for i, arg in enumerate(extra_args):
        if arg == "--output-layout" and i + 1 < len(extra_args):
            layout = extra_args[i + 1]
        elif arg.startswith("--output-layout="):
            layout = arg.split("=", 1)[1]
    found = _VERSION.search(image or "")
    version = (int(found.group(1)), int(found.group(2))) if found else None
    where = "its outputs in <derivatives>/fmriprep/sub-<label>, not in the derivatives folder"
    if layout == "legacy":
        why = f"{option}: {said['extra_args']} --output-layout legacy makes fMRIPrep write {where}"
        fix = f"Remove --output-layout legacy from {said['extra_args']} (bids is the default)."
    elif version is not None and version < (20, 2):
        why = (
            f"{option}: {said['image']} {image!r} is fMRIPrep {version[0]}.{version[1]}, which "
            f"writes {where}"
        )
        fix = f"Set {said['image']} to fMRIPrep 20.2 or later, e.g. nipreps/fmriprep:25.2.7."
    elif version is not None and version < (21, 0) and layout != "bids":
        why = (
            f"{option}: {said['image']} {image!r} is fMRIPrep {version[0]}.{version[1]}, whose "
            f"default legacy layout writes {where}"
        )
        fix = (
            f"Add --output-layout bids to {said['extra_args']}, or set {said['image']} to "
            "fMRIPrep 21.0 or later."
        )
    else:
        return
    raise ConfigError(
        f"{why}: LCM would find no output of any subject and launch fMRIPrep again at every rerun.",
        hint=fix,
    )
