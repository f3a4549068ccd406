"""Connectomes by content: a 64-bit digest per run, to find one dataset's runs in another's.

Pretraining records the digests of every run it saw; an evaluation refuses a checkpoint that
saw one of its runs, whatever the dataset was called then (the names alone miss one dataset
configured twice, under two names or two paths to the same files). A digest changes with the
last bit of a value, so pretraining also records a *sketch* of each run (a few of its
correlations, in float16): the same connectomes written out and read back with fewer digits
(relmat TSVs, a CSV export) match a sketch within :data:`SKETCH_TOLERANCE` though not a digest.
A cohort as a whole has one :func:`data_fingerprint` (runs, connectomes, variables, catalogue):
a pretraining checkpoint records its cohort's, and so do the ridge maps fitted on that cohort.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd

# Correlations a sketch keeps per run, and how far apart two of them may be and still be the
# same value: float16 keeps ~3 digits (spacing <= 4.9e-4 in [-1, 1]), a TSV keeps 4 or more.
# Two subjects' matrices agreeing within it at every one of 8 spread edges would be a chance
# of about 0.01 ** 8 per pair of runs.
SKETCH_EDGES = 8
SKETCH_TOLERANCE = 2e-3
# A run whose kept correlations are mostly zero (ROIs without signal, outside the field of
# view) tells nothing: two such runs of different people would agree. It matches no sketch.
SKETCH_MIN_INFORMATIVE = 4


def connectome_digests(fc: np.ndarray) -> np.ndarray:
    """One 64-bit digest per connectome (blake2b of its float32 bytes), in row order.

    A pretrained checkpoint records those of its training runs (``model.json``,
    ``data.run_digests``), so an evaluation finds its runs among them whatever the dataset
    was called when it was pretrained on (the same data under two names).

    Parameters
    ----------
    fc : numpy.ndarray, shape (n_runs, R, R)
        Connectomes, one per run, in row order.

    Returns
    -------
    numpy.ndarray of uint64, shape (n_runs,)
    """
    mats = np.ascontiguousarray(fc, dtype=np.float32).reshape(len(fc), -1)
    values = [
        int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little")
        for row in mats
    ]
    return np.asarray(values, dtype=np.uint64)


def encode_digests(digests: np.ndarray) -> str:
    """Digests (:func:`connectome_digests`), unique and sorted, as one base64 string of 8
    bytes each, for a JSON file.

    Parameters
    ----------
    digests : numpy.ndarray of uint64
        Digests in any order, repeats allowed.

    Returns
    -------
    str
        Base64 of the little-endian 8-byte digests.
    """
    unique = np.unique(np.asarray(digests, dtype=np.uint64))
    return base64.b64encode(unique.astype("<u8").tobytes()).decode("ascii")


def decode_digests(text: str) -> np.ndarray:
    """The inverse of :func:`encode_digests`.

    Parameters
    ----------
    text : str
        What :func:`encode_digests` wrote.

    Returns
    -------
    numpy.ndarray of uint64
        The unique digests, sorted.

    Raises
    ------
    binascii.Error, ValueError
        When ``text`` is not base64 of a whole number of 8-byte digests.
    """
    return np.frombuffer(base64.b64decode(text), dtype="<u8").astype(np.uint64)


def sketch_edges(n_rois: int) -> np.ndarray:
    """Flat indices into an ``(n_rois, n_rois)`` matrix of the upper-triangle edges a sketch
    keeps: :data:`SKETCH_EDGES` of them (all when fewer), drawn once with a fixed seed.

    Parameters
    ----------
    n_rois : int
        Number of ROIs of the matrices.

    Returns
    -------
    numpy.ndarray of int64
        The indices, sorted; the same for every call with the same ``n_rois``.
    """
    rows, cols = np.triu_indices(n_rois, k=1)
    flat = rows * n_rois + cols
    if len(flat) <= SKETCH_EDGES:
        return flat.astype(np.int64)
    pick = np.random.default_rng(20261205).choice(len(flat), SKETCH_EDGES, replace=False)
    return np.sort(flat[pick]).astype(np.int64)


def connectome_sketches(fc: np.ndarray) -> dict[str, Any]:
    """A sketch of each connectome, for a JSON file: the edges kept and their values.

    Parameters
    ----------
    fc : numpy.ndarray, shape (n_runs, n_rois, n_rois)

    Returns
    -------
    dict
        ``{"edges": [flat index, ...], "values": base64 of (n_runs, k) little-endian
        float16}``, runs in row order.
    """
    n_rois = int(np.asarray(fc).shape[-1])
    return encode_sketches(n_rois, sketch_values(fc))


def sketch_values(fc: np.ndarray) -> np.ndarray:
    """The kept correlations of each connectome, ``(n_runs, k)`` float16, runs in row order.

    A cohort streamed in chunks concatenates the chunks' values and encodes them once
    (:func:`encode_sketches`): the same sketch as :func:`connectome_sketches` of all of it.

    Parameters
    ----------
    fc : numpy.ndarray, shape (n_runs, R, R)
        Connectomes, one per run, in row order.
    """
    mats = np.asarray(fc).reshape(len(fc), -1)
    return mats[:, sketch_edges(int(np.asarray(fc).shape[-1]))].astype("<f2")


def encode_sketches(n_rois: int, values: np.ndarray) -> dict[str, Any]:
    """:func:`connectome_sketches`' JSON form of :func:`sketch_values` of ``n_rois`` ROIs.

    Parameters
    ----------
    n_rois : int
        Number of ROIs of the connectomes the values were kept from.
    values : numpy.ndarray, shape (n_runs, k)
        :func:`sketch_values` of them (chunks concatenated in row order).

    Returns
    -------
    dict
        ``{"edges": [...], "values": "<base64>"}``.
    """
    edges = sketch_edges(n_rois)
    data = np.ascontiguousarray(values, dtype="<f2").tobytes()
    return {"edges": edges.tolist(), "values": base64.b64encode(data).decode("ascii")}


def matching_sketches(fc: np.ndarray, recorded: dict[str, Any]) -> np.ndarray:
    """Which runs of ``fc`` equal a run a recorded sketch describes, to within rounding.

    Parameters
    ----------
    fc : numpy.ndarray, shape (n_runs, n_rois, n_rois)
    recorded : dict
        :func:`connectome_sketches` of other runs.

    Returns
    -------
    numpy.ndarray of bool, shape (n_runs,)
        True where every kept edge is within :data:`SKETCH_TOLERANCE` of one recorded run's,
        and at least :data:`SKETCH_MIN_INFORMATIVE` of them are not ~0.
    """
    edges = np.asarray(recorded["edges"], dtype=np.int64)
    mats = np.asarray(fc).reshape(len(fc), -1)
    if len(edges) == 0 or len(fc) == 0 or edges.max() >= mats.shape[1]:
        return np.zeros(len(fc), dtype=bool)  # another matrix size: other connectomes
    seen = np.frombuffer(base64.b64decode(recorded["values"]), dtype="<f2")
    seen = seen.reshape(-1, len(edges)).astype(np.float32)
    mine = mats[:, edges].astype("<f2").astype(np.float32)
    # Sorted on the first edge, each run compares with the few recorded runs near it only.
    order = np.argsort(seen[:, 0], kind="stable")
    seen = seen[order]
    lo = np.searchsorted(seen[:, 0], mine[:, 0] - SKETCH_TOLERANCE, side="left")
    hi = np.searchsorted(seen[:, 0], mine[:, 0] + SKETCH_TOLERANCE, side="right")
    out = np.zeros(len(fc), dtype=bool)
    informative = (np.abs(mine) > 2 * SKETCH_TOLERANCE).sum(axis=1) >= min(
        SKETCH_MIN_INFORMATIVE, len(edges)
    )
    for i in np.flatnonzero((hi > lo) & informative):
        near = np.abs(seen[lo[i] : hi[i]] - mine[i]) <= SKETCH_TOLERANCE
        out[i] = bool(near.all(axis=1).any())
    return out


def data_fingerprint(
    ids: pd.DataFrame,
    fc: np.ndarray,
    variables: pd.DataFrame | None = None,
    catalogue: dict[str, Any] | None = None,
) -> str:
    """sha256 of the run identifiers (as CSV), the float32 FC bytes and, when given, the
    environmental variables (as CSV) and the catalogue that types them.

    The targets are data too: a corrected phenotype file or a recoded variable is another
    training set, so a saved training state of the old one is not resumed.

    Parameters
    ----------
    ids : pandas.DataFrame
        The run identifiers, one row per run.
    fc : numpy.ndarray, shape (n_runs, R, R)
        Their connectomes, in the order of ``ids``.
    variables : pandas.DataFrame, optional
        The environmental variables of those runs.
    catalogue : dict, optional
        The catalogue typing those variables.

    Returns
    -------
    str
        64 hex digits.
    """
    fingerprint = Fingerprint(ids)
    fingerprint.add_connectomes(fc)
    return fingerprint.hexdigest(variables, catalogue)


class Fingerprint:
    """:func:`data_fingerprint` of a cohort whose connectomes arrive in chunks, in row order.

    Pretraining that streams its cohort from the store hashes each chunk as it passes, never
    holding every matrix at once, and gets the fingerprint of the cohort loaded whole.

    Parameters
    ----------
    ids : pandas.DataFrame
        The run identifiers, every run.
    """

    def __init__(self, ids: pd.DataFrame) -> None:
        self._digest = hashlib.sha256()
        self._digest.update(ids.to_csv(index=False).encode())

    def add_connectomes(self, fc: np.ndarray) -> None:
        """Hash the next runs' ``(n, R, R)`` matrices (float32 bytes).

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            The next chunk's connectomes, following the previous chunk's runs.
        """
        self._digest.update(np.ascontiguousarray(fc, dtype=np.float32).tobytes())

    def hexdigest(
        self, variables: pd.DataFrame | None = None, catalogue: dict[str, Any] | None = None
    ) -> str:
        """The fingerprint, once every run's connectome was added, with the variables and
        catalogue (when given).

        Parameters
        ----------
        variables : pandas.DataFrame, optional
            The environmental variables of every run.
        catalogue : dict, optional
            The catalogue typing them.

        Returns
        -------
        str
            64 hex digits, as :func:`data_fingerprint` of the whole cohort gives. More chunks may
            be added after.
        """
        digest = self._digest.copy()
        if variables is not None:
            digest.update(b"variables\0" + variables.to_csv(index=False).encode())
        if catalogue is not None:
            digest.update(
                b"catalogue\0" + json.dumps(catalogue, sort_keys=True, default=str).encode()
            )
        return digest.hexdigest()
