"""The ``data`` record of a checkpoint's ``model.json``: the runs and subjects it was trained on.

One format for pretrained and finetuned checkpoints alike, read by ``lcm embed`` (which runs
the checkpoint trained on: :func:`lcm.model.export.pretraining_roles`), ``lcm evaluate`` (a
pretraining that saw a task's test subjects), ``lcm model-info`` and the report's provenance
section:

- ``datasets``: the dataset names of the runs, sorted;
- ``n_runs``, ``n_subjects``: how many runs (or windows) and subjects (``dataset/subject``);
- ``heldout_subjects``: subjects whose runs were kept out of the training (they chose the
  epoch or were reported on), sorted; empty for a finetuned model, trained on all it was given;
- ``run_digests``: every run by content (:func:`lcm.io.run_digests.encode_digests`), so that
  the same connectomes under another dataset name are recognised;
- ``run_sketches``: the same up to rounding (:func:`lcm.io.run_digests.connectome_sketches`).

``lcm pretrain`` (:mod:`lcm.train.pretrain`) writes it with :func:`training_data` (from the
digests its streamed scan computed, where the connectomes are not in memory) and adds
``selection_subjects`` when held-out subjects chose the epoch. A finetuned checkpoint keeps
the record of the checkpoint it started from as ``pretrained_data``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lcm.io.run_digests import connectome_digests, connectome_sketches, encode_digests


def training_data(
    groups: Sequence[str] | np.ndarray,
    fc: np.ndarray | None,
    heldout: Sequence[str] = (),
    *,
    digests: np.ndarray | None = None,
    sketches: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``data`` record of a model trained on the runs ``fc`` of the subjects ``groups``.

    Parameters
    ----------
    groups : sequence of str, length n
        Each run's subject as ``dataset/subject`` (``Cohort.groups``).
    fc : numpy.ndarray, shape (n, R, R), or None
        The runs' connectomes, in the same order; None where ``digests`` and ``sketches``
        were computed already (a streamed cohort's scan: its connectomes are not in memory).
    heldout : sequence of str, default ()
        The subjects (``dataset/subject``) kept out of the training, among ``groups``.
    digests : numpy.ndarray, optional
        :func:`lcm.io.run_digests.connectome_digests` of the runs, when ``fc`` is None.
    sketches : dict, optional
        :func:`lcm.io.run_digests.connectome_sketches` of the runs, when ``fc`` is None.

    Returns
    -------
    dict
        JSON-serialisable: ``datasets``, ``n_runs``, ``n_subjects``, ``heldout_subjects``,
        ``run_digests``, ``run_sketches`` (see the module's docstring).

    Raises
    ------
    ValueError
        ``groups`` and the runs of different lengths, or neither ``fc`` nor both of
        ``digests`` and ``sketches``.
    """
    groups = np.asarray(groups, dtype=str)
    if fc is not None:
        digests, sketches = connectome_digests(fc), connectome_sketches(fc)
    if digests is None or sketches is None:
        raise ValueError("training_data needs the connectomes, or their digests and sketches")
    if len(groups) != len(digests):
        raise ValueError(f"{len(groups)} subject keys for {len(digests)} runs")
    return {
        "datasets": sorted({g.split("/", 1)[0] for g in groups.tolist()}),
        "n_runs": len(groups),
        "n_subjects": len(np.unique(groups)),
        "heldout_subjects": sorted(np.unique(np.asarray(heldout, dtype=str)).tolist()),
        "run_digests": encode_digests(digests),
        "run_sketches": sketches,
    }
