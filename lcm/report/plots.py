"""Figures of the report, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Figures are built from :class:`matplotlib.figure.Figure` directly (no ``pyplot`` state), so the
module works headless, in threads and in tests, and never opens a window.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from lcm.report.tables import first_permutation

_FPR_GRID = np.linspace(0.0, 1.0, 101)
_METRIC_NAMES = {"auc": "AUC", "balanced_accuracy": "balanced accuracy", "f1": "F1"}


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render ``fig`` to PNG bytes (no timestamp in the metadata, so output is reproducible)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


# Okabe & Ito's colour-blind-safe palette (https://jfly.uni-koeln.de/color/), black first.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}
_CONTROL_GREY = "#999999"


@dataclass(frozen=True)
class ModelStyle:
    """How one model is drawn in every figure: colour, line style and marker."""

    color: str
    linestyle: str | tuple[int, tuple[int, ...]]
    marker: str

    def kwargs(self) -> dict:
        """Keyword arguments of ``Axes.plot``."""
        return {"color": self.color, "linestyle": self.linestyle, "marker": self.marker}


# One row per model of lcm.evaluate.registry (a test keeps the two in step), so a model looks the
# same in every figure whichever models a task ran. LCM variants solid, each its own colour and
# marker (never two told apart by red against green alone); baselines dashed or dash-dotted;
# the shuffled-label controls grey and dotted. Eight colours for twelve models: a colour two
# models share comes with another line style and marker.
_OI = OKABE_ITO
MODEL_STYLES: dict[str, ModelStyle] = {
    "lcm": ModelStyle(_OI["vermillion"], "-", "o"),
    "lcm-no-pseudo": ModelStyle(_OI["blue"], "-", "s"),
    "lcm-ssl": ModelStyle(_OI["reddish purple"], "-", "^"),
    "lcm-scratch": ModelStyle(_OI["bluish green"], "-", "D"),
    "logreg": ModelStyle(_OI["sky blue"], "--", "v"),
    "svm": ModelStyle(_OI["orange"], "--", "<"),
    "ridge": ModelStyle(_OI["black"], "--", ">"),
    "tangent-logreg": ModelStyle(_OI["sky blue"], "-.", "P"),
    "cpm": ModelStyle(_OI["orange"], "-.", "X"),
    "bei-linear": ModelStyle(_OI["black"], "-.", "h"),
    "shuffled-labels": ModelStyle(_CONTROL_GREY, ":", "x"),
    "shuffled-lcm": ModelStyle(_CONTROL_GREY, ":", "+"),
}
# A model registered by a user: a line style no built-in model uses, colour and marker from its
# name's digest (not ``hash``, which Python salts per process), so it too is fixed across figures.
_FALLBACK_LINESTYLE = (0, (5, 1, 1, 1, 1, 1))
_FALLBACK_MARKERS = ("*", "p", "d", "H", "8")


def model_style(model: str) -> ModelStyle:
    """The fixed style of ``model`` (:data:`MODEL_STYLES`, else one derived from its name)."""
    if model in MODEL_STYLES:
        return MODEL_STYLES[model]
    digest = int.from_bytes(hashlib.sha256(model.encode()).digest()[:8], "big")
    colours = list(OKABE_ITO.values())
    colour = colours[digest % len(colours)]
    marker = _FALLBACK_MARKERS[(digest // len(colours)) % len(_FALLBACK_MARKERS)]
    return ModelStyle(colour, _FALLBACK_LINESTYLE, marker)


def mean_roc(predictions: pd.DataFrame) -> tuple[np.ndarray, float]:
    """Mean out-of-fold ROC curve over seeds, on a fixed false-positive-rate grid.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Rows of one task, model and label fraction (columns ``seed, y_true, prediction``).

    Returns
    -------
    (tpr, auc)
        True-positive rates at ``numpy.linspace(0, 1, 101)`` and the mean pooled AUC; NaN
        where a seed's predictions hold one class only.
    """
    tprs, aucs = [], []
    for _, group in predictions.groupby("seed"):
        y, p = group["y_true"].to_numpy(), group["prediction"].to_numpy()
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        curve = np.interp(_FPR_GRID, fpr, tpr)
        curve[0] = 0.0
        tprs.append(curve)
        aucs.append(roc_auc_score(y, p))
    if not tprs:
        return np.full_like(_FPR_GRID, np.nan), float("nan")
    return np.mean(tprs, axis=0), float(np.mean(aucs))


def roc_figure(predictions: pd.DataFrame, task: str) -> Figure:
    """ROC curves of every model, one panel per label fraction.

    Parameters
    ----------
    predictions : pandas.DataFrame
        The tidy predictions table (any tasks; rows of ``task`` are used).
    task : str
    """
    rows = predictions[predictions["task"] == task]
    fractions = sorted(rows["label_fraction"].unique())
    fig = Figure(figsize=(3.6 * len(fractions) + 0.4, 3.8), layout="constrained")
    axes = fig.subplots(1, len(fractions), squeeze=False)[0]
    for ax, fraction in zip(axes, fractions, strict=True):
        at = rows[rows["label_fraction"] == fraction]
        for model, group in at.groupby("model", sort=True):
            tpr, auc = mean_roc(group)
            name = first_permutation(str(model))
            style = model_style(str(model)).kwargs()
            label = f"{name} (pooled AUC {auc:.2f})"
            ax.plot(_FPR_GRID, tpr, label=label, markevery=10, markersize=4, **style)
        ax.plot([0, 1], [0, 1], color="0.8", linewidth=0.8)
        ax.set(
            title=f"label fraction {fraction:g}",
            xlabel="false-positive rate",
            ylabel="true-positive rate",
            xlim=(0, 1),
            ylim=(0, 1),
            aspect="equal",
        )
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{task}: out-of-fold ROC (mean over seeds)")
    return fig


def fraction_figure(summary: pd.DataFrame, task: str, metric: str = "auc") -> Figure:
    """``metric`` against label fraction per model, with its 95 % interval band.

    Parameters
    ----------
    summary : pandas.DataFrame
        The summary table (``task, model, label_fraction, metric, mean, ci_low, ci_high, n``).
    task : str
    metric : str, default "auc"
    """
    rows = summary[(summary["task"] == task) & (summary["metric"] == metric)]
    fig = Figure(figsize=(5.2, 3.8), layout="constrained")
    ax = fig.subplots()
    for model, group in rows.groupby("model", sort=True):
        group = group.sort_values("label_fraction")
        x = group["label_fraction"].to_numpy()
        line = ax.plot(x, group["mean"], label=model, **model_style(str(model)).kwargs())[0]
        ax.fill_between(x, group["ci_low"], group["ci_high"], color=line.get_color(), alpha=0.15)
    if metric in ("auc", "balanced_accuracy"):
        ax.axhline(0.5, color="0.8", linewidth=0.8)
    fractions = sorted(rows["label_fraction"].unique())
    if fractions and fractions[-1] / fractions[0] >= 10:
        ax.set_xscale("log")
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.minorticks_off()
    name = _METRIC_NAMES.get(metric, metric.replace("_", " "))
    ax.set(
        xlabel="label fraction of the training fold",
        ylabel=name,
        title=f"{task}: {name} vs label fraction (95 % CI)",
    )
    ax.legend(fontsize=7)
    return fig


def loss_figure(history: pd.DataFrame) -> Figure:
    """Pretraining loss curves (``loss_*`` columns) and the learning rate.

    ``train_eval_loss`` (solid) and ``val_loss`` (dashed) are one quantity, the mean
    per-variable BEI loss, on training and held-out runs, drawn alike; ``loss_total`` is the
    weighted training objective (with the self-supervised term), labelled as such.
    """
    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    ax_loss, ax_lr = fig.subplots(1, 2, width_ratios=[2, 1])
    epoch = history["epoch"].to_numpy()
    monitored = {
        "train_eval_loss": ("-", "mean BEI loss, training runs"),
        "val_loss": ("--", "mean BEI loss, held-out runs"),
    }
    losses = [c for c in history.columns if c.startswith("loss_") or c in monitored]
    for col in losses:
        if col == "loss_total":
            style: dict = {
                "linewidth": 2.2,
                "color": "black",
                "label": "training objective (weighted, + SSL)",
            }
        elif col in monitored:
            line, label = monitored[col]
            style = {"linewidth": 2.2, "color": "crimson", "linestyle": line, "label": label}
        else:
            style = {"linewidth": 1, "label": col.removeprefix("loss_")}
        ax_loss.plot(epoch, history[col], **style)
    values = history[losses].to_numpy(dtype=float)
    if losses and np.nanmin(values) > 0:
        ax_loss.set_yscale("log")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="pretraining losses")
    ax_loss.legend(fontsize=7, ncol=2)
    if "lr" in history:
        ax_lr.plot(epoch, history["lr"], color="tab:purple")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    return fig


def fd_histogram(qc: pd.DataFrame) -> Figure:
    """Histogram of mean framewise displacement, included and excluded runs stacked."""
    fig = Figure(figsize=(5.2, 3.4), layout="constrained")
    ax = fig.subplots()
    fd = pd.to_numeric(qc["mean_fd"], errors="coerce")
    included = qc["included"].to_numpy(dtype=bool)
    finite = fd.notna().to_numpy()
    data = [fd[included & finite].to_numpy(), fd[~included & finite].to_numpy()]
    if finite.any():
        bins = np.histogram_bin_edges(fd[finite].to_numpy(), bins=20)
        ax.hist(
            data,
            bins=bins,
            stacked=True,
            label=["included", "excluded"],
            color=["tab:blue", "tab:red"],
        )
        ax.legend(fontsize=7)
    ax.set(xlabel="mean framewise displacement (mm)", ylabel="runs", title="head motion")
    return fig


def scrubbing_figure(scrub: pd.DataFrame) -> Figure:
    """Per dataset: % of volumes scrubbed and volumes retained, one point per included run.

    Parameters
    ----------
    scrub : pandas.DataFrame
        :func:`lcm.report.tables.scrubbing_table` (``dataset, retained, pct_scrubbed``).
        A run's n/a ``pct_scrubbed`` (nothing could be scrubbed) is no point; a dataset
        without any is marked n/a.
    """
    datasets = sorted(scrub["dataset"].unique())
    fig = Figure(figsize=(max(5.2, 1.1 * len(datasets) + 3.0), 3.6), layout="constrained")
    ax_pct, ax_kept = fig.subplots(1, 2)
    jitter = np.random.default_rng(0)  # fixed: the page is reproducible
    for ax, col, label in (
        (ax_pct, "pct_scrubbed", "volumes scrubbed (%)"),
        (ax_kept, "retained", "volumes retained"),
    ):
        values = [scrub.loc[scrub["dataset"] == d, col].to_numpy(float) for d in datasets]
        values = [v[np.isfinite(v)] for v in values]
        ax.boxplot(values, showfliers=False, widths=0.6)
        for i, v in enumerate(values, start=1):
            ax.scatter(i + jitter.uniform(-0.18, 0.18, v.size), v, s=6, alpha=0.5, color="tab:blue")
            if not v.size:  # not scrubbed (ROI series denoised elsewhere): no 0 % to plot
                ax.text(i, 0.5, "n/a", transform=ax.get_xaxis_transform(), ha="center")
        ax.set_xticks(range(1, len(datasets) + 1), datasets, rotation=30, ha="right")
        ax.set(ylabel=label, title=label + " per run")
    ax_pct.set_ylim(bottom=0)
    return fig


def parcel_figure(emptiness: pd.DataFrame, top: int = 25) -> Figure:
    """Parcels most often empty (poor coverage or flat signal), share of included runs.

    Parameters
    ----------
    emptiness : pandas.DataFrame
        :func:`lcm.report.tables.parcel_emptiness` (``dataset, parcel, share``), not empty.
    top : int
        Parcels shown (the most often empty over all datasets).
    """
    worst = emptiness.groupby("parcel")["share"].max().sort_values(ascending=False).head(top)
    parcels = list(worst.index)[::-1]  # most often empty at the top
    datasets = sorted(emptiness["dataset"].unique())
    fig = Figure(figsize=(6.4, 1.2 + 0.22 * len(parcels)), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / len(datasets)
    y = np.arange(len(parcels))
    for k, dataset in enumerate(datasets):
        share = emptiness[emptiness["dataset"] == dataset].set_index("parcel")["share"]
        ax.barh(y + k * height, [share.get(p, 0.0) for p in parcels], height=height, label=dataset)
    ax.set_yticks(y + 0.4 - height / 2, parcels, fontsize=7)
    ax.set(
        xlabel="share of included runs where the parcel is empty",
        xlim=(0, 1),
        title="parcel coverage: most often empty parcels",
    )
    if len(datasets) > 1:
        ax.legend(fontsize=7)
    return fig
