"""Plain builders the tests import (``from helpers.model import TINY``); fixtures: conftest.py.

pytest puts ``tests/`` on the import path (``pythonpath`` in pyproject.toml), so every tier
imports these the same way. One module per subject: ``connectome`` (tiny BIDS, fMRIPrep and
connectome inputs on disk), ``evaluate`` (a cheap registered model, a small cohort),
``fmriprep`` (the container stand-ins' log and requests), ``model`` (tiny catalogues, cohorts,
training comparisons), ``pybids_index`` (the pybids reference indexer), ``report`` (the report
verb on given tables), ``schema`` (walking the config schema's keys) and ``workflow``
(placeholder workflows, Snakemake runs, small configs).
"""

from pathlib import Path

# The repository root: tests find the Snakefile, config/ and docs/ from here, at any depth.
ROOT = Path(__file__).resolve().parents[2]
