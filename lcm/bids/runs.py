"""Identifiers of one run taken from its file name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lcm.exceptions import InputDataError
from lcm.io.bids_names import RUN_ENTITIES, check_name_label, parse_entities, run_key


@dataclass(frozen=True)
class RunIds:
    """Acquisition entities of a run, as labels (``""`` when absent) and its run key."""

    entities: dict[str, str]
    run_key: str

    @property
    def subject(self) -> str:
        """Subject label without ``sub-``."""
        return self.entities.get("sub", "")

    @property
    def session(self) -> str:
        """Session label, ``""`` when the dataset has no sessions."""
        return self.entities.get("ses", "")

    @property
    def task(self) -> str:
        """Task label."""
        return self.entities.get("task", "")

    @property
    def run(self) -> str:
        """Run label as written in the file name (zero padding kept), ``""`` when absent."""
        return self.entities.get("run", "")

    def row_fields(self) -> dict[str, str]:
        """``subject, session, task, run, run_key``: the run's identity in a manifest or QC row."""
        return {
            "subject": self.subject,
            "session": self.session,
            "task": self.task,
            "run": self.run,
            "run_key": self.run_key,
        }


def run_ids_from_name(path: str | Path) -> RunIds:
    """Parse and check the acquisition entities of a BIDS file name.

    Labels are taken as written (``run-01`` stays ``01``) so derivative names built from them
    match the files fMRIPrep writes.

    Parameters
    ----------
    path : str or Path
        A BIDS file; only its name is read.

    Raises
    ------
    InputDataError
        When ``sub`` is missing or a label is not alphanumeric (``sub-sub-01`` included: see
        ``check_name_label``).
    """
    name = Path(path).name
    parsed = parse_entities(name)
    if "sub" not in parsed:
        raise InputDataError(
            f"{name}: no 'sub-<label>' entity in the file name.",
            hint="BIDS file names start with sub-<label>.",
        )
    entities = {k: check_name_label(k, parsed[k], source=name) for k in RUN_ENTITIES if k in parsed}
    return RunIds(entities=entities, run_key=run_key(entities))


def run_ids_from_key(key: str) -> RunIds:
    """Identifiers of a run from its run key (e.g. a manifest row's ``run_key``, already checked).

    Runs listed in a listing TSV need not have BIDS file names: their key is the reference.

    Parameters
    ----------
    key : str
        A run key such as ``sub-01_ses-1_task-rest_run-01``.
    """
    return RunIds(entities=parse_entities(key), run_key=key)
