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

# A label option's dest -> the BIDS entity named in the message. Every verb's label options
# (lcm.cli.VERBS): --dataset, the list --datasets (lcm splits, pretrain, bei-maps, embed: each
# name a store partition's folder), --consortium and --subject (lcm synth, lcm fmriprep).
# lcm run's --dataset-name is checked by lcm run, which names its fix.
LABEL_OPTIONS = {
    "dataset": "dataset",
    "datasets": "dataset",
    "consortium": "consortium",
    "subject": "sub",
}
# Where a workflow rule (lcm --rule) took a label from: the config's keys, which its user wrote
# ({dataset}: the verb's --dataset), not the option the rule passed it by. lcm.bids.dataset's
# CONFIG_KEYS spells them (kept equal by a test): not imported, so that this module, in every
# verb's code hash, does not put that one there too.
RULE_SOURCES = {
    "dataset": "datasets",
    "datasets": "datasets",
    "consortium": "synth.consortia",
    # The fMRIPrep stage's subjects; a synthetic consortium's are its settings'.
    "subject": "ingest.select.{dataset}.participants.include",
}
_RUN_KEY_RE = re.compile(r"^[A-Za-z0-9]+-[A-Za-z0-9]+(?:_[A-Za-z0-9]+-[A-Za-z0-9]+)*$")


def label_source(args: argparse.Namespace, dest: str) -> str:
    """How the user gave the label option ``dest`` of a verb, named in its refusal.

    Parameters
    ----------
    args : argparse.Namespace
        The verb's parsed options (``rule``: run by a workflow rule).
    dest : str
        A key of :data:`LABEL_OPTIONS`.

    Returns
    -------
    str
        The option as typed on the command line (``--datasets``); under a workflow rule the
        config's key it came from (``datasets``, ``synth.consortia``,
        ``ingest.select.<dataset>.participants.include``, the dataset filled in).
    """
    if not getattr(args, "rule", None):
        return "--" + dest.replace("_", "-")
    if dest == "subject" and getattr(args, "consortium", None) is not None:
        return f"synth.consortia.{args.consortium}"
    return RULE_SOURCES[dest].format(dataset=getattr(args, "dataset", None))


def check_label_arguments(args: argparse.Namespace) -> None:
    """Raise when a label option holds anything but a plain label.

    Parameters
    ----------
    args : argparse.Namespace
        A verb's parsed options; the label options it does not define are skipped.

    Raises
    ------
    lcm.exceptions.InputDataError
        For ``--dataset``, ``--datasets``, ``--consortium`` or ``--subject`` values that are
        not alphanumeric, naming the option, or the config's key under a workflow rule
        (:func:`label_source`).
    lcm.exceptions.ConfigError
        For a ``--run-key`` that is not ``key-value`` pairs joined by ``_``.
    """
    for dest, entity in LABEL_OPTIONS.items():
        value = getattr(args, dest, None)
        values = value if isinstance(value, list) else [value]
        for one in values:
            if isinstance(one, str):
                check_label(entity, one, source=label_source(args, dest))
    run_key = getattr(args, "run_key", None)
    if isinstance(run_key, str) and not _RUN_KEY_RE.match(run_key):
        raise ConfigError(
            f"Invalid --run-key {run_key!r}: expected BIDS entities such as "
            "'sub-01_ses-1_task-rest_run-1' (letters and digits joined by '-' and '_').",
            hint="Run keys come from the workflow's run list; do not build them by hand.",
        )
