"""fMRIPrep container command lines (argument lists, never shell strings)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lcm.exceptions import ConfigError

# Where the TemplateFlow cache is mounted inside an apptainer container.
CONTAINER_TEMPLATEFLOW = "/templateflow"
# fMRIPrep's spellings of its CPU and memory options (any one given by the user wins).
_CPU_OPTIONS = ("--nthreads", "--nprocs", "--n_cpus", "--n-cpus")
_MEM_OPTIONS = ("--mem", "--mem-mb", "--mem_mb")
# The one spelling of the memory option LCM emits: fMRIPrep takes all three, but the
# fmriprep-docker wrapper skips its "Continue anyway? [y/N]" prompt (Docker reports < 8 GB)
# only when the exact word ``--mem_mb`` is on its command line; a batch job has no stdin to
# answer it, so any other spelling fails every subject on such a machine.
MEM_OPTION = "--mem_mb"
# fMRIPrep's memory values: digits and an optional unit (its ``_to_gb``: M when none).
_MEMORY = re.compile(r"(\d+)([KMGTB]?)\w*")
_MB_PER_UNIT = {"K": 1e-3, "M": 1.0, "G": 1e3, "T": 1e6, "B": 1e-6}
# Share of the job's memory handed to fMRIPrep: the container runtime and nipype's own
# bookkeeping live outside its budget, and SLURM kills the whole job at the limit.
FMRIPREP_MEM_SHARE = 0.9


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


def _given(args: list[str], options: tuple[str, ...]) -> bool:
    return any(a.split("=", 1)[0] in options for a in args)


def take_option(args: list[str], names: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """The value of the last of ``names`` in ``args``, and ``args`` without any of them.

    Parameters
    ----------
    args : list of str
        fMRIPrep arguments (``fmriprep.extra_args``), each option ``--opt V`` or ``--opt=V``.
    names : tuple of str
        The spellings of one option.

    Returns
    -------
    (str or None, list of str)
        Its value (the last one given wins, as in fMRIPrep's argparse) and the other
        arguments in their order.

    Raises
    ------
    ConfigError
        An option of ``names`` that ends the list without its value.
    """
    value: str | None = None
    rest: list[str] = []
    i = 0
    while i < len(args):
        name, sep, inline = args[i].partition("=")
        if name not in names:
            rest.append(args[i])
            i += 1
        elif sep:
            value, i = inline, i + 1
        elif i + 1 < len(args):
            value, i = args[i + 1], i + 2
        else:
            raise ConfigError(
                f"fmriprep.extra_args: {args[i]!r} is last, without its value.",
                hint=f"Write it with its value, e.g. [{args[i]!r}, '8'].",
            )
    return value, rest


def memory_mb(value: str) -> int:
    """An fMRIPrep memory value (``16000``, ``16G``, ``16GB``) in MB, as fMRIPrep reads it.

    Raises
    ------
    ConfigError
        A value fMRIPrep would refuse.
    """
    match = _MEMORY.fullmatch(value.strip())
    if not match:
        raise ConfigError(
            f"fmriprep.extra_args: expected a memory size such as 16000 (MB) or 16G after "
            f"--mem_mb, received {value!r}.",
            hint="Write the memory in MB: ['--mem_mb', '16000'].",
        )
    return int(int(match.group(1)) * _MB_PER_UNIT[match.group(2) or "M"])


def memory_args(extra_args: list[str]) -> list[str]:
    """``extra_args`` with the user's memory option, in any spelling, written ``--mem_mb N``.

    One option, as its own word, in MB: the spelling the docker wrapper looks for (see
    ``MEM_OPTION``), never two memory options (the last would silently win).
    """
    value, rest = take_option(extra_args, _MEM_OPTIONS)
    return rest if value is None else [*rest, MEM_OPTION, str(memory_mb(value))]


def _positive_int(value: str | None) -> int | None:
    try:
        number = int(value) if value else 0
    except ValueError:
        return None
    return number if number > 0 else None


def allocation_args(extra_args: list[str], env: Mapping[str, str]) -> list[str]:
    """fMRIPrep CPU and memory options from the SLURM allocation the job runs in.

    Left alone, fMRIPrep sizes itself from the node (all its CPUs, no memory bound), which on
    a shared node oversubscribes the job's share and gets it killed. Inside a SLURM job this
    returns ``--nthreads <SLURM_CPUS_PER_TASK> --mem_mb <90 % of the job's memory>``; outside
    one (a workstation), nothing. An option the user already passes in ``extra_args`` wins.

    Parameters
    ----------
    extra_args : list of str
        The user's further fMRIPrep arguments (``fmriprep.extra_args``).
    env : mapping
        The job's environment (``SLURM_CPUS_PER_TASK``, ``SLURM_MEM_PER_NODE`` or
        ``SLURM_MEM_PER_CPU``, in MB).

    Returns
    -------
    list of str
        Arguments to add before ``extra_args``.
    """
    args: list[str] = []
    cpus = _positive_int(env.get("SLURM_CPUS_PER_TASK"))
    if cpus and not _given(extra_args, _CPU_OPTIONS):
        args += ["--nthreads", str(cpus)]
    mem = _positive_int(env.get("SLURM_MEM_PER_NODE"))
    per_cpu = _positive_int(env.get("SLURM_MEM_PER_CPU"))
    if mem is None and per_cpu and cpus:
        mem = per_cpu * cpus
    if mem and not _given(extra_args, _MEM_OPTIONS):
        args += [MEM_OPTION, str(int(mem * FMRIPREP_MEM_SHARE))]
    return args


def check_mount_paths(
    call: FmriprepCall, runner: str, templateflow_home: str | None = None
) -> None:
    """Refuse host paths that a container mount specification would split wrongly.

    ``apptainer -B src:dst:ro`` separates binds with ``,`` and fields with ``:``, and
    ``docker -v`` (built by fmriprep-docker) fields with ``:``; neither has an escape, so a
    host path holding one of them would mount the wrong folder, or fail obscurely inside the
    container. Every other character (spaces, quotes, ``$``) is safe: arguments are passed as
    argv elements, never through a shell.

    Parameters
    ----------
    call : FmriprepCall
        The run, whose BIDS, derivatives, work folder and licence are mounted.
    runner : {"docker", "apptainer"}
        The container tool.
    templateflow_home : str, optional
        Host TemplateFlow cache (bound by apptainer).

    Raises
    ------
    ConfigError
        Naming the path, the character and the fix.
    """
    forbidden = ":," if runner == "apptainer" else ":"
    paths = {
        "BIDS folder": call.bids,
        "derivatives folder": call.derivatives,
        "work folder (fmriprep.work_dir)": call.subject_work_dir,
        "FreeSurfer licence (fmriprep.fs_license)": call.fs_license,
    }
    if templateflow_home and runner == "apptainer":
        paths["TemplateFlow cache (TEMPLATEFLOW_HOME)"] = Path(os.path.abspath(templateflow_home))
    for what, path in paths.items():
        bad = sorted({c for c in str(path) if c in forbidden})
        if bad:
            chars = " and ".join(repr(c) for c in bad)
            raise ConfigError(
                f"{what} {str(path)!r} contains {chars}, which {runner}'s mount option "
                f"({'-B src:dst:ro' if runner == 'apptainer' else '-v src:dst:ro'}) cannot "
                "escape: it would mount the wrong folder.",
                hint=f"Use a path without {chars}: rename the folder, or make a symlink to it "
                "from such a path (ln -s) and give that.",
            )


def docker_command(call: FmriprepCall, executable: str = "fmriprep-docker") -> list[str]:
    """``fmriprep-docker`` argv for one subject (the wrapper builds the ``docker run``)."""
    return [
        executable,
        str(call.bids),
        str(call.derivatives),
        "participant",
        "--participant-label",
        call.subject,
        "--output-spaces",
        call.output_space,
        "--fs-license-file",
        str(call.fs_license),
        "-w",
        str(call.subject_work_dir),
        "--no-tty",
        "-i",
        call.image,
        *call.extra_args,
    ]


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

    Raises
    ------
    ConfigError
        When a host path holds ``,`` or ``:`` (see :func:`check_mount_paths`).
    """
    check_mount_paths(call, "apptainer", templateflow_home)
    binds = [
        f"{call.bids}:/data:ro",
        f"{call.derivatives}:/out",
        f"{call.subject_work_dir}:/work",
        f"{call.fs_license}:/opt/freesurfer/license.txt:ro",
    ]
    env: dict[str, str] = {}
    if templateflow_home:
        binds.append(f"{os.path.abspath(templateflow_home)}:{CONTAINER_TEMPLATEFLOW}")
        env["APPTAINERENV_TEMPLATEFLOW_HOME"] = CONTAINER_TEMPLATEFLOW
    argv = [executable, "run", "--cleanenv"]
    for bind in binds:
        argv += ["-B", bind]
    argv += [
        call.image,
        "/data",
        "/out",
        "participant",
        "--participant-label",
        call.subject,
        "--output-spaces",
        call.output_space,
        "-w",
        "/work",
        *call.extra_args,
    ]
    return argv, env
