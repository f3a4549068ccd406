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


def hint(error: jsonschema.ValidationError, fallback: str) -> str:
    """How to fix ``error``: the allowed keys or values, or the schema's description of the key.

    Parameters
    ----------
    error : jsonschema.ValidationError
    fallback : str
        The hint where the schema says nothing more (e.g. where the schema file is).

    Returns
    -------
    str
    """
    desc = error.schema.get("description") if isinstance(error.schema, dict) else None
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
    if _forbidden_keys(error):
        remove = f"Remove {' and '.join(_forbidden_keys(error))}."
        return f"{remove} {desc}" if desc else remove
    return desc or fallback


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
