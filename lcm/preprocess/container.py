"""fMRIPrep container command lines (argument lists, never shell strings)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lcm.exceptions import ConfigError

log = logging.getLogger(__name__)

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
# fMRIPrep's own ceiling on threads per process: left to itself with --nthreads 1 it takes every
# CPU of the node for each process (its default is min(nthreads - 1, 8), or all when nthreads 1).
OMP_MAX_THREADS = 8
# Share of the job's memory handed to fMRIPrep: the container runtime and nipype's own
# bookkeeping live outside its budget, and SLURM kills the whole job at the limit.
FMRIPREP_MEM_SHARE = 0.9
# fMRIPrep's option of the output spaces (several values, nargs="*"). argparse also takes a
# unique prefix of it; ``--output-layout`` shares ``--output-``, so one reaches ``--output-s``.
SPACES_OPTION = "--output-spaces"
_SPACES_PREFIX = "--output-s"


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
    # The dataset's task (fMRIPrep --task-id): left out, fMRIPrep processes every task.
    task: str | None = None
    # Set when LCM's ingest ran the BIDS validator on the dataset (fMRIPrep's own run of it
    # would stop the whole subject for an error ingest excluded one run for).
    skip_bids_validation: bool = False

    @property
    def selection_args(self) -> list[str]:
        """``--task-id`` and ``--skip-bids-validation``, where they apply."""
        args = ["--task-id", self.task] if self.task else []
        return args + (["--skip-bids-validation"] if self.skip_bids_validation else [])

    @property
    def subject_work_dir(self) -> Path:
        """Per-subject work folder, so concurrent subjects never share nipype caches."""
        return self.work_dir / f"sub-{self.subject}"


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


def _is_spaces_option(word: str) -> bool:
    """Whether ``word`` is fMRIPrep's ``--output-spaces`` (or a prefix argparse takes for it)."""
    name = word.partition("=")[0]
    return name.startswith(_SPACES_PREFIX) and SPACES_OPTION.startswith(name)


def take_output_spaces(args: list[str]) -> tuple[list[str] | None, list[str]]:
    """The spaces of the last ``--output-spaces`` in ``args``, and ``args`` without any.

    Parameters
    ----------
    args : list of str
        fMRIPrep arguments (``fmriprep.extra_args``). ``--output-spaces`` takes the words up to
        the next option (``--output-spaces MNI152NLin6Asym:res-2 T1w --cifti-output 91k``), or
        the one value of ``--output-spaces=V``; argparse's prefixes (``--output-space``) too.

    Returns
    -------
    (list of str or None, list of str)
        The spaces (None when no ``--output-spaces`` is given; the last one wins, as in
        fMRIPrep's argparse) and the other arguments in their order.
    """
    spaces: list[str] | None = None
    rest: list[str] = []
    i = 0
    while i < len(args):
        if not _is_spaces_option(args[i]):
            rest.append(args[i])
            i += 1
            continue
        _, sep, inline = args[i].partition("=")
        i += 1
        if sep:
            spaces = [inline]
            continue
        spaces = []
        while i < len(args) and not args[i].startswith("-"):
            spaces.append(args[i])
            i += 1
    return spaces, rest


# fMRIPrep options LCM sets itself for each subject's run (and the docker wrapper's image). The
# wrapper's and fMRIPrep's argparse keep the last value given, and extra_args come after LCM's:
# ``--participant-label 02`` made every subject's job preprocess sub-02, ``-w`` or ``-i`` ran in
# another work folder or image than the one recorded. Each: (long spellings, the shortest
# prefix argparse takes for them, the short flag, the setting to use instead: {name} is its
# name as the user gives it, lcm.bids.dataset.setting_names).
_RESERVED = (
    (
        ("--participant-label", "--participant_label"),
        "--participant",
        None,
        "LCM runs fMRIPrep once per subject, with that subject's --participant-label: choose "
        "subjects with {subject}",
    ),
    (("--task-id",), "--task", "-t", "set the task with {task} (--task-id)"),
    (("--work-dir",), "--work", "-w", "set the work folder with {work_dir}"),
    (("--fs-license-file",), "--fs-license", None, "set the licence with {fs_license}"),
    (("--image",), "--image", "-i", "set the image with {image}"),
)
# fMRIPrep options after which it writes no preprocessed BOLD (it exits 0 all the same): every
# run was excluded as its outputs missing, no completed run was stamped, and each rerun
# launched fMRIPrep again for hours.
_NO_BOLD = ("--anat-only", "--boilerplate-only", "--boilerplate_only", "--reports-only")


def check_reserved_args(extra_args: list[str], names: Mapping[str, str]) -> None:
    """Refuse ``fmriprep.extra_args`` that override what LCM passes or write no BOLD.

    Parameters
    ----------
    extra_args : list of str
        ``fmriprep.extra_args``.
    names : mapping of str to str
        The dataset's settings as the user gave them (:func:`lcm.bids.dataset.setting_names`
        of it: ``lcm fmriprep``'s options, or the config's keys under a workflow rule), named
        in the message and the fix. The fix named ``fmriprep.extra_args``,
        ``ingest.select.<dataset>`` unfilled and ``lcm run``'s options to either user.

    Raises
    ------
    ConfigError
        ``--participant-label``, ``--task-id``/``-t``, ``--work-dir``/``-w``,
        ``--fs-license-file`` or the wrapper's ``--image``/``-i`` (in any spelling or prefix
        argparse takes, ``--opt=V`` too); ``--anat-only``, ``--boilerplate-only``,
        ``--reports-only``, or a ``--level`` other than ``full``.
    """
    option = names["extra_args"]
    for i, word in enumerate(extra_args):
        name, _, inline = word.partition("=")
        for spellings, prefix, short, fix in _RESERVED:
            long_form = name.startswith(prefix) and any(s.startswith(name) for s in spellings)
            # A short flag alone, or with its value attached (-w/scratch, -trest).
            short_form = short is not None and not word.startswith("--") and word[:2] == short
            if long_form or short_form:
                raise ConfigError(
                    f"{option}: {word!r} sets what LCM passes fMRIPrep itself "
                    f"({spellings[0]}); the last value given wins, so each subject's run would "
                    "use it instead and its record would not say so.",
                    hint=f"Remove {word!r} from {option}; {fix.format_map(names)}.",
                )
        following = inline or (extra_args[i + 1] if i + 1 < len(extra_args) else "")
        if name in _NO_BOLD or (name == "--level" and following != "full"):
            shown = word if name != "--level" or inline else f"{word} {following}".strip()
            raise ConfigError(
                f"{option}: {shown!r} makes fMRIPrep write no preprocessed BOLD: "
                "every run would be excluded as its outputs missing, and each rerun would "
                "launch fMRIPrep again.",
                hint=f"Remove {shown!r} from {option} (LCM reads each run's "
                f"preprocessed BOLD in {names['space']}).",
            )


def output_space_args(output_space: str, extra_args: list[str]) -> tuple[list[str], list[str]]:
    """One ``--output-spaces``: ``output_space`` first, then the user's other spaces.

    fMRIPrep (and the fmriprep-docker wrapper) keeps only the last ``--output-spaces`` it is
    given: one in ``fmriprep.extra_args`` (``MNI152NLin6Asym:res-2 T1w`` before XCP-D, say)
    replaced ``fmriprep.output_space``, and every run lacked its outputs. They are merged.

    Parameters
    ----------
    output_space : str
        ``fmriprep.output_space``, the space LCM reads.
    extra_args : list of str
        The user's further fMRIPrep arguments.

    Returns
    -------
    (list of str, list of str)
        ``["--output-spaces", output_space, *others]`` (each space once) and ``extra_args``
        without its ``--output-spaces``.
    """
    given, rest = take_output_spaces(extra_args)
    spaces = list(dict.fromkeys([output_space, *(given or [])]))
    if given:
        log.info(
            "fmriprep.extra_args asks --output-spaces %s: passed with fmriprep.output_space as "
            "one --output-spaces %s (fMRIPrep keeps only the last one it is given)",
            " ".join(given),
            " ".join(spaces),
        )
    return [SPACES_OPTION, *spaces], rest


def memory_mb(value: str) -> int:
    """An fMRIPrep memory value (``16000``, ``16G``, ``16GB``) in MB, as fMRIPrep reads it.

    Parameters
    ----------
    value : str
        The value after ``--mem``, ``--mem-mb`` or ``--mem_mb`` in ``fmriprep.extra_args``: a
        number, optionally followed by a unit (no unit is MB).

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


def _count(value: str, option: str) -> int:
    """A positive thread count given after ``option``."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(
            f"fmriprep.extra_args: expected a positive whole number after {option}, "
            f"received {value!r}.",
            hint=f"E.g. ['{option}', '8'].",
        )
    return number


def _capped(given: int | None, job: int | None, what: str) -> int | None:
    """The user's value, at most the job's (with a warning); the job's when none is given."""
    if given is None:
        return job
    if job is not None and given > job:
        log.warning(
            "fmriprep.extra_args asks %s %d, more than the job's %d: %d is used (a job that "
            "takes more than it was granted slows its neighbours or is killed).",
            what,
            given,
            job,
            job,
        )
        return job
    return given


def without_resource_args(extra_args: list[str]) -> list[str]:
    """``extra_args`` without its CPU, OpenMP and memory options (how fMRIPrep runs, not what
    it writes), in any spelling :func:`resource_args` takes.

    Parameters
    ----------
    extra_args : list of str
        ``fmriprep.extra_args``.
    """
    rest = extra_args
    for names in (_CPU_OPTIONS, ("--omp-nthreads",), _MEM_OPTIONS):
        _, rest = take_option(rest, names)
    return rest


def resource_args(
    extra_args: list[str], nthreads: int | None = None, mem_mb: int | None = None
) -> list[str]:
    """fMRIPrep's arguments: its CPU and memory options sized to the job, then ``extra_args``.

    Left alone, fMRIPrep sizes itself from the node (all its CPUs, no memory bound), which
    oversubscribes a shared node, and a workstation running one fMRIPrep per subject side by
    side. The job's threads and memory come from the Snakemake rule (``threads``,
    ``resources.mem_mb``), not from SLURM variables, which the job step does not see.

    Parameters
    ----------
    extra_args : list of str
        The user's further fMRIPrep arguments (``fmriprep.extra_args``). Its CPU, OpenMP and
        memory options, in any spelling, are taken out and given once, at most the job's.
    nthreads : int, optional
        CPUs of the job: ``--nthreads``, and ``--omp-nthreads`` (at most ``nthreads`` and 8).
    mem_mb : int, optional
        Memory of the job in MB: fMRIPrep gets ``--mem_mb`` 90 % of it (the container runtime
        and nipype's bookkeeping live outside its budget).

    Returns
    -------
    list of str
        ``--nthreads N --omp-nthreads M --mem_mb X`` (each where known), then the other
        arguments of ``extra_args`` in their order.

    Raises
    ------
    ConfigError
        A thread count or memory size in ``extra_args`` that fMRIPrep would refuse.
    """
    cpus, rest = take_option(extra_args, _CPU_OPTIONS)
    omp, rest = take_option(rest, ("--omp-nthreads",))
    memory, rest = take_option(rest, _MEM_OPTIONS)
    args: list[str] = []
    threads = _capped(None if cpus is None else _count(cpus, "--nthreads"), nthreads, "--nthreads")
    if threads:
        args += ["--nthreads", str(threads)]
    omp_threads = _capped(
        None if omp is None else _count(omp, "--omp-nthreads"), threads, "--omp-nthreads"
    )
    if omp is None and threads:
        omp_threads = min(threads, OMP_MAX_THREADS)
    if omp_threads:
        args += ["--omp-nthreads", str(omp_threads)]
    budget = int(mem_mb * FMRIPREP_MEM_SHARE) if mem_mb else None
    memory_value = _capped(None if memory is None else memory_mb(memory), budget, MEM_OPTION)
    if memory_value:
        args += [MEM_OPTION, str(memory_value)]
    return args + rest


# fMRIPrep options of fmriprep.extra_args that name a host path, as fmriprep-docker mounts them
# (option -> whether fMRIPrep only reads it). Under apptainer each is bound at its own path.
HOST_PATH_OPTIONS = {
    "--fs-subjects-dir": False,
    "--bids-database-dir": False,
    "--config-file": True,
    "--bids-filter-file": True,
    "--use-plugin": True,
    "-d": True,
    "--derivatives": True,
}


def extra_host_paths(extra_args: list[str]) -> list[tuple[int, str, str, str]]:
    """The host paths ``extra_args`` gives fMRIPrep: ``(index, option, prefix, path)`` each.

    ``-d``/``--derivatives`` take several values, each a folder or ``name=folder``
    (``prefix`` is then ``name=``); the others one value (``--opt V`` or ``--opt=V``).

    Parameters
    ----------
    extra_args : list of str
        ``fmriprep.extra_args``.
    """
    found = []
    i = 0
    while i < len(extra_args):
        option, eq, value = extra_args[i].partition("=")
        if option in HOST_PATH_OPTIONS and eq:
            found.append((i, option, "", value))
        elif option in HOST_PATH_OPTIONS:
            many = option in ("-d", "--derivatives")
            j = i + 1
            while j < len(extra_args) and not extra_args[j].startswith("-"):
                word = extra_args[j]
                name, sep, folder = word.partition("=")
                prefix, path = (f"{name}=", folder) if many and sep else ("", word)
                found.append((j, option, prefix, path))
                j += 1
                if not many:
                    break
            i = j - 1
        i += 1
    return found


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
    if runner == "apptainer":
        for _, option, _, path in extra_host_paths(call.extra_args):
            paths[f"fmriprep.extra_args {option}"] = Path(os.path.abspath(path))
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


def check_wrapper_spaces(call: FmriprepCall) -> None:
    """Refuse an output space ``fmriprep-docker`` would stop on before starting fMRIPrep.

    The wrapper passes by name only the templates it lists (and the subject's own spaces); any
    other (``MNIColin27``, ``MNI152NLin2009cSym``, valid for fMRIPrep) it takes for a custom
    template folder, which must be named ``tpl-<name>``, and stops. That read as docker
    failing, retried, in every subject's job. Unchecked where the wrapper cannot be imported.

    Parameters
    ----------
    call : FmriprepCall
        The subject's run.

    Raises
    ------
    ConfigError
        A space the wrapper refuses, naming those it passes.
    """
    try:
        from fmriprep_docker import __main__ as wrapper
    except ImportError:  # its own Python: the wrapper says so itself
        return
    known = (*getattr(wrapper, "TF_TEMPLATES", ()), *getattr(wrapper, "NONSTANDARD_REFERENCES", ()))
    if not known:
        return
    spaces, _ = output_space_args(call.output_space, call.extra_args)
    refused = [
        s
        for s in spaces[1:]
        if s.split(":")[0] not in known and not Path(s).name.startswith("tpl-")
    ]
    if refused:
        raise ConfigError(
            f"fmriprep-docker passes by name only the templates it knows ({', '.join(known)}): "
            f"output space(s) {refused} would stop it before fMRIPrep starts.",
            hint="Choose a space it lists, or run fMRIPrep with fmriprep.runner: apptainer, "
            "which passes any TemplateFlow template to fMRIPrep (an extra space may also be "
            "given to fmriprep-docker as the path of its TemplateFlow folder, .../tpl-<name>).",
        )


def docker_command(call: FmriprepCall, executable: str = "fmriprep-docker") -> list[str]:
    """``fmriprep-docker`` argv for one subject (the wrapper builds the ``docker run``).

    A ``--output-spaces`` of ``call.extra_args`` is merged into the one given here (see
    :func:`output_space_args`).

    Parameters
    ----------
    call : FmriprepCall
        The subject's run: folders, image, licence, output space and extra arguments.
    executable : str, default "fmriprep-docker"
        The wrapper to run.
    """
    spaces, extra = output_space_args(call.output_space, call.extra_args)
    return [
        executable,
        str(call.bids),
        str(call.derivatives),
        "participant",
        "--participant-label",
        call.subject,
        *spaces,
        "--fs-license-file",
        str(call.fs_license),
        "-w",
        str(call.subject_work_dir),
        "--no-tty",
        "-i",
        call.image,
        *call.selection_args,
        *extra,
    ]


# fMRIPrep under apptainer without TEMPLATEFLOW_HOME reads the templates from the host home's
# cache (apptainer binds $HOME), which holds none on a fresh account: it then downloads them,
# which fails or hangs on compute nodes without internet.
NO_TEMPLATEFLOW_WARNING = (
    "TEMPLATEFLOW_HOME is not set: fMRIPrep in apptainer will look for its templates in "
    "$HOME/.cache/templateflow and download the missing ones, which fails on compute nodes "
    "without internet. Fill a TemplateFlow folder on a node with internet (python -c "
    "\"import templateflow.api as t; t.get('MNI152NLin2009cAsym'); t.get('OASIS30ANTs')\" with "
    "TEMPLATEFLOW_HOME set to it), then 'export TEMPLATEFLOW_HOME=<that folder>' before "
    "snakemake (SLURM jobs inherit it): LCM binds it into the container."
)


# Where fMRIPrep's docker image keeps its TemplateFlow templates (the image's TEMPLATEFLOW_HOME,
# where fmriprep-docker itself mounts a custom ``tpl-`` output space).
DOCKER_IMAGE_TEMPLATEFLOW = "/home/fmriprep/.cache/templateflow"


def docker_templateflow_note(value: str | None) -> str | None:
    """What happens to a set ``TEMPLATEFLOW_HOME`` under the docker runner; None when unset.

    fmriprep-docker (25.2.7) mounts fixed folders only (licence, BIDS, output, work, its
    ``--config`` and ``--fs-subjects-dir``, a custom ``tpl-`` output space): it has no option
    to mount a host folder, and its ``-e/--env`` alone would point fMRIPrep at a path the
    container does not have. So the folder is not passed; fMRIPrep reads the templates of its
    image. Said in the dry run (the workflow, when it loads) and in each subject's job log.

    Parameters
    ----------
    value : str or None
        ``TEMPLATEFLOW_HOME`` as set in the environment.
    """
    if not value:
        return None
    return (
        f"TEMPLATEFLOW_HOME ({value}) is not passed to fMRIPrep's docker container: "
        "fmriprep-docker has no option to mount a host folder (its -e would name a path the "
        "container does not have), so fMRIPrep uses the templates inside its image "
        f"({DOCKER_IMAGE_TEMPLATEFLOW}, pre-fetched for its standard spaces) and downloads any "
        "other, which fails without internet. LCM itself still reads TEMPLATEFLOW_HOME (atlas "
        "look-up). To give fMRIPrep your folder, set fmriprep.runner: apptainer (LCM binds "
        "it), or build an image FROM fmriprep.image with the templates copied into "
        f"{DOCKER_IMAGE_TEMPLATEFLOW} and set fmriprep.image to it."
    )


def templateflow_home(value: str | None, cwd: str | None = None) -> str | None:
    """The TemplateFlow folder ``TEMPLATEFLOW_HOME`` names, absolute; None when unset.

    A relative value is read from ``cwd`` (default: the current folder): ``lcm run`` resolves
    it against the folder it is called from before Snakemake moves into OUTPUT_DIR, where the
    jobs bound ``OUTPUT_DIR/<value>``, a folder that did not exist.

    Parameters
    ----------
    value : str or None
        ``TEMPLATEFLOW_HOME`` as set in the environment.
    cwd : str, optional
        Folder a relative ``value`` is read from; the current folder when None.

    Raises
    ------
    ConfigError
        When the folder does not exist: apptainer refused the bind (exit 255) in every
        subject's job.
    """
    if not value:
        return None
    path = os.path.abspath(os.path.join(cwd or os.getcwd(), value))
    if not os.path.isdir(path):
        relative = "" if os.path.isabs(value) else f" (relative to {cwd or os.getcwd()})"
        raise ConfigError(
            f"TEMPLATEFLOW_HOME is {value!r}{relative}, which is not a folder: fMRIPrep's "
            "container could not bind it.",
            hint="Set TEMPLATEFLOW_HOME to an existing TemplateFlow folder (an absolute path; "
            "fill it on a node with internet, templateflow.api.get), or unset it.",
        )
    return path


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
        ``APPTAINERENV_`` and ``SINGULARITYENV_`` (``--cleanenv`` drops the host variable).
    executable : str
        The apptainer program (or ``singularity``).

    Returns
    -------
    (list of str, dict)
        argv and the extra environment for the subprocess. A ``--output-spaces`` of
        ``call.extra_args`` is merged into the one given here (see :func:`output_space_args`).

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
        # Apptainer reads APPTAINERENV_, SingularityCE only SINGULARITYENV_: both, whichever
        # of them runs (Apptainer prefers its own when they agree).
        env["APPTAINERENV_TEMPLATEFLOW_HOME"] = CONTAINER_TEMPLATEFLOW
        env["SINGULARITYENV_TEMPLATEFLOW_HOME"] = CONTAINER_TEMPLATEFLOW
    # Host paths of extra_args (precomputed FreeSurfer, a BIDS filter): bound at their own
    # path, as fmriprep-docker mounts them; unbound, fMRIPrep did not find them and failed.
    args = list(call.extra_args)
    for index, option, prefix, path in extra_host_paths(args):
        host = os.path.abspath(path)
        if not os.path.exists(host):
            raise ConfigError(
                f"fmriprep.extra_args {option} names {host}, which does not exist: apptainer "
                "could not bind it into fMRIPrep's container.",
                hint=f"Create it, or correct the path after {option}.",
            )
        binds.append(f"{host}:{host}" + (":ro" if HOST_PATH_OPTIONS[option] else ""))
        if args[index].startswith(f"{option}="):
            args[index] = f"{option}={prefix}{host}"
        else:
            args[index] = f"{prefix}{host}"
    spaces, extra = output_space_args(call.output_space, args)
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
        *spaces,
        "-w",
        "/work",
        *call.selection_args,
        *extra,
    ]
    return argv, env
