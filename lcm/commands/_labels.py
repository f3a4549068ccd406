"""Checks on the labels every verb receives, before any of them reaches a path or a process.

Dataset, consortium, subject and task names become folder names, file names and Snakemake
wildcards; run keys are joined from BIDS entities. Anything but letters and digits (and, in run
keys, the ``_``/``-`` that join entities) is refused here, so that ``..`` or shell characters
never reach the file system or a shell, whichever way the verb was called.
"""

from __future__ import annotations

import argparse
import re

from lcm.exceptions import ConfigError
from lcm.io.bids_names import check_label

# Option -> BIDS entity named in the message.
LABEL_OPTIONS = {"dataset": "dataset", "consortium": "consortium", "subject": "sub"}
_RUN_KEY_RE = re.compile(r"^[A-Za-z0-9]+-[A-Za-z0-9]+(?:_[A-Za-z0-9]+-[A-Za-z0-9]+)*$")


def check_label_arguments(args: argparse.Namespace) -> None:
    """Raise when a label option holds anything but a plain label.

    Parameters
    ----------
    args : argparse.Namespace
        A verb's parsed options; the label options it does not define are skipped.

    Raises
    ------
    lcm.exceptions.InputDataError
        For ``--dataset``, ``--consortium`` or ``--subject`` values that are not alphanumeric.
    lcm.exceptions.ConfigError
        For a ``--run-key`` that is not ``key-value`` pairs joined by ``_``.
    """
    for option, entity in LABEL_OPTIONS.items():
        value = getattr(args, option, None)
        if isinstance(value, str):
            check_label(entity, value, source=f"--{option}")
    run_key = getattr(args, "run_key", None)
    if isinstance(run_key, str) and not _RUN_KEY_RE.match(run_key):
        raise ConfigError(
            f"Invalid --run-key {run_key!r}: expected BIDS entities such as "
            "'sub-01_ses-1_task-rest_run-1' (letters and digits joined by '-' and '_').",
            hint="Run keys come from the workflow's run list; do not build them by hand.",
        )
