"""Hostile and careless input (issue 14): one folder lists everything tried.

Each test here feeds one bad input and checks a one-line error naming the file or key and the
fix, with nothing written or lost. The shared builders live in tests/conftest_*.py: put tests/
on the import path so these files can use them like the tests beside them.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# The docker/apptainer stand-ins on PATH (fixture ``standins``, their argv log), shared with
# tests/test_fmriprep_runner.py rather than written twice.
from test_fmriprep_runner import standins  # noqa: E402, F401
