"""A registered estimator cheap enough for protocol tests: the labeled training prevalence."""

from __future__ import annotations

import numpy as np
import pytest

from lcm.evaluate.registry import register_model, unregister_model


class PrevalenceModel:
    """Predicts, for every row, the share of positives among the labeled training rows."""

    def fit(self, fc, y, variables):
        self.p_ = float((y[y >= 0] == 1).mean())
        return self

    def predict_proba(self, fc):
        p = np.full(len(fc), self.p_)
        return np.column_stack([1 - p, p])


@pytest.fixture
def prevalence_model():
    """Registers :class:`PrevalenceModel` as ``"prevalence"`` for one test."""
    register_model("prevalence", lambda ctx: PrevalenceModel(), replace=True)
    yield "prevalence"
    unregister_model("prevalence")
