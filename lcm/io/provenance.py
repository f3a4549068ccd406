"""Provenance records: ``dataset_description.json`` for derivative folders and per-file sidecars.

A sidecar sits next to each output (same name, ``.json``; see :func:`provenance_path` for the
outputs whose BIDS sidecar name is taken) and lists its direct inputs in ``Sources`` with their
sha256, so a metric or checkpoint can be traced back to raw files. Its ``Provenance`` block says
how the output was made: rule, command and parameters, config hash, hash of the LCM code the
verb runs, seed, package versions, git commit and dirty flag, container image digest, host,
SLURM job id and what SLURM granted the job (CPUs, memory, GPUs, partition).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import lcm
from lcm.exceptions import ConfigError
from lcm.io.atomic import write_json

_CHUNK = 1 << 20
# Set by the workflow's shell prefix: sha256 of the validated config the job was built from.
CONFIG_HASH_ENV = "LCM_CONFIG_SHA256"
# What the current `lcm` process was asked to do (set once by the CLI, see set_invocation).
_INVOCATION: dict[str, Any] = {}
_DIGEST_RE = re.compile(r"@(sha256:[0-9a-f]{64})$")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks.

    Parameters
    ----------
    path : path-like
        The file to hash.

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    OSError
        When the file is missing or unreadable.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@cache
def git_commit(package_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the LCM checkout, or ``None`` values outside one.

    The commit is LCM's only when the git repository's top level is the folder holding the
    ``lcm`` package and that repository tracks ``lcm/__init__.py``: a copy of ``lcm/`` inside
    another repository (a study's code folder) would otherwise record that repository's commit
    as LCM's. Elsewhere the code is identified by the hash of what each verb runs
    (``code_sha256``).

    Parameters
    ----------
    package_dir : path-like, optional
        The ``lcm`` package folder (this one's by default).
    """
    package = Path(package_dir or Path(lcm.__file__).parent).resolve()
    root = package.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()

    try:
        toplevel = Path(git("rev-parse", "--show-toplevel")).resolve()
        if toplevel != root:
            return {"commit": None, "dirty": None}
        # Tracked there (else a repository that merely contains an untracked copy).
        git("ls-files", "--error-unmatch", "--", f"{package.name}/__init__.py")
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


# What SLURM granted the job (set by sbatch/srun in its environment), kept beside the job id.
SLURM_ALLOCATION = {
    "cpus_per_task": "SLURM_CPUS_PER_TASK",
    "cpus_per_gpu": "SLURM_CPUS_PER_GPU",
    "cpus_on_node": "SLURM_CPUS_ON_NODE",
    "mem_per_node_mb": "SLURM_MEM_PER_NODE",
    "mem_per_cpu_mb": "SLURM_MEM_PER_CPU",
    "gpus": "SLURM_GPUS_ON_NODE",
    "partition": "SLURM_JOB_PARTITION",
}


def slurm_allocation() -> dict[str, str] | None:
    """The SLURM job's granted CPUs, memory, GPUs and partition; None outside SLURM.

    From the job's environment; where the memory variables are missing (the Snakemake SLURM
    executor's job steps drop every ``SLURM_*`` variable but the job ids), the memory, GPUs and
    CPUs per GPU the controller granted are read once per process from ``scontrol show job``
    (:func:`scontrol_allocation`); nothing is recorded for them where that fails.
    """
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return None
    granted = {k: os.environ[v] for k, v in SLURM_ALLOCATION.items() if os.environ.get(v)}
    if "mem_per_node_mb" not in granted and "mem_per_cpu_mb" not in granted:
        for key, value in scontrol_allocation(job_id).items():
            granted.setdefault(key, value)
    return granted


# Memory in scontrol's units (MiB, as SLURM's M): "64000M", "62.50G", "1T"; a bare number is MiB.
_MEM_RE = re.compile(r"(\d+(?:\.\d+)?)([KMGTP]?)")
_MEM_MB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}


def _mem_mb(text: str) -> str | None:
    match = _MEM_RE.fullmatch(text.strip())
    if match is None:
        return None
    mb = round(float(match.group(1)) * _MEM_MB[match.group(2)])
    return str(mb) if mb > 0 else None


def _field(line: str, key: str) -> str | None:
    """The value of ``key=`` in a ``scontrol show job -o`` line (None when absent)."""
    match = re.search(rf"(?:^|\s){re.escape(key)}=(\S*)", line)
    return match.group(1) if match else None


def parse_scontrol_job(line: str) -> dict[str, str]:
    """What a ``scontrol show job -o`` line says the job was granted, in SLURM_ALLOCATION's keys.

    ``mem_per_node_mb`` from ``MinMemoryNode`` (``mem_per_cpu_mb`` from ``MinMemoryCPU``),
    else from the allocated TRES' ``mem`` on a one-node job; ``gpus`` from its ``gres/gpu``;
    ``cpus_per_gpu`` from ``CpusPerTres``. Keys the line does not give are left out.

    Parameters
    ----------
    line : str
        One job's line of ``scontrol show job -o``.

    Returns
    -------
    dict of str to str
        Some of ``mem_per_node_mb``, ``mem_per_cpu_mb`` (MiB), ``gpus`` and ``cpus_per_gpu``.
    """
    granted: dict[str, str] = {}
    if mb := _mem_mb(_field(line, "MinMemoryNode") or ""):
        granted["mem_per_node_mb"] = mb
    elif mb := _mem_mb(_field(line, "MinMemoryCPU") or ""):
        granted["mem_per_cpu_mb"] = mb
    # AllocTRES (newer SLURM) or TRES (older), what was granted; ReqTRES what was asked.
    tres_text = _field(line, "AllocTRES") or _field(line, "TRES") or ""
    tres = dict(item.split("=", 1) for item in tres_text.split(",") if "=" in item)
    one_node = tres.get("node") == "1"  # TRES count the whole job: per node on one node
    if not granted and one_node and (mb := _mem_mb(tres.get("mem", ""))):
        granted["mem_per_node_mb"] = mb
    if tres.get("gres/gpu", "").isdigit() and one_node:
        granted["gpus"] = tres["gres/gpu"]
    per_gpu = re.search(r"(?:^|,)(?:gres[/:])?gpu:(\d+)(?:,|$)", _field(line, "CpusPerTres") or "")
    if per_gpu:
        granted["cpus_per_gpu"] = per_gpu.group(1)
    return granted


# A controller that does not answer in this long is not waited for (nothing recorded).
SCONTROL_TIMEOUT_S = 10.0


@cache
def scontrol_allocation(job_id: str) -> dict[str, str]:
    """What the controller says job ``job_id`` was granted (:func:`parse_scontrol_job`).

    Asked once per process and job, with a short timeout; empty when ``scontrol`` is missing,
    fails or times out (the job goes on, its record without these values).

    Parameters
    ----------
    job_id : str
        The SLURM job id (``SLURM_JOB_ID``).

    Returns
    -------
    dict of str to str
        As :func:`parse_scontrol_job` gives it.
    """
    try:
        proc = subprocess.run(
            ["scontrol", "show", "job", "-o", job_id],
            capture_output=True,
            text=True,
            timeout=SCONTROL_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    if proc.returncode != 0:
        return {}
    line = next((x for x in proc.stdout.splitlines() if f"JobId={job_id} " in f"{x} "), "")
    return parse_scontrol_job(line) if line else {}


def environment() -> dict[str, Any]:
    """Versions and host facts recorded in every provenance record."""
    return {
        "lcm_version": lcm.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_allocation": slurm_allocation(),
        **{f"git_{k}": v for k, v in git_commit().items()},
    }


def set_invocation(
    argv: list[str],
    args: argparse.Namespace,
    code_hash: Callable[[], str | None] | None = None,
) -> None:
    """Remember what this ``lcm`` process runs, for every sidecar it writes.

    Parameters
    ----------
    argv : list of str
        The command line after ``lcm`` (the rule's params as rendered into its shell command).
    args : argparse.Namespace
        The parsed options; ``rule``, ``verb`` and ``seed`` are picked out, the rest kept as params.
    code_hash : callable, optional
        Returns the hash of the LCM code the verb runs (the caller knows how it is computed;
        :func:`lcm.cli.main` passes :func:`lcm.workflow.hash.code_hash` for its verb). Called
        when the first sidecar is written, so a process that writes none never pays for it.
        Without it, sidecars record ``code_sha256: null``.
    """
    params = {k: v for k, v in vars(args).items() if not callable(v)}
    _INVOCATION.clear()
    _INVOCATION.update(
        command=["lcm", *argv],
        rule=params.pop("rule", None),
        verb=params.get("verb"),
        seed=params.get("seed"),
        params=params,
        code_hash=code_hash,
    )


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of a validated config, as canonical JSON (key order and formatting do not count).

    Parameters
    ----------
    config : dict
        The validated config; values JSON cannot hold (paths) are hashed as their ``str``.

    Returns
    -------
    str
        64 hex digits: the ``config_sha256`` of records and the name of the config's copy.
    """
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the third-party distributions this process has imported so far."""
    modules = tuple(sys.modules)
    if _LAST_VERSIONS and _LAST_VERSIONS[0] == modules:  # nothing imported since: same answer
        return dict(_LAST_VERSIONS[1])
    dists = _distributions()
    versions: dict[str, str] = {}
    for name in sorted({m.split(".")[0] for m in modules}):
        for dist in dists.get(name, []):
            version = _version(dist)
            if version is not None:
                versions[dist] = version
    versions.pop("lcm", None)
    _LAST_VERSIONS[:] = [modules, dict(versions)]
    return versions


# The modules seen by the last package_versions call and its answer (a sidecar per run asks
# again and again; the answer changes only when a module is imported or removed).
_LAST_VERSIONS: list[Any] = []


@cache
def _distributions() -> dict[str, list[str]]:
    """Top-level module -> distributions providing it, read once per process."""
    return importlib.metadata.packages_distributions()


@cache
def _version(dist: str) -> str | None:
    # Once per process: reading a distribution's metadata parses its METADATA file (~2 ms),
    # and a verb writing one sidecar per run would otherwise parse every one of them per run.
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@cache
def container_digest(image: str) -> str | None:
    """Content digest of a container image, or None when only a mutable tag is known.

    ``name@sha256:...`` carries its digest; a local ``.sif`` file is hashed; a plain tag
    (``nipreps/fmriprep:25.2.7``) names no fixed content, so nothing is claimed for it.

    Parameters
    ----------
    image : str
        The image reference, or a path to a ``.sif`` file.

    Returns
    -------
    str or None
        ``sha256:<64 hex digits>``, or None.
    """
    match = _DIGEST_RE.search(image)
    if match:
        return match.group(1)
    if image.endswith(".sif") and Path(image).is_file():
        return "sha256:" + sha256_file(image)
    return None


def _container_in_use() -> str | None:
    """The image this process itself runs in (apptainer/singularity set these), if any."""
    for var in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"):
        if os.environ.get(var):
            return os.environ[var]
    return None


def _code_hash() -> str | None:
    code_hash = _INVOCATION.get("code_hash")
    return code_hash() if code_hash else None


def invocation_code_sha256() -> str | None:
    """The hash of the LCM code this process's verb runs, as its sidecars record it.

    Returns
    -------
    str or None
        None outside a ``lcm`` command (a library call), where :func:`set_invocation` was not
        given one.
    """
    return _code_hash()


def provenance(container: str | None = None, image_digest: str | None = None) -> dict[str, Any]:
    """The ``Provenance`` block of a sidecar: environment plus how this process was invoked.

    ``image_digest``, the digest of ``container`` when the caller resolved it (see
    :func:`lcm.preprocess.image_digest.resolve_image_digest`), else :func:`container_digest`.

    Parameters
    ----------
    container : str, optional
        The image the output was made in; None for the one this process runs in, if any.
    image_digest : str, optional
        That image's digest, ``sha256:...``.

    Returns
    -------
    dict
        Environment (:func:`environment`), creation time, rule, command, params, seed,
        ``config_sha256``, ``code_sha256``, container and package versions.
    """
    image = container or _container_in_use()
    digest = (image_digest or container_digest(image)) if image else None
    return {
        **environment(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rule": _INVOCATION.get("rule"),
        "command": _INVOCATION.get("command", ["lcm", *sys.argv[1:]]),
        "params": _INVOCATION.get("params", {}),
        "seed": _INVOCATION.get("seed"),
        "config_sha256": os.environ.get(CONFIG_HASH_ENV),
        "code_sha256": _code_hash(),
        "container": {"image": image, "digest": digest} if image else None,
        "packages": package_versions(),
    }


# The BIDS version every dataset_description.json LCM writes declares.
BIDS_VERSION = "1.10.0"


def write_dataset_description(
    root: str | Path, name: str, *, container: str | None = None, extra: dict | None = None
) -> Path:
    """Write ``dataset_description.json`` of a derivative folder with ``GeneratedBy``.

    Parameters
    ----------
    root : str or pathlib.Path
        The derivative folder; created if missing.
    name : str
        The dataset's ``Name``.
    container : str, optional
        The image that made the derivatives, recorded in ``GeneratedBy``.
    extra : dict, optional
        Further top-level keys (a synthetic dataset's preset and seed); they override the
        defaults.

    Returns
    -------
    pathlib.Path
        The file written (atomically; an existing one is replaced).
    """
    generated_by: dict[str, Any] = {
        "Name": "LCM",
        "Version": lcm.__version__,
        "CodeURL": lcm.CODE_URL,
    }
    if container:
        generated_by["Container"] = {"Type": "docker", "Tag": container}
    desc = {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by],
        **(extra or {}),
    }
    path = Path(root) / "dataset_description.json"
    write_json(path, desc)
    return path


# Extensions of more than one suffix that LCM reads or writes (BIDS images, gzipped BIDS tables):
# a sidecar replaces them whole. Any other name loses its last suffix only, so the dots of a
# name a user chose stay (``emb.attn.parquet`` -> ``emb.attn.json``, not ``emb.json``).
COMPOUND_EXTENSIONS = (".nii.gz", ".tsv.gz")


def file_stem(name: str) -> str:
    """``name`` without its extension: a known compound one (``.nii.gz``) or the last suffix.

    Parameters
    ----------
    name : str
        A file name.

    Returns
    -------
    str
        The name without that extension (``x.nii.gz`` -> ``x``, ``emb.attn.parquet`` ->
        ``emb.attn``).
    """
    for ext in COMPOUND_EXTENSIONS:
        if name.lower().endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return Path(name).stem


def sidecar_path(path: str | Path) -> Path:
    """``a/b/name.tsv`` (or ``.nii.gz``) -> ``a/b/name.json``; ``a/b/x.y.tsv`` -> ``a/b/x.y.json``.

    Used both for the sidecar of an LCM output and for the BIDS sidecar of an input.

    Parameters
    ----------
    path : str or pathlib.Path
        A data file.

    Returns
    -------
    pathlib.Path
        Its sidecar's path, in the same folder (:func:`file_stem` plus ``.json``).
    """
    path = Path(path)
    return path.with_name(file_stem(path.name) + ".json")


def provenance_path(output: str | Path) -> Path:
    """Where the provenance sidecar of ``output`` goes.

    The BIDS sidecar name (:func:`sidecar_path`) where it is free; ``<stem>.prov.json`` for a
    JSON output (its sidecar would be itself); ``<name>.prov.json`` for ``.safetensors`` weights
    (``model.json`` holds the checkpoint's metadata); ``_<stem>.prov.json`` inside a
    ``key=value`` Parquet partition, where readers (pyarrow, pandas, DuckDB) skip ``_`` files.

    Parameters
    ----------
    output : str or pathlib.Path
        The output the record describes.

    Returns
    -------
    pathlib.Path
        The sidecar's path, in the same folder.
    """
    path = Path(output)
    stem = file_stem(path.name)
    if "=" in path.parent.name:
        return path.with_name(f"_{stem}.prov.json")
    if path.suffix == ".json":
        return path.with_name(f"{stem}.prov.json")
    if path.suffix == ".safetensors":
        return path.with_name(f"{path.name}.prov.json")
    return sidecar_path(path)


def is_record(value: object) -> bool:
    """Whether a parsed JSON value is an LCM provenance record (what :func:`write_sidecar` wrote).

    The one test of it: ownership, ``lcm provenance verify`` and ``trace`` and the sidecar
    checks all ask here, so none can call a file LCM's that another calls foreign.

    Parameters
    ----------
    value : object
        A parsed JSON document.

    Returns
    -------
    bool
        True for an object whose ``Output`` (the name of the file it describes) and
        ``Sha256`` are strings; every record LCM has written holds both.
    """
    return (
        isinstance(value, dict)
        and isinstance(value.get("Output"), str)
        and isinstance(value.get("Sha256"), str)
    )


def read_record(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The LCM provenance record in the JSON file ``path``, or None when it holds none.

    Parameters
    ----------
    path : path-like
        A provenance sidecar, or any file.

    Returns
    -------
    dict or None
        The record; None for a missing or unreadable file, one that is not UTF-8 JSON, or JSON
        that is no record (:func:`is_record`): a user's or a tool's file, never LCM's.
    """
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if is_record(record) else None


def write_sidecar(
    output: str | Path,
    sources: list[str | Path],
    *,
    container: str | None = None,
    image_digest: str | None = None,
    products: list[str | Path] | None = None,
    digests: Mapping[str, str] | None = None,
    **metadata: Any,
) -> Path:
    """Write the JSON sidecar of ``output`` listing ``sources`` with their sha256.

    Parameters
    ----------
    output : path-like
        The file described; it must already exist (its sha256 is recorded).
    sources : list of path-like
        Direct inputs of ``output``.
    container : str, optional
        Container image that produced ``output`` (its digest is recorded when known).
    image_digest : str, optional
        That image's digest (``sha256:...``) when the caller resolved it; else it is taken
        from the reference (``name@sha256:...``) or a ``.sif`` file's content.
    products : list of path-like, optional
        Files the job made with ``output`` that carry no record of their own (fMRIPrep's
        derivatives, which ``output`` lists), recorded as ``Products`` with their sha256
        (``ProductsSha256``): ``lcm provenance trace`` shows them as made by this job, from
        ``sources``, and ``verify`` re-hashes them.
    digests : mapping of str to str, optional
        The sha256 of files the caller hashed already, by ``str(path)``: the records of one
        job's files list each other's, and a checkpoint of gigabytes was read once per record.
    **metadata
        Any further keys (settings, QC values, ``RepetitionTime`` ...).

    Returns
    -------
    Path
        The sidecar written (see :func:`provenance_path`).

    Raises
    ------
    ConfigError
        When that sidecar is the record of another output still beside it (both names differ
        only in their extension), or a file that is no LCM record; nothing is overwritten.
    """
    side = provenance_path(output)
    _check_sidecar_free(side, Path(output))
    known = dict(digests or {})

    def sha(path: str | Path) -> str:
        return known.get(str(path)) or sha256_file(path)

    record = {
        **metadata,
        "Output": Path(output).name,
        "Sources": [str(s) for s in sources],
        "SourcesSha256": {str(s): sha(s) for s in sources if Path(s).is_file()},
        **(
            {
                "Products": [str(p) for p in products],
                "ProductsSha256": {str(p): sha(p) for p in products if Path(p).is_file()},
            }
            if products
            else {}
        ),
        "Sha256": sha(output),
        "Provenance": provenance(container, image_digest),
    }
    write_json(side, record)
    return side


def check_distinct_sidecars(outputs: list[str | Path]) -> None:
    """Refuse ``outputs`` of which two are one file or would have the same provenance sidecar.

    A verb calls it with its output paths before it computes anything, so a collision
    (``x.parquet`` and ``x.tsv`` -> ``x.json``, or one path given for two outputs) is refused
    before hours of work, not after.

    Parameters
    ----------
    outputs : list of path-like
        The verb's output paths (they need not exist yet).

    Raises
    ------
    ConfigError
        Naming both outputs and the file or sidecar they would share.
    """
    seen: dict[Path, Path] = {}
    files: dict[Path, Path] = {}
    for out in map(Path, outputs):
        same = out.resolve()
        if same in files:
            raise ConfigError(
                f"The file {out} is given for two outputs; the second would overwrite the first.",
                hint="Give each output its own path.",
            )
        files[same] = out
        side = provenance_path(out)
        first = seen.setdefault(side, out)
        if first != out:
            raise _collision(side, first, out)
    for side, out in seen.items():  # a.tsv's record a.json would overwrite the output a.json
        other = files.get(side.resolve())
        if other is not None:
            raise ConfigError(
                f"The provenance sidecar of {out} would be {other}, another output of the same "
                "command; writing it would overwrite that output.",
                hint=f"Name {out} or {other} differently before the extension.",
            )


def check_recordable(outputs: list[str | Path]) -> None:
    """Refuse, before anything is computed, ``outputs`` whose provenance records cannot be
    written: two of them one file or sharing a sidecar (:func:`check_distinct_sidecars`), or a
    sidecar's place taken by a file LCM did not write, or by another output's record.

    :func:`write_sidecar` refuses the same at the end; called first, a verb fails before it
    writes any output, so none is left without its record.

    Parameters
    ----------
    outputs : list of path-like
        The verb's output paths (they need not exist yet).

    Raises
    ------
    ConfigError
        Naming the output and the file in the way.
    """
    check_distinct_sidecars(outputs)
    for out in map(Path, outputs):
        _check_sidecar_free(provenance_path(out), out)


def _check_sidecar_free(side: Path, output: Path) -> None:
    """Refuse to overwrite ``side`` when it is the provenance record of another output, or a
    file LCM did not write (no provenance record at all: a user's or a tool's JSON).

    A record of a file that no longer exists, or of a file whose sidecar is now named
    differently (written by an LCM version that cut names at their first dot), is replaced.
    """
    if not side.exists():
        return
    record = read_record(side)
    if record is None:
        raise ConfigError(
            f"{side} exists and is not an LCM provenance record, so it was not written by LCM; "
            f"the record of {output} would overwrite it.",
            hint=f"Move or rename {side}, or write {output.name} to another folder.",
        )
    described = record["Output"]
    if described == output.name:
        return
    other = side.parent / described
    if other.is_file() and provenance_path(other) == side:
        raise _collision(side, other, output)


def _collision(side: Path, first: Path, second: Path) -> ConfigError:
    return ConfigError(
        f"Outputs {first} and {second} would share the provenance sidecar {side}; "
        "the second would overwrite the record of the first.",
        hint="Name the outputs so that they differ before their extension "
        "(e.g. emb.parquet and emb.attn.parquet, not emb.parquet and emb.tsv).",
    )


def record_outputs(
    outputs: list[str | Path], sources: list[str | Path], **metadata: Any
) -> list[Path]:
    """Write a provenance sidecar for each of a verb's ``outputs`` (same ``sources``).

    Outputs that would share a sidecar, or whose sidecar's place holds a file LCM did not
    write, are refused (:func:`check_recordable`) before any sidecar is written.

    Parameters
    ----------
    outputs : list of path-like
        The verb's outputs; each must exist (its sha256 is recorded).
    sources : list of path-like
        Their direct inputs, the same for each.
    **metadata
        Passed to :func:`write_sidecar` (``container``, settings, QC values).

    Returns
    -------
    list of pathlib.Path
        The sidecars written, in the order of ``outputs``.

    Raises
    ------
    ConfigError
        As :func:`check_recordable` refuses.
    """
    check_recordable(outputs)
    return [write_sidecar(out, sources, **metadata) for out in outputs]
