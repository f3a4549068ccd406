"""The report's figures: fixed model styles, legends and titles inside the figure, alt texts."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
    assert set(plots.MODEL_STYLES) == {*LCM_MODELS, *BASELINE_MODELS, *CONTROL_MODELS}
    styles = [plots.model_style(m) for m in model_names()]
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
