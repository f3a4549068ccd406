"""The BOLD runs of one subject in the input dataset: what fMRIPrep must have preprocessed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from lcm import reason_codes
from lcm.bids.dataset import is_derivative, read_dataset_description
from lcm.bids.rows import TR_FROM_HEADER as TR_FROM_HEADER_CHECK
from lcm.bids.runs import RunIds, run_ids_from_key, run_ids_from_name
from lcm.bids.selection import without_echo
from lcm.bids.sidecars import entities_of
from lcm.entries import entry_type
from lcm.exceptions import BIDSError, InputDataError
from lcm.io.output_space import parse_output_space
from lcm.preprocess.derivatives import TR_FROM_HEADER, TR_FROM_INHERITED, FallbackTR, RefusedTR

log = logging.getLogger(__name__)


def subject_runs(
    bids_root: str | Path, subject: str, task: str = "rest", space: str = "MNI152NLin2009cAsym"
) -> list[RunIds]:
    """Acquisition identifiers of every BOLD run of ``subject`` and ``task``.

    Parameters
    ----------
    bids_root : path-like
        Raw BIDS dataset (validated index), or an fMRIPrep derivatives folder (its
        ``desc-preproc`` runs in ``space`` are listed) for datasets that enter as derivatives.
    subject : str
        Subject label without ``sub-``.
    task, space : str
        Task label; output space (derivative datasets only).

    Returns
    -------
    list of RunIds
        Sorted by run key, one per run; files with invalid labels are skipped with a warning
        (``lcm ingest`` lists them as excluded).

    Raises
    ------
    BIDSError
        If the subject has no BOLD run of ``task``.
    """
    from bids import BIDSLayout

    bids_root = Path(bids_root)
    desc = read_dataset_description(bids_root)
    query = {"subject": subject, "task": task, "suffix": "bold", "extension": [".nii", ".nii.gz"]}
    if is_derivative(desc):
        layout = BIDSLayout(bids_root, validate=False, is_derivative=True)
        wanted = parse_output_space(space)
        files = [
            f
            for f in layout.get(desc="preproc", space=wanted.label, **query)
            if wanted.selects(entities_of(Path(f.path).name))
        ]
    else:
        layout = BIDSLayout(bids_root, validate=True)
        files = layout.get(**query)
    runs: dict[str, RunIds] = {}
    for f in files:
        try:
            ids = run_ids_from_name(f.path)
        except InputDataError as exc:
            log.warning("sub-%s: skipping %s: %s", subject, Path(f.path).name, exc.message)
            continue
        if ids.entities.get("part", "mag") != "mag":
            continue  # a phase (real, imaginary) series: fMRIPrep reads the magnitude only
        if "echo" in ids.entities:
            if is_derivative(desc):
                continue  # a per-echo series; the combined one is listed without echo-
            # fMRIPrep makes one series of a run's echoes, named without echo-.
            ids = run_ids_from_key(without_echo(ids.run_key))
        runs.setdefault(ids.run_key, ids)
    if not runs:
        raise BIDSError(
            f"sub-{subject} has no BOLD run of task {task!r} in {bids_root}.",
            hint="Check the subject label and --task, and that func/*_bold.nii.gz files exist "
            "with valid BIDS names.",
        )
    return [runs[k] for k in sorted(runs)]


@dataclass
class ManifestRuns:
    """One subject's runs in the ingest manifest: those to preprocess, and those ingest excluded.

    ``excluded`` maps each run key to ``(reason_code, reason)`` as the manifest gives them: the
    runs the workflow may have planned before ingest decided (the validator's verdicts are known
    only once ingest ran), which the fMRIPrep record lists as excluded so that their connectome
    jobs record the reason instead of failing.
    """

    runs: list[RunIds]
    excluded: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The TR ingest resolved for each included run (from the raw run's sidecars, by BIDS
    # inheritance, for a raw dataset): used where the preprocessed sidecar gives none.
    t_r: dict[str, FallbackTR] = field(default_factory=dict)
    # The raw BOLD of each included run of a raw dataset (a multi-echo run's first echo), whose
    # header says how many volumes fMRIPrep will find.
    paths: dict[str, str] = field(default_factory=dict)


def ingest_run_trs(
    bids_root: str | Path, subject: str, task: str = "rest", space: str | None = None
) -> dict[str, FallbackTR | RefusedTR]:
    """The TR of each of ``subject``'s runs, as ingest resolves it, by run key.

    What ``lcm fmriprep`` reads without ingest's manifest. Ingest's own rows
    (:func:`lcm.bids.fast_index.index_one_subject`), the TR checked against the run's header:
    for a raw dataset, the raw sidecars merged by BIDS inheritance; for a folder of fMRIPrep
    derivatives (a dataset entering as derivatives), a sidecar the run inherits in that tree,
    else its BOLD header's ``pixdim[4]`` in the time unit ``xyzt_units`` names, recorded as
    the manifest's are (:func:`runs_from_manifest`). A run ingest excludes for its TR
    (``tr_mismatch``, ``no_repetition_time``) has a :class:`RefusedTR` with ingest's reason,
    so that a run lacking its preprocessed sidecar too is refused for what it is; a run
    excluded for anything else has none. A multi-echo run is keyed without ``echo-``, as
    fMRIPrep names its outputs.

    Parameters
    ----------
    bids_root : str or Path
        The raw dataset's top folder, or a derivatives folder.
    subject : str
        Subject label, without ``sub-``.
    task : str, default "rest"
        Task label of the runs.
    space : str, optional
        Output space of a derivatives folder's runs (``fmriprep.output_space``).

    Returns
    -------
    dict
        ``{run_key: FallbackTR or RefusedTR}``, ``t_r`` in seconds.
    """
    from lcm.bids.fast_index import index_one_subject

    derivatives = is_derivative(read_dataset_description(bids_root))
    entry = "fmriprep" if derivatives else "bids"
    rows = index_one_subject("", entry, bids_root, subject, task=task, space=space)
    trs: dict[str, FallbackTR | RefusedTR] = {
        without_echo(row["run_key"]): RefusedTR(
            str(row["reason_code"]), str(row["reason"]), derivatives=derivatives
        )
        for row in rows
        if not row["included"] and row["reason_code"] in _TR_REFUSALS
    }
    for row in rows:
        if row["included"] and row["t_r"] is not None:
            key = without_echo(row["run_key"])
            if derivatives:
                trs[key] = _derivatives_tr(row["t_r"], row["path"], row["tr_check"])
            else:
                trs[key] = _raw_tr(row["t_r"], row["path"])
    return trs


# Ingest's exclusions of a raw run for its TR: the fMRIPrep stage repeats them where the
# preprocessed sidecar gives no TR either.
_TR_REFUSALS = (reason_codes.TR_MISMATCH, reason_codes.NO_REPETITION_TIME)


def _raw_tr(t_r: float, path: str) -> FallbackTR:
    return FallbackTR(float(t_r), f"the raw BIDS sidecar(s) of {path} (BIDS inheritance)")


def _derivatives_tr(
    t_r: float, path: str, tr_check: str, manifest: str | Path | None = None
) -> FallbackTR:
    """The TR ingest gives a run of a derivatives dataset, as its manifest records it
    (``manifest``) or as ingest's index reads it now (``None``): from its BOLD header where no
    sidecar named one (``tr_check``), else from the sidecars the run inherits."""
    if tr_check == TR_FROM_HEADER_CHECK:  # no sidecar named one: ingest read the header
        how = f"read it ({manifest})" if manifest else "reads it"
        where = f"the NIfTI header (pixdim[4]) of {path}, as ingest {how}"
        return FallbackTR(float(t_r), where, TR_FROM_HEADER)
    how = f"resolved for {path} ({manifest})" if manifest else f"resolves for {path}"
    return FallbackTR(float(t_r), f"the JSON sidecar(s) ingest {how}", TR_FROM_INHERITED)


# Rows of the manifest that are no run of the cohort: a run the selection leaves out, an echo of
# a multi-echo run listed by another, the phase of a complex-valued run.
_NOT_COHORT = (reason_codes.NOT_SELECTED, reason_codes.OTHER_ECHO, reason_codes.OTHER_PART)


def runs_from_manifest(manifest: str | Path, subject: str, task: str = "rest") -> ManifestRuns:
    """The runs of ``subject`` and ``task`` in the dataset's ingest manifest.

    What the workflow's fMRIPrep job reads instead of :func:`subject_runs`: the manifest was
    written by ``lcm ingest`` from the same files, with the selection and the validator's
    exclusions applied and multi-echo runs already combined, so the runs expected from fMRIPrep
    are the runs the rest of the workflow plans for. Building a BIDS index of the whole dataset
    in every subject's job cost seconds per thousand subjects, once per subject.

    Parameters
    ----------
    manifest : path-like
        ``manifest.parquet`` of ``lcm ingest``.
    subject : str
        Subject label without ``sub-``.
    task : str
        Task label.

    Returns
    -------
    ManifestRuns
        The included runs, sorted by run key, and the subject's other runs with the reason
        ingest excluded each (a BIDS validator error in its folder, a file not fetched ...;
        a multi-echo run by its key without ``echo-``). Rows that are no run of the cohort
        (``not_selected``, ``other_echo``, ``other_part``) are neither.

    Raises
    ------
    InputDataError
        When the manifest is missing or unreadable.
    BIDSError
        When it lists no run of the subject and task, or only runs the selection leaves out.
    """
    from lcm.bids.manifest import read_manifest

    df = read_manifest(manifest)
    rows = df[(df["subject"] == subject) & (df["task"] == task)]
    keys = sorted(set(rows.loc[rows["included"], "run_key"].astype(str)))
    excluded: dict[str, tuple[str, str]] = {}
    t_r: dict[str, FallbackTR] = {}
    paths = {
        without_echo(str(row.run_key)): str(row.path)
        for row in rows[rows["included"]].itertuples(index=False)
        if entry_type(str(row.entry)).raw
    }
    for row in rows[rows["included"] & rows["t_r"].notna()].itertuples(index=False):
        key = without_echo(str(row.run_key))
        if entry_type(str(row.entry)).raw:
            t_r[key] = _raw_tr(row.t_r, str(row.path))
        else:
            t_r[key] = _derivatives_tr(row.t_r, str(row.path), str(row.tr_check), manifest)
    left = rows[~rows["included"] & ~rows["reason_code"].isin(_NOT_COHORT)]
    for row in left.sort_values("run_key").itertuples(index=False):
        key = without_echo(str(row.run_key))
        if key not in keys:
            excluded.setdefault(key, (str(row.reason_code), str(row.reason)))
    if not keys and not excluded:
        raise BIDSError(
            f"sub-{subject} has no included BOLD run of task {task!r} in {manifest}.",
            hint="Read the manifest's reason column for its runs, or rerun 'lcm ingest' if "
            "the subject's files were added since.",
        )
    return ManifestRuns([run_ids_from_key(key) for key in keys], excluded, t_r, paths)
