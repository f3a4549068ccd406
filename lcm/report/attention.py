"""Brain map of a query's attention over ROIs (e.g. the diagnosis query), for the report.

A glass-brain-like view without a template download: three orthogonal projections (sagittal,
coronal, axial) of the ROI centroids in MNI millimetres, each ROI a disc whose colour and size
grow with its mean attention. Centroids come from the atlas image (:func:`roi_centroids`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lcm.atlas import Atlas

# (x-axis, y-axis) coordinate indices and axis labels of the three views.
_VIEWS = (("sagittal", 1, 2, "y (mm)", "z (mm)"), ("coronal", 0, 2, "x (mm)", "z (mm)"),
          ("axial", 0, 1, "x (mm)", "y (mm)"))  # fmt: skip


def roi_centroids(atlas: Atlas) -> np.ndarray:
    """Centre of mass of each region in world (MNI mm) coordinates, ``[R, 3]``, labels order."""
    data = np.asarray(atlas.img.dataobj)
    centroids = np.full((atlas.n_rois, 3), np.nan)
    for i, index in enumerate(atlas.labels["index"].to_numpy()):
        voxels = np.argwhere(data == index)
        if len(voxels):
            ijk = np.c_[voxels.mean(axis=0), 1.0]
            centroids[i] = (atlas.img.affine @ ijk)[:3]
    return centroids


def mean_query_attention(attention: pd.DataFrame, query: str, roi_names: list[str]) -> np.ndarray:
    """Mean attention of ``query`` over runs, per ROI, from an ``lcm embed --attention-out`` table.

    Raises
    ------
    KeyError
        ``query`` absent from the table (its ``query`` column lists those present).
    """
    rows = attention[attention["query"] == query]
    if rows.empty:
        raise KeyError(
            f"query {query!r} not in the attention table ({sorted(attention['query'].unique())})"
        )
    return rows[list(roi_names)].to_numpy(dtype=float).mean(axis=0)


def attention_brain_figure(
    weights: np.ndarray,
    centroids: np.ndarray,
    title: str,
    roi_names: list[str] | None = None,
    top: int = 5,
) -> Figure:
    """Three projections of ROI centroids coloured and sized by attention ``weights``.

    Parameters
    ----------
    weights : numpy.ndarray, shape (R,)
        Attention of one query per ROI (e.g. :func:`mean_query_attention`).
    centroids : numpy.ndarray, shape (R, 3)
        MNI mm coordinates (ROIs with NaN are skipped).
    title : str
    roi_names : list of str, optional
        When given, the ``top`` ROIs are listed under the title.
    top : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(centroids),):
        raise ValueError(f"weights {weights.shape} vs {len(centroids)} centroids")
    ok = np.isfinite(centroids).all(axis=1)
    order = np.argsort(weights[ok])  # strongest drawn last, on top
    xyz, w = centroids[ok][order], weights[ok][order]
    uniform = 1.0 / len(weights)  # attention spread evenly over the ROIs
    size = 15 + 250 * np.clip(w / max(w.max(), 1e-12), 0, 1)
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 3)
    for ax, (name, a, b, xlabel, ylabel) in zip(axes, _VIEWS, strict=True):
        points = ax.scatter(xyz[:, a], xyz[:, b], c=w / uniform, s=size, cmap="magma_r",
                            edgecolors="0.3", linewidths=0.3)  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
    fig.colorbar(points, ax=list(axes), shrink=0.8, label="attention / uniform")
    subtitle = ""
    if roi_names is not None:
        best = np.argsort(weights)[::-1][:top]
        subtitle = "\ntop: " + ", ".join(
            f"{roi_names[i]} ({weights[i] / uniform:.1f}x)" for i in best
        )
    fig.suptitle(title + subtitle, fontsize=10)
    return fig
