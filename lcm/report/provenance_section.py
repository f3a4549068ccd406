"""The report's "Provenance" section: what made the numbers, read from the inputs' own records.

Every LCM output has a provenance sidecar (:mod:`lcm.io.provenance`) recording the LCM version,
git commit and config hash of the job that wrote it; a checkpoint's ``model.json`` records its
weights' sha256 and the data it was pretrained on. The section says what those records hold
(and whether the inputs agree), where the validated config and the logs are, and how to trace
any output back to raw files. Nothing here depends on when the report runs.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lcm.evaluate.registry import maps_models
from lcm.io.config_copy import copy_change, read_config_copy
from lcm.io.lineage import read_record
from lcm.io.provenance import sha256_file
from lcm.model.checkpoint_meta import META_NAME, WEIGHTS_NAME, read_meta_fields
from lcm.report.tables import shown_path

# Inputs named per differing value before "and N more": enough to find them, short on the page.
MAX_NAMED = 5


@dataclass
class ProvenanceFacts:
    """What the report's inputs record about how they were made.

    Attributes
    ----------
    records : dict
        ``input path -> its provenance sidecar`` (inputs LCM wrote).
    unrecorded : list of str
        Inputs without an LCM provenance record (an atlas file, a user's table).
    checkpoints : list of dict
        One summary per ``model.json`` given (:func:`checkpoint_summary`): pretrained
        checkpoints and the finetuned models the attention maps come from.
    maps : list of dict
        One summary per bei-linear ridge maps file given (:func:`maps_summary`).
    configs : dict
        ``config sha256 -> (path of its copy, validated config)``, for the hashes whose copy
        was found and re-hashes to its name.
    changed_configs : dict
        ``config sha256 -> (path of its copy, what changed)``, for the hashes whose copy was
        found but was edited since it was written (:func:`lcm.io.config_copy.copy_change`).
    config_dir : str or None
        Where the copies were looked for (``results/configs``).
    report_log : str or None
        The report's own log file.
    log_dirs : list of str
        The stage folders found in the workflow's logs folder (``results/logs/<stage>/``),
        every stage's, not only those of the report's direct inputs.
    trace_target : str or None
        A file named in the ``lcm provenance trace`` example (an input: the page never names
        where it is written, so the same inputs give the same page).
    """

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    unrecorded: list[str] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    maps: list[dict[str, Any]] = field(default_factory=list)
    configs: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    changed_configs: dict[str, tuple[str, str]] = field(default_factory=dict)
    config_dir: str | None = None
    report_log: str | None = None
    log_dirs: list[str] = field(default_factory=list)
    trace_target: str | None = None

    @property
    def config_files(self) -> list[Path]:
        """The config copies read (inputs of the page)."""
        return [Path(path) for path, _ in self.configs.values()]


def checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """``model.json`` of a checkpoint given as its folder or as that file.

    Parameters
    ----------
    path : path-like
        A checkpoint folder (``lcm report --checkpoint``), or its ``model.json``.

    Returns
    -------
    pathlib.Path
        ``path/model.json`` for a folder; ``path`` itself otherwise (it need not exist).
    """
    path = Path(path)
    return path / META_NAME if path.is_dir() else path


def checkpoint_summary(model_json: str | os.PathLike[str]) -> dict[str, Any]:
    """What a checkpoint's ``model.json`` says of its weights and pretraining data.

    Parameters
    ----------
    model_json : path-like
        A checkpoint's ``model.json`` (:func:`checkpoint_file`).

    Returns
    -------
    dict
        ``folder, kind, weights_sha256, datasets, n_subjects, n_runs, n_heldout, git_commit,
        data_fingerprint``, for a finetuned model ``label`` (the diagnosis' name) and
        ``pretrained_from``, and for a pretrained one ``epochs``, ``select_epoch`` (its
        training's ``pretrain.select_epoch``) and ``selected_epoch`` (the epoch
        ``heldout`` chose; None when it kept the last) (None where the file lacks it).

    Raises
    ------
    CheckpointError
        When the file cannot be read as a JSON object
        (:func:`lcm.model.checkpoint_meta.read_meta_fields`).
    """
    path = Path(model_json)
    meta = read_meta_fields(path)
    assert meta is not None  # not missing_ok
    data = meta.get("data") or {}
    heldout = data.get("heldout_subjects")
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    return {
        "folder": str(path.parent),
        "kind": meta.get("kind"),
        "weights_sha256": meta.get("weights_sha256"),
        "datasets": list(data.get("datasets") or []),
        "n_subjects": data.get("n_subjects"),
        "n_runs": data.get("n_runs"),
        "n_heldout": len(heldout) if isinstance(heldout, list) else None,
        "git_commit": (meta.get("versions") or {}).get("git_commit"),
        "data_fingerprint": meta.get("data_fingerprint"),
        "label": (meta.get("label") or {}).get("name"),
        "pretrained_from": meta.get("pretrained_from"),
        "epochs": training.get("epochs"),
        "select_epoch": training.get("select_epoch"),
        "selected_epoch": meta.get("selected_epoch"),
    }


def checkpoint_beside(
    checkpoints: Sequence[dict[str, Any]], path: str | os.PathLike[str] | None
) -> dict[str, Any] | None:
    """The checkpoint (:func:`checkpoint_summary`) written in the same folder as ``path``.

    ``lcm pretrain`` writes its history beside its checkpoint: the folder ties the curves to
    the weights they led to, where a kind or a dataset could match the self-supervised-only
    checkpoint or another run's.

    Parameters
    ----------
    checkpoints : sequence of dict
        Checkpoint summaries (:attr:`ProvenanceFacts.checkpoints`).
    path : path-like or None
        A file of a training run (its ``history.tsv``).

    Returns
    -------
    dict or None
        The first summary whose folder is ``path``'s; None when none is (or ``path`` is None).
    """
    if path is None:
        return None
    folder = Path(path).resolve().parent
    return next((c for c in checkpoints if Path(c["folder"]).resolve() == folder), None)


def maps_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What the bei-linear baseline's ridge maps (``lcm bei-maps``) say of themselves.

    Parameters
    ----------
    path : path-like
        The ridge maps file (``bei_linear.npz``).

    Returns
    -------
    dict
        ``path, sha256, n_variables, atlas, data_fingerprint`` (the last two None for maps
        written before they were recorded), ``names`` (the variables mapped), ``left_out``
        (variable -> its training subjects, for those without a map), ``min_values`` (the
        threshold) and ``constant`` (those without a map for one value in every run);
        ``left_out`` and ``constant`` empty and ``min_values`` None for maps written before
        they were recorded: :class:`lcm.train.bei_maps.BEIMaps`).

    Raises
    ------
    InputDataError
        When the file cannot be read as ridge maps.
    """
    from lcm.evaluate.bei_linear import BEIMaps

    maps = BEIMaps.load(path)
    return {
        "path": str(path),
        "sha256": sha256_file(path),
        "n_variables": len(maps.names),
        "atlas": maps.atlas,
        "data_fingerprint": maps.data_fingerprint,
        "names": list(maps.names),
        "left_out": dict(maps.left_out),
        "min_values": maps.min_values,
        "constant": list(maps.constant),
    }


def collect_provenance(
    inputs: Sequence[str | os.PathLike[str]],
    checkpoints: Sequence[str | os.PathLike[str]] = (),
    config_dir: str | os.PathLike[str] | None = None,
    report_log: str | None = None,
    trace_target: str | None = None,
    maps: Sequence[str | os.PathLike[str]] = (),
    logs_dir: str | os.PathLike[str] | None = None,
) -> ProvenanceFacts:
    """Read the inputs' provenance sidecars, the checkpoints' ``model.json`` and config copies.

    Parameters
    ----------
    inputs : sequence of path-like
        The report's input files.
    checkpoints : sequence of path-like
        Checkpoint folders or their ``model.json`` (pretrained and finetuned).
    config_dir : path-like, optional
        Folder of the validated configs (``results/configs/<sha256>.json``); a copy counts
        only when its content re-hashes to its name.
    report_log, trace_target : str, optional
        The report's log file; an output to name in the trace example.
    maps : sequence of path-like
        The bei-linear baseline's ridge maps (``bei_linear.npz``).
    logs_dir : path-like, optional
        The workflow's logs folder (``results/logs``): each stage folder in it is listed.

    Returns
    -------
    ProvenanceFacts
    """
    facts = ProvenanceFacts(
        config_dir=str(config_dir) if config_dir else None,
        report_log=report_log,
        trace_target=trace_target,
    )
    for path in map(str, inputs):
        found = read_record(path)
        if found is None:
            facts.unrecorded.append(path)
        else:
            facts.records[path] = found[1]
    facts.checkpoints = [checkpoint_summary(checkpoint_file(p)) for p in checkpoints]
    facts.maps = [maps_summary(p) for p in maps]
    if logs_dir and Path(logs_dir).is_dir():
        facts.log_dirs = sorted(
            f"{os.path.join(logs_dir, entry.name)}/"
            for entry in os.scandir(logs_dir)
            if entry.is_dir() and not entry.name.startswith(".")
        )
    if config_dir:
        for sha in sorted({h for h in _values(facts, "config_sha256") if h}):
            copy = Path(config_dir) / f"{sha}.json"
            if not copy.is_file():
                continue
            change = copy_change(copy)
            if change:
                facts.changed_configs[sha] = (str(copy), change)
            else:
                facts.configs[sha] = (str(copy), read_config_copy(copy)[0] or {})
    return facts


def _values(facts: ProvenanceFacts, key: str) -> list[Any]:
    return [(r.get("Provenance") or {}).get(key) for r in facts.records.values()]


def _by_value(facts: ProvenanceFacts, value: Callable[[dict[str, Any]], Any]) -> dict[Any, list]:
    """Inputs grouped by what ``value`` reads of their ``Provenance`` block, in input order."""
    groups: dict[Any, list[str]] = {}
    for path, record in facts.records.items():
        groups.setdefault(value(record.get("Provenance") or {}), []).append(path)
    return groups


def _named(paths: list[str]) -> str:
    shown = ", ".join(paths[:MAX_NAMED])
    more = len(paths) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def _code(prov: dict[str, Any]) -> str:
    commit = prov.get("git_commit") or "unknown commit"
    dirty = " (uncommitted changes)" if prov.get("git_dirty") else ""
    return f"LCM {prov.get('lcm_version') or '?'}, git {commit}{dirty}"


def _verb(prov: dict[str, Any]) -> str:
    """The command that wrote an input: ``lcm <verb>`` (else its rule, else unnamed)."""
    params = prov.get("params") if isinstance(prov.get("params"), dict) else {}
    if params.get("verb"):
        return f"lcm {params['verb']}"
    return f"rule {prov['rule']}" if prov.get("rule") else "an unnamed command"


def _code_hash_line(facts: ProvenanceFacts) -> str:
    """Each verb's ``code_sha256``: the code it ran, named where no git commit is recorded
    (LCM installed or copied outside its own checkout). Verbs hash their own code, so they
    differ from one another; inputs of one verb under two hashes are listed."""
    by_verb: dict[str, dict[Any, list[str]]] = {}
    for path, record in facts.records.items():
        prov = record.get("Provenance") or {}
        by_verb.setdefault(_verb(prov), {}).setdefault(prov.get("code_sha256"), []).append(path)
    if not any(sha for hashes in by_verb.values() for sha in hashes):
        return "<li>Code sha256 of each verb: none recorded by the inputs.</li>"
    items = []
    for verb in sorted(by_verb):
        hashes = by_verb[verb]
        shown = {sha or "none recorded": paths for sha, paths in hashes.items()}
        if len(shown) == 1:
            ((sha, paths),) = shown.items()
            items.append(
                f"<li>{html.escape(verb)}: {html.escape(sha)} ({len(paths)} input(s))</li>"
            )
            continue
        listed = "".join(
            f"<li>{html.escape(sha)}: {len(paths)} input(s): {html.escape(_named(paths))}</li>"
            for sha, paths in shown.items()
        )
        items.append(
            f'<li><div class="warn">{html.escape(verb)}: its inputs were made by '
            f"{len(shown)} versions of its code:<ul>{listed}</ul></div></li>"
        )
    return (
        "<li>Code sha256 of each verb (<code>code_sha256</code> in each output's sidecar: the "
        "hash of the lcm code the verb runs, which names the code even where no git commit is "
        f"recorded):<ul>{''.join(items)}</ul></li>"
    )


def _agreement(groups: dict[Any, list[str]], what: str, shown: Callable[[Any], str]) -> str:
    """One line when every input agrees on ``what``; else a warning listing each value."""
    n = sum(len(v) for v in groups.values())
    if len(groups) == 1:
        value = next(iter(groups))
        agreed = html.escape(shown(value))
        return f"<li>{what}: {agreed} &mdash; all {n} recorded inputs agree.</li>"
    items = "".join(
        f"<li>{html.escape(shown(value))}: {len(paths)} input(s): {html.escape(_named(paths))}</li>"
        for value, paths in groups.items()
    )
    return (
        f'<li><div class="warn">{what}: the {n} recorded inputs do <b>not</b> agree; they were '
        f"made under {len(groups)} different values (a job reruns only when a setting it reads "
        f"changes, so older outputs keep the value they were made under):<ul>{items}</ul></div>"
        "</li>"
    )


def _config_line(facts: ProvenanceFacts) -> str:
    groups = _by_value(facts, lambda p: p.get("config_sha256"))
    line = _agreement(
        groups, "Config sha256", lambda h: h or "none recorded (made outside the workflow)"
    )
    where: list[str] = []
    for sha in (h for h in groups if h):
        if sha in facts.configs:
            path, config = facts.configs[sha]
            text = json.dumps(config, sort_keys=True, indent=1, default=str)
            where.append(
                f"<details><summary>Config {html.escape(sha[:12])}&hellip;: "
                f"<code>{html.escape(path)}</code> (its content re-hashes to this sha256)"
                f"</summary><pre>{html.escape(text)}</pre></details>"
            )
        elif sha in facts.changed_configs:
            path, change = facts.changed_configs[sha]
            where.append(
                f'<div class="warn">{html.escape(change[0].upper() + change[1:])}: '
                f"<code>{html.escape(path)}</code> is not shown, since it no longer holds the "
                "settings the inputs were made under.</div>"
            )
        elif facts.config_dir:
            where.append(
                f'<p class="note">No copy of config {html.escape(sha[:12])}&hellip; in '
                f"<code>{html.escape(facts.config_dir)}</code> (outputs of a workflow run before "
                "LCM kept the validated config there).</p>"
            )
    return line + (f"<li>{''.join(where)}</li>" if where else "")


def _log_line(facts: ProvenanceFacts) -> str:
    # Every stage's folder of the logs folder (finetune/, splits/, ingest/ ... whose outputs
    # reach the page only through others), and those the inputs' sidecars name.
    logs: set[str] = set(facts.log_dirs)
    for record in facts.records.values():
        params = (record.get("Provenance") or {}).get("params") or {}
        if isinstance(params, dict) and params.get("log_file"):
            logs.add(str(Path(params["log_file"]).parent) + "/")
    logs_shown = sorted(logs)
    parts = []
    if logs_shown:
        parts.append(
            "one log per job, named in each output's sidecar (<code>params.log_file</code>), in "
            + ", ".join(f"<code>{html.escape(d)}</code>" for d in logs_shown)
        )
    if facts.report_log:
        parts.append(f"this report's: <code>{html.escape(shown_path(facts.report_log))}</code>")
    if not parts:
        return "<li>Logs: none recorded (the inputs were made outside the workflow).</li>"
    return "<li>Logs: " + "; ".join(parts) + ".</li>"


def _trace_line(facts: ProvenanceFacts) -> str:
    target = html.escape(facts.trace_target or "<output file>")
    return (
        f"<li>Trace any output back to the raw files: <code>lcm provenance trace {target}</code> "
        "(each input with its sha256 and the rule that made it, recursively); "
        "<code>lcm provenance verify &lt;results folder&gt;</code> re-hashes every recorded file "
        "and reports any that changed.</li>"
    )


def _checkpoint_rows(facts: ProvenanceFacts, task_meta: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per checkpoint (its weights, the data it was trained on, who used it) and per
    ridge maps file of the bei-linear baseline."""
    rows = []
    for ckpt in facts.checkpoints:
        folder = os.path.normpath(ckpt["folder"])
        weights = os.path.join(folder, WEIGHTS_NAME)
        tasks = sorted(
            t
            for t, m in task_meta.items()
            if any(os.path.normpath(str(m.get(k) or "")) == folder
                   for k in ("checkpoint", "ssl_checkpoint"))
        )  # fmt: skip
        kind = ckpt["kind"] or "n/a"
        if ckpt.get("label"):  # a finetuned model: what it predicts, and from what
            kind += f" ({ckpt['label']}, from {ckpt.get('pretrained_from') or 'no checkpoint'})"
        rows.append(
            {
                "checkpoint": ckpt["folder"],
                "kind": kind,
                "weights sha256": ckpt["weights_sha256"] or "n/a",
                # A finetuned model's data record is its finetuning's (lcm.model.training_data).
                "pretrained on": (
                    f"{'finetuned on ' if ckpt.get('label') and ckpt['datasets'] else ''}"
                    f"{', '.join(ckpt['datasets']) or 'n/a'}"
                ),
                "subjects": _count(ckpt["n_subjects"]),
                "runs": _count(ckpt["n_runs"]),
                "held out": _count(ckpt["n_heldout"]),
                # A finetuned model no task's metrics name: the inputs made with it (the
                # attention maps) say where its numbers are on the page.
                "tasks": ", ".join(tasks) or _readers(facts, weights) or "none",
                "weights in the tasks' records": _weights_check(
                    facts, weights, ckpt["weights_sha256"]
                ),
            }
        )
    for maps in facts.maps:
        path = os.path.normpath(maps["path"])
        folder = os.path.dirname(path)
        tasks = sorted(
            t
            for t, m in task_meta.items()
            if os.path.normpath(str(m.get("checkpoint") or "")) == folder
            and maps_models(list((m.get("settings") or {}).get("models") or []))
        )
        cohort = next(
            (
                c
                for c in facts.checkpoints
                if maps["data_fingerprint"] and c["data_fingerprint"] == maps["data_fingerprint"]
            ),
            None,
        )
        rows.append(
            {
                "checkpoint": maps["path"],
                "kind": f"bei-linear ridge maps ({maps['n_variables']} BEI variable(s))",
                "weights sha256": maps["sha256"],
                "pretrained on": ", ".join(cohort["datasets"]) if cohort else "n/a",
                "subjects": _count(cohort["n_subjects"]) if cohort else "n/a",
                "runs": _count(cohort["n_runs"]) if cohort else "n/a",
                "held out": "n/a",
                "tasks": ", ".join(tasks) or _readers(facts, path) or "none",
                "weights in the tasks' records": _weights_check(facts, path, maps["sha256"]),
            }
        )
    return pd.DataFrame(rows)


def _left_out_note(maps: dict[str, Any]) -> str:
    """Which BEI variables a ridge maps file maps and which it left out, with their counts
    and the threshold, or as constant (its own record): bei-linear's features are the
    variables mapped."""
    mapped = ", ".join(maps["names"]) or "no variable"
    reasons = []
    if maps["left_out"]:
        left_out = ", ".join(f"{name} ({count})" for name, count in maps["left_out"].items())
        reasons.append(
            f"{html.escape(left_out)}: fewer than {maps['min_values']} training subjects with a "
            "value (a level of a binary or categorical variable: the fewer of its training "
            "subjects in the level and outside it), the threshold of <code>lcm bei-maps "
            "--min-values</code> (<code>evaluate.bei_linear_min_values</code>)"
        )
    if maps["constant"]:
        reasons.append(f"{html.escape(', '.join(maps['constant']))}: one value in every run")
    return (
        f'<p class="note">{html.escape(maps["path"])} maps {html.escape(mapped)}; '
        f"it left out {'; and '.join(reasons)}. bei-linear reads the variables mapped only"
        + (", so it was skipped" if not maps["names"] else "")
        + ".</p>"
    )


def _count(value: Any) -> Any:
    return value if value is not None else "n/a"


def _readers(facts: ProvenanceFacts, file: str) -> str:
    """The recorded inputs made from ``file`` (their sidecars list it), by name."""
    return ", ".join(
        sorted(
            Path(path).name
            for path, record in facts.records.items()
            if any(os.path.normpath(src) == file for src in record.get("SourcesSha256") or {})
        )
    )


def _weights_check(facts: ProvenanceFacts, file: str, sha256: str | None) -> str:
    """Whether the inputs' sidecars recorded ``sha256`` for ``file`` (weights or maps)."""
    seen = {
        sha
        for record in facts.records.values()
        for src, sha in (record.get("SourcesSha256") or {}).items()
        if os.path.normpath(src) == file
    }
    if not seen:
        return "not recorded by the inputs"
    if seen == {sha256}:
        return "same sha256"
    return "DIFFERENT sha256: the file changed after the outputs that read it were made"


def provenance_section(
    facts: ProvenanceFacts,
    task_meta: dict[str, dict[str, Any]],
    table_html: Callable[..., str],
) -> str:
    """The "Provenance" section: code, config, checkpoints, logs and how to trace an output.

    Parameters
    ----------
    facts : ProvenanceFacts
        What the inputs' sidecars, the checkpoints and the config copies record
        (:func:`collect_provenance`).
    task_meta : dict of str to dict
        ``task -> record`` of ``lcm evaluate``: the checkpoints each task used.
    table_html : callable
        Renders ``(frame, caption, row_headers=...)`` as an HTML table
        (:func:`lcm.report.html.table_html`).

    Returns
    -------
    str
        An HTML fragment.
    """
    parts = ['<h2 id="provenance">Provenance</h2>']
    items: list[str] = []
    if facts.records:
        items.append(_agreement(_by_value(facts, _code), "Code", str))
        items.append(_code_hash_line(facts))
        items.append(_config_line(facts))
    else:
        items.append("<li>None of the inputs carries an LCM provenance record.</li>")
    if facts.unrecorded:
        items.append(
            "<li>Inputs with no provenance sidecar of their own (a table written beside a "
            "recorded output, such as an ingestion summary, or a file from outside LCM, such as "
            f"an atlas; their sha256 is in the footer): {html.escape(_named(facts.unrecorded))}."
            "</li>"
        )
    items.append(_log_line(facts))
    items.append(_trace_line(facts))
    parts.append(f"<ul>{''.join(items)}</ul>")
    parts.append("<h3>Checkpoints</h3>")
    if facts.checkpoints or facts.maps:
        parts.append(
            '<p class="note">From each checkpoint\'s <code>model.json</code>: the sha256 of its '
            "weights (<code>model.safetensors</code>) and the data it was pretrained on; "
            "<i>held out</i>: pretraining subjects kept out of its training for the BEI "
            "evaluation. A finetuned model (the attention maps' source) names its diagnosis and "
            "the checkpoint it started from, and its row the data it was finetuned on; the "
            "bei-linear baseline's ridge maps (<code>bei_linear.npz</code>, fitted on the "
            "pretraining cohort by "
            "<code>lcm bei-maps</code>) are named with their file's sha256.</p>"
        )
        parts.append(
            table_html(
                _checkpoint_rows(facts, task_meta),
                "Checkpoints: weights, pretraining data and the tasks that used them",
                row_headers=1,
            )
        )
        parts.extend(_left_out_note(m) for m in facts.maps if m["left_out"] or m["constant"])
    else:
        named = sorted(
            {str(m[k]) for m in task_meta.values() for k in ("checkpoint", "ssl_checkpoint")
             if m.get(k)}
        )  # fmt: skip
        parts.append(
            "<p>No checkpoint was given to the report"
            + (
                f" (the tasks name {html.escape(', '.join(named))}: pass "
                "<code>--checkpoint</code> to show its weights and pretraining data)."
                if named
                else "; no task used one."
            )
            + "</p>"
        )
    return "\n".join(parts)
