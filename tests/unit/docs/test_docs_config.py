"""config/README.md names every setting of the configuration schema, names no setting the schema
lacks, and states the schema's default wherever it states one.

The schema is :func:`lcm.evaluate.config_schema.schema` (``lcm/schemas/config.schema.yaml``,
which ``workflow/schemas/config.schema.yaml`` links to, with the defaults the model registry and
``lcm.train.bei_maps`` own filled in): it owns every key, its default and its description. The
rules below are how config/README.md writes keys:

- A *section* is a bullet of the ``## Keys`` section that opens with a path in backticks
  (``- `evaluate```, ``- `datasets.<name>```, ``- `tasks.<name>.reference```); the bullet runs
  to the next such bullet. A map's keys (datasets, tasks, consortia, ingest.select) are written
  ``<name>``.
- A code span names a key by its dotted path: the whole path anywhere in the file
  (``denoise.min_dof``), or, inside the bullet of the deepest section holding the key, the path
  from any point below that section (``finetune.method``, or ``method``). A ``key: value`` or
  ``--config key=value`` span names ``key``, a ``{a, b}`` span names ``a`` and ``b``, and a
  fenced YAML example names every key it sets.
- A *settable leaf* is a schema key that holds no keys of its own
  (:func:`helpers.schema.settable_leaves`). The walk does not enter a key whose keys are those
  of a top-level section (``datasets.<name>.denoise`` takes the denoise section's keys,
  :func:`lcm.config.schema` builds it from them): that section documents them.
- A dotted span whose first component is a top-level key, or, in a section's bullet, a key of
  that section that holds keys (``window.length`` under ``connectome``), is a setting path and
  must exist; a name with a file suffix (``model.json``) is a file, not a key.
- A default is stated as ``` `key` (default VALUE``` (VALUE up to ``,``, ``;``, ``:`` or ``)``,
  in backticks or not) or ``` `key` ... (VALUE by default```, and as the ``key: value`` spans
  of a section's list that follows a line opening with "Defaults" (the denoise section's
  "Defaults beside nilearn ..."). VALUE is read as YAML and compared with the schema's default:
  numbers as numbers, lists as lists.
- A fenced YAML example is a config, checked key by key and loaded whole when it sets
  ``datasets``, unless its first line is ``# variable catalogue``: a catalogue's, loaded by
  :func:`lcm.catalogue.load_catalogue`.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import ROOT
from helpers.schema import children, schema_node, settable_leaves

from lcm.catalogue import load_catalogue
from lcm.evaluate.config_schema import schema, validate_config
from lcm.evaluate.registry import model_names, models_needing_checkpoint
from lcm.exceptions import ConfigError

README = ROOT / "config" / "README.md"
# The first line of a fenced YAML example of a variable catalogue, not of a config.
CATALOGUE_MARK = "# variable catalogue"
FENCE = re.compile(r"^ *```[a-z]*\n(.*?)^ *```", re.M | re.S)
# A key path as the doc writes it: identifiers, a map's key written <name>.
PATH = re.compile(r"[a-z][a-z0-9_]*(?:\.(?:<name>|[a-z][a-z0-9_]*))*")
# Endings of file names the doc quotes (`model.json`, `bei_eval.tsv`): files, not keys.
FILE_SUFFIXES = {
    "json",
    "safetensors",
    "tsv",
    "csv",
    "yaml",
    "yml",
    "parquet",
    "py",
    "md",
    "npy",
    "npz",
    "mat",
}
# "`key` (default VALUE" and "`key` ... (VALUE by default".
STATED_DEFAULTS = (
    re.compile(r"`([^`]+)`\s\(default:?\s+(`[^`]*`|[^,;:)]+)"),
    re.compile(r"`([^`]+)`[^`()]*\((\S+)\s+by\s+default"),
)


def _prose(text: str) -> str:
    """``text`` without its fenced blocks (their backticks would pair with the prose's)."""
    return FENCE.sub("", text)


def _spans(text: str) -> list[tuple[str, str | None]]:
    """The key each code span of ``text`` names, with the value it gives (``key: value``)."""
    named = []
    for span in re.findall(r"`([^`]+)`", _prose(text)):
        span = re.sub(r"^--config\s+", "", span.strip())
        braces = re.fullmatch(r"\{([a-z0-9_, ]+)\}", span)
        if braces:
            named += [(word.strip(), None) for word in braces[1].split(",")]
            continue
        key, _, value = [*re.split(r"(=|:\s)", span, maxsplit=1), "", ""][:3]
        key, value = key.strip(), value.strip()
        if PATH.fullmatch(key):
            named.append((key, value or None))
    return named


def _is_file(path: str) -> bool:
    """Whether ``path`` ends in a file suffix (``model.json``): a file name, not a key."""
    return path.rsplit(".", 1)[-1] in FILE_SUFFIXES


def _sections(text: str) -> dict[str, str]:
    """The ``## Keys`` section's bullets by the path each opens with."""
    keys = text.split("\n## Keys\n", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^- `([a-z_.<>]+)`", keys, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _yaml_paths(tree: dict[str, Any], text: str) -> tuple[set[str], list[str]]:
    """The key paths the fenced YAML examples set (maps' keys as ``<name>``), and those the
    schema lacks (as written)."""
    found: set[str] = set()
    unknown: list[str] = []

    def walk(data: Any, node: dict[str, Any], path: str, written: str) -> None:
        if not isinstance(data, dict):
            return
        held = children(node)
        for key, value in data.items():
            # A key of its own, else an entry of a map (its key read as <name>).
            part = key if key in held else "<name>"
            child = held.get(part)
            if child is None:
                unknown.append(f"{written}.{key}" if written else str(key))
                continue
            where = f"{path}.{part}" if path else part
            found.add(where)
            # A free-form mapping holds no schema keys to follow.
            if children(child):
                walk(value, child, where, f"{written}.{key}" if written else str(key))

    for block in _config_blocks(text):
        walk(yaml.safe_load(block), tree, "", "")
    return found, unknown


def _config_blocks(text: str) -> list[str]:
    """The fenced YAML examples of ``text`` that are configs: not a variable catalogue's, which
    open with a comment naming it (:func:`test_every_catalogue_the_config_readme_shows_loads`)."""
    blocks = [textwrap.dedent(block) for block in FENCE.findall(text)]
    return [b for b in blocks if not b.startswith(CATALOGUE_MARK)]


def _section_of(path: str, sections: dict[str, str]) -> str | None:
    """The deepest section whose path ``path`` lies in."""
    roots = [r for r in sections if path == r or path.startswith(r + ".")]
    return max(roots, key=len) if roots else None


def test_every_setting_of_the_schema_is_named_in_the_config_readme() -> None:
    tree = schema()
    text = README.read_text()
    sections = _sections(text)
    anywhere = {key for key, _ in _spans(text)} | _yaml_paths(tree, text)[0]
    unnamed = []
    for path in settable_leaves(tree):
        if path in anywhere:
            continue
        root = _section_of(path, sections)
        if root is not None:
            names = {key for key, _ in _spans(sections[root])}
            parts = path.split(".")
            below = range(root.count(".") + 1, len(parts))
            if any(".".join(parts[i:]) in names for i in below):
                continue
        unnamed.append(f"{path} (add it to the bullet of `{root}`)" if root else path)
    assert not unnamed, (
        "Settings of workflow/schemas/config.schema.yaml that config/README.md does not name: "
        f"{unnamed}. Describe each in config/README.md's '## Keys' section, in backticks."
    )


def test_every_setting_path_the_config_readme_names_exists() -> None:
    tree = schema()
    text = README.read_text()
    sections = _sections(text)
    stale = [f"{root} (a '## Keys' bullet)" for root in sections if schema_node(tree, root) is None]
    for key, _ in _spans(text):
        if "." in key and key.split(".")[0] in tree["properties"] and not _is_file(key):
            if schema_node(tree, key) is None:
                stale.append(key)
    for root, body in sections.items():
        section = schema_node(tree, root) or {}
        for key, _ in _spans(body):
            first = key.split(".")[0]
            holds_keys = bool(children(children(section).get(first, {})))
            if "." in key and holds_keys and not _is_file(key):
                if schema_node(tree, f"{root}.{key}") is None:
                    stale.append(f"{key} (in the bullet of `{root}`)")
    stale += [f"{p} (in a YAML example)" for p in _yaml_paths(tree, text)[1]]
    assert not stale, (
        f"config/README.md names settings the schema lacks: {sorted(set(stale))}. Rename them "
        "to the schema's key (workflow/schemas/config.schema.yaml) or remove them from the doc."
    )


def _same(stated: Any, default: Any) -> bool:
    """Numbers as numbers (a bool only equals a bool), lists item by item."""
    if isinstance(stated, list) and isinstance(default, list):
        return len(stated) == len(default) and all(map(_same, stated, default))
    if isinstance(stated, bool) or isinstance(default, bool):
        return stated is default
    return stated == default


def _stated_defaults(text: str) -> list[tuple[str, str, str]]:
    """(section path or "", key as written, value as written) of every stated default."""
    head, keys = text.split("\n## Keys\n", 1)
    outside = head + "\n## " + keys.split("\n## ", 1)[1]
    stated = [("", *found) for rule in STATED_DEFAULTS for found in rule.findall(_prose(outside))]
    for root, body in _sections(text).items():
        stated += [
            (root, *found) for rule in STATED_DEFAULTS for found in rule.findall(_prose(body))
        ]
        listed = re.split(r"^ *Defaults\b", body, maxsplit=1, flags=re.M)
        if len(listed) == 2:
            stated += [(root, k, v) for k, v in _spans(listed[1]) if v is not None]
    return stated


def test_the_config_readme_states_the_schema_defaults() -> None:
    tree = schema()
    stated = _stated_defaults(README.read_text())
    assert len(stated) >= 10, "the patterns of a stated default no longer find the doc's"
    wrong = []
    for root, key, value in stated:
        # Relative to its section first (`keep_work` under fmriprep), else the whole path.
        paths = [p for p in (f"{root}.{key}" if root else None, key) if p]
        path = next((p for p in paths if schema_node(tree, p) is not None), None)
        if path is None:
            wrong.append(f"`{key}` (default {value}): no such setting under `{root or '.'}`")
            continue
        node = schema_node(tree, path) or {}
        doc = yaml.safe_load(value.strip().strip("`"))
        if "default" not in node:
            wrong.append(f"{path}: the doc says default {value!r}, the schema has no default")
        elif not _same(doc, node["default"]):
            wrong.append(f"{path}: the doc says default {value!r}, the schema {node['default']!r}")
    assert not wrong, (
        f"config/README.md states defaults the schema does not have: {wrong}. Correct the doc "
        "to the schema's default (workflow/schemas/config.schema.yaml owns it)."
    )


def test_every_setting_path_the_readme_names_exists() -> None:
    """README.md and docs/ name settings by their dotted paths too (``atlas.min_coverage``): the
    same rule as the config README's prose, so a renamed key cannot linger there either."""
    tree = schema()
    stale = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for key, _ in _spans(doc.read_text()):
            first = key.split(".")[0]
            if "." in key and first in tree["properties"] and not _is_file(key):
                if schema_node(tree, key) is None:
                    stale.append(f"{key} ({doc.relative_to(ROOT)})")
    assert not stale, (
        f"The docs name settings the schema lacks: {sorted(set(stale))}. Rename them to the "
        "schema's key (workflow/schemas/config.schema.yaml) or remove them."
    )


def test_the_config_readmes_example_error_is_the_one_the_workflow_gives() -> None:
    """The example of a bad value is the message validation gives for it, file name included:
    the doc showed a `config:` prefix that no load has given since errors name their file."""
    text = " ".join(README.read_text().split())
    example = re.search(r"e\.g\. for `([^`]+)` in `([^`]+)`: `(/[^`]+/)\2: ([^`]+)`", text)
    assert example, "the example of a bad value is not where it was (config/README.md, ## Keys)"
    setting, name, folder, said = example.groups()
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for section, values in yaml.safe_load(setting).items():
        config[section] = {**config.get(section, {}), **values}
    with pytest.raises(ConfigError) as error:
        validate_config(config, source=folder + name)
    first, *rest = str(error.value).splitlines()
    assert first == f"{folder}{name}: {said}"
    hint = re.search(r"`hint: ([^`.]+)\.\.\.`", text)
    assert hint and rest and rest[0].strip().startswith(f"hint: {hint[1]}"), (rest, hint)


def test_the_readme_states_the_schema_defaults() -> None:
    """README.md and docs/ state defaults the same ways (`evaluate.finetune.inner_validation_
    fraction` (default 0.25)): those of a setting, named by its whole path, are the schema's."""
    tree = schema()
    wrong, checked = [], 0
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for rule in STATED_DEFAULTS:
            for key, value in rule.findall(_prose(doc.read_text())):
                if key.split(".")[0] not in tree["properties"]:
                    continue  # an option (`--jobs`), not a setting
                node = schema_node(tree, key)
                checked += 1
                if node is None or "default" not in node:
                    wrong.append(f"{doc.name}: `{key}` has no default in the schema")
                elif not _same(yaml.safe_load(value.strip().strip("`")), node["default"]):
                    wrong.append(f"{doc.name}: `{key}` default {value}, schema {node['default']!r}")
    assert checked, "the patterns of a stated default no longer find README.md's"
    assert not wrong, (
        f"The docs state defaults the schema does not have: {wrong}. Correct the doc to the "
        "schema's default (workflow/schemas/config.schema.yaml owns it)."
    )


def test_every_whole_config_the_docs_show_loads() -> None:
    """A fenced YAML example that sets `datasets` is a config a user may copy: it passes the
    schema and its cross-references (its paths are the user's to fill in). config/README.md's
    showed a task of the default models, LCM's among them, with no `role: pretrain` dataset:
    refused at load."""
    shown = 0
    for doc in [README, ROOT / "README.md"]:
        for block in re.findall(r"(?ms)^ *```yaml\n(.*?)^ *```", doc.read_text()):
            block = textwrap.dedent(block)
            config = yaml.safe_load(block)
            if block.startswith(CATALOGUE_MARK):
                continue  # a variable catalogue's datasets, not a config's
            if isinstance(config, dict) and "datasets" in config:
                shown += 1
                validate_config(config, source=f"{doc.relative_to(ROOT)} (example)")
    assert shown, "no whole config found in the docs' YAML examples"


def test_every_catalogue_the_config_readme_shows_loads(tmp_path: Path) -> None:
    """A catalogue example (its first line `# variable catalogue`) is one `lcm.catalogue`
    loads, so its keys are the catalogue schema's (lcm/schemas/variables.schema.yaml)."""
    blocks = [
        textwrap.dedent(b)
        for b in FENCE.findall(README.read_text())
        if textwrap.dedent(b).startswith(CATALOGUE_MARK)
    ]
    assert blocks, "config/README.md shows no variable catalogue"
    for i, block in enumerate(blocks):
        path = tmp_path / f"catalogue{i}.yaml"
        path.write_text(block)
        catalogue = load_catalogue(path)
        # It codes the datasets of the config example above it, as the workflow's load asks.
        configs = [yaml.safe_load(b) for b in _config_blocks(README.read_text())]
        shown = {d for c in configs if "datasets" in c for d in c["datasets"]}
        assert shown and shown <= set(catalogue.datasets), (shown, catalogue.datasets)


def test_the_models_the_config_readme_says_need_no_pretraining_are_the_registrys() -> None:
    """ "A task whose models are all baselines (`logreg`, ...) needs no pretraining": the list
    is every model name but those `models_needing_checkpoint` names."""
    text = " ".join(README.read_text().split())
    said = re.search(r"whose models are all baselines \(([^)]*)\) needs no pretraining", text)
    assert said, "the sentence naming the models that need no pretraining moved"
    listed = re.findall(r"`([^`]+)`", said[1])
    names = model_names()
    assert sorted(listed) == sorted(set(names) - set(models_needing_checkpoint(names)))


def _enum(node: dict[str, Any]) -> list[Any] | None:
    """The values a setting (or each item of a list setting) may take, when the schema lists
    them."""
    for candidate in (node, node.get("items", {}), *node.get("anyOf", []), *node.get("oneOf", [])):
        if isinstance(candidate, dict) and "enum" in candidate:
            return candidate["enum"]
    return None


def test_the_choices_the_config_readme_lists_are_the_schemas() -> None:
    """ "`runner` (existing | docker | apptainer)", "`preset` (tiny | small | base | big)": a
    key's choices, as a section's bullet lists them, are its schema enum, all of them."""
    tree = schema()
    leaves = settable_leaves(tree)
    compared, wrong = 0, []
    for root, body in _sections(README.read_text()).items():
        for key, inside in re.findall(r"`([a-z_]+)`\s*\(([^()]*\|[^()]*)\)", _prose(body)):
            paths = [p for p in leaves if p.startswith(root + ".") and p.endswith("." + key)]
            enum = _enum(schema_node(tree, paths[0]) or {}) if len(paths) == 1 else None
            if enum is None:
                continue  # not a setting with choices (a QC column's values)
            listed = [re.match(r"[\w-]+", part.strip(" `"))[0] for part in inside.split("|")]
            compared += 1
            if sorted(listed) != sorted(map(str, enum)):
                wrong.append(f"{paths[0]}: the doc lists {listed}, the schema {enum}")
    assert compared >= 5, "the pattern of a key's listed choices no longer finds the doc's"
    assert not wrong, f"config/README.md lists other choices than the schema: {wrong}"
