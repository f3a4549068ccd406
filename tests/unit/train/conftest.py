"""Fixtures of the training tests."""

from __future__ import annotations

import pytest
import torch

from lcm.threads import THREAD_VARIABLES


@pytest.fixture
def one_thread(monkeypatch):
    """One torch thread for each test, restored after it, with the thread variables.

    Tiny models gain nothing from intra-op threads, and lose badly on a busy 2-core machine.
    Per test, not per module: a test that calls ``lcm.cli.main`` caps every pool to the
    CPUs (and sets ``OMP_NUM_THREADS``), which once left the next test's "first session"
    at 2 threads. Modules take it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    for name in THREAD_VARIABLES:  # main() sets them; monkeypatch restores them after
        monkeypatch.setenv(name, "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
