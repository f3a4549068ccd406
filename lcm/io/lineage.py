"""Audit trails over provenance sidecars: trace an artifact's inputs, verify hashes.

Every LCM output has a JSON sidecar (see :func:`lcm.io.provenance.provenance_path`) recording
its own sha256, its direct inputs (``Sources``) with theirs, and how it was made. Following
``Sources`` from sidecar to sidecar leads from a metric or checkpoint back to the raw files;
a record may also list files its job made that have no record of their own (``Products``:
fMRIPrep's derivatives, in a subject's fMRIPrep record, whose sources are its raw files).
Relative source paths are relative to the folder the workflow ran in (``base``).

:func:`trace` prints that lineage; :func:`audit` (and :func:`verify`, its lines) re-hashes
what the records say, and in a results folder the workflow claimed also reports outputs with
no record and config copies changed since they were written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcm.io.atomic import temporary_owner
from lcm.io.config_copy import copy_change, copy_rehash
from lcm.io.ownership import (
    MARKER_NAME,
    RESULTS_OWNER,
    claimed_results,
    marker_owner,
    record_verb,
)
from lcm.io.paths import RESULTS_ENTRIES, config_copy, config_dir, unrecorded_reason
from lcm.io.provenance import provenance_path, sha256_file, sidecar_path
from lcm.io.provenance import read_record as provenance_record

# Status of an output of the workflow whose provenance record is gone.
NO_RECORD = "no provenance record (sidecar missing)"
# The same where the sidecar is there but holds no readable record (cut short, edited).
UNREADABLE_RECORD = "no provenance record (sidecar not a readable LCM record)"


class _Hashes:
    """sha256 of files, each computed once per audit (inputs are shared by many outputs)."""

    def __init__(self) -> None:
        self._known: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        key = path.resolve()
        if key not in self._known:
            self._known[key] = sha256_file(path)
        return self._known[key]


def source_path(source: str | Path, base: str | Path = ".") -> Path:
    """Where a recorded source lies: a relative path is relative to ``base``, not the cwd.

    Parameters
    ----------
    source : str or pathlib.Path
        A path as a record's ``Sources`` or ``Products`` lists it.
    base : str or pathlib.Path
        The folder the workflow ran in.

    Returns
    -------
    pathlib.Path
        ``source`` when absolute, else ``base / source``.
    """
    path = Path(source)
    return path if path.is_absolute() else Path(base) / path


def results_entry(path: str | Path, results: Path | None) -> Path | None:
    """``path`` relative to ``results`` when it lies below one of the folders the workflow
    writes there (:data:`lcm.io.paths.RESULTS_ENTRIES`); else None (raw data, a file elsewhere).

    Parameters
    ----------
    path : str or pathlib.Path
        A file; a relative path is made absolute against the current folder.
    results : pathlib.Path or None
        The absolute results folder the workflow claimed (:func:`claimed_results`), or None.

    Returns
    -------
    pathlib.Path or None
        The relative path, starting with the entry's folder (``connectomes/...``).
    """
    if results is None:
        return None
    try:
        relative = Path(os.path.abspath(path)).relative_to(results)
    except ValueError:
        return None
    return relative if relative.parts and relative.parts[0] in RESULTS_ENTRIES else None


def read_record(artifact: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The provenance sidecar of ``artifact`` and its content, or None when it has none.

    The sidecar names tried are :func:`~lcm.io.provenance.provenance_path`,
    :func:`~lcm.io.provenance.sidecar_path` and the name older LCM used; one counts only when it
    is a provenance record whose ``Output`` is ``artifact``'s name (a BIDS sidecar beside a
    BOLD file is not one).

    Parameters
    ----------
    artifact : str or pathlib.Path
        The output whose record is wanted.

    Returns
    -------
    tuple of (pathlib.Path, dict) or None
        The sidecar's path and its parsed record.
    """
    path = Path(artifact)
    # Last, the name older LCM gave, cut at the first dot (emb.attn.parquet -> emb.json); the
    # record's Output says whether it describes this file.
    legacy = path.with_name(path.name.split(".")[0] + ".json")
    for side in (provenance_path(path), sidecar_path(path), legacy):
        if side == path or not side.is_file():
            continue
        record = provenance_record(side)
        if record is not None and record["Output"] == path.name:
            return side, record
    return None


def trace(
    artifact: str | Path, base: str | Path = ".", drift: list[str] | None = None
) -> Iterator[str]:
    """Yield indented lines: ``artifact``, then its sources from sidecars, recursively.

    Each line is ``path [status] sha256=<first 12> rule=<rule> config=<first 12>``; status is
    ``ok`` (the file still has the recorded hash), ``CHANGED since recorded``, ``missing``,
    ``raw`` (a file without a sidecar outside the workflow's outputs: a lineage root), ``no
    provenance record (sidecar missing)`` (a file where the workflow writes its outputs, in a
    results folder it claimed, whose sidecar is gone: nothing says how it was made; ``sidecar
    not a readable LCM record`` where one is there but cut short or edited) or ``dir``. A
    file the workflow writes with no record of its own
    (:data:`lcm.io.paths.UNRECORDED`, an ingest summary) says so after its status; so does a
    file another source's record lists as made by its job (``Products``: the fMRIPrep record
    beside a time series lists the derivatives it was computed from, and its own sources are
    the subject's raw files). A record made in a container names its image and digest; that of
    existing fMRIPrep derivatives the fMRIPrep their description names, ``generated_by=fMRIPrep
    20.2.7`` (``unknown`` where it names no version), followed by ``(this subject: 23.2.1)``
    where the subject's own logs name another version.
    ``artifact`` is judged against its own sidecar; each source against the sha256 its
    consumer recorded when it used it (as :func:`verify` does), so a source rebuilt after its
    consumer was made shows as changed. A source already shown is not expanded again. When
    most sources recorded as relative paths are missing, a last line says to pass ``--base``
    (:func:`base_hint`). An ``artifact`` that is itself a provenance sidecar
    (:func:`described_output`) is not traced as a file without a record: a first line says so,
    and the output it describes is traced instead.

    Below the first record made under each config (``config_sha256``), one line ``config
    <path> [status]`` names the validated config kept in that record's results folder
    (``results/configs/<sha256>.json``): ``ok`` when its content re-hashes to its name, else
    ``CHANGED since written: it re-hashes to <sha256>``, or ``missing``.

    Parameters
    ----------
    artifact : path-like
        Any LCM output with a provenance sidecar, or such a sidecar (a relative path is
        relative to the cwd).
    base : path-like
        Folder that relative source paths are relative to (where the workflow ran).
    drift : list of str, optional
        When given, each file shown that differs from its record (``CHANGED``, ``missing``,
        or a workflow output without a record) and each config copy changed or missing is
        appended to it as ``<path> [<status>]``, as the lines are yielded: the command exits
        1 on any, as :func:`verify` does.
    """
    tracer = _Tracer(base, drift)
    label, path = str(artifact), Path(artifact)
    output = described_output(path)
    if output is not None:
        # A sidecar has no record of its own: traced as a file it said "sidecar missing", and
        # exit 1 on an untampered tree. The output it describes is what was asked about.
        found = read_record(output)
        if found is not None and found[0] != path:
            yield (
                f"{label} is a provenance record of {output}, but LCM reads that file's record "
                f"from {found[0]}: tracing {output} by that one"
            )
        elif found is None:
            yield (
                f"{label} is a provenance record of {output}, but not at a name LCM reads it "
                f"from ({provenance_path(output)}): tracing {output}"
            )
        else:
            yield f"{label} is the provenance record of {output}: tracing {output}"
        label, path = str(output), output
    yield from tracer.lines(label, path, None, 0)
    hint = base_hint(tracer.missing, tracer.relative, base, artifact)
    if hint:
        yield hint


def described_output(path: str | Path) -> Path | None:
    """The output that ``path`` records, when ``path`` is an LCM provenance sidecar.

    Parameters
    ----------
    path : str or pathlib.Path
        Any file.

    Returns
    -------
    pathlib.Path or None
        The file its ``Output`` names, in the same folder; None when ``path`` is no provenance
        record (:func:`lcm.io.provenance.read_record`), or is itself an output with a record
        of its own (a JSON output whose content happens to look like one).
    """
    path = Path(path)
    if not path.is_file() or read_record(path) is not None:
        return None
    record = provenance_record(path)
    name = record["Output"] if record else ""
    # A bare file name other than the sidecar's own; anything else is no record LCM wrote.
    if not name or Path(name).name != name or name in (".", "..", path.name):
        return None
    return path.with_name(name)


class _Tracer:
    """The state of one :func:`trace`: files shown, hashes, results folders, configs named."""

    def __init__(self, base: str | Path, drift: list[str] | None = None) -> None:
        self.base = base
        self.drift = drift if drift is not None else []
        self.seen: set[Path] = set()
        self.hashes = _Hashes()
        self.configs: set[str] = set()
        # Sources recorded as relative paths: how many lines showed one, and those missing.
        self.relative = 0
        self.missing: list[str] = []
        # Files a record lists as made by its job (fMRIPrep's derivatives): resolved path ->
        # (what to say of their maker, the sha256 it recorded).
        self.products: dict[Path, tuple[str, str | None]] = {}
        self._results: dict[Path, Path | None] = {}
        self._records: dict[Path, tuple[Path, dict[str, Any]] | None] = {}

    def record(self, path: Path) -> tuple[Path, dict[str, Any]] | None:
        """:func:`read_record` of ``path`` (a file), read once per trace.

        Parameters
        ----------
        path : pathlib.Path
            A file or folder; a folder, or a missing file, has no record.

        Returns
        -------
        tuple of (pathlib.Path, dict) or None
            The sidecar and its record, as :func:`read_record` gives them.
        """
        key = path.resolve()
        if key not in self._records:
            self._records[key] = read_record(path) if path.is_file() else None
        return self._records[key]

    def note_products(self, label: str, found: tuple[Path, dict[str, Any]] | None) -> None:
        """Remember the files the record ``found`` of ``label`` lists as its job's products.

        Parameters
        ----------
        label : str
            The source as its consumer's record names it, said in the products' lines.
        found : tuple of (pathlib.Path, dict) or None
            That source's sidecar and record (:meth:`record`); None notes nothing.
        """
        record = found[1] if found else {}
        rule = (record.get("Provenance") or {}).get("rule")
        maker = f"product of rule={rule}, listed in {label}" if rule else f"listed in {label}"
        digests = record.get("ProductsSha256") or {}
        for product in record.get("Products") or []:
            key = source_path(product, self.base).resolve()
            self.products.setdefault(key, (maker, digests.get(product)))

    def results(self, path: Path) -> Path | None:
        """The results folder the workflow claimed at or above ``path``'s folder.

        Parameters
        ----------
        path : pathlib.Path
            A file; looked up once per folder.

        Returns
        -------
        pathlib.Path or None
            :func:`~lcm.io.ownership.claimed_results` of its folder.
        """
        folder = path.parent
        if folder not in self._results:
            self._results[folder] = claimed_results(folder)
        return self._results[folder]

    def lines(self, label: str, path: Path, expected: str | None, depth: int) -> Iterator[str]:
        """Lines for ``path``, which its consumer recorded with ``expected``, and its sources.

        Parameters
        ----------
        label : str
            ``path`` as it is shown: the argument given to :func:`trace`, or the source as its
            consumer's record lists it.
        path : pathlib.Path
            Where that file lies (relative sources resolved against the trace's base).
        expected : str or None
            The sha256 the consumer recorded for it; None for the traced artifact itself, judged
            against its own sidecar.
        depth : int
            Nesting level; each level indents the line by two spaces.

        Yields
        ------
        str
            The file's line, its config's line when it is the first record under that config,
            then its sources' lines.
        """
        found = self.record(path)
        record = found[1] if found else {}
        made = None if found else self.products.get(path.resolve())
        # A source's own sidecar describes its current build; what matters is whether it is
        # still the file its consumer used. Its own record is the fallback when the consumer
        # has none (and for a job's product, the sha256 its job recorded).
        recorded = expected or record.get("Sha256") or (made[1] if made else None)
        note = f" ({made[0]})" if made else ""
        relative = depth > 0 and not Path(label).is_absolute()
        self.relative += relative
        if not path.exists():
            status = "missing"
            if relative:
                self.missing.append(label)
        elif path.is_dir():
            status = "dir"
        else:
            actual = self.hashes(path)
            recorded = recorded or actual
            status = "ok" if actual == recorded else "CHANGED since recorded"
            if not found and not made:
                entry = results_entry(path, self.results(path))
                why = unrecorded_reason(entry) if entry is not None else None
                if why:
                    note = f" (no record of its own: {why})"
                elif entry is not None:
                    none = UNREADABLE_RECORD if provenance_path(path).exists() else NO_RECORD
                    status = none if status == "ok" else f"{status}; {none}"
                elif status == "ok":
                    status = "raw"
        prov = record.get("Provenance") or {}
        config = prov.get("config_sha256")
        line = f"{'  ' * depth}{label} [{status}]"
        line += f" sha256={recorded[:12]}" if recorded else ""
        line += f" rule={prov['rule']}" if prov.get("rule") else ""
        line += f" config={config[:12]}" if isinstance(config, str) and config else ""
        container = prov.get("container") or {}
        if isinstance(container, dict) and container.get("image"):
            line += f" image={container['image']}"
            line += f" digest={container['digest']}" if container.get("digest") else ""
        # Existing fMRIPrep derivatives: the fMRIPrep their description names (no image ran).
        made = record.get("GeneratedBy")
        if isinstance(made, dict):
            named = " ".join(str(made[k]) for k in ("name", "version") if made.get(k))
            line += f" generated_by={named if made.get('version') else 'unknown'}"
            # The subject's own logs may name another version than the folder's description.
            own = made.get("subject")
            own = own.get("version") if isinstance(own, dict) else None
            if own and own != made.get("version"):
                line += f" (this subject: {own})"
        line += note
        key = path.resolve()
        # Once per file: a file in the lineage of many others is shown once for each.
        if status not in ("ok", "raw", "dir") and key not in self.seen:
            self.drift.append(f"{label} [{status}]")
        if key in self.seen and record.get("Sources"):
            yield line + " (sources shown above)"
            return
        yield line
        self.seen.add(key)
        if found and isinstance(config, str) and config and config not in self.configs:
            self.configs.add(config)
            yield f"{'  ' * (depth + 1)}{self.config_line(config, found[0])}"
        digests = record.get("SourcesSha256", {})
        sources = record.get("Sources", [])
        for src in sources:  # the makers of the others first (fMRIPrep's record, its BOLD)
            self.note_products(src, self.record(source_path(src, self.base)))
        for src in sources:
            yield from self.lines(src, source_path(src, self.base), digests.get(src), depth + 1)

    def config_line(self, sha: str, side: Path) -> str:
        """``config <its copy> [status]``, the copy of config ``sha`` kept where ``side`` lies.

        Parameters
        ----------
        sha : str
            The record's ``config_sha256``.
        side : pathlib.Path
            The record's sidecar; the results folder claimed above it holds the copy.

        Returns
        -------
        str
            The line, without indent; a copy missing or changed is noted in :attr:`drift`.
        """
        results = self.results(side)
        if results is None:
            return f"config {sha} [no copy known: {side} lies in no results folder of the workflow]"
        copy = Path(config_copy(_shown(results), sha))
        if not copy.is_file():
            self.drift.append(f"{copy} [missing]")
            return f"config {copy} [missing]"
        now = copy_rehash(copy)
        if now:
            self.drift.append(f"{copy} [CHANGED since written: {now}]")
        return f"config {copy} [{f'CHANGED since written: {now}' if now else 'ok'}]"


def _shown(folder: Path) -> str:
    """``folder`` relative to the current folder when it lies below it, else absolute."""
    relative = os.path.relpath(folder)
    return folder.as_posix() if relative.startswith("..") else relative


# How to make an output again, in every message that asks for it.
RERUN = "rerun the workflow with the command that made it (snakemake or lcm run)"
# Missing inputs listed by the command line before "... and N more", when most are missing.
MAX_MISSING_LISTED = 20


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`audit`: ``path``, what is wrong and what to do, and its kind.

    Attributes
    ----------
    path : str
        The file concerned, as recorded (an input) or as found under the audited folder.
    text : str
        What is wrong with it, then what to do.
    kind : str
        ``output changed``, ``output missing``, ``input changed``, ``input missing``,
        ``product changed``, ``product missing``, ``no record``, ``config changed``,
        ``config missing`` or ``temporary left``.
    relative : bool
        The path was recorded relative (to ``--base``).
    """

    path: str
    text: str
    kind: str
    relative: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.text}"


@dataclass
class Audit:
    """What :func:`audit` found, and how many recorded inputs it read.

    Attributes
    ----------
    problems : list of Problem
        In the order found (sidecars by path, then outputs without a record, then configs,
        then temporary files).
    relative_inputs : int
        Inputs recorded as relative paths, each counted once per record naming it, and
        products recorded so, each counted once (as its problem is said once).
    records : int
        Provenance records read: none with no problems means nothing was verified.
    """

    problems: list[Problem] = field(default_factory=list)
    relative_inputs: int = 0
    records: int = 0

    def missing_relative(self) -> list[Problem]:
        """The missing inputs and products recorded as relative paths."""
        kinds = ("input missing", "product missing")
        return [p for p in self.problems if p.kind in kinds and p.relative]


def verify(root: str | Path, base: str | Path = ".") -> list[str]:
    """Re-hash every file described by a sidecar under ``root`` and its recorded inputs.

    The lines of :func:`audit`'s problems (see there).

    Parameters
    ----------
    root : path-like
        Folder to audit (searched recursively for provenance sidecars).
    base : path-like
        Folder that relative source paths are relative to (where the workflow ran).

    Returns
    -------
    list of str
        One line per drift, ``<path>: <what is wrong>: <what to do>``. Empty when everything
        matches.
    """
    return [str(p) for p in audit(root, base).problems]


def audit(root: str | Path, base: str | Path = ".") -> Audit:
    """Re-hash every file described by a sidecar under ``root`` and its recorded inputs.

    In a results folder the workflow claimed (its ``.lcm-owned`` marker, at or above ``root``
    or below it; else ``root`` itself when it holds one of the folders the workflow writes,
    :data:`lcm.io.paths.RESULTS_ENTRIES`), every file below those folders must be named by a
    provenance record too: one that is not, and is no sidecar, log or other file the workflow
    writes without a record (:data:`lcm.io.paths.UNRECORDED`), is reported, since nothing
    says how it was made; and each validated config kept there (``configs/<sha256>.json``)
    must re-hash to its name. The files a record lists as its job's products (fMRIPrep's
    derivatives; the other outputs of one job) are re-hashed too, each reported once, and not
    where its own record reports it already. Hidden files and folders (locks, markers,
    ``.snakemake/``) are not looked at, but for the temporary and staged files LCM's writers
    leave when killed (``.<name>.lcmtmp-<host>-<pid>-<random>``; a folder for the index
    cache), each reported with its writer's host and pid.

    Parameters
    ----------
    root : path-like
        Folder to audit (searched recursively for provenance sidecars).
    base : path-like
        Folder that relative source paths are relative to (where the workflow ran).

    Returns
    -------
    Audit
        Each problem says what to do: an output or input whose content differs from what was
        recorded, or that is gone, an output of the workflow with no record, or a config copy
        changed since it was written. No problems when everything matches.
    """
    hashes = _Hashes()
    found = Audit()
    problems = found.problems
    temporaries: list[Path] = []
    files = list(_files(Path(root), temporaries))
    records: set[Path] = set()
    described: set[str] = set()
    # (results folder, config sha256) -> the first record naming that config: its copy must be
    # there (trace said "missing" where verify said nothing).
    named_configs: dict[tuple[Path, str], Path] = {}
    # Problems of files records list as products of their job, one per file.
    products: dict[str, Problem] = {}
    # Products recorded as relative paths: a wrong --base makes them all missing, as inputs.
    relative_products: set[str] = set()
    for side, results in files:
        record = _record_file(side)
        if record is None:
            continue
        records.add(side)
        found.records += 1
        config = (record.get("Provenance") or {}).get("config_sha256")
        if results is not None and isinstance(config, str) and config:
            named_configs.setdefault((results, config), side)
        if "Output" in record:
            outputs = [side.parent / record["Output"]]
        else:  # sidecars written before "Output" existed: <stem>.<ext> beside <stem>.json
            stem = side.name.split(".")[0]
            outputs = [p for p in side.parent.glob(stem + ".*") if p != side]
        described.update(os.path.abspath(out) for out in outputs)
        for out in outputs:
            if not out.is_file():
                text = f"described by {side} but missing: restore it, or {RERUN}, which makes it"
                problems.append(Problem(str(out), text, "output missing"))
            elif hashes(out) != record["Sha256"]:
                text = (
                    f"sha256 differs from {side}: it was changed after LCM wrote it; restore it, "
                    f"or delete it and {RERUN}, which makes it again"
                )
                problems.append(Problem(str(out), text, "output changed"))
        made = outputs[0] if outputs else side
        for src, digest in record.get("SourcesSha256", {}).items():
            path = source_path(src, base)
            relative = not Path(src).is_absolute()
            found.relative_inputs += relative
            if not path.is_file():
                text = (
                    f"input of {side} is missing: restore it, or {RERUN}, which makes it again "
                    f"if the workflow made it, and {made.name} from it"
                )
                problems.append(Problem(src, text, "input missing", relative))
            elif hashes(path) != digest:
                text = (
                    f"input of {side} changed since it was used: restore it, or {RERUN} to "
                    f"make {made.name} again from it (delete {made} first if `snakemake -n` "
                    "lists no job for it)"
                )
                problems.append(Problem(src, text, "input changed", relative))
        again = _product_fix(record, made)
        for product, digest in record.get("ProductsSha256", {}).items():
            path = source_path(product, base)
            relative = not Path(product).is_absolute()
            if relative:  # each file once, as its problem is said once
                relative_products.add(os.path.abspath(path))
            if not path.is_file():
                text = f"a product of the job of {side}, missing: {again}"
                products.setdefault(
                    os.path.abspath(path), Problem(product, text, "product missing", relative)
                )
            elif hashes(path) != digest:
                text = f"changed since {side} recorded it as a product of its job: {again}"
                products.setdefault(
                    os.path.abspath(path), Problem(product, text, "product changed", relative)
                )
    # Each output of a job names the others (lcm pretrain's, the report's): a file gone is one
    # problem, said by its own record where that is there, else by the first record naming it.
    said = {os.path.abspath(p.path) for p in problems if p.kind.startswith("output ")}
    problems.extend(p for path, p in products.items() if path not in said)
    found.relative_inputs += len(relative_products)
    unrecorded = [
        path
        for path, results in files
        if path not in records
        and os.path.abspath(path) not in described
        and (relative := results_entry(path, results)) is not None
        and unrecorded_reason(relative) is None
    ]
    # A sidecar that is no readable record (edited, cut short) is named with its output.
    broken = {provenance_path(path) for path in unrecorded}
    for path in unrecorded:
        if path in broken:
            continue
        side = provenance_path(path)
        gone = "is not a readable LCM record" if side.exists() else "is missing"
        text = (
            f"an output of the workflow with no provenance record (its sidecar {side.name} "
            f"{gone}), so nothing says how it was made: delete it and {RERUN}, which makes it "
            "again with its record"
        )
        problems.append(Problem(str(path), text, "no record"))
    for (results, sha), side in sorted(named_configs.items()):
        copy = Path(config_copy(_shown(results), sha))
        if not copy.is_file():
            text = (
                f"the config {side} was made with (config_sha256 {sha[:12]}...) has no copy: "
                "restore it from a backup, or run the workflow again with that config, which "
                "writes the copy again"
            )
            problems.append(Problem(str(copy), text, "config missing"))
    for path, results in files:
        configs = config_dir(str(results)) if results is not None else None
        if configs and path.suffix == ".json" and _same(path.parent, configs):
            change = copy_change(path)
            if change:
                text = (
                    f"{change}: restore it from a backup, or delete it and run the workflow "
                    "again with that config, which writes the copy again"
                )
                problems.append(Problem(str(path), text, "config changed"))
    # A writer killed mid-write leaves its temporary (or the store's staged) file; its next run
    # removes it on the same host only (a process id says nothing of another host's processes).
    for path in temporaries:
        host, pid = temporary_owner(path.name)
        text = (
            f"temporary {'folder' if path.is_dir() else 'file'} of an LCM writer (host {host}, "
            f"pid {pid}) that did not finish: "
            f"delete it once no LCM job runs on {host} (a rerun there removes it; one on "
            "another host never does)"
        )
        problems.append(Problem(str(path), text, "temporary left"))
    return found


def _product_fix(record: dict[str, Any], made: Path) -> str:
    """What to do of a product of ``record``'s job that is missing or changed, by its maker."""
    if record_verb(record) == "lcm fmriprep":
        # The job records the derivatives as they are: fMRIPrep itself is skipped by its stamp.
        return (
            f"restore it, or delete {made} and {RERUN}, which records the file as it is then "
            "(fMRIPrep itself runs again only once the .completed.json stamp beside it is "
            "deleted too)"
        )
    # Another job's sibling outputs (a checkpoint's history, a report's tables): its rerun
    # writes them all again.
    return f"restore it, or delete {made} and {RERUN}, which makes it again with {made.name}"


def base_hint(missing: list[str], total: int, base: str | Path, near: str | Path) -> str | None:
    """A line saying to pass ``--base`` when most files recorded as relative paths are missing.

    Parameters
    ----------
    missing : list of str
        The relative inputs (and jobs' products) found missing, as recorded.
    total : int
        How many relative inputs (and products) were read.
    base : path-like
        The ``--base`` used.
    near : path-like
        The audited folder or file: the folder above it where the first missing inputs lie
        is suggested.

    Returns
    -------
    str or None
        None when at most half of them are missing (then they are missing indeed).
    """
    if not missing or 2 * len(missing) < total:
        return None
    start = Path(os.path.abspath(near))
    guess = next(
        (
            folder
            for folder in (start, *start.parents)
            if all((folder / src).exists() for src in missing[:3])
        ),
        None,
    )
    where = f"--base {guess}" if guess else "--base <the folder the workflow ran in>"
    return (
        f"{len(missing)} of {total} files recorded as relative paths are missing under --base "
        f"{base} ({os.path.abspath(base)}): they are relative to the folder the workflow ran "
        f"in; pass {where}"
    )


def _same(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name the same path (both made absolute, links kept)."""
    return os.path.abspath(a) == os.path.abspath(b)


def _record_file(path: Path) -> dict[str, Any] | None:
    """The provenance record in ``path`` (:func:`lcm.io.provenance.read_record`), or None."""
    return provenance_record(path) if path.suffix == ".json" else None


def _files(root: Path, temporaries: list[Path] | None = None) -> Iterator[tuple[Path, Path | None]]:
    """Every file below ``root`` with the results folder it lies in (None outside one).

    Hidden files and folders are skipped, and so are the folders the workflow fills without
    provenance records (logs, work folders, fMRIPrep's derivatives, caches); the hidden
    temporary and staged files of LCM's writers among them are added to ``temporaries``.
    Folders that are symbolic links (``results/report`` moved to a scratch disk and linked
    back) are walked too, after the others, each real folder once: files are named by their
    path without links where there is one, and a link looping back above itself adds nothing.
    """
    results = claimed_results(root)
    if results is None and any((root / entry).is_dir() for entry in RESULTS_ENTRIES):
        results = Path(os.path.abspath(root))
    found: dict[str, Path | None] = {}
    # Real paths of the folders walked; a linked folder was once skipped whole, so an edit
    # there passed verify.
    walked: set[str] = set()
    links = [str(root)]
    while links:
        for folder, dirs, names in os.walk(links.pop(0)):
            real = os.path.realpath(folder)
            if real in walked:  # a loop, or a folder another path already reached
                dirs[:] = []
                continue
            walked.add(real)
            here = found.get(os.path.dirname(folder), results)
            if MARKER_NAME in names and marker_owner(folder) == RESULTS_OWNER:
                here = Path(os.path.abspath(folder))
            found[folder] = here
            if temporaries is not None:  # a writer's staging folder (the index cache's)
                temporaries.extend(Path(folder, d) for d in sorted(dirs) if temporary_owner(d))
            kept = sorted(
                d
                for d in dirs
                if not d.startswith(".")
                and not (
                    (relative := results_entry(Path(folder, d), here))
                    and unrecorded_reason(relative)
                )
            )
            links.extend(os.path.join(folder, d) for d in kept if os.path.islink(Path(folder, d)))
            dirs[:] = [d for d in kept if not os.path.islink(Path(folder, d))]
            for name in sorted(names):
                if not name.startswith("."):
                    yield Path(folder, name), here
                elif temporaries is not None and temporary_owner(name):
                    temporaries.append(Path(folder, name))
