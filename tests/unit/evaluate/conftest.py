"""Fixtures of the evaluation tests: a cheap model registered for one test."""

from __future__ import annotations

import pytest
from helpers.evaluate import PrevalenceModel

from lcm.evaluate.registry import register_model, unregister_model


@pytest.fixture
def prevalence_model():
    """Registers :class:`PrevalenceModel` as ``"prevalence"`` for one test."""
    register_model("prevalence", lambda ctx: PrevalenceModel(), replace=True)
    yield "prevalence"
    unregister_model("prevalence")
