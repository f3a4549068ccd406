"""``lcm run --participant-label``: the labels checked, and the participants kept.

One call per participant into one OUTPUT_DIR (a BIDS App's habit) keeps the participants of
the earlier calls in the dataset's manifest, QC table and store.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from lcm.bids.manifest import read_manifest
from lcm.bids.selection import participants_kept
from lcm.exceptions import ConfigError, InputDataError
from lcm.io.paths import ingest_manifest

log = logging.getLogger(__name__)


def check_participant_labels(bids: Path, labels: list[str]) -> None:
    """Refuse --participant-label values that name no ``sub-<label>`` folder of BIDS_DIR.

    Parameters
    ----------
    bids : pathlib.Path
        BIDS_DIR, resolved.
    labels : list of str
        ``--participant-label``'s values, without ``sub-``.
    """
    present = sorted(p.name.removeprefix("sub-") for p in bids.glob("sub-*") if p.is_dir())
    unknown = [label for label in labels if label not in present]
    if unknown:
        shown = ", ".join(present[:20]) + (" ..." if len(present) > 20 else "")
        raise ConfigError(
            f"--participant-label {' '.join(unknown)}: no such subject in {bids} "
            f"(it has {len(present)}: {shown}).",
            hint="Pass labels of sub-<label> folders of BIDS_DIR, with or without 'sub-'.",
        )


def check_labels_not_excluded(
    labels: list[str], exclude: list[str], name: str, source: str
) -> None:
    """Refuse ``--participant-label`` values all of which the config file excludes; warn of
    those it excludes.

    ``ingest.select.<name>.participants.exclude`` wins over the labels: a call for excluded
    participants alone ran ingest over the whole dataset, then stopped with "no included run"
    about every subject of it.

    Parameters
    ----------
    labels : list of str
        ``--participant-label``'s values, without ``sub-``.
    exclude : list of str
        ``ingest.select.<name>.participants.exclude`` of the configuration.
    name : str
        BIDS_DIR's name in the config.
    source : str
        What the configuration came from, named in messages (``lcm run --config-file FILE``).
    """
    excluded = {str(x).removeprefix("sub-") for x in exclude}
    chosen = list(dict.fromkeys(labels))
    hit = [label for label in chosen if label in excluded]
    if not hit:
        return
    said = (
        f"--participant-label {' '.join(hit)}: excluded by ingest.select.{name}.participants."
        f"exclude of {source}"
    )
    fix = f"Remove them from ingest.select.{name}.participants.exclude to process them."
    if len(hit) == len(chosen):
        raise ConfigError(f"{said}; nothing to process.", hint=fix)
    log.warning("%s; they are not processed. %s", said, fix)


def check_labels_have_runs(bids: Path, labels: list[str], task: str) -> None:
    """Refuse ``--participant-label`` values none of which has a BOLD run of ``task``; warn
    of those that have none.

    A chosen subject without one ended the run with "no included run ... not_selected" about
    the other subjects, never saying that the chosen one has no run of the task.

    Parameters
    ----------
    bids : pathlib.Path
        BIDS_DIR, resolved.
    labels : list of str
        ``--participant-label``'s values, without ``sub-``.
    task : str
        The BIDS task of the dataset's resting-state runs.
    """
    lacking: dict[str, list[str]] = {}
    for label in dict.fromkeys(labels):
        folder = bids / f"sub-{label}"
        names = [p.name for g in ("func", "ses-*/func") for p in folder.glob(f"{g}/*_bold.nii*")]
        tasks = sorted({m.group(1) for n in names if (m := re.search(r"_task-([^_]+)_", n))})
        if task not in tasks:
            lacking[label] = tasks
    if not lacking:
        return
    said = "; ".join(
        f"sub-{label}: "
        + (f"BOLD runs of task(s) {', '.join(tasks)} only" if tasks else "no BOLD file in func/")
        for label, tasks in lacking.items()
    )
    fix = (
        f"Choose participants with BOLD runs of task {task!r}, or give the task of their "
        "resting-state runs with --task (task-restingstate: --task restingstate)."
    )
    if len(lacking) == len(dict.fromkeys(labels)):
        raise ConfigError(
            f"--participant-label {' '.join(lacking)}: no BOLD run of task {task!r} in {bids} "
            f"({said}); nothing to process.",
            hint=fix,
        )
    log.warning(
        "--participant-label: no BOLD run of task %r for %s; they add nothing. %s",
        task,
        said,
        fix,
    )


def with_earlier_participants(
    labels: list[str], out: Path, name: str, exclude: list[str]
) -> list[str]:
    """``--participant-label``'s participants and those earlier runs put in OUTPUT_DIR.

    The manifest, QC table and store of a dataset describe the participants its selection
    includes: with this call's labels alone, ``--participant-label 02`` after a call of ``01``
    (a BIDS App's one call per participant into one OUTPUT_DIR) rebuilt them without ``01``.
    The selection is both: this call processes its labels, and the participants of the
    dataset's manifest in OUTPUT_DIR stay (rerun only where their files or settings changed).
    Parameters
    ----------
    labels : list of str
        ``--participant-label``'s values, without ``sub-``.
    out : pathlib.Path
        OUTPUT_DIR, absolute.
    name : str
        BIDS_DIR's name in the config.
    exclude : list of str
        The config file's ``ingest.select.<name>.participants.exclude``.


    Raises
    ------
    InputDataError
        When the manifest of earlier runs cannot be read (its participants would be dropped).
    """
    manifest = Path(ingest_manifest(str(out), name))
    if not manifest.is_file():
        return sorted(set(labels))
    try:
        earlier = participants_kept(
            read_manifest(manifest, columns=["subject", "reason_code", "reason"])
        )
    except InputDataError as exc:
        raise InputDataError(
            f"--participant-label: cannot read {manifest}, the participants earlier runs put "
            f"in OUTPUT_DIR ({exc.message}); nothing was written.",
            hint="Run participant once without --participant-label (every participant) to "
            "rebuild it, or use a new OUTPUT_DIR.",
        ) from None
    others = sorted(earlier - set(labels))
    if others:
        shown = ", ".join(others[:20]) + (" ..." if len(others) > 20 else "")
        log.info(
            "--participant-label %s: OUTPUT_DIR %s holds %d other participant(s) of dataset "
            "%r from earlier runs (%s); they stay in its manifest, QC table and store, rerun "
            "only where their files or settings changed (a new OUTPUT_DIR starts a cohort "
            "of its own)",
            " ".join(labels),
            out,
            len(others),
            name,
            shown,
        )
        dropped = sorted(set(others) & {str(x).removeprefix("sub-") for x in exclude})
        if dropped:
            log.warning(
                "participant(s) %s of earlier runs are in ingest.select.%s.participants."
                "exclude of the config file: they leave the manifest, QC table and store of %s",
                ", ".join(dropped),
                name,
                out,
            )
    return sorted(set(labels) | earlier)


def subject_labels(bids: Path) -> set[str]:
    """The labels of the ``sub-<label>`` folders of BIDS folder ``bids``.

    Parameters
    ----------
    bids : pathlib.Path
        A BIDS folder.
    """
    return {p.name.removeprefix("sub-") for p in bids.glob("sub-*") if p.is_dir()}
