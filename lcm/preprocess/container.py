"""fMRIPrep container command lines (argument lists, never shell strings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Where the TemplateFlow cache is mounted inside an apptainer container.
CONTAINER_TEMPLATEFLOW = "/templateflow"


@dataclass(frozen=True)
class FmriprepCall:
    """What one fMRIPrep run of one subject needs; paths are absolute."""

    bids: Path
    derivatives: Path
    subject: str
    image: str
    output_space: str
    work_dir: Path
    fs_license: Path
    extra_args: list[str] = field(default_factory=list)

    @property
    def subject_work_dir(self) -> Path:
        """Per-subject work folder, so concurrent subjects never share nipype caches."""
        return self.work_dir / f"sub-{self.subject}"


def docker_command(call: FmriprepCall, executable: str = "fmriprep-docker") -> list[str]:
    """``fmriprep-docker`` argv for one subject (the wrapper builds the ``docker run``)."""
    return [
        executable, str(call.bids), str(call.derivatives), "participant",
        "--participant-label", call.subject,
        "--output-spaces", call.output_space,
        "--fs-license-file", str(call.fs_license),
        "-w", str(call.subject_work_dir),
        "--no-tty",
        "-i", call.image,
        *call.extra_args,
    ]  # fmt: skip


def apptainer_command(
    call: FmriprepCall, templateflow_home: str | None = None, executable: str = "apptainer"
) -> tuple[list[str], dict[str, str]]:
    """``apptainer run`` argv for one subject and the environment variables it needs.

    Parameters
    ----------
    call : FmriprepCall
        The run.
    templateflow_home : str, optional
        Host TemplateFlow cache; bound and passed as ``TEMPLATEFLOW_HOME`` through
        ``APPTAINERENV_`` (``--cleanenv`` drops the host variable).
    executable : str
        The apptainer program.

    Returns
    -------
    (list of str, dict)
        argv and the extra environment for the subprocess.
    """
    binds = [
        f"{call.bids}:/data:ro",
        f"{call.derivatives}:/out",
        f"{call.subject_work_dir}:/work",
        f"{call.fs_license}:/opt/freesurfer/license.txt:ro",
    ]
    env: dict[str, str] = {}
    if templateflow_home:
        binds.append(f"{Path(templateflow_home).resolve()}:{CONTAINER_TEMPLATEFLOW}")
        env["APPTAINERENV_TEMPLATEFLOW_HOME"] = CONTAINER_TEMPLATEFLOW
    argv = [executable, "run", "--cleanenv"]
    for bind in binds:
        argv += ["-B", bind]
    argv += [
        call.image, "/data", "/out", "participant",
        "--participant-label", call.subject,
        "--output-spaces", call.output_space,
        "-w", "/work",
        *call.extra_args,
    ]  # fmt: skip
    return argv, env
