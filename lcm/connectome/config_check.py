"""The connectome stage's own checks of a whole configuration, run when it loads.

:class:`~lcm.connectome.settings.DenoiseSettings` and
:class:`~lcm.connectome.settings.ConnectomeSettings` check values the schema cannot relate (a
band-pass whose high_pass is not below its low_pass, a scrubbing strategy with both thresholds
null, a window step without a window length). The connectome jobs build them, hours into a
run; the workflow (``workflow/rules/common.smk``) and ``lcm run`` call :func:`check_config` so
that ``snakemake -n`` says it first, naming the config file and the key.
"""

from __future__ import annotations

from typing import Any

from lcm.config import dataset_denoise
from lcm.connectome.settings import ConnectomeSettings, DenoiseSettings


def check_config(config: dict[str, Any], source: str) -> None:
    """Build the denoise settings (the section's, each dataset's) and the connectome's.

    Parameters
    ----------
    config : dict
        A validated configuration (defaults filled).
    source : str
        Where it comes from (its file), first in messages.

    Raises
    ------
    ConfigError
        ``<source>: denoise: ...``, ``<source>: datasets.<name>.denoise: ...`` (the section
        with the dataset's overrides) or ``<source>: connectome: ...``.
    """
    DenoiseSettings.from_dict(config["denoise"], source=f"{source}: denoise")
    for name, ds in sorted(config["datasets"].items()):
        if ds.get("denoise"):
            DenoiseSettings.from_dict(
                dataset_denoise(config, name), source=f"{source}: datasets.{name}.denoise"
            )
    ConnectomeSettings.from_dict(config["connectome"], source=f"{source}: connectome")
