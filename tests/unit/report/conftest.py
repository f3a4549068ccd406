"""Fixtures of the report tests: one set of report inputs per test module."""

from __future__ import annotations

import pytest
from helpers.report import write_report_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Report inputs (metrics, predictions, history, BEI and QC tables) in a temporary folder."""
    return write_report_inputs(tmp_path_factory.mktemp("report_inputs"))
