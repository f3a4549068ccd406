"""Loading the atlas that the ``--atlas*`` options name (:mod:`lcm.commands._atlas` defines them).

Apart from the option definitions so that verbs which only name an atlas (the store partition of
evaluate, pretrain, ingest ...) do not reach nibabel and nilearn: each stage's conda env holds
what its verb's modules import (tests/workflow/test_workflow_envs.py).
"""

from __future__ import annotations

import argparse

from lcm.atlas import Atlas, atlas_from_settings
from lcm.commands._atlas import atlas_names, atlas_settings


def atlas_from_args(args: argparse.Namespace) -> Atlas:
    """The atlas the ``--atlas*`` options name (registry, user files or TemplateFlow).

    Parameters
    ----------
    args : argparse.Namespace
        A verb's parsed options, its ``--atlas*`` options among them
        (:func:`lcm.commands._atlas.add_atlas_arguments` with ``files=True``).

    Returns
    -------
    lcm.atlas.Atlas
    """
    return atlas_from_settings(atlas_settings(args), atlas_names(args))
