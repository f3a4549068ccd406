"""Walking the configuration schema: the keys a node holds, its settable leaves, a key's node.

Shared by the tests that hold the docs and the schema's descriptions to the schema
(``tests/unit/docs/test_docs_config.py``, ``test_docs_schema_descriptions.py``), so that both
agree on what a setting is. Give them :func:`lcm.evaluate.config_schema.schema`'s tree (the
file with the registry's defaults filled in), not the YAML file alone.
"""

from __future__ import annotations

from typing import Any


def children(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The keys ``node`` holds: its properties, and ``<name>`` for a map of named entries.

    Parameters
    ----------
    node : dict
        A schema node.

    Returns
    -------
    dict
        Key -> schema node; empty for a leaf (a scalar, a list, a free-form mapping).
    """
    held = dict(node.get("properties") or {})
    if isinstance(node.get("additionalProperties"), dict):
        held["<name>"] = node["additionalProperties"]
    return held


def settable_leaves(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every settable leaf of the schema by dotted path (a map's key written ``<name>``).

    A settable leaf is a key that holds no keys of its own (a list is one leaf: its items are
    not walked). The walk does not enter a key whose keys are those of a top-level section
    (``datasets.<name>.denoise`` takes the denoise section's keys, :func:`lcm.config.schema`
    builds it from them): that key is one leaf, the section holds the keys.

    Parameters
    ----------
    tree : dict
        The whole schema.

    Returns
    -------
    dict
        Dotted path -> schema node, in the schema's order.
    """
    sections = [set(s.get("properties") or {}) for s in tree["properties"].values()]
    leaves = {}

    def walk(node: dict[str, Any], path: str) -> None:
        held = children(node)
        mirror = "." in path and set(held) in sections
        if not held or mirror:
            leaves[path] = node
            return
        for key, child in held.items():
            walk(child, f"{path}.{key}" if path else key)

    walk(tree, "")
    return leaves


def schema_node(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The schema node of dotted ``path`` (a map's key written ``<name>``), or None.

    Parameters
    ----------
    tree : dict
        The whole schema.
    path : str
        e.g. ``evaluate.finetune.lr`` or ``datasets.<name>.role``.

    Returns
    -------
    dict or None
        None where the schema has no such key.
    """
    node: dict[str, Any] | None = tree
    for part in path.split("."):
        node = children(node).get(part)
        if node is None:
            return None
    return node
