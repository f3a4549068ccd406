"""Run (or reuse) fMRIPrep for one subject and record the derivatives of each run."""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lcm.bids.dataset import CONFIG_KEYS, setting_names
from lcm.bids.nifti_header import UnreadableHeader, read_bold_header
from lcm.bids.runs import RunIds
from lcm.exceptions import ConfigError, ExternalToolError, InputDataError
from lcm.hints import set_to
from lcm.io.atomic import write_json
from lcm.io.bids_names import check_label, subject_dir
from lcm.io.container_image import check_apptainer_image, check_output_layout
from lcm.io.output_space import check_volumetric_space
from lcm.io.ownership import claim_scratch, remove_scratch
from lcm.io.paths import inside
from lcm.preprocess.completed_run import (
    drop_stamp,
    raw_subject_digest,
    read_stamp,
    stamp_path,
    write_stamp,
)
from lcm.preprocess.container import (
    NO_TEMPLATEFLOW_WARNING,
    FmriprepCall,
    apptainer_command,
    check_mount_paths,
    check_reserved_args,
    check_wrapper_spaces,
    docker_command,
    docker_templateflow_note,
    extra_host_paths,
    resource_args,
    templateflow_home,
    without_resource_args,
)
from lcm.preprocess.derivatives import FMRIPREP_FAILED, check_subject_derivatives, generated_by
from lcm.preprocess.image_digest import resolve_image_digest
from lcm.preprocess.subject_runs import ingest_run_trs, runs_from_manifest, subject_runs
from lcm.reason_codes import TOO_FEW_VOLUMES, with_fix

log = logging.getLogger(__name__)
# Who runs a failed fMRIPrep job again: a local workflow run sets no retries, the SLURM
# profile does; a hint saying "Snakemake retries the job" was untrue locally.
_RESUBMITTED = "profiles/slurm's retries resubmit a workflow job"

RUNNERS = ("existing", "docker", "apptainer")
# Exit statuses of a container killed from outside (SIGKILL, SIGTERM: 128 + signal, as docker
# and shells report them), e.g. for memory: the job fails, so that Snakemake and SLURM retry it
# (with more memory per attempt). Any other non-zero exit is fMRIPrep failing on this
# subject's data: recorded as the subject's exclusion, the cohort goes on.
KILLED_EXIT_CODES = (137, 143)
# Exit statuses of the container tool itself, or of fMRIPrep refusing its setup, not of a
# subject's data: docker run's own error (125: the image could not be pulled, the daemon refused
# the run), a command it could not run (126) or find (127); apptainer's and singularity's (255:
# an image that could not be pulled or built, a bind source that does not exist). fMRIPrep
# itself exits 126 when FreeSurfer refuses the licence and 127 when a tool is missing from its
# image, before it reads any subject: under apptainer these were failure records, and every
# subject of the cohort was excluded. The job fails, as for a kill: the subject's data is not
# at fault, and a failure record would have excluded it (and with it, often, the cohort).
TOOL_EXIT_CODES = {"docker": (125, 126, 127), "apptainer": (126, 127, 255)}
# What fmriprep-docker prints before it starts fMRIPrep's container: without it in the output,
# a non-zero exit is the wrapper's own pre-flight failure (docker missing or not reachable, the
# image not pulled), never fMRIPrep's.
WRAPPER_LAUNCHED = b"RUNNING: "
DOCKER_PROBE_TIMEOUT_S = 120
# fMRIPrep builds no workflow for a BOLD series of this many volumes or fewer (one fewer with
# --sloppy): "Too short BOLD series (<= 5 timepoints). Skipping processing", and it exits 0.
FMRIPREP_SKIPS_VOLUMES = 5


@dataclass
class FmriprepRequest:
    """Arguments of ``lcm fmriprep`` for one subject."""

    dataset: str
    bids: Path
    subject: str
    runner: str
    output_space: str
    derivatives: Path
    # A container run's (docker, apptainer); runner existing reads none of them.
    image: str | None = None
    work_dir: Path | None = None
    fs_license: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    task: str = "rest"
    # The job's CPUs and memory (MB), from the Snakemake rule: fMRIPrep is sized to them.
    nthreads: int | None = None
    mem_mb: int | None = None
    # The dataset passed LCM's BIDS validation at ingest: fMRIPrep skips its own.
    skip_bids_validation: bool = False
    # The dataset's ingest manifest: its included runs of the subject are the runs expected
    # (None: the BIDS folder is indexed, as for a call outside the workflow).
    manifest: Path | None = None
    # The job's log (``lcm --log-file``): fMRIPrep's output is appended to it too, so that a
    # failure record can name the file to read.
    log_file: Path | None = None
    # Keep the subject's work folder after a complete run (fmriprep.keep_work); by default it is
    # removed then (tens of GB per subject), kept after a failure (crash files, resuming).
    keep_work: bool = False
    # How the user gave the dataset's settings, named in the exclusion reasons' fixes:
    # lcm fmriprep's options (lcm.commands.fmriprep.OPTION_NAMES), or None for the config's
    # keys, under a workflow rule (lcm.bids.dataset.setting_names).
    names: dict[str, str] | None = None


def run_fmriprep(req: FmriprepRequest, out: str | Path) -> dict:
    """Obtain the fMRIPrep derivatives of one subject, check them, and write the record.

    Parameters
    ----------
    req : FmriprepRequest
        Subject, runner and paths.
    out : path-like
        Record JSON to write (atomically): ``{dataset, subject, runner, command, image,
        image_digest, output_space, runs: [{run_key, sub, ses, task, run, bold, mask, confounds,
        sidecar, t_r}], excluded: [{run_key, reason_code, reason}], failure}``; a run whose
        derivatives are incomplete is excluded with the files it lacks (the connectome stage
        records it so), and so is a run the manifest (``req.manifest``) excludes, with its
        code and ``excluded at ingest: <reason>`` (no container runs for a subject all of whose
        runs ingest excluded: a BIDS validator error in its folder). ``image_digest`` is
        ``{digest, method, reference, image_id, reason}``
        (:func:`lcm.preprocess.image_digest.resolve_image_digest`): the content of the image
        that ran, ``digest`` null with its ``reason`` when it cannot be resolved (the subject
        goes on). With runner ``existing`` the record has no ``image`` nor ``image_digest`` (and
        ``command`` is null): no container ran; it has ``generated_by`` instead, the fMRIPrep
        the derivatives' ``dataset_description.json`` names,
        ``{name, version, container, description, reason}``
        (:func:`lcm.preprocess.derivatives.generated_by`: ``version`` null with its ``reason``
        when the description is missing or names none), with ``subject``: the version the
        subject's own ``log/*/fmriprep.toml`` names, ``{version, config, earlier_versions,
        reason}``, warned of where it is not the description's. ``failure`` is null, or, when
        fMRIPrep
        exited non-zero on its own, ``{exit_code, log, reason}``: a failure record, with every run
        excluded for that reason (the subject is retried by removing the record or ``snakemake
        --forcerun`` of it). A container run's record also has ``fmriprep_launched`` (false
        when fMRIPrep completed this request before and only its derivatives were checked
        again: :mod:`lcm.preprocess.completed_run`, or when ingest excluded every run) and,
        unless ingest excluded every run, ``work_folder: {path, removed, kept_because}`` (the
        subject's work folder is removed after a complete run unless ``keep_work``, or LCM
        did not create it).

    Returns
    -------
    dict
        The record.

    Raises
    ------
    ConfigError
        Unknown runner, a surface output space (fsLR, fsaverage ...: no volumetric derivatives
        for the atlas), invalid label, a container run without image, work dir or licence
        setting, work dir inside the BIDS folder, derivatives folder that is the BIDS folder,
        a mounted host path the container's mount option cannot hold (``:``, or ``,`` for
        apptainer).
    InputDataError
        Missing, empty or unreadable licence file; missing image file.
    ExternalToolError
        The container tool is not installed or failed itself (docker's daemon not reachable,
        fmriprep-docker stopping before fMRIPrep starts, :data:`TOOL_EXIT_CODES`), fMRIPrep
        refused its setup before reading the subject (126: the licence; 127: a tool missing
        from its image), or fMRIPrep
        was killed (a signal, exit status 137 or 143: out of memory or time), so that the job
        is retried; no record is written.
    """
    subject = check_label("sub", req.subject, source="--subject")
    _check_request(req)
    keys = setting_names(req.dataset, req.names)
    # Runs ingest excluded (a validator error in the subject's folder, known only once ingest
    # ran, after the workflow planned the subject's jobs): recorded as excluded, not run.
    at_ingest: dict[str, tuple[str, str]] = {}
    raw_paths: dict[str, str] = {}
    if req.manifest is not None:
        listed = runs_from_manifest(req.manifest, subject, task=req.task)
        runs, at_ingest, trs, raw_paths = listed.runs, listed.excluded, listed.t_r, listed.paths
    else:
        runs = subject_runs(req.bids, subject, task=req.task, space=req.output_space)
        trs = ingest_run_trs(req.bids, subject, task=req.task, space=req.output_space)
    # Runs fMRIPrep skips for their length: not expected from it, so that the subject's other
    # runs, once complete, are stamped (and its work folder removed) as for any complete run.
    too_short: dict[str, tuple[str, str]] = {}
    if req.runner != "existing":
        too_short = _too_short_for_fmriprep(req, runs, raw_paths)
        runs = [ids for ids in runs if ids.run_key not in too_short]
    command: list[str] | None = None
    container_env: dict[str, str] | None = None
    failure: dict | None = None
    digest: dict | None = None
    work: dict | None = None
    launched = False
    derivs, excluded = None, None
    # Nothing for a container to do when ingest excluded every run of the subject (or fMRIPrep
    # would skip each).
    container = req.runner != "existing" and bool(runs)
    if container:
        call = _prepare_call(req, subject)
        request = _run_request(req, subject)
        stamp = stamp_path(out)
        done = read_stamp(stamp, request)
        if done is not None:
            # The same name may hold another image now (a .sif rebuilt, a tag pulled again).
            now = resolve_image_digest(req.runner, call.image, cache_dir=call.work_dir).digest
            if now and now != (done["image_digest"] or {}).get("digest"):
                log.info("sub-%s: fMRIPrep runs again: %s is another image now", subject, req.image)
                done = None
        if done is not None:
            derivs, excluded = check_subject_derivatives(
                req.derivatives, runs, req.output_space, trs, keys
            )
            if excluded:
                log.info("sub-%s: the outputs of its completed run are incomplete now", subject)
                done = None
        if done is not None:
            command, digest = done["command"], done["image_digest"]
            container_env = done.get("container_env")
            log.info(
                "sub-%s: fMRIPrep completed this run on %s (%s); its derivatives are checked "
                "again, not remade. Remove that file to run fMRIPrep again.",
                subject,
                done["finished"],
                stamp,
            )
        else:
            derivs, excluded, launched = None, None, True
            # Before the launch: a run killed midway (a time limit) leaves derivatives that are
            # the old run's no more, and no stamp may vouch for them.
            drop_stamp(stamp)
            # Marked as LCM's when LCM makes it (or finds it empty): only then is it removed.
            claim_scratch(call.subject_work_dir, "lcm fmriprep")
            command, container_env, code, output = _launch(
                req.runner, call, req.log_file, setting_names(req.dataset, req.names)
            )
            if code != 0:
                failure = _failure(code, call, req.log_file, req.runner, output, out)
            # After the run: the image it used is now local (fmriprep-docker pulls a missing
            # one), and a tag can be pushed again later, so its digest says which one it was.
            resolved = resolve_image_digest(req.runner, call.image, cache_dir=call.work_dir)
            digest = resolved.to_record()
    if failure is not None:
        # Derivatives a failed run left behind (or older ones) are not this run's: none is used.
        derivs, excluded = [], {ids.run_key: (FMRIPREP_FAILED, failure["reason"]) for ids in runs}
    elif derivs is None or excluded is None:
        derivs, excluded = check_subject_derivatives(
            req.derivatives, runs, req.output_space, trs, keys
        )
    for run_key, (_, reason) in excluded.items():
        log.warning("%s %s excluded: %s", req.dataset, run_key, reason)
    for run_key, (_, reason) in too_short.items():
        log.warning("%s %s excluded: %s", req.dataset, run_key, reason)
    for run_key, (_, reason) in at_ingest.items():
        log.warning("%s %s excluded at ingest: %s", req.dataset, run_key, reason)
    if not runs:
        log.warning(
            "sub-%s: every run was excluded at ingest (see the manifest) or is too short for "
            "fMRIPrep: fMRIPrep is not run and its record lists the reasons; the cohort goes on",
            subject,
        )
    if container:
        if launched and failure is None and not excluded:
            write_stamp(stamp, request, command, digest, container_env=container_env)
        work = _finish_work_folder(req, call.subject_work_dir, failure, excluded, launched)
    record = {
        "dataset": req.dataset,
        "subject": subject,
        "runner": req.runner,
        "command": command,
        # The environment LCM set for the container (APPTAINERENV_TEMPLATEFLOW_HOME ...), which
        # the command alone does not show; null where none ran (or a stamp predates it).
        **({} if req.runner == "existing" else {"container_env": container_env}),
        # The image that produced the derivatives: none when they were only checked.
        **({} if digest is None else {"image": req.image, "image_digest": digest}),
        # Existing derivatives: the fMRIPrep their dataset_description.json names instead.
        # (and, from the subject's own logs, the version that made it: generated_by.subject).
        **(
            {"generated_by": generated_by(req.derivatives, subject)}
            if req.runner == "existing"
            else {}
        ),
        # False: fMRIPrep completed this request before (completed_run.py), not relaunched.
        **({} if req.runner == "existing" else {"fmriprep_launched": launched}),
        "output_space": req.output_space,
        "runs": [d.to_record() for d in derivs],
        "excluded": [
            {"run_key": k, "reason_code": code, "reason": reason}
            for k, (code, reason) in sorted({**excluded, **too_short}.items())
        ]
        + [
            {"run_key": k, "reason_code": code, "reason": f"excluded at ingest: {reason}"}
            for k, (code, reason) in at_ingest.items()
        ],
        "failure": failure,
        **({} if work is None else {"work_folder": work}),
    }
    write_json(out, record)
    log.info(
        "sub-%s: %d run(s) with fMRIPrep derivatives recorded in %s%s",
        subject,
        len(derivs),
        out,
        f" ({len(excluded)} excluded)" if excluded else "",
    )
    return record


def _too_short_for_fmriprep(
    req: FmriprepRequest, runs: list[RunIds], raw_paths: dict[str, str]
) -> dict[str, tuple[str, str]]:
    """The runs whose raw BOLD fMRIPrep skips for its length, with the reason of each.

    fMRIPrep builds no workflow for a series of :data:`FMRIPREP_SKIPS_VOLUMES` volumes or
    fewer (one fewer with ``--sloppy``): it warns "Too short BOLD series" and exits 0. Such a
    run (an aborted acquisition, kept by the scanner export) was excluded as its outputs
    missing, with a fix that said to run fMRIPrep again; the subject was never stamped as
    complete, and each rerun of its job launched fMRIPrep again, for hours, to skip it again.
    The raw BOLD is the manifest's (``raw_paths``), else ``<run_key>_bold.nii[.gz]`` in the
    run's ``func`` folder; a header that cannot be read is left to fMRIPrep.
    """
    limit = FMRIPREP_SKIPS_VOLUMES - ("--sloppy" in req.extra_args)
    found: dict[str, tuple[str, str]] = {}
    for ids in runs:
        path = raw_paths.get(ids.run_key) or _raw_bold(req.bids, ids)
        if path is None:
            continue
        try:
            header = read_bold_header(path)
        except UnreadableHeader:
            continue
        # As fMRIPrep counts: a 3D image is one volume.
        n_volumes = header.shape[3] if header.ndim >= 4 and len(header.shape) > 3 else 1
        if n_volumes <= limit:
            found[ids.run_key] = (
                TOO_FEW_VOLUMES,
                with_fix(
                    f"{path} has {n_volumes} volume(s): fMRIPrep skips a BOLD series of {limit} "
                    "or fewer ('Too short BOLD series') and writes no output for it, so it is "
                    "not run for it",
                    "nothing to rerun: a run this short gives no connectome, and the "
                    "subject's other runs go on; replace it with the complete acquisition if "
                    "there is one",
                ),
            )
    return found


def _raw_bold(bids: Path, ids: RunIds) -> str | None:
    """``<run_key>_bold.nii.gz`` (or ``.nii``) in the run's raw ``func`` folder, if there."""
    func = Path(bids) / subject_dir(ids.entities) / "func"
    for extension in (".nii.gz", ".nii"):
        candidate = func / f"{ids.run_key}_bold{extension}"
        if candidate.is_file():
            return str(candidate)
    return None


def write_settings(req: FmriprepRequest, out: str | Path) -> dict:
    """Write the options every subject's job of ``req.dataset`` runs with (no subject).

    The workflow's settings stamp: a rule of its own whose params are the subjects' jobs'
    options, an input of each of them. Snakemake does not check the params of a job downstream
    of one that reruns through an input it reads as ``ancient`` (the subjects' jobs read the
    manifest so, that an added subject reruns no other): when a setting changes ingest's
    params too (``fmriprep.output_space``), the subjects' own param change went unseen and
    they were rerun only by the next invocation. The stamp reruns on its own params and
    reruns them with it.

    Parameters
    ----------
    req : FmriprepRequest
        The dataset's request (its subject is not read).
    out : str or Path
        The settings JSON to write.

    Returns
    -------
    dict
        The settings written.

    Raises
    ------
    ConfigError
        An unknown runner, an output space of another form or a surface one, or an apptainer
        image that is neither a file nor a URI.
    """
    _check_request(req)
    if req.runner == "apptainer":
        # Before any subject is queued: a Docker name (the default image) is no image apptainer
        # can run, and every subject's job failed on it (a subject's own job checks it again).
        check_apptainer_image(req.image, setting_names(req.dataset, req.names)["image"])
    settings = {
        "dataset": req.dataset,
        "runner": req.runner,
        "output_space": req.output_space,
        "bids": str(req.bids),
        "derivatives": str(req.derivatives),
        "task": req.task,
        **(
            {}
            if req.runner == "existing"
            else {
                "image": req.image,
                "work_dir": str(req.work_dir) if req.work_dir else None,
                "fs_license": str(req.fs_license) if req.fs_license else None,
                "extra_args": req.extra_args,
                "skip_bids_validation": req.skip_bids_validation,
            }
        ),
    }
    write_json(out, settings)
    return settings


def _check_request(req: FmriprepRequest) -> None:
    """The checks of a request that need no subject: runner, output space, extra args."""
    keys = setting_names(req.dataset, req.names)
    if req.runner not in RUNNERS:
        raise ConfigError(
            f"{keys['runner']}: expected one of {list(RUNNERS)}, received {req.runner!r}.",
            hint=f"Set {keys['runner']} to one of them.",
        )
    # Before fMRIPrep runs for hours: no run could be recorded in a surface space.
    check_volumetric_space(
        req.output_space,
        keys["space"],
        roi_entry=set_to(keys["entry"], "roi_timeseries"),
        roi_space=keys["roi_space"],
    )
    if req.runner != "existing":
        # Before any subject is queued (the settings stamp) and before each launch.
        check_reserved_args(req.extra_args, keys)


def _prepare_call(req: FmriprepRequest, subject: str) -> FmriprepCall:
    """Check everything a container run needs, before anything is launched."""
    keys = setting_names(req.dataset, req.names)
    for key, value in (("image", req.image), ("work_dir", req.work_dir)):
        if value is None:
            raise ConfigError(
                f"fMRIPrep runner {req.runner!r} needs {keys[key]}; none was given.",
                hint=f"Set {keys[key]}.",
            )
    if req.fs_license is None:
        raise ConfigError(
            f"fMRIPrep runner {req.runner!r} needs a FreeSurfer licence; none was given.",
            hint=f"Set {keys['fs_license']} (free from "
            "https://surfer.nmr.mgh.harvard.edu/registration.html).",
        )
    # Absolute, symlinks kept: a symlink is the way round a path that cannot be mounted.
    license_path = Path(os.path.abspath(req.fs_license))
    if not license_path.is_file():
        raise InputDataError(
            f"FreeSurfer licence file not found: {license_path}",
            hint=f"Set {keys['fs_license']} to an existing license.txt.",
        )
    # fMRIPrep exits 126 on a licence FreeSurfer cannot use, after the container started;
    # an empty or unreadable file is told here, naming it, before anything is launched.
    try:
        with open(license_path, "rb") as fh:
            content = fh.read(1 << 16)
    except OSError as exc:
        raise InputDataError(
            f"FreeSurfer licence file {license_path} cannot be read ({exc.strerror}).",
            hint="Make it readable by the user the jobs run as (chmod a+r), or set "
            f"{keys['fs_license']} to a readable copy.",
        ) from exc
    if not content.strip():
        raise InputDataError(
            f"FreeSurfer licence file {license_path} is empty: FreeSurfer, and with it "
            "fMRIPrep, refuses it.",
            hint="Copy in the license.txt FreeSurfer's registration sent (free from "
            f"https://surfer.nmr.mgh.harvard.edu/registration.html), or set {keys['fs_license']} "
            "to it.",
        )
    bids = Path(os.path.abspath(req.bids))
    work = Path(os.path.abspath(req.work_dir))
    derivatives = Path(os.path.abspath(req.derivatives))
    if derivatives.resolve() == bids.resolve():
        # A dataset that enters as fMRIPrep derivatives: fMRIPrep would take its outputs as
        # raw input and write over them.
        # The workflow checks a dataset entering as derivatives by its entry (runner existing,
        # whatever fmriprep.runner says): its user sets the entry, lcm fmriprep's the runner.
        existing = (
            set_to(keys["runner"], "existing") if req.names else set_to(keys["entry"], "fmriprep")
        )
        raise ConfigError(
            f"fMRIPrep runner {req.runner!r} would read and write the same folder {bids}.",
            hint=f"A dataset of existing fMRIPrep derivatives is only checked: {existing}.",
        )
    check_output_layout(req.image, req.extra_args, "lcm fmriprep", keys)
    if inside(work, bids):
        raise ConfigError(
            f"{keys['work_dir']} {work} lies inside the BIDS folder {bids}.",
            hint="Put the work directory outside the input dataset (fMRIPrep refuses it).",
        )
    if inside(work, derivatives) or inside(derivatives / f"sub-{subject}", work / f"sub-{subject}"):
        # The subject's work folder would be (or hold) its fMRIPrep outputs, and it is removed
        # once the run completes: the outputs just recorded would go with it.
        raise ConfigError(
            f"{keys['work_dir']} {work} and the derivatives folder {derivatives} overlap: "
            f"sub-{subject}'s work folder, removed after a complete run, would hold its outputs.",
            hint="Put the work directory outside the derivatives folder (e.g. on scratch space).",
        )
    call = FmriprepCall(
        bids=bids,
        derivatives=derivatives,
        subject=subject,
        image=req.image,
        output_space=req.output_space,
        work_dir=work,
        fs_license=license_path,
        # fMRIPrep is told the job's CPUs and memory (a user's larger values are capped).
        extra_args=resource_args(req.extra_args, req.nthreads, req.mem_mb),
        task=req.task,
        skip_bids_validation=req.skip_bids_validation,
    )
    if req.runner == "docker":
        check_wrapper_spaces(call)
    if req.runner == "apptainer":
        # A folder that does not exist: apptainer refuses to bind it (exit 255).
        templateflow_home(os.environ.get("TEMPLATEFLOW_HOME"))
    # Before any folder is made: a path the container cannot mount stops here.
    check_mount_paths(call, req.runner, os.environ.get("TEMPLATEFLOW_HOME"))
    call.derivatives.mkdir(parents=True, exist_ok=True)
    return call


def _run_request(req: FmriprepRequest, subject: str) -> dict:
    """What determines a container run's derivatives: its settings, image and raw files.

    The job's CPUs, memory, work folder and licence are left out: they change how fMRIPrep
    runs, not what it writes.
    """
    return {
        "subject": subject,
        "runner": req.runner,
        "image": req.image,
        "output_space": req.output_space,
        "task": req.task,
        "extra_args": without_resource_args(req.extra_args),
        "skip_bids_validation": req.skip_bids_validation,
        "bids": os.path.abspath(req.bids),
        "derivatives": os.path.abspath(req.derivatives),
        "raw_files": raw_subject_digest(req.bids, subject),
        # What a BIDS filter or a config file of extra_args says, not only its path: an edited
        # filter file relaunches fMRIPrep. Absent without one, so that older stamps still match.
        **({"extra_files": files} if (files := _extra_file_digests(req.extra_args)) else {}),
    }


def _extra_file_digests(extra_args: list[str]) -> dict[str, str]:
    """sha256 of each file ``extra_args`` gives fMRIPrep to read (``--bids-filter-file``,
    ``--config-file``, ``--use-plugin``), by path; a path that is no file is left out (the
    run reports it)."""
    out = {}
    for _, option, _, path in extra_host_paths(extra_args):
        if option in ("--bids-filter-file", "--config-file", "--use-plugin") and os.path.isfile(
            path
        ):
            out[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def _finish_work_folder(
    req: FmriprepRequest, folder: Path, failure: dict | None, excluded: dict, launched: bool
) -> dict:
    """Remove the subject's work folder after a complete run, unless it is to be kept.

    Returns the record's ``work_folder``: ``{path, removed, kept_because}``.
    """
    if not launched and not folder.exists():
        why: str | None = "none there: fMRIPrep was not launched"
        return {"path": str(folder), "removed": False, "kept_because": why}
    if req.keep_work:
        why = "fmriprep.keep_work is true"
    elif failure is not None:
        why = "fMRIPrep failed: its crash files are there, and a rerun resumes from it"
    elif excluded:
        why = "runs lack fMRIPrep outputs: kept to find out why"
    else:
        why = remove_scratch(folder)
        if why is None:
            log.info("sub-%s: removed its work folder %s (fmriprep.keep_work)", req.subject, folder)
        else:
            log.warning("sub-%s: its work folder was not removed: %s", req.subject, why)
    return {"path": str(folder), "removed": why is None, "kept_because": why}


def _launch(
    runner: str, call: FmriprepCall, log_file: Path | None, keys: dict[str, str]
) -> tuple[list[str], dict[str, str], int, bytes]:
    """Run the container command; return the argv and the environment LCM set for it (both
    recorded in the record), its exit code and the end of its output. ``keys`` name the
    settings in the hints (:func:`lcm.bids.dataset.setting_names`)."""
    env = dict(os.environ)
    extra_env: dict[str, str] = {}
    if runner == "docker":
        executable = _find_tool(
            "fmriprep-docker", hint="pip install fmriprep-docker (and install docker)."
        )
        _check_docker(keys["runner"])
        if note := docker_templateflow_note(os.environ.get("TEMPLATEFLOW_HOME")):
            log.warning("sub-%s: %s", call.subject, note)
        argv = docker_command(call)
        run_argv = [executable, *argv[1:]]
    else:
        image = call.image
        if "://" not in image and not Path(image).is_file():
            raise InputDataError(
                f"Apptainer image not found: {image}",
                hint=f"Set {keys['image']} to a local .sif (e.g. built with 'apptainer build "
                "fmriprep.sif docker://nipreps/fmriprep@sha256:...') or a docker:// URI.",
            )
        executable = _find_apptainer()
        tf_home = os.environ.get("TEMPLATEFLOW_HOME")
        if not tf_home:
            log.warning("sub-%s: %s", call.subject, NO_TEMPLATEFLOW_WARNING)
        argv, extra_env = apptainer_command(call, tf_home, executable=Path(executable).name)
        env.update(extra_env)
        run_argv = [executable, *argv[1:]]
    # Pasteable, with the environment LCM set: a path with a space or quote stays one word.
    shown = [f"{k}={v}" for k, v in sorted(extra_env.items())]
    log.info("sub-%s: running %s", call.subject, shlex.join([*shown, *argv]))
    try:
        code, output = _run_teed(run_argv, env, log_file)
    except OSError as exc:
        raise ExternalToolError(f"Cannot start {argv[0]}: {exc}") from exc
    return argv, extra_env, code, output


def _check_docker(runner: str) -> None:
    """Refuse to launch when ``docker`` is missing or its daemon does not answer.

    fmriprep-docker exits 1 then ("Could not find docker command", "Make sure you have
    permission"), the status fMRIPrep exits with on a subject's data: the subject was recorded
    as fMRIPrep's failure and excluded, every subject of the cohort with it, and the job
    succeeded, so nothing was retried. ``runner`` names the runner's setting (``--runner``,
    ``fmriprep.runner``) in the hints.
    """
    apptainer = set_to(runner, "apptainer")
    # A workflow job (the config's key named) runs again with the workflow, or by the SLURM
    # profile's retries (a local run sets none); lcm fmriprep is run again by hand.
    retry = (
        f"Then run the workflow again ({_RESUBMITTED})"
        if runner == CONFIG_KEYS["runner"]
        else "Then run lcm fmriprep again"
    )
    docker = _find_tool(
        "docker",
        hint="Install Docker (or load it) on the nodes that run the fMRIPrep jobs, or set "
        f"{apptainer} where Docker is not available (HPC clusters).",
    )
    probe = [docker, "version", "--format", "{{.Server.Version}}"]
    try:
        done = subprocess.run(
            probe,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=DOCKER_PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ExternalToolError(
            f"docker's daemon did not answer '{shlex.join(probe)}' within "
            f"{DOCKER_PROBE_TIMEOUT_S} s.",
            hint="Check that the Docker daemon runs on this node (systemctl status docker). "
            f"{retry}.",
        ) from exc
    except OSError as exc:
        raise ExternalToolError(f"Cannot start {docker}: {exc}") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise ExternalToolError(
            f"docker cannot reach its daemon ('{shlex.join(probe)}' exited "
            f"{done.returncode}: {said[-1] if said else 'no message'}).",
            hint="Start the Docker daemon on this node, or give your user access to it (the "
            f"docker group, or rootless Docker); where Docker is not available, set {apptainer}. "
            f"{retry}; no subject was excluded.",
        )


def _run_teed(argv: list[str], env: dict[str, str], log_file: Path | None) -> tuple[int, bytes]:
    """Run ``argv``; its output goes to stderr, as before, and is appended to ``log_file``.
    Returns the exit code and the last 64 KiB of the output (what tells a container tool's
    own failure from fMRIPrep's).

    stdin is closed: the docker wrapper asks questions (low memory) that a batch job can't
    answer. Without the copy in the job's log, a failure record could only point at the
    scheduler's output file, which Snakemake does not keep.
    """
    err = getattr(sys.stderr, "buffer", None)
    tail = bytearray()
    launched = False  # the wrapper's RUNNING line, kept past the tail
    with (
        open(log_file if log_file is not None else os.devnull, "ab") as copy,
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        ) as proc,
    ):
        assert proc.stdout is not None  # stdout=PIPE
        for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
            copy.write(chunk)
            copy.flush()
            if err is not None:
                err.write(chunk)
                err.flush()
            else:
                sys.stderr.write(chunk.decode(errors="replace"))
            tail += chunk
            launched = launched or WRAPPER_LAUNCHED in tail
            del tail[: max(0, len(tail) - (1 << 16))]
    return proc.returncode, (WRAPPER_LAUNCHED if launched else b"") + bytes(tail)


def _failure(
    code: int,
    call: FmriprepCall,
    log_file: Path | None,
    runner: str,
    output: bytes,
    out: str | Path,
) -> dict:
    """The failure part of a record for fMRIPrep's non-zero ``code``, or raise when it was
    killed or the container tool failed (the job then fails and is retried, with no record).
    """
    where = str(log_file) if log_file else "the job's output"
    if code < 0 or code in KILLED_EXIT_CODES:
        raise ExternalToolError(
            f"fMRIPrep was killed for sub-{call.subject} (exit status {code}): out of memory "
            "or time, or stopped.",
            hint=f"See {where}. Run it again ({_RESUBMITTED}, with more memory and time per "
            f"attempt); the work folder {call.subject_work_dir} lets it resume.",
        )
    _raise_for_tool(code, call, runner, output, where)
    record = shlex.quote(os.path.abspath(out))
    # The record's reason and the job's log say the same: what failed, where to read why, and
    # how to have the subject run again once fixed.
    reason = with_fix(
        f"fMRIPrep exited {code} for sub-{call.subject}; every run of the subject is excluded",
        f"Read {where} and fMRIPrep's crash files under {call.derivatives}/sub-{call.subject}"
        f"/log; once fixed, remove this subject's record {record}, or rerun with snakemake "
        f"--forcerun {record} (lcm run ... -- --forcerun {record})",
    )
    log.error("%s (the cohort goes on)", reason)
    return {"exit_code": code, "log": str(log_file) if log_file else None, "reason": reason}


def _raise_for_tool(code: int, call: FmriprepCall, runner: str, output: bytes, where: str) -> None:
    """Raise :class:`ExternalToolError` when the container tool or fMRIPrep's setup (its
    licence and dependency checks) failed, not fMRIPrep on the subject's data."""
    tool = "docker" if runner == "docker" else "apptainer"
    said = output.decode(errors="replace").strip().splitlines()
    last = f": {said[-1].strip()}" if said else ""
    if runner == "docker" and WRAPPER_LAUNCHED not in output:
        raise ExternalToolError(
            f"fmriprep-docker stopped before fMRIPrep started for sub-{call.subject} (exit "
            f"status {code}{last}).",
            hint=f"See {where}: docker is missing or not reachable, or the image "
            f"{call.image} could not be pulled or run. Fix docker on this node (or pull the "
            f"image there), then run it again ({_RESUBMITTED}): no subject was excluded.",
        )
    if code in TOOL_EXIT_CODES[tool]:
        why = {
            125: "docker's own error: the image could not be pulled (a node without internet?) "
            "or the daemon refused the run",
            126: f"{tool} could not run the container's command, or fMRIPrep found the "
            f"FreeSurfer licence {call.fs_license} invalid (its licence check exits 126)",
            127: f"{tool} could not find the container's command, or fMRIPrep found a tool "
            "missing from its image (its dependency check exits 127)",
            255: "apptainer's (or singularity's) own error: the image could not be pulled or "
            "built, or a bind source does not exist",
        }[code]
        licence = (
            f"Check that {call.fs_license} is the license.txt FreeSurfer's registration sent "
            "(https://surfer.nmr.mgh.harvard.edu/registration.html), whole and readable; "
            if code == 126
            else ""
        )
        raise ExternalToolError(
            f"The container tool or fMRIPrep's setup failed for sub-{call.subject}, not "
            f"fMRIPrep on its data (exit status {code}, {why}){last}.",
            hint=f"See {where}. {licence}Fix the container tool or the image {call.image} "
            f"(pull or build it where the jobs run), then run it again ({_RESUBMITTED}): no "
            "subject was excluded.",
        )


def _find_apptainer() -> str:
    """``apptainer``, else ``singularity`` (SingularityCE, which many clusters still provide
    alone: the same ``run --cleanenv -B`` command line)."""
    hint = "Load or install apptainer (or singularity) on the nodes that run the jobs."
    try:
        return _find_tool("apptainer", hint=hint)
    except ExternalToolError:
        try:
            return _find_tool("singularity", hint=hint)
        except ExternalToolError:
            raise ExternalToolError(
                "Neither 'apptainer' nor 'singularity' found on PATH.", hint=hint
            ) from None


def _find_tool(name: str, hint: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    # The wrapper is installed beside this Python even when its bin folder is not on PATH.
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise ExternalToolError(f"{name!r} not found on PATH.", hint=hint)
