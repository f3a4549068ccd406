"""Brain map of a query's attention over ROIs (e.g. the diagnosis query), for the report.

A glass-brain-like view without a template download: three orthogonal projections (sagittal,
coronal, axial) of the ROI centroids in MNI millimetres, each ROI a disc whose colour and size
grow with its mean attention. Centroids come from the atlas (its labels' x, y, z, else its
image: ``Atlas.centroids``); an atlas given by its labels alone has none, and its section lists
the ROIs attended most without a map.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lcm.atlas import Atlas
from lcm.model.export_tables import read_attention_table
from lcm.report.plots import figure_png, wrapped

# (x-axis, y-axis) coordinate indices, axis labels and the ends of the horizontal axis (MNI
# is RAS: x grows to the right, y to the front; drawn as seen from the left, the back, above).
_VIEWS = (
    ("sagittal", 1, 2, "y (mm)", "z (mm)", ("P", "A")),
    ("coronal", 0, 2, "x (mm)", "z (mm)", ("L", "R")),
    ("axial", 0, 1, "x (mm)", "y (mm)", ("L", "R")),
)


def mean_query_attention(attention: pd.DataFrame, query: str, roi_names: list[str]) -> np.ndarray:
    """Mean attention of ``query`` over runs, per ROI, from an ``lcm embed --attention-out`` table.

    Parameters
    ----------
    attention : pandas.DataFrame
        The attention table: a ``query`` column and one column per ROI, one row per run and
        query.
    query : str
        The query token's name.
    roi_names : list of str
        The ROI columns to average, in the order wanted.

    Returns
    -------
    numpy.ndarray, shape (len(roi_names),)
        The mean weight per ROI.

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


def placed(centroids: np.ndarray) -> np.ndarray:
    """Which ROIs have coordinates to draw: a row of ``centroids`` ``[R, 3]`` with no NaN.

    None has for an atlas given by its labels alone (no image, no ``x, y, z``).

    Parameters
    ----------
    centroids : numpy.ndarray, shape (R, 3)
        ROI centroids in millimetres; NaN where unknown. Any array of ``3 * R`` values is read
        as ``R`` rows.

    Returns
    -------
    numpy.ndarray of bool, shape (R,)
    """
    centroids = np.asarray(centroids, dtype=float).reshape(-1, 3)
    return np.isfinite(centroids).all(axis=1)


def attention_brain_figure(
    weights: np.ndarray,
    centroids: np.ndarray,
    title: str,
    roi_names: list[str] | None = None,
    top: int = 5,
    scale: tuple[float, float] | None = None,
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
    scale : (float, float), optional
        Colour range in attention / uniform; the largest also sizes the discs. Pass one range to
        every query of a task so that their maps compare; the map's own range by default.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        ``weights`` and ``centroids`` differ in length, or no centroid is finite (a labels-only
        atlas: callers check :func:`placed` first and say why there is no map).
    """
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(centroids),):
        raise ValueError(f"weights {weights.shape} vs {len(centroids)} centroids")
    ok = placed(centroids)
    if not ok.any():
        raise ValueError("no ROI has coordinates: nothing to draw (see placed())")
    order = np.argsort(weights[ok])  # strongest drawn last, on top
    xyz, w = centroids[ok][order], weights[ok][order]
    uniform = 1.0 / len(weights)  # attention spread evenly over the ROIs
    low, high = scale if scale is not None else (w.min() / uniform, w.max() / uniform)
    size = 15 + 250 * np.clip(w / uniform / max(high, 1e-12), 0, 1)
    # Constrained layout: a view's y label never runs into its neighbour, the colour bar fits.
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (name, a, b, xlabel, ylabel, ends) in zip(axes, _VIEWS, strict=True):
        points = ax.scatter(
            xyz[:, a],
            xyz[:, b],
            c=w / uniform,
            s=size,
            cmap="magma_r",
            vmin=low,
            vmax=high,
            edgecolors="0.3",
            linewidths=0.3,
        )
        ax.set_title(name, fontsize=9)
        for x, end in zip((0.0, 1.0), ends, strict=True):  # orientation marks above the corners
            ax.text(x, 1.01, end, transform=ax.transAxes, ha="center", va="bottom", weight="bold")
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
    lines = [wrapped(line, fig.get_figwidth(), 10) for line in (title + subtitle).split("\n")]
    # A task or ROI name is plain text: a "$" in it is not mathtext.
    fig.suptitle("\n".join(lines), fontsize=10, parse_math=False)
    return fig


def _task_name(path: str | Path, label: dict[str, Any] | None) -> str:
    """``X`` of a ``task-X_attention.parquet`` file name, else the diagnosis name."""
    stem = Path(path).name
    if stem.startswith("task-") and "_" in stem:
        return stem[len("task-") : stem.index("_")]
    return str(label["name"]) if label else stem


def attention_section(paths: list[str | Path], atlas: Atlas) -> str:
    """HTML section: for each task, the diagnosis queries' mean attention on the brain.

    Parameters
    ----------
    paths : list of path-like
        ``lcm embed --attention-out`` tables of finetuned checkpoints (one per task).
    atlas : Atlas
        The atlas of the connectomes; ROI centroids are matched to the tables by name.

    Returns
    -------
    str
        A self-contained fragment (figures as base64 PNG); empty when ``paths`` is empty. A task
        whose ROIs have no coordinates (a labels-only atlas) gets its top ROIs and a note saying
        why there is no map.
    """
    # Imported here: lcm.report.html does not import this module, so no cycle.
    from lcm.report.html import img_tag

    if not paths:
        return ""
    by_name = dict(zip(atlas.labels["name"].astype(str), atlas.centroids(), strict=True))
    parts = [
        '<h2 id="attention">Diagnosis queries: attention over ROIs</h2>',
        '<p class="note">Cross-attention of each diagnosis query of the finetuned model (last '
        "decoder layer, heads averaged) over the ROI tokens, averaged over the task's runs; "
        "colour and size give the attention relative to a uniform spread (1x), on one scale for "
        "the queries of a task; L and R mark the left and right hemispheres. A map shows "
        "where the model looks, not a causal effect.</p>",
    ]
    for path in paths:
        frame, rois, label = read_attention_table(path)
        task = _task_name(path, label)
        parts.append(f"<h3>Task: {html.escape(task)}</h3>")
        if label is None:
            parts.append(f'<p class="note">{html.escape(str(path))}: not a finetuned model.</p>')
            continue
        if not rois:
            parts.append(f'<p class="note">{html.escape(str(path))}: no ROI columns.</p>')
            continue
        missing = [r for r in rois if r not in by_name]
        if missing:
            parts.append(
                f'<p class="warn">ROIs {html.escape(str(missing[:5]))} are not regions of atlas '
                f"{html.escape(atlas.name)}: no brain map.</p>"
            )
            continue
        centroids = np.array([by_name[r] for r in rois], dtype=float)
        # A labels-only atlas places no ROI: the weights are still listed, the map is not drawn.
        drawn = bool(placed(centroids).any())
        parts.extend(_unplaced_note(centroids, atlas.name))
        if label.get("probe"):
            parts.extend(_probe_map(frame, rois, centroids, task, label["probe"], drawn))
            continue
        queries = {}
        for level in label["levels"]:
            query = f"{label['name']}={level}"
            try:
                queries[query] = mean_query_attention(frame, query, rois)
            except KeyError:  # no run of the task was embedded with this query
                queries[query] = None
        # One colour range for the task's queries, so that their maps compare.
        drawn_weights = np.array([w for w in queries.values() if w is not None]) * len(rois)
        scale = (drawn_weights.min(), drawn_weights.max()) if drawn_weights.size else None
        for query, weights in queries.items():
            if weights is None:
                parts.append(f'<p class="note">No run attends with {html.escape(query)}.</p>')
                continue
            n_runs = int((frame["query"] == query).sum())
            if drawn:
                title = f"{task}: query '{query}' ({n_runs} runs)"
                fig = attention_brain_figure(weights, centroids, title, roi_names=rois, scale=scale)
                alt = _map_alt(f"{task}: mean attention of query {query}", weights, rois, n_runs)
                parts.append(img_tag(figure_png(fig), alt))
            top = np.argsort(weights)[::-1][:5]
            listed = ", ".join(f"{rois[i]} ({weights[i] * len(rois):.1f}x)" for i in top)
            parts.append(
                f'<p class="note">Top ROIs of {html.escape(query)}: {html.escape(listed)}.</p>'
            )
    return "\n".join(parts)


def _map_alt(what: str, weights: np.ndarray, rois: list[str], n_runs: int | None = None) -> str:
    """Alt text of a brain map: what it shows, over how many ROIs and runs, its strongest ROI."""
    best = int(np.argmax(weights))
    runs = f", mean of {n_runs} runs" if n_runs is not None else ""
    return (
        f"{what} over {len(rois)} ROIs{runs}, on sagittal, coronal and axial projections of "
        f"their centroids; most attended {rois[best]} ({weights[best] * len(rois):.1f}x a "
        "uniform spread). The top ROIs are listed below the map."
    )


def _unplaced_note(centroids: np.ndarray, atlas: str) -> list[str]:
    """A note when some or all ROIs have no coordinates (not drawn), else nothing."""
    where = placed(centroids)
    if where.all():
        return []
    if not where.any():
        return [
            f'<p class="note">No brain map: atlas {html.escape(atlas)} has no ROI coordinates '
            "(it is given by its labels alone, with neither an image nor x, y, z columns); the "
            "ROIs attended most are listed instead.</p>"
        ]
    return [
        f'<p class="note">{int((~where).sum())} of {len(where)} ROIs of atlas '
        f"{html.escape(atlas)} have no coordinates (no x, y, z, or no voxel in its image): "
        "they are not drawn on the map, though listed among the top ROIs.</p>"
    ]


def _probe_map(
    frame: pd.DataFrame,
    rois: list[str],
    centroids: np.ndarray,
    task: str,
    probe: dict[str, Any],
    drawn: bool = True,
) -> list[str]:
    """HTML parts for a linear-probe model: its BEI queries' attention weighted by |coefficient|.

    A probe has no diagnosis query: it reads the pretrained BEI heads (``method: probe``), so
    where it looks is where the queries it leans on look, in proportion to their weights.
    ``drawn`` False (no ROI has coordinates): the top ROIs without the map.
    """
    from lcm.report.html import img_tag

    if probe.get("features") != "bei" or not probe.get("coef"):
        return [
            '<p class="note">This model is a linear probe of the subject embedding (no BEI '
            "heads were pretrained): it has no query, so no attention map.</p>"
        ]
    coef = {q: float(c) for q, c in probe["coef"].items() if (frame["query"] == q).any()}
    total = sum(abs(c) for c in coef.values())
    if total == 0:
        return ['<p class="note">The probe gives every BEI query a weight of 0: no map.</p>']
    weights = sum(abs(c) * mean_query_attention(frame, q, rois) for q, c in coef.items()) / total
    listed = ", ".join(f"{q} {c:+.2f}" for q, c in sorted(coef.items(), key=lambda kv: -abs(kv[1])))
    top = np.argsort(weights)[::-1][:5]
    rois_listed = ", ".join(f"{rois[i]} ({weights[i] * len(rois):.1f}x)" for i in top)
    image = []
    if drawn:
        title = f"{task}: BEI queries weighted by |probe coefficient|"
        fig = attention_brain_figure(weights, centroids, title, roi_names=rois)
        alt = _map_alt(
            f"{task}: attention of the probe's BEI queries by |coefficient|", weights, rois
        )
        image = [img_tag(figure_png(fig), alt)]
    return [
        *image,
        f'<p class="note">The diagnosis is a linear probe of the pretrained BEI heads '
        f"(standardised coefficients: {html.escape(listed)}); the map averages those queries' "
        f"attention in proportion to |coefficient|. Top ROIs: {html.escape(rois_listed)}.</p>",
    ]
