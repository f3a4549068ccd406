"""The report's figures: fixed model styles, legends and titles inside the figure, alt texts."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from lcm.evaluate.motion import MOTION_MODEL
from lcm.evaluate.registry import (
    BASELINE_MODELS,
    CONTROL_MODELS,
    LCM_MODELS,
    model_names,
    register_model,
    unregister_model,
)
from lcm.report import plots

ALL_MODELS = [*LCM_MODELS, *BASELINE_MODELS[:4], "bei-linear", "shuffled-labels"]  # 9, binary


def _summary(task: str, models: list[str], fractions=(0.1, 1.0)) -> pd.DataFrame:
    """A summary table: model k's AUC rises with the label fraction, 0.55 + 0.02 k at most."""
    rows = []
    for k, model in enumerate(models):
        for fraction in fractions:
            mean = 0.5 + (0.05 + 0.02 * k) * fraction
            for metric in ("auc", "balanced_accuracy"):
                rows.append(
                    {
                        "task": task,
                        "model": model,
                        "label_fraction": fraction,
                        "metric": metric,
                        "mean": mean,
                        "ci_low": mean - 0.1,
                        "ci_high": mean + 0.1,
                        "n": 10,
                    }
                )
    return pd.DataFrame(rows)


def _predictions(task: str, models: list[str], fractions=(0.1, 1.0)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for model in models:
        for fraction in fractions:
            for seed in range(2):
                y = rng.integers(0, 2, 40)
                p = y * 0.3 + rng.random(40)
                rows.append(
                    pd.DataFrame(
                        {
                            "task": task,
                            "model": model,
                            "label_fraction": fraction,
                            "seed": seed,
                            "fold": np.arange(40) % 5,
                            "y_true": y,
                            "prediction": p,
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)


def _colours(fig) -> dict[str, str]:
    """Legend label -> line colour, over every legend of ``fig``."""
    from matplotlib.colors import to_hex

    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    return {
        text.get_text(): to_hex(handle.get_color())
        for legend in legends
        for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True)
    }


def test_a_model_has_one_colour_whatever_else_a_figure_shows():
    few = ["lcm", "shuffled-labels"]
    one = _colours(plots.fraction_figure(_summary("t", few), "t"))
    other = _colours(plots.fraction_figure(_summary("t", ALL_MODELS), "t"))
    assert one["lcm"] == other["lcm"] != other["lcm-scratch"]
    assert one["shuffled-labels"] == other["shuffled-labels"] != other["tangent-logreg"]
    roc = plots.roc_figure(_predictions("t", ["tangent-logreg", "lcm"]), "t")
    assert {name.split(" (")[0]: c for name, c in _colours(roc).items()}["lcm"] == one["lcm"]


def test_every_registered_model_has_its_own_style():
    assert set(plots.MODEL_STYLES) == {
        *LCM_MODELS,
        *BASELINE_MODELS,
        *CONTROL_MODELS,
        MOTION_MODEL,
    }
    styles = [plots.model_style(m) for m in [*model_names(), MOTION_MODEL]]
    assert len(set(styles)) == len(styles)
    palette = set(plots.OKABE_ITO.values())
    assert all(s.color in palette for m, s in plots.MODEL_STYLES.items() if m not in CONTROL_MODELS)
    # LCM variants differ by colour and by marker, never by hue alone.
    lcm = [plots.MODEL_STYLES[m] for m in LCM_MODELS]
    assert len({s.color for s in lcm}) == len({s.marker for s in lcm}) == len(LCM_MODELS)


def test_a_user_model_gets_a_fixed_style_of_its_own():
    register_model("my-model", lambda context: None)
    try:
        style = plots.model_style("my-model")
        assert style == plots.model_style("my-model")  # same in every figure and process
        assert style not in plots.MODEL_STYLES.values()
        assert style.color in plots.OKABE_ITO.values()
    finally:
        unregister_model("my-model")


LONG_TASK = "AutismSpectrumDisorderVersusTypicalControlsLeaveSiteOutCohort00"  # 64 characters
# Capitals are wider than the average character the titles were wrapped for: this name ran
# off the figure's left edge, its first letters cut (wrapped at 64 characters a line).
WIDE_TASK = "ABIDEIIMWQWOMENVERSUSMENOFTHEWHOLECOHORTMWQWMWQWMWQWMWQWMWQWMWQW"
SIX = (0.01, 0.02, 0.05, 0.1, 0.5, 1.0)


def _drawn(fig):
    """``fig`` as it is saved (constrained layout applied) and its renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(plots.DPI)
    canvas.draw()
    return canvas.get_renderer()


def _suptitle(fig):
    return next(t for t in fig.texts if t.get_text() == fig.get_suptitle())


def _inside(inner, outer, slack=1.0) -> bool:
    return (
        inner.x0 >= outer.x0 - slack
        and inner.y0 >= outer.y0 - slack
        and inner.x1 <= outer.x1 + slack
        and inner.y1 <= outer.y1 + slack
    )


@pytest.mark.parametrize("task", [LONG_TASK, WIDE_TASK])
@pytest.mark.parametrize("fractions", [(1.0,), (0.1, 1.0), SIX])
def test_roc_legend_and_title_fit_beside_the_panels(fractions, task):
    fig = plots.roc_figure(_predictions(task, ALL_MODELS, fractions), task)
    renderer = _drawn(fig)
    page = fig.bbox
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert len(legend.get_texts()) == len(ALL_MODELS) and _inside(box, page)
    assert all(not box.overlaps(ax.get_tightbbox(renderer)) for ax in fig.axes)
    assert _inside(_suptitle(fig).get_window_extent(renderer), page)
    assert len({round(ax.get_position().x0, 3) for ax in fig.axes}) <= 3  # rows of 3 at most
    assert fig.get_figwidth() <= 10  # 6 fractions: as wide as 3 (A4 and the page's width)


@pytest.mark.parametrize("task", [LONG_TASK, WIDE_TASK])
def test_fraction_legend_and_title_fit_beside_the_axes(task):
    fig = plots.fraction_figure(_summary(task, ALL_MODELS, SIX), task)
    renderer = _drawn(fig)
    (ax,) = fig.axes
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert _inside(box, fig.bbox) and not box.overlaps(ax.get_window_extent(renderer))
    assert not box.overlaps(ax.title.get_window_extent(renderer))
    assert _inside(ax.title.get_window_extent(renderer), fig.bbox)
    assert "95 % CI" in ax.get_title()


def test_attention_map_labels_stay_in_their_panel():
    from lcm.report.attention import attention_brain_figure

    rng = np.random.default_rng(1)
    centroids = rng.uniform(-70, 70, (9, 3))
    names = [f"ROI_with_a_long_name_{i}" for i in range(9)]
    fig = attention_brain_figure(rng.random(9) / 9, centroids, LONG_TASK * 2, roi_names=names)
    renderer = _drawn(fig)
    views = fig.axes[:3]
    boxes = [ax.get_tightbbox(renderer) for ax in views]
    assert all(not a.overlaps(b) for a, b in itertools.pairwise(boxes))
    assert _inside(_suptitle(fig).get_window_extent(renderer), fig.bbox)


def test_a_dollar_in_a_name_is_text_not_math():
    task, model = "cost $5 $x$", "my$model$"
    figures = [
        plots.fraction_figure(_summary(task, ["lcm", model]), task),
        plots.roc_figure(_predictions(task, ["lcm", model]), task),
    ]
    for fig in figures:
        _drawn(fig)  # "$x$" as mathtext would draw an italic x and lose the dollars
        texts = [
            t for t in fig.findobj(lambda a: hasattr(a, "get_parse_math")) if "$" in t.get_text()
        ]
        assert texts and not any(t.get_parse_math() for t in texts)


def test_loss_legend_lies_under_the_curves():
    epochs = np.arange(1, 13)
    history = pd.DataFrame(
        {"epoch": epochs, "loss_total": 8.0 / epochs, "lr": 1e-3 / epochs}
        | {f"loss_variable_{i}": 1.0 / (epochs + i) for i in range(8)}
    )
    fig = plots.loss_figure(history)
    renderer = _drawn(fig)
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert _inside(box, fig.bbox) and len(legend.get_texts()) == 9
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)


def test_head_motion_is_not_drawn_in_the_colour_of_a_model_it_is_read_beside():
    """motion-fd took lcm-scratch's green from its name's digest, in every ROC and fraction
    figure of the demo."""
    motion = plots.model_style(MOTION_MODEL)
    shared = [
        m for m in (*LCM_MODELS, *BASELINE_MODELS) if plots.MODEL_STYLES[m].color == motion.color
    ]
    assert shared == ["lcm-ssl"]  # the one model the default tasks do not run
    assert motion.marker != plots.MODEL_STYLES["lcm-ssl"].marker
    assert motion.linestyle != plots.MODEL_STYLES["lcm-ssl"].linestyle
