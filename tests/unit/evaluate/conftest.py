"""Fixtures of the evaluation tests: a cheap model registered for one test."""

from __future__ import annotations

import pytest
from helpers.evaluate import PrevalenceModel

from lcm.evaluate.registry import register_model, unregister_model


@pytest.fixture
def prevalence_model():
    """Registers :class:`PrevalenceModel` as ``"prevalence"`` for one test (it ignores its
    seed, so a later seed with the same data does not refit it)."""
    register_model("prevalence", lambda ctx: PrevalenceModel(), replace=True, seed_dependent=False)
    yield "prevalence"
    unregister_model("prevalence")
