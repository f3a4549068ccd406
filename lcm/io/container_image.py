"""The check of a container image reference that needs no container tool.

Apptainer runs a local image file or pulls a ``scheme://`` URI (``docker://``, ``library://``,
``oras://``); a bare Docker name such as ``nipreps/fmriprep:25.2.7`` (the default image, made for
the docker runner) is neither, and each subject's fMRIPrep job failed on it after queueing.
The config (when it loads) and ``lcm fmriprep`` (``--settings-only`` too) refuse it first.
"""

from __future__ import annotations

import re
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
