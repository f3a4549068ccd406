"""The self-contained HTML report: inline CSS, figures embedded as base64 PNG, no external URL.

The page depends only on its inputs: the footer gives the date of the newest input file, not the
time of the run, so rerunning the report on the same inputs gives the same page.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import lcm
from lcm.docstrings import fill_doc
from lcm.evaluate.kinds import recorded_kinds
from lcm.io.provenance import environment, sha256_file
from lcm.io.qc_table import MEAN_FD
from lcm.report import contrasts, findings, motion, plots, verdict
from lcm.report.boxes import WARNING_ATTRIBUTES, box
from lcm.report.dropped import dropped_section
from lcm.report.epoch import checkpoint_epoch, epoch_fragment, lowest_held_out
from lcm.report.label_fractions import label_fraction_fragment, pseudo_label_fragment
from lcm.report.provenance_section import ProvenanceFacts, provenance_section
from lcm.report.reference import reference_fragment, reference_verdict
from lcm.report.tables import (
    exclusion_list,
    metric_name,
    model_kind,
    newest_mtime,
    parcel_emptiness,
    qc_counts,
    qc_reasons,
    scrubbing_table,
    shown_path,
    task_table,
)

MAX_LISTED_EXCLUSIONS = 500
# Longest word a table cell keeps whole (a sha256 has 64 characters, a task name up to 64).
LONG_WORD = 24

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
.table-wrap { overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; }
/* A token too long for any column (a sha256, a 64-character task name) may break anywhere. */
.long { overflow-wrap: anywhere; }
th { background: #f0f0f0; }
tbody th { background: none; font-weight: normal; }
caption { caption-side: top; text-align: left; font-weight: bold; padding: .2em 0; }
tr.kind-baseline > *, tr.kind-control > * { color: #555; font-style: italic; }
img { max-width: 100%; display: block; margin: 1em 0; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.warn { background: #fff3cd; border: 1px solid #e0c060; border-left-width: 4px; padding: .5em 1em; }
.note { color: #555; font-size: 0.9em; }
/* A box of several items is a div holding a list: the margins of a paragraph box, a tight list. */
div.warn, div.note { margin: 1em 0; }
li > div.warn { margin: 0; }
.warn ul, .note ul { margin: .3em 0; }
footer { margin-top: 3em; border-top: 1px solid #bbb; font-size: 0.85em; color: #555; }
nav a { margin-right: 1em; }
@media print {
  /* A4 holds about 718 px: smaller type and cells keep a ten-column table on the page. */
  body { margin: 0; max-width: none; font-size: 10.5pt; }
  th, td { padding: .2em .35em; }
  nav { display: none; }
  .table-wrap { overflow: visible; }
  h1, h2, h3, summary { break-after: avoid; }
  img, figure, tr, li, .warn { break-inside: avoid; }
  /* A folded list or config prints unfolded: paper has no "click to open". */
  details::details-content { content-visibility: visible; display: block; }
  details:not([open]) > :not(summary) { display: block; }
}
"""


@dataclass
class ReportData:
    """Everything the report shows.

    Attributes
    ----------
    metrics : pandas.DataFrame
        Tidy fold metrics (``task, model, label_fraction, seed, fold, metric, value``).
    predictions : pandas.DataFrame
        Out-of-fold predictions (``task, model, label_fraction, seed, fold, dataset, subject,
        site, y_true, prediction``).
    summary : pandas.DataFrame
        Summary with corrected resampled t intervals (:func:`lcm.evaluate.metrics.summarise`).
    history : pandas.DataFrame or None
        Pretraining history (``epoch, loss_total, loss_<var>..., loss_ssl, lr``).
    bei_eval : pandas.DataFrame or None
        BEI held-out table (``variable, kind, metric, model, baseline``).
    qc : pandas.DataFrame or None
        QC tables concatenated, ``included`` as bool.
    inputs : list of pathlib.Path
        Input files, listed with their sha256 in the footer.
    title : str
    headline, control, sites : pandas.DataFrame or None
        :func:`lcm.evaluate.compare.headline_table`, ``control_table``, ``site_table``.
    oracles : dict
        ``task -> oracle`` (:func:`lcm.synth.oracle.ceiling`, with ``scan``: its readout on the
        pipeline's connectomes) of binary tasks on synthetic cohorts.
    task_meta : dict
        ``task -> protocol metadata`` stored by ``lcm evaluate``.
    ssl_history : pandas.DataFrame or None
        History of the self-supervised-only pretraining (``lcm-ssl``).
    ingest : pandas.DataFrame or None
        Ingestion summaries (``dataset, included, reason_code, n_runs, example_path, example``).
    attention_html : str
        Fragment with the attention of the diagnosis queries (empty: section omitted).
    contrasts : pandas.DataFrame or None
        LCM against its ablations (:func:`lcm.evaluate.compare.contrast_table`); None or
        empty: the report says that the ablations and the pretraining gain were not measured.
    motion : dict
        ``task -> AUC of mean FD alone for label 1`` (below 0.5: label 1 moves less;
        :func:`lcm.evaluate.compare.motion_confound`).
    motion_r : dict
        ``task -> Pearson r of the target with mean FD`` of continuous tasks (above 0: higher
        targets move more; :func:`lcm.evaluate.compare.motion_correlation`).
    motion_not_scored : dict
        ``task -> why`` for each task head motion alone could not be scored on
        (:func:`lcm.evaluate.motion.motion_scores`).
    provenance : ProvenanceFacts
        What the inputs' sidecars, the checkpoints' ``model.json`` and the config copies
        record (:func:`lcm.report.provenance_section.collect_provenance`).
    references : dict
        ``task -> tasks.<task>.reference`` (a published range of a metric, its source) of the
        tasks that set one (:mod:`lcm.report.reference`).
    history_checkpoint : dict or None
        The summary of the checkpoint written beside ``history``, one of
        ``provenance.checkpoints`` (:func:`lcm.report.provenance_section.checkpoint_beside`):
        the Pretraining section states its epoch.
    """

    metrics: pd.DataFrame
    predictions: pd.DataFrame
    summary: pd.DataFrame
    history: pd.DataFrame | None = None
    bei_eval: pd.DataFrame | None = None
    qc: pd.DataFrame | None = None
    inputs: list[Path] = field(default_factory=list)
    title: str = "LCM evaluation report"
    headline: pd.DataFrame | None = None
    control: pd.DataFrame | None = None
    sites: pd.DataFrame | None = None
    oracles: dict[str, dict] = field(default_factory=dict)
    task_meta: dict[str, dict] = field(default_factory=dict)
    ssl_history: pd.DataFrame | None = None
    attention_html: str = ""
    ingest: pd.DataFrame | None = None
    contrasts: pd.DataFrame | None = None
    motion: dict[str, float] = field(default_factory=dict)
    motion_r: dict[str, float] = field(default_factory=dict)
    motion_not_scored: dict[str, str] = field(default_factory=dict)
    provenance: ProvenanceFacts = field(default_factory=ProvenanceFacts)
    references: dict[str, dict] = field(default_factory=dict)
    history_checkpoint: dict | None = None


def img_tag(png: bytes, alt: str) -> str:
    """An ``<img>`` embedding ``png`` as a base64 data URI.

    Parameters
    ----------
    png : bytes
        The image (:func:`lcm.report.plots.figure_png`).
    alt : str
        The text a screen reader says instead: what the figure shows, with its key numbers
        (escaped here).

    Returns
    -------
    str
        The tag; the page stays one self-contained file.
    """
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _num(value: float, spec: str) -> str:
    """``value`` formatted for an alt text, ``n/a`` when missing."""
    return "n/a" if pd.isna(value) else format(value, spec)


def table_html(
    frame: pd.DataFrame,
    caption: str,
    row_classes: Sequence[str] | None = None,
    row_headers: int = 0,
) -> str:
    """An escaped HTML table of ``frame`` (floats to 3 decimals, missing as ``n/a``).

    A cell holding a word longer than :data:`LONG_WORD` characters is marked ``long``: the page
    lets only that word break anywhere, so a sha256 or a long task name narrows its column
    instead of pushing the last columns off the page, while other words stay whole.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows to show; its column names are the header.
    caption : str
        What the table holds (plain text, escaped here), read first by a screen reader.
    row_classes : sequence of str, optional
        A class per row.
    row_headers : int, default 0
        Leading columns that name their row (task, label fraction, site...): header cells
        with ``scope="row"``, so a screen reader names the row of each value.

    Returns
    -------
    str
        A ``<table>`` with its caption, in a wrapper that scrolls a table too wide for the
        screen.
    """
    head = "".join(_cell_tag("th", str(c), ' scope="col"') for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cls = f' class="{html.escape(row_classes[i])}"' if row_classes else ""
        cells = "".join(
            _cell_tag("th", _cell(v), ' scope="row"')
            if j < row_headers
            else _cell_tag("td", _cell(v))
            for j, v in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    # The wrapper scrolls a table too wide for the screen instead of clipping its last columns.
    return (
        f'<div class="table-wrap"><table><caption>{html.escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _cell_tag(tag: str, text: str, attrs: str = "") -> str:
    long = ' class="long"' if max(map(len, text.split()), default=0) > LONG_WORD else ""
    return f"<{tag}{attrs}{long}>{html.escape(text)}</{tag}>"


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, bool | np.bool_):  # before float: a flag reads yes/no, not True
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _anchor(name: str) -> str:
    return "task-" + "".join(c if c.isalnum() else "-" for c in name)


@fill_doc
def task_section(data: ReportData, task: str) -> str:
    """Summary table, label-fraction curves and ROC curves of one task.

    Parameters
    ----------
    data : ReportData
        Everything the report shows.
    %(task)s

    Returns
    -------
    str
        An HTML fragment, headed by the task's anchor.
    """
    meta = data.task_meta.get(task, {})
    # AUC or Pearson r by lcm evaluate's record (the rows guess only without one).
    recorded = recorded_kinds({task: meta}).get(task)
    table = task_table(data.summary, task, recorded)
    kinds = set(table["kind"]) if len(table) else set()
    parts = [f'<h2 id="{_anchor(task)}">Task: {html.escape(task)}</h2>']
    if "LCM" in kinds and "baseline" not in kinds:
        parts.append(
            '<p class="warn">No baseline was evaluated for this task: the LCM numbers below '
            "cannot be judged alone. Add <code>logreg</code> to <code>evaluate.models</code>.</p>"
        )
    # By the record too: a binary task without any AUC row (every test fold of one class) left
    # out the test subjects per class, the very note that explains its n/a cells.
    binary = (
        recorded == "binary"
        if recorded is not None
        else ((data.summary["task"] == task) & (data.summary["metric"] == "auc")).any()
    )
    if data.control is not None:
        parts.append(findings.control_fragment(data.control, task, meta))
    parts.append(findings.collapse_fragment(data.metrics, task))
    if binary:  # the oracle is the diagnosis's ceiling
        parts.append(findings.oracle_fragment(data.oracles.get(task)))
        parts.append(motion.motion_fragment(data.motion.get(task), data.summary, task))
        parts.append(findings.test_subjects_note(data.predictions, task, meta.get("levels", ())))
    else:  # a continuous target: motion-fd's Pearson r, and whether higher targets move more
        parts.append(motion.motion_fragment(None, data.summary, task, fd_r=data.motion_r.get(task)))
    parts.append(reference_fragment(data.summary, task, data.references.get(task)))
    parts.append(
        '<p class="note">Mean over folds &times; seeds with 95 % corrected resampled t '
        "confidence intervals (Nadeau &amp; Bengio: the folds and seeds re-test the same "
        "subjects, so the interval does not shrink as seeds are added; one value: no interval); "
        "<i>n</i> = number of fold &times; seed values behind the AUC (Pearson r for a "
        "continuous task), as in <code>summary.tsv</code>: a test fold of one class gives no "
        "AUC; a cell of another metric resting on a different number names its own "
        "(<i>n</i> = &hellip;).</p>"
    )
    parts.append(
        table_html(
            table,
            f"{task}: each model at each label fraction, mean [95% CI]",
            [f"kind-{k}" for k in table["kind"]],
            row_headers=2,
        )
    )
    metric = "auc" if binary else "pearson_r"
    plotted = data.summary[(data.summary["task"] == task) & (data.summary["metric"] == metric)]
    if np.isfinite(pd.to_numeric(plotted["mean"], errors="coerce")).any():
        parts.append(
            img_tag(
                plots.figure_png(plots.fraction_figure(data.summary, task, metric)),
                plots.fraction_alt(data.summary, task, metric),
            )
        )
    else:  # drawn, it was empty axes (and a matplotlib warning)
        parts.append(
            f'<p class="note">No {metric_name(metric)} was measured for this task: no '
            "label-fraction figure.</p>"
        )
    as_run = functools.partial(table_html, caption=f"{task}: label fractions as run", row_headers=1)
    parts.append(label_fraction_fragment(meta, as_run, binary))
    pseudo = functools.partial(table_html, caption=f"{task}: pseudo-labels as run", row_headers=2)
    parts.append(pseudo_label_fragment(meta, pseudo))
    if binary and (data.predictions["task"] == task).any():
        parts.append(
            img_tag(
                plots.figure_png(plots.roc_figure(data.predictions, task)),
                plots.roc_alt(data.predictions, data.summary, task),
            )
        )
        parts.append(findings.roc_caption(data.predictions, data.summary, task))
    elif binary:
        parts.append('<p class="note">No predictions for this task: ROC curves omitted.</p>')
    if data.sites is not None:
        parts.append(findings.site_fragment(data.sites, task, table_html, meta))
    return "\n".join(parts)


def pretraining_section(
    history: pd.DataFrame | None,
    ssl_history: pd.DataFrame | None = None,
    checkpoint: dict | None = None,
) -> str:
    """Loss curves of pretraining (and of the self-supervised-only ablation when given).

    Parameters
    ----------
    history : pandas.DataFrame or None
        The pretraining history (``epoch, loss_total, ..., lr``, with ``val_loss`` and
        ``train_eval_loss`` where recorded); None: the section says none was given.
    ssl_history : pandas.DataFrame, optional
        The history of the self-supervised-only pretraining (``lcm-ssl``).
    checkpoint : dict, optional
        The summary of the checkpoint written with ``history``
        (:func:`lcm.report.provenance_section.checkpoint_summary`): its epoch is stated and
        marked on the curves (:func:`lcm.report.epoch.epoch_fragment`).

    Returns
    -------
    str
        An HTML fragment.
    """
    parts = ['<h2 id="pretraining">Pretraining</h2>']
    if history is None:
        parts.append('<p class="note">No pretraining history was given.</p>')
        return "\n".join(parts)
    if ssl_history is not None and ssl_history.empty:
        parts.append(
            '<p class="note">The self-supervised-only history (lcm-ssl) lists no epoch.</p>'
        )
    elif ssl_history is not None:
        last = ssl_history.iloc[-1]
        parts.append(
            f"<h3>Self-supervised-only pretraining (lcm-ssl)</h3><p>{len(ssl_history)} epochs; "
            f"final total loss {float(last['loss_total']):.4f}.</p>"
        )
        parts.append(
            img_tag(
                plots.figure_png(plots.loss_figure(ssl_history)),
                "Self-supervised-only pretraining losses and learning rate over "
                f"{len(ssl_history)} epochs; final total loss "
                f"{float(last['loss_total']):.4f}, as stated above.",
            )
        )
        parts.append("<h3>BEI + self-supervised pretraining (lcm)</h3>")
    if history.empty:  # a header alone: no epoch ended, no final loss nor curve to show
        parts.append('<p class="note">The pretraining history lists no epoch.</p>')
        return "\n".join(parts)
    last = history.iloc[-1]
    # val_loss is the mean per-variable BEI loss, not the weighted objective: set it beside
    # the same quantity on training runs (histories before train_eval_loss have none).
    val = ""
    if "val_loss" in history:
        train = history["train_eval_loss"] if "train_eval_loss" in history else None
        on_train = f"training runs {float(train.iloc[-1]):.4f}, " if train is not None else ""
        val = f"; mean BEI loss: {on_train}held-out runs {float(last['val_loss']):.4f}"
    parts.append(
        f"<p>{len(history)} epochs; final training objective (weighted, with the "
        f"self-supervised term) {float(last['loss_total']):.4f}{val}.</p>"
    )
    epoch = checkpoint_epoch(history, checkpoint)
    if epoch is not None:
        parts.append(epoch_fragment(history, checkpoint))
    marked = f"; the dotted line marks epoch {epoch}, the checkpoint's" if epoch is not None else ""
    lowest = lowest_held_out(history)
    if lowest is not None:
        marked += (
            f"; the circle marks the lowest held-out loss, {lowest[1]:.4f} at epoch {lowest[0]}"
        )
    parts.append(
        img_tag(
            plots.figure_png(plots.loss_figure(history, epoch)),
            f"Pretraining losses and learning rate over {len(history)} epochs; final training "
            f"objective {float(last['loss_total']):.4f}{val}, as stated above{marked}.",
        )
    )
    return "\n".join(parts)


def bei_section(bei_eval: pd.DataFrame | None) -> str:
    """Held-out prediction of the BEI variables by the pretrained heads, beside a baseline.

    Parameters
    ----------
    bei_eval : pandas.DataFrame or None
        The BEI held-out table (``variable, kind, metric, model, baseline``, with ``ci_low,
        ci_high`` and ``n_subjects`` where recorded); None: the section says none was given.

    Returns
    -------
    str
        An HTML fragment; variables with fewer than :data:`BEI_FEW_SUBJECTS` held-out
        subjects are named in a warning.
    """
    parts = ['<h2 id="bei">Brain–environment variables (held out)</h2>']
    if bei_eval is None:
        parts.append('<p class="note">No BEI held-out evaluation was given.</p>')
        return "\n".join(parts)
    parts.append(
        '<p class="note">Pretrained heads on held-out subjects (<i>model</i>, 95 % bootstrap '
        "interval over subjects <i>ci_low</i>&ndash;<i>ci_high</i>: the one pretrained model "
        "held fixed, so it holds the held-out subjects' variance only, not pretraining's, "
        "which ran once) beside a baseline fitted "
        "on the training subjects (<i>baseline</i>) and the best a constant guess reaches on "
        "these subjects (<i>chance</i>). Each variable is scored only on the <i>n</i> runs "
        "(<i>n_subjects</i> subjects) whose dataset records it.</p>"
    )
    shown = bei_eval.assign(metric=bei_eval["metric"].map(metric_name))
    # A bootstrap of a few subjects can draw the same value every time: a zero-width interval
    # reads as certainty, so it is shown as none, as every other table of the page does.
    if {"ci_low", "ci_high"} <= set(shown.columns):
        flat = np.isclose(shown["ci_low"], shown["ci_high"], rtol=0, atol=1e-12)
        shown = shown.astype({"ci_low": object, "ci_high": object})
        shown.loc[flat, ["ci_low", "ci_high"]] = "no interval"
    caption = "BEI variables on held-out subjects: model and baseline"
    parts.append(table_html(shown, caption, row_headers=1))
    if "n_subjects" in bei_eval.columns:
        few = bei_eval[bei_eval["n_subjects"] < BEI_FEW_SUBJECTS]
        if len(few):
            named = [
                f"{html.escape(str(v))} ({int(n)})"
                for v, n in few.drop_duplicates("variable")[["variable", "n_subjects"]].itertuples(
                    index=False
                )
            ]
            parts.append(
                box(
                    "Too few held-out subjects to read:",
                    named,
                    f"Each has fewer than {BEI_FEW_SUBJECTS}: its scores and intervals rest on a "
                    "handful of subjects.",
                )
            )
    return "\n".join(parts)


# Held-out subjects below which a BEI variable's score is flagged as too few to read.
BEI_FEW_SUBJECTS = 20


def ingest_section(ingest: pd.DataFrame | None) -> str:
    """What ingestion included and excluded per dataset, and why (before any preprocessing).

    Parameters
    ----------
    ingest : pandas.DataFrame or None
        Ingestion summaries (``dataset, included, reason_code, n_runs, example_path,
        example``).

    Returns
    -------
    str
        An HTML fragment; ``""`` for None.
    """
    if ingest is None:
        return ""
    parts = ["<h3>Ingestion: runs included and excluded, by reason</h3>"]
    parts.append(table_html(ingest, "Ingestion: runs per dataset and reason"))
    return "\n".join(parts)


def qc_section(qc: pd.DataFrame | None) -> str:
    """Counts, exclusion reasons and list, motion, scrubbing and parcel-coverage figures.

    Parameters
    ----------
    qc : pandas.DataFrame or None
        The QC tables concatenated (:func:`lcm.report.tables.read_qc`); None: the section says
        none were given.

    Returns
    -------
    str
        An HTML fragment.
    """
    parts = ['<h2 id="qc">Quality control</h2>']
    if qc is None:
        parts.append('<p class="note">No QC tables were given.</p>')
        return "\n".join(parts)
    if qc.empty:  # headers alone: nothing to count or draw
        parts.append('<p class="note">The QC tables list no run.</p>')
        return "\n".join(parts)
    parts.append("<h3>Runs per dataset</h3>")
    parts.append(table_html(qc_counts(qc), "Runs and subjects per dataset after QC", row_headers=1))
    reasons = qc_reasons(qc)
    parts.append("<h3>Exclusion reasons</h3>")
    parts.append(
        table_html(reasons, "Exclusion reasons per dataset, with their runs")
        if len(reasons)
        else "<p>No run was excluded.</p>"
    )
    parts.append(exclusions_fragment(qc))
    parts.append("<h3>Motion and scrubbing</h3>")
    fd = pd.to_numeric(qc[MEAN_FD], errors="coerce")
    parts.append(
        img_tag(
            plots.figure_png(plots.fd_histogram(qc)),
            f"Histogram of the mean framewise displacement of {int(fd.notna().sum())} runs, "
            f"included and excluded stacked; median {_num(fd.median(), '.3f')} mm. Runs per "
            "dataset and exclusion reasons are in the tables above.",
        )
    )
    scrub = scrubbing_table(qc)
    if len(scrub):
        parts.append(
            img_tag(
                plots.figure_png(plots.scrubbing_figure(scrub)),
                f"Volumes scrubbed (%) and retained per included run, {len(scrub)} runs of "
                f"{scrub['dataset'].nunique()} datasets; median scrubbed "
                f"{_num(pd.to_numeric(scrub['pct_scrubbed'], errors='coerce').median(), '.1f')} %.",
            )
        )
    else:
        parts.append('<p class="note">No volume counts (e.g. precomputed connectomes only).</p>')
    parts.append("<h3>Parcel coverage</h3>")
    empty = parcel_emptiness(qc)
    if len(empty):
        parts.append(
            '<p class="note">A parcel is empty in a run when its coverage by the BOLD data is '
            "below 0.5 or its signal is flat; its row and column of that run's matrix are 0.</p>"
        )
        worst = empty.loc[empty["share"].idxmax()]
        parts.append(
            img_tag(
                plots.figure_png(plots.parcel_figure(empty)),
                "Parcels most often empty, share of included runs per dataset; most often: "
                f"{worst['parcel']} in {worst['dataset']} ({float(worst['share']):.0%} of runs).",
            )
        )
    else:
        parts.append("<p>Every parcel carried a signal in every included run.</p>")
    return "\n".join(parts)


def exclusions_fragment(qc: pd.DataFrame) -> str:
    """Every excluded run with its reason, folded (the first MAX_LISTED_EXCLUSIONS shown).

    Parameters
    ----------
    qc : pandas.DataFrame
        The QC tables concatenated.

    Returns
    -------
    str
        A ``<details>`` element; ``""`` when no run was excluded.
    """
    listed = exclusion_list(qc)
    if not len(listed):
        return ""
    more = len(listed) - MAX_LISTED_EXCLUSIONS
    note = f'<p class="note">... and {more} more: see the QC tables.</p>' if more > 0 else ""
    return (
        f"<details><summary>Excluded runs ({len(listed)})</summary>"
        f"{table_html(listed.head(MAX_LISTED_EXCLUSIONS), 'Excluded runs and their reasons')}{note}"
        "</details>"
    )


def provenance_footer(inputs: Sequence[str | os.PathLike[str]]) -> str:
    """Version, git commit, date of the newest input and the inputs' sha256.

    The project's code URL is the one link on the page: a plain text link for the reader, never
    fetched when the page renders.

    Parameters
    ----------
    inputs : sequence of path-like
        The report's input files; those that are not files (folders, missing) are left out
        of the table.

    Returns
    -------
    str
        An HTML fragment.
    """
    env = environment()
    mtime = newest_mtime(inputs)
    dated = (
        dt.datetime.fromtimestamp(mtime, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        if mtime is not None
        else "n/a"
    )
    commit = env.get("git_commit") or "unknown"
    if env.get("git_dirty"):
        commit += " (uncommitted changes)"
    rows = [{"input": shown_path(p), "sha256": sha256_file(p)} for p in inputs if Path(p).is_file()]
    return (
        "<footer>"
        f"<p>LCM {html.escape(lcm.__version__)} &middot; git commit {html.escape(commit)} "
        f"&middot; inputs dated {html.escape(dated)} &middot; code: "
        f'<a href="{html.escape(lcm.CODE_URL)}">{html.escape(lcm.CODE_URL)}</a></p>'
        f"{table_html(pd.DataFrame(rows), 'Inputs of this page', row_headers=1) if rows else ''}"
        "</footer>"
    )


def _shared_structure(data: ReportData) -> dict[str, float | None]:
    return {
        t: o.get("shared_structure")
        for t, o in data.oracles.items()
        if data.task_meta.get(t, {}).get("kind", "binary") == "binary"
    }


def render_report(data: ReportData) -> str:
    """The complete HTML page.

    Parameters
    ----------
    data : ReportData
        Everything the report shows.

    Returns
    -------
    str
        The page: one self-contained file, figures embedded, nothing fetched when it renders.
    """
    tasks = sorted(data.summary["task"].unique())
    models = sorted(data.summary["model"].unique())
    lcm_models = [m for m in models if model_kind(m) == "LCM"]
    nav = '<a href="#headline">headline</a> '
    nav += " ".join(f'<a href="#{_anchor(t)}">{html.escape(t)}</a>' for t in tasks)
    nav += ' <a href="#pretraining">pretraining</a> <a href="#bei">BEI</a> <a href="#qc">QC</a>'
    nav += ' <a href="#attention">attention</a>' if data.attention_html else ""
    nav += ' <a href="#protocol">protocol</a> <a href="#provenance">provenance</a>'
    intro = (
        f"<p>{len(tasks)} task(s); models: {html.escape(', '.join(models))}. "
        "Every split is subject-level (or site-level); pretraining never saw a downstream "
        "test subject. "
        f"{'LCM variants: ' + html.escape(', '.join(lcm_models)) + '.' if lcm_models else ''}"
        "</p>"
    )
    body = [
        f"<h1>{html.escape(data.title)}</h1>",
        # Motion alone first: a gain over a model that motion matches says little.
        motion.motion_verdict(data.summary, data.motion_not_scored),
        verdict.pretraining_verdict(
            data.contrasts,
            _shared_structure(data),
            summary=data.summary,
            task_meta=data.task_meta,
            metrics=data.metrics,
            oracles=data.oracles,
            headline=data.headline,
        ),
        findings.no_auc_warning(data.metrics, data.task_meta),
        reference_verdict(data.summary, data.references, data.headline),
        f"<nav>{nav}</nav>",
        intro,
        findings.headline_section(
            data.headline,
            _shared_structure(data),
            table_html,
            summary=data.summary,
            task_meta=data.task_meta,
        ),
        contrasts.contrast_section(
            data.contrasts, table_html, data.task_meta, summary=data.summary
        ),
        *(task_section(data, t) for t in tasks),
        pretraining_section(data.history, data.ssl_history, data.history_checkpoint),
        data.attention_html,
        bei_section(data.bei_eval),
        qc_section(data.qc),
        ingest_section(data.ingest),
        findings.provenance_summary(data.task_meta, table_html, data.metrics),
        dropped_section(data.task_meta, table_html),
        provenance_section(data.provenance, data.task_meta, table_html),
        provenance_footer(data.inputs),
    ]
    # Every fragment marks a warning with class "warn" alone; the page gives each one its role
    # here, so a screen reader announces it as a warning, not only a coloured box. The
    # fragments escape their text, so the attribute can occur only as markup.
    content = "\n".join(body).replace('class="warn"', WARNING_ATTRIBUTES)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(data.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + content
        + "\n</body>\n</html>\n"
    )
