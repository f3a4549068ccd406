"""Exception hierarchy of LCM, each class mapped to a command-line exit code.

Every error says what was expected, what was received, which file it concerns and how to fix it.
The CLI catches :class:`LCMError`, prints the message and the hint, and exits with ``exit_code``.
"""

from __future__ import annotations


class LCMError(Exception):
    """Base class of all errors LCM raises on purpose.

    Parameters
    ----------
    message : str
        What went wrong, naming the file or key concerned.
    hint : str, optional
        How to fix it.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message

    def one_line(self) -> str:
        """What is wrong, then the fix, in one table cell: ``"<message>. Fix: <hint>"``.

        The wording of an exclusion reason (ingest manifest, connectome QC): a table names
        the file and the fix together, as the error would on the console.
        """
        if not self.hint:
            return self.message
        return f"{self.message.rstrip(' .')}. Fix: {self.hint}"


class ConfigError(LCMError):
    """A configuration file or value is invalid."""

    exit_code = 2


class InputDataError(LCMError):
    """An input data file (BIDS, derivatives, phenotype, time series) is missing or invalid."""

    exit_code = 3


class BIDSError(InputDataError):
    """A BIDS dataset is not valid or lacks what a stage needs."""


class AtlasError(InputDataError):
    """An atlas image or its labels table is unusable."""


class ExternalToolError(LCMError):
    """An external program (fmriprep-docker, apptainer, docker) failed or is missing."""

    exit_code = 4


class CheckpointError(LCMError):
    """A model checkpoint cannot be loaded or does not match the data."""

    exit_code = 5


class ExcludedRunError(InputDataError):
    """One run is unusable; the cohort continues and the run is listed with this reason.

    Parameters
    ----------
    message : str
        Why the run is excluded (the QC table's ``reason``).
    hint : str, optional
        How to fix it.
    code : str, optional
        A short name of the kind of problem (the QC table's ``reason_code``, e.g.
        ``confounds_missing_columns``): summaries count the runs of a dataset per code, where
        the messages differ by file name.
    """

    def __init__(self, message: str, hint: str | None = None, *, code: str = "") -> None:
        super().__init__(message, hint)
        self.code = code


class OutputBusyError(LCMError):
    """Another LCM process is writing the same output (its advisory lock is held)."""

    exit_code = 6


class OutputOwnershipError(LCMError):
    """An output folder holds files LCM did not write; LCM refuses to write there."""

    exit_code = 6


class OutputSpaceError(LCMError):
    """An output could not be written for want of room (a full disk, a quota, a size limit)."""

    exit_code = 7


class WorkerKilledError(LCMError):
    """A worker process was killed (most often by the OOM killer) before its work finished."""

    exit_code = 8
