"""Shell injection (issue 14): no configuration value reaches a shell command unquoted.

Three checks. Statically, every field of every rule's ``shell:`` command is ``:q``-quoted or is
one of the few option fragments that common.smk builds with its quoting helpers. Against the
schema, every key that can hold a string, set to a payload, is either refused by
``validate_config`` in one line naming the key, or is a free-text key that the real run below
exercises. And one real (not dry) run of a tiny workflow whose every free-text key holds a
payload, each with its own marker file: it must finish, and no marker may exist.
"""

from __future__ import annotations

import ast
import copy
import html
import json
import os
import re
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import ROOT

from lcm.atlas import load_atlas
from lcm.evaluate.config_schema import schema, validate_config
from lcm.exceptions import ConfigError
from lcm.io import paths
from lcm.io.provenance import sha256_file
from lcm.store.phenotype import sidecar_path

pytestmark = pytest.mark.hostile

RULES = ROOT / "workflow" / "rules"

# Params a shell command may use unquoted: option fragments (empty, or several words) built
# by common.smk with `quoted`/`as_json` around every value. Must equal its SHELL_FRAGMENTS.
FRAGMENTS = {
    "atlas_args",
    "attention_arg",
    "bei_eval_arg",
    "bei_maps_arg",
    "checkpoint_arg",
    "dataset_args",
    "derivatives_arg",
    "history_arg",
    "launcher",
    "options",
    "oracle_store_arg",
    "positive_arg",
    "settings_args",
    "space_arg",
    "ssl_arg",
    "ssl_history_arg",
    "truth_arg",
}

# Free-text keys (paths, an image name, fMRIPrep arguments, a citation) the schema accepts with
# any content: the real run gives each of them a payload. Every other string key must be refused.
EXERCISED = {
    "results_dir",
    "variables",
    "atlas.path",
    "atlas.labels",
    "synth.out_dir",
    "datasets.*.path",
    "datasets.*.derivatives",
    "datasets.*.phenotype",
    "fmriprep.image",
    "fmriprep.fs_license",
    "fmriprep.work_dir",
    "fmriprep.extra_args.[]",
    "tasks.*.reference.source",
}


# --- static: the shell commands ------------------------------------------------------------


def shell_commands() -> dict[str, str]:
    """``{"<file>:<rule>": command}`` of every ``shell:`` of workflow/rules/*.smk."""
    commands: dict[str, str] = {}
    for path in sorted(RULES.glob("*.smk")):
        for chunk in re.split(r"^(?=rule \w+:)", path.read_text(), flags=re.MULTILINE)[1:]:
            rule = chunk.split(":")[0].removeprefix("rule ")
            if not re.search(r"^ +shell:", chunk, re.MULTILINE):
                continue
            # The command: the string literals indented below `shell:`, nothing else.
            block = re.search(r"^( +)shell:\n((?:\1 +[\"'][^\n]*\n)+)", chunk, re.MULTILINE)
            assert block, f"{path.name}:{rule}: the shell command is not plain string literals"
            commands[f"{path.name}:{rule}"] = ast.literal_eval(f"({block.group(2)})")
    return commands


def test_every_shell_field_is_quoted_or_a_helper_built_fragment() -> None:
    commands = shell_commands()
    assert len(commands) >= 15  # every rule of the workflow (pretrain_ssl: `use rule pretrain`)
    unquoted = [
        f"{where}: {{{field}:{spec}}}"
        for where, command in commands.items()
        for _, field, spec, _ in string.Formatter().parse(command)
        if field is not None
        and not spec.endswith("q")
        and field.removeprefix("params.") not in FRAGMENTS
    ]
    assert not unquoted, f"shell fields without :q: {unquoted}"


def test_fragment_list_matches_common_smk() -> None:
    text = (RULES / "common.smk").read_text()
    found = re.search(r"^SHELL_FRAGMENTS = (\(.*?\))$", text, re.MULTILINE | re.DOTALL)
    assert found and set(ast.literal_eval(found.group(1))) == FRAGMENTS
    used = {
        field.removeprefix("params.")
        for command in shell_commands().values()
        for _, field, spec, _ in string.Formatter().parse(command)
        if field and not spec.endswith("q")
    }
    assert used == FRAGMENTS  # no stale entry either


# --- the schema: every string key is refused or exercised ------------------------------------


def admits_string(sub: dict) -> bool:
    types = sub.get("type", [])
    types = [types] if isinstance(types, str) else types
    return "string" in types or any(isinstance(v, str) for v in sub.get("enum", []))


def string_keys(sub: dict, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every place of the schema that can hold a string: ``*`` any name, ``[]`` any item, and
    ``<name>`` the names of a mapping's entries."""
    found = [path] if path and admits_string(sub) else []
    for name, child in sub.get("properties", {}).items():
        found += string_keys(child, (*path, name))
    if isinstance(sub.get("additionalProperties"), dict):
        found += string_keys(sub["additionalProperties"], (*path, "*"))
    if isinstance(sub.get("items"), dict):
        found += string_keys(sub["items"], (*path, "[]"))
    if "propertyNames" in sub:
        found.append((*path, "<name>"))
    return found


def base_config() -> dict:
    """A valid config in which every optional mapping of the schema has one entry."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["atlas"]["templateflow"] = {"template": "MNI152NLin2009cAsym", "atlas": "Schaefer2018"}
    cfg["ingest"]["select"] = {"hcplike": {}}
    cfg["tasks"]["autism"]["reference"] = {"metric": "auc", "range": [0.65, 0.72], "source": "x"}
    return cfg


def put(cfg: dict, path: tuple[str, ...], value: str) -> str:
    """Set ``value`` at ``path`` (creating what is missing); returns the concrete key path."""
    node: Any = cfg
    concrete: list[str] = []
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if part == "<name>":  # rename the mapping's first entry
            first = next(iter(node))
            node[value] = node.pop(first)
            return ".".join(concrete)
        if part == "[]":
            node[:] = [value]
            return ".".join([*concrete, "0"])
        if part == "*":
            part = next(iter(node))
        concrete.append(part)
        if last:
            node[part] = value
        elif path[i + 1] == "[]":
            node = node.setdefault(part, [])
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
    return ".".join(concrete)


def payload(marker: Path) -> str:
    """A string running ``touch marker`` if it ever reaches a shell unquoted (or half quoted)."""
    return f"x $(touch {marker}) `touch {marker}`;touch {marker};'\""


def marker_name(key: str) -> str:
    return "pwned-" + key.replace("*", "any").replace("[]", "item").replace("<name>", "names")


def test_every_string_key_is_refused_or_exercised(tmp_path: Path) -> None:
    keys = [".".join(p) for p in string_keys(schema())]
    assert {"results_dir", "tasks.*.label", "fmriprep.output_space", "datasets.<name>"} <= set(keys)
    refused, accepted = set(), set()
    for key in keys:
        cfg = base_config()
        where = put(cfg, tuple(key.split(".")), payload(tmp_path / marker_name(key)))
        try:
            validate_config(cfg)
        except ConfigError as exc:
            assert "\n" not in exc.message and len(exc.message) < 500, exc.message
            assert f"key '{where}'" in exc.message, (key, exc.message)
            refused.add(key)
        else:
            accepted.add(key)
    assert accepted <= EXERCISED, f"accepted but not exercised by the real run: {accepted}"
    assert refused | accepted == set(keys)
    assert {"tasks.*.label", "tasks.*.positive", "tasks.*.dataset"} <= refused
    assert {"fmriprep.output_space", "datasets.<name>", "atlas.name"} <= refused
    assert "tasks.*.reference.metric" in refused and "tasks.*.reference.source" in accepted
    assert not list(tmp_path.iterdir())  # validating ran nothing


# --- one real run with a payload in every free-text key --------------------------------------


def run_snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    # Rules call `python -m lcm`: the interpreter running the tests must be the one found.
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
    return subprocess.run(
        [*cmd, "--directory", str(workdir), "--cores", "2", "--configfile", str(path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def tiny_config(hostile: dict[str, str]) -> dict:
    """Three tiny synthetic datasets, one task, four models, one epoch everywhere."""
    out = hostile["synth.out_dir"]
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["results_dir"] = hostile["results_dir"]
    cfg["synth"]["out_dir"] = out
    cfg["synth"]["consortia"] = {
        "hcplike": {"preset": "hcp", "tier": "roi", "n_subjects": 24, "n_volumes": 80},
        "bidsdemo": {
            "preset": "hcp",
            "tier": "voxel",
            "n_subjects": 2,
            "n_volumes": 60,
            "resolution_mm": 4,
        },
        "abidelike": {"preset": "abide", "tier": "roi", "n_subjects": 30, "n_volumes": 80},
    }
    cfg["datasets"] = {k: cfg["datasets"][k] for k in cfg["synth"]["consortia"]}
    for ds in cfg["datasets"].values():
        for key in ("path", "derivatives", "phenotype"):
            if key in ds:
                ds[key] = ds[key].replace("results/synth", out)
    # A user atlas takes a name of its own (a registry name with files is refused).
    cfg["atlas"].update(name="useraal", path=hostile["atlas.path"], labels=hostile["atlas.labels"])
    cfg["fmriprep"].update(
        image=hostile["fmriprep.image"],
        fs_license=hostile["fmriprep.fs_license"],
        work_dir=hostile["fmriprep.work_dir"],
        extra_args=["--nthreads", hostile["fmriprep.extra_args.[]"]],
    )
    # A published range whose citation is a payload: it reaches the report's command line.
    reference = {
        "metric": "auc",
        "range": [0.65, 0.72],
        "source": hostile["tasks.*.reference.source"],
    }
    # The task's own models: the demo's list for autism (nine) overrides evaluate.models. Every
    # rule still runs (bei-linear keeps bei_maps); the control's permutations need not be many
    # here, where no test reads their p.
    models = ["lcm", "logreg", "shuffled-labels", "bei-linear"]
    cfg["tasks"] = {"autism": {**cfg["tasks"]["autism"], "reference": reference, "models": models}}
    cfg["denoise"]["min_volumes"] = 30
    cfg["denoise"]["min_dof"] = None  # short runs: under the floor, kept
    cfg["pretrain"].update(epochs=1, checkpoint_every=0)
    cfg["evaluate"].update(n_folds=2, label_fractions=[1.0], control_permutations=2)
    cfg["evaluate"]["finetune"].update(epochs=1, diagnosis_pseudo_labels=False)
    return cfg


@pytest.mark.slow
def test_real_run_with_a_payload_in_every_free_text_key(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    hostile = {key: payload(markers / marker_name(key)) for key in EXERCISED}
    cfg = tiny_config(hostile)
    # Real files at the hostile paths the run reads: the catalogue and a user atlas (AAL-116).
    variables = workdir / hostile["variables"]
    variables.parent.mkdir(parents=True)
    shutil.copy(ROOT / "config" / "variables.yaml", variables)
    cfg["variables"] = hostile["variables"]
    aal = load_atlas("aal116")
    for key in ("atlas.path", "atlas.labels"):
        (workdir / hostile[key]).parent.mkdir(parents=True)
    aal.img.to_filename(workdir / f"{hostile['atlas.path']}.nii.gz")
    cfg["atlas"]["path"] = f"{hostile['atlas.path']}.nii.gz"
    aal.labels[["index", "name"]].to_csv(workdir / hostile["atlas.labels"], sep="\t", index=False)
    start = time.monotonic()

    # 1. The synthetic consortia, written under the hostile synth.out_dir.
    synth_rules = ("synth_roi_cohort", "synth_voxel_cohort", "synth_voxel_subject")
    proc = run_snakemake(workdir, cfg, "--until", *synth_rules)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    # 2. Everything else, reading them as real data from hostile dataset paths (copies), so
    # that datasets.*.path, .derivatives and .phenotype each carry their own marker.
    real = copy.deepcopy(cfg)
    real["synth"]["enabled"] = False
    sidecars = {}
    for name, ds in real["datasets"].items():
        for key in ("path", "derivatives", "phenotype"):
            if ds.get(key):
                source = workdir / ds[key]
                ds[key] = f"{hostile[f'datasets.*.{key}']}/{name}"
                target = workdir / ds[key]
                target.parent.mkdir(parents=True, exist_ok=True)
                copy_any = shutil.copytree if source.is_dir() else shutil.copy
                copy_any(source, target)
                if key == "phenotype" and sidecar_path(source).is_file():
                    # Its participants.json too (an input of the store), beside a table that
                    # is not named participants.tsv.
                    shutil.copy(sidecar_path(source), sidecar_path(target))
                    sidecars[name] = workdir / sidecar_path(ds[key])
    proc = run_snakemake(workdir, real)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    results = workdir / hostile["results_dir"]
    assert (results / "report" / "index.html").is_file()
    # The citation reached the page as text (escaped), through the report's --references.
    page = (results / "report" / "index.html").read_text()
    assert html.escape(hostile["tasks.*.reference.source"]) in page
    metrics = pd.read_parquet(results / "metrics" / "metrics.parquet")
    assert {"lcm", "logreg", "shuffled-labels"} <= set(metrics["model"])
    ran = {
        line.split("rule ")[1].split(":")[0]
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.startswith(("rule ", "localrule "))
    }
    assert {"ingest", "fmriprep", "connectome_run", "connectome_dataset", "store"} <= ran
    assert {"bei_maps", "pretrain", "finetune", "embed", "splits", "evaluate", "report"} <= ran
    # The store read the phenotype sidecar at its hostile path (bidsdemo's, the voxel tier's).
    assert set(sidecars) == {"bidsdemo"}
    for name, sidecar in sidecars.items():
        part = paths.connectome_path(results / "store", "useraal", name)
        provenance = json.loads(pq.read_schema(part).metadata[b"lcm.provenance"])
        assert provenance["settings"]["phenotype_sidecar_sha256"] == sha256_file(sidecar)
    assert not list(markers.iterdir()), f"injected commands ran: {list(markers.iterdir())}"
    print(f"hostile real run: {elapsed:.0f} s")
