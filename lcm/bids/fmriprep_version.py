"""Which fMRIPrep made each subject of a derivatives folder, from the logs it leaves there.

fMRIPrep (20.2 on) writes the settings of every run to
``sub-<label>/log/<YYYYMMDD-HHMMSS>_<uuid>/fmriprep.toml``, whose ``[environment]`` table names
the ``version`` that ran. The folder's ``dataset_description.json`` names one version
(``GeneratedBy``), that of whichever run wrote it last: subjects processed (or rerun) with
another version share the folder without a trace there. Their outputs differ (confounds,
resampling, masks), a confound of any comparison across subjects, so the version is read per
subject, recorded, and a mix is warned about.
"""

from __future__ import annotations

import logging
import os
import shlex
import tomllib
from pathlib import Path
from typing import Any

from lcm.bids.nifti_header import is_annex_pointer

log = logging.getLogger(__name__)

# Where, under a subject's folder, fMRIPrep's per-run settings lie.
CONFIG_GLOB = "log/*/fmriprep.toml"


def subject_fmriprep_version(deriv_root: str | Path, subject: str) -> dict[str, Any]:
    """The fMRIPrep version that last ran on ``subject``, from its latest ``fmriprep.toml``.

    Parameters
    ----------
    deriv_root : str or Path
        The fMRIPrep derivatives root.
    subject : str
        The subject's label, without ``sub-``.

    Returns
    -------
    dict
        ``{version, config, earlier_versions, reason}``: ``version`` from the ``[environment]``
        table of the latest run's ``fmriprep.toml`` (its log folder's name starts with the time
        it ran), ``config`` that file; ``earlier_versions`` the other versions earlier runs'
        files name (a subject rerun with another version may hold outputs of both);
        ``version`` null with ``reason`` when no such file is there (fMRIPrep before 20.2, or
        logs not shared) or none names a version. Where the latest file cannot be read (not
        fetched: a DataLad symlink or annex pointer, with its ``datalad get``; permissions;
        not TOML) or names no version, ``version`` and ``config`` are those of the newest
        file that names one, and ``reason`` says so, with a warning: a rerun after it may
        have been made by another version.
    """
    folder = Path(deriv_root) / f"sub-{subject}"
    configs = _configs(folder)
    found: dict[str, Any] = {
        "version": None,
        "config": None,
        "earlier_versions": [],
        "reason": None,
    }
    if not configs:
        found["reason"] = (
            f"no {folder / CONFIG_GLOB} (fMRIPrep before 20.2, or its logs were not shared)"
        )
        return found
    versions = [_version(path) for path in configs]
    # The newest file that names a version: an unreadable latest one (not fetched, say) hid
    # the version its subject's earlier logs name.
    named = [i for i, (v, _) in enumerate(versions) if v is not None]
    used = named[-1] if named else len(configs) - 1
    version, reason = versions[used]
    if used < len(configs) - 1:
        newer = "; ".join(str(why) for _, why in versions[used + 1 :])
        reason = (
            f"{newer}. The version recorded, {version}, is that of the newest log that names "
            f"one, {configs[used]}: a later run of the subject may have been made by another"
        )
        log.warning("sub-%s: %s", subject, reason)
    found.update(config=str(configs[used]), version=version, reason=reason)
    found["earlier_versions"] = sorted(
        {v for v, _ in versions[:used] if v is not None and v != version}
    )
    return found


def _configs(folder: Path) -> list[Path]:
    """The subject's ``log/*/fmriprep.toml``, oldest first (its log folder's name starts with
    the time it ran), a DataLad symlink not fetched included (a glob skips those)."""
    try:
        with os.scandir(folder / "log") as it:
            logs = [entry.path for entry in it if entry.is_dir()]
    except OSError:
        return []
    found = [Path(d) / "fmriprep.toml" for d in logs]
    return sorted((p for p in found if os.path.lexists(p)), key=lambda p: p.parent.name)


def _version(path: Path) -> tuple[str | None, str | None]:
    """``(version, None)`` from one ``fmriprep.toml``, or ``(None, why)``."""
    get = f"run `datalad get {shlex.quote(str(path))}`"
    if path.is_symlink() and not path.exists():
        return None, f"{path} is a symlink to content not fetched (DataLad/git-annex): {get}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, (
            f"{path} cannot be read ({exc.strerror or exc}): give the user running lcm read "
            "access to it"
        )
    if is_annex_pointer(data):
        return None, f"{path} is a git-annex pointer, its content not fetched: {get}"
    try:
        settings = tomllib.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return None, f"{path} cannot be read as TOML: {exc}"
    env = settings.get("environment")
    version = env.get("version") if isinstance(env, dict) else None
    if not isinstance(version, str) or not version.strip():
        return None, f"{path} names no [environment] version"
    return version.strip(), None


def fmriprep_versions(deriv_root: str | Path, subjects: list[str]) -> dict[str, Any]:
    """The fMRIPrep version of each of ``subjects``, grouped, with a warning for a mix.

    Parameters
    ----------
    deriv_root : str or Path
        The fMRIPrep derivatives root.
    subjects : list of str
        Subject labels, without ``sub-`` (those with included runs).

    Returns
    -------
    dict
        ``{by_version: {version: [subject, ...]}, unknown: [subject, ...], mixed: bool}``:
        ``unknown`` lists the subjects whose logs name no version
        (:func:`subject_fmriprep_version`); ``mixed`` is whether more than one version is
        named, counting the earlier runs of a subject rerun with another version.
    """
    by_version: dict[str, list[str]] = {}
    unknown: list[str] = []
    rerun: dict[str, list[str]] = {}
    for sub in sorted(set(subjects)):
        found = subject_fmriprep_version(deriv_root, sub)
        if found["version"] is None:
            unknown.append(sub)
            continue
        by_version.setdefault(found["version"], []).append(sub)
        if found["earlier_versions"]:
            rerun[sub] = found["earlier_versions"]
    named = set(by_version) | {v for vs in rerun.values() for v in vs}
    mixed = len(named) > 1
    if mixed:
        groups = "; ".join(
            f"{version}: {_listed(subs)}" for version, subs in sorted(by_version.items())
        )
        earlier = "; ".join(f"sub-{s} also ran {', '.join(vs)} before" for s, vs in rerun.items())
        log.warning(
            "%s: its subjects were made by different fMRIPrep versions (the [environment] "
            "version of each subject's latest log/*/fmriprep.toml): %s%s. Their outputs differ "
            "(confounds, resampling, masks), a confound of comparisons across subjects. Rerun "
            "those subjects with one fMRIPrep version into a folder of its own, or accept the "
            "mix: each subject's version is recorded (ingest summary.json, fmriprep_versions; "
            "the fMRIPrep record's generated_by.subject)",
            deriv_root,
            groups,
            f"; {earlier}" if earlier else "",
        )
    return {"by_version": by_version, "unknown": unknown, "mixed": mixed}


def _listed(subjects: list[str], limit: int = 10) -> str:
    shown = ", ".join(f"sub-{s}" for s in subjects[:limit])
    more = len(subjects) - limit
    return f"{shown} and {more} more" if more > 0 else shown
