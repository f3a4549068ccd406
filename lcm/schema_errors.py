"""JSON Schema errors as one-line messages: the key, what was expected, what was received.

Shared by the config (:mod:`lcm.config`) and the variable catalogue (:mod:`lcm.catalogue`), which
sit beside each other in the package's layers. A leaf module: it imports nothing of ``lcm``.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from typing import Any

import jsonschema

# Received values in messages: a bounded excerpt, whatever the value's size.
_EXCERPT = reprlib.Repr()
_EXCERPT.maxstring = 80
_EXCERPT.maxother = 80
_EXCERPT.maxlist = _EXCERPT.maxtuple = _EXCERPT.maxdict = 4
_EXCERPT.maxlevel = 2


def excerpt(value: Any, limit: int = 120) -> str:
    """A bounded, one-line ``repr`` of ``value`` (cheap even for a huge nested structure).

    Parameters
    ----------
    value : Any
        Any value, e.g. a received config value.
    limit : int, optional
        Most characters returned.

    Returns
    -------
    str
    """
    text = _EXCERPT.repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(error: jsonschema.ValidationError, source: str) -> str:
    """One line: the key, what the schema wants and a bounded excerpt of what was received.

    Parameters
    ----------
    error : jsonschema.ValidationError
        One error, e.g. :func:`jsonschema.exceptions.best_match` of a validator's errors.
    source : str
        The file or option the value came from, first in the line.

    Returns
    -------
    str
    """
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    unexpected = _unexpected_keys(error)
    if unexpected:
        # jsonschema's message is followed by the whole mapping (the config, at top level):
        # the unexpected keys alone, each with the allowed key it is likely a typo of.
        where = "at top level" if key == "(top level)" else f"under '{key}'"
        said = []
        for name in unexpected:
            close = difflib.get_close_matches(name, _allowed_keys(error), n=1)
            said.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
        plural = "s" if len(said) > 1 else ""
        return f"{source}: unknown key{plural} {', '.join(said)} {where}"
    forbidden = _forbidden_keys(error)
    if error.validator == "pattern":
        message = f"expected a value matching {error.validator_value}"
    elif error.validator in ("maxLength", "minLength"):
        bound = "at most" if error.validator == "maxLength" else "at least"
        message = f"expected {bound} {error.validator_value} characters, got {len(error.instance)}"
    elif error.validator == "uniqueItems" and isinstance(error.instance, list):
        # jsonschema says "[0, 0] has non-unique elements": which value, not that one is.
        message = f"each value must be given once, repeated: {excerpt(_repeated(error.instance))}"
    elif forbidden:
        # jsonschema says "... should not be valid under {'required': ['levels']}".
        names = ", ".join(repr(k) for k in forbidden)
        message = f"key{'s' if len(forbidden) > 1 else ''} {names} not allowed here"
    else:
        # jsonschema's message embeds the received value: keep it to one bounded line.
        message = " ".join(error.message.split())
        if len(message) > 200:
            message = message[:197] + "..."
    if "propertyNames" in error.schema_path:
        return f"{source}: invalid name {excerpt(error.instance)} under key '{key}': {message}"
    return f"{source}: invalid value at key '{key}': {message} (received {excerpt(error.instance)})"


def hint(
    error: jsonschema.ValidationError, fallback: str, root: dict[str, Any] | None = None
) -> str:
    """How to fix ``error``: the allowed keys or values, or the schema's description of the key.

    A node without a description of its own (a list's item, a section, a map's entry) takes the
    description of its nearest described ancestor in ``root``, naming it: an error at
    ``evaluate.seeds.1`` quotes ``evaluate.seeds``'s, so that every error says what the setting
    is for. A key that holds keys, given something else (``atlas: aal116``), gets the keys it
    takes; a missing required key, that key's description.

    Parameters
    ----------
    error : jsonschema.ValidationError
    fallback : str
        The hint where the schema says nothing more (e.g. where the schema file is).
    root : dict, optional
        The whole schema ``error`` was raised against, where ancestors' descriptions are
        looked up; without it only the failing node's own description is quoted.

    Returns
    -------
    str
    """
    desc = _description(error, root)
    if error.validator == "additionalProperties":
        allowed = _allowed_keys(error)
        return f"Allowed keys here: {allowed}." if allowed else "Remove the unknown key."
    if error.validator == "enum":
        return f"Expected one of {error.validator_value}."
    if error.validator in ("pattern", "maxLength", "minLength"):
        wanted = {"pattern": "match", "maxLength": "be at most", "minLength": "be at least"}
        unit = "" if error.validator == "pattern" else " characters"
        rule = f"Values here must {wanted[error.validator]} {error.validator_value}{unit}"
        return f"{rule}. {desc}" if desc else f"{rule}."
    if error.validator == "uniqueItems" and isinstance(error.instance, list):
        repeated = ", ".join(excerpt(v) for v in _repeated(error.instance))
        once = f"List each value once (drop the repeat of {repeated})."
        return f"{once} {desc}" if desc else once
    if _forbidden_keys(error):
        remove = f"Remove {' and '.join(_forbidden_keys(error))}."
        return f"{remove} {desc}" if desc else remove
    if error.validator == "required":
        missing = _missing_key(error)
        said = (error.schema.get("properties") or {}).get(missing, {}).get("description")
        add = f"Add {missing!r}" + (f": {said}" if said else ".")
        return f"{add} {desc}" if desc and not said else add
    if error.validator == "type" and _allowed_keys(error):
        # A section written as a value (atlas: aal116 for atlas: {name: aal116}): its keys.
        keys = f"A mapping of the keys {_allowed_keys(error)}."
        return f"{keys} {desc}" if desc else keys
    return desc or fallback


def _repeated(values: list[Any]) -> list[Any]:
    """The values of ``values`` equal to an earlier one, each once, as JSON Schema's
    ``uniqueItems`` compares them (1 and 1.0 equal, ``true`` and 1 not)."""

    def same(a: Any, b: Any) -> bool:
        return a == b and isinstance(a, bool) == isinstance(b, bool)

    seen: list[Any] = []
    repeated: list[Any] = []
    for value in values:
        if not any(same(value, s) for s in seen):
            seen.append(value)
        elif not any(same(value, r) for r in repeated):
            repeated.append(value)
    return repeated


def _description(error: jsonschema.ValidationError, root: dict[str, Any] | None) -> str | None:
    """The failing node's description, else its nearest described ancestor's (below the root).

    An ancestor's is prefixed with its dotted key (and the item index where the error is on
    one item of a list), since the error's key is not the one it describes.
    """
    own = error.schema.get("description") if isinstance(error.schema, dict) else None
    if own or root is None:
        return own
    path = list(error.absolute_path)
    # The failing node, last, has no description: the first one found is an ancestor's.
    for depth, node in reversed(_path_nodes(error, root)):
        said = node.get("description")
        if isinstance(said, str) and depth > 0:
            owner = ".".join(str(p) for p in path[:depth])
            below = path[depth:]
            if len(below) == 1 and isinstance(below[0], int):
                owner += f" (item {below[0]})"
            return f"{owner}: {' '.join(said.split())}"
    return None


# Keywords followed in a schema path by a name or index (properties/<key>, oneOf/<i>), and
# keywords whose subschema applies one step down the instance (to one key or item).
_NAMED = {"properties", "patternProperties", "prefixItems", "$defs", "oneOf", "anyOf", "allOf"}
_DOWN = {"properties", "patternProperties", "prefixItems", "additionalProperties", "items"}


def _path_nodes(error: jsonschema.ValidationError, root: dict[str, Any]) -> list[tuple[int, dict]]:
    """The schema nodes from ``root`` to the failing one, each with its instance path depth.

    Walks ``error.absolute_schema_path`` (its last entry is the failing keyword); stops where it
    cannot follow (a ``$ref``: the schemas here share nodes by YAML anchors instead).
    """
    steps = list(error.absolute_schema_path)[:-1]
    node: Any = root
    depth, found, i = 0, [(0, root)], 0
    while i < len(steps):
        keyword = steps[i]
        named = keyword in _NAMED
        if not isinstance(node, dict) or keyword not in node or (named and i + 1 == len(steps)):
            return found
        node = node[keyword][steps[i + 1]] if named else node[keyword]
        depth += keyword in _DOWN
        i += 2 if named else 1
        if isinstance(node, dict):
            found.append((depth, node))
    return found


def _missing_key(error: jsonschema.ValidationError) -> str:
    """The required key a ``required`` error names (its message starts with the key's repr)."""
    missing = [str(k) for k in error.validator_value if k not in (error.instance or {})]
    named = [k for k in missing if error.message.startswith(repr(k))]
    return (named or missing or ["?"])[0]


def _forbidden_keys(error: jsonschema.ValidationError) -> list[str]:
    """The keys a ``not: {required: [...]}`` rule forbids (none for any other error)."""
    value = error.validator_value
    if error.validator != "not" or not isinstance(value, dict) or set(value) != {"required"}:
        return []
    return [str(k) for k in value["required"]]


def _allowed_keys(error: jsonschema.ValidationError) -> list[str]:
    """The keys the mapping of an ``additionalProperties`` error may hold, sorted."""
    return sorted(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []


def _unexpected_keys(error: jsonschema.ValidationError) -> list[str]:
    """The keys an ``additionalProperties: false`` rule refuses (none for any other error)."""
    if (
        error.validator != "additionalProperties"
        or error.validator_value is not False
        or not isinstance(error.instance, dict)
        or not isinstance(error.schema, dict)
    ):
        return []
    allowed = set(error.schema.get("properties", {}))
    patterns = list(error.schema.get("patternProperties", {}))
    return [
        str(k)
        for k in error.instance
        if k not in allowed and not any(re.search(p, str(k)) for p in patterns)
    ]
