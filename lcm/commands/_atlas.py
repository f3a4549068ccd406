"""The atlas options of every verb that takes an atlas, defined and parsed once.

One spelling everywhere: ``--atlas NAME`` (the store partition, the ``seg-`` label of outputs),
with ``--atlas-path``, ``--atlas-labels`` and ``--atlas-templateflow`` where the verb loads the
atlas itself, and ``--atlas-seg`` where input files are matched by their ``seg-`` label. The
options map one to one onto the config's ``atlas`` section (:func:`atlas_settings`), and
:func:`lcm.commands._atlas_load.atlas_from_args` loads the atlas exactly as the config's section
would be (:func:`lcm.atlas.atlas_from_settings`), the TemplateFlow query included.
``--atlas-name`` is a hidden, deprecated spelling of ``--atlas`` (older rules and scripts used it
in the connectome, ingest and report verbs).
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from lcm.commands._path_text import path_text

# The options' names of the config's atlas settings, which the atlas's messages and hints name
# (lcm.atlas.model.setting_names): a command-line user wrote no atlas.labels.
OPTION_NAMES = {
    "name": "--atlas",
    "path": "--atlas-path",
    "labels": "--atlas-labels",
    "templateflow": "--atlas-templateflow",
}


def atlas_names(args: argparse.Namespace) -> dict[str, str] | None:
    """How a verb's atlas messages name the atlas settings: by its options, or by the config's
    keys (None) when a workflow rule runs it (``lcm --rule``).

    A rule builds the ``--atlas*`` options from the config its user wrote: a QC reason of the
    workflow's connectome step told that user to set ``--atlas-labels``, an option they never
    saw.

    Parameters
    ----------
    args : argparse.Namespace
        The verb's parsed options, with ``lcm``'s own ``--rule``.

    Returns
    -------
    dict of str to str or None
        :data:`OPTION_NAMES`, or None for the config's keys.
    """
    return None if getattr(args, "rule", None) else OPTION_NAMES


# As the schema's atlas.name: it becomes a folder (atlas=<name>) and a file label (seg-<name>).
_NAME_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")


def atlas_name(text: str) -> str:
    """An argparse ``type``: an atlas name, letters and digits (argparse prints the error).

    Parameters
    ----------
    text : str
        The option's value as typed.

    Returns
    -------
    str
        ``text``, unchanged.

    Raises
    ------
    argparse.ArgumentTypeError
        When ``text`` is not 1 to 64 letters and digits.
    """
    if not _NAME_RE.match(text):
        raise argparse.ArgumentTypeError(
            f"expected an atlas name of letters and digits (at most 64), got {text!r}"
        )
    return text


atlas_name.__name__ = "atlas name"


def add_atlas_arguments(
    p: argparse.ArgumentParser,
    *,
    required: bool = True,
    default: str | None = None,
    files: bool = False,
    seg: bool = False,
    help: str = "Atlas name: a registry atlas (e.g. aal116) or the name given to a user or "
    "TemplateFlow atlas; the store partition and the seg- label of outputs.",
) -> None:
    """Add ``--atlas`` (and, as asked, the options that say where the atlas comes from).

    Parameters
    ----------
    p : argparse.ArgumentParser
        The verb's parser.
    required : bool, default True
        Whether ``--atlas`` must be given.
    default : str, optional
        Atlas name when ``--atlas`` is not given (``required=False`` only).
    files : bool, default False
        Add ``--atlas-path``, ``--atlas-labels`` and ``--atlas-templateflow``: the verb loads
        the atlas (:func:`lcm.commands._atlas_load.atlas_from_args`), not only its name.
    seg : bool, default False
        Add ``--atlas-seg``: the ``seg-`` label input files use for this atlas.
    help : str
        Help text of ``--atlas``.
    """
    action = p.add_argument(
        "--atlas", type=atlas_name, required=required, default=default, help=help
    )
    # The deprecated spelling, parsed as --atlas itself (one action: "required", messages and
    # --help name --atlas only). argparse has no public hidden alias; this is its lookup table.
    p._option_string_actions["--atlas-name"] = action
    if files:
        p.add_argument(
            "--atlas-path", default=None, type=path_text, help="Label NIfTI of a user atlas."
        )
        p.add_argument(
            "--atlas-labels",
            default=None,
            type=path_text,
            help="Labels TSV (index, name) of a user atlas; without --atlas-path a labels-only "
            "atlas (a 'name' column, optional index, x, y, z, network), enough for ROI time "
            "series and connectomes.",
        )
        p.add_argument(
            "--atlas-templateflow",
            default=None,
            help="TemplateFlow query as JSON (template, atlas, desc, resolution), resolved in "
            "$TEMPLATEFLOW_HOME (never downloaded); the atlas then takes the name --atlas.",
        )
    if seg:
        p.add_argument(
            "--atlas-seg",
            default=None,
            help="The seg- label input files use for this atlas when it is not --atlas.",
        )


def atlas_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The options as the config's ``atlas`` section: name, path, labels, seg, templateflow.

    Parameters
    ----------
    args : argparse.Namespace
        A verb's parsed options; those of the ``--atlas*`` options it does not define are None.

    Returns
    -------
    dict
        ``name``, ``path``, ``labels``, ``seg`` and ``templateflow`` (the parsed query, or None).

    Raises
    ------
    lcm.exceptions.ConfigError
        When ``--atlas-templateflow`` is not a JSON object the schema's
        ``atlas.templateflow`` accepts.
    """
    from lcm.config import parse_settings

    query = getattr(args, "atlas_templateflow", None)
    if query is not None:
        query = parse_settings(query, "atlas-templateflow")
        _check_templateflow(query, atlas_names(args) is None)
    return {
        "name": args.atlas,
        "path": getattr(args, "atlas_path", None),
        "labels": getattr(args, "atlas_labels", None),
        "seg": getattr(args, "atlas_seg", None),
        "templateflow": query or None,
    }


def _check_templateflow(query: dict[str, Any], from_config: bool) -> None:
    """Refuse a ``--atlas-templateflow`` query the schema's ``atlas.templateflow`` refuses.

    Validated as the option's own value, or, when a workflow rule built the option from its
    config (``from_config``), where it sits in the config: checked nested for a command-line
    user too, an unknown key was said to sit "under 'atlas.templateflow'", a key they never
    wrote.
    """
    import jsonschema

    from lcm.config import schema, validate_partial
    from lcm.exceptions import ConfigError
    from lcm.schema_errors import describe, hint

    if from_config:
        validate_partial({"atlas": {"templateflow": query}}, source="config")
        return
    node = schema()["properties"]["atlas"]["properties"]["templateflow"]
    errors = sorted(
        jsonschema.Draft202012Validator(node).iter_errors(query),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        fallback = f"--atlas-templateflow takes the keys {sorted(node['properties'])}."
        raise ConfigError(
            describe(errors[0], "--atlas-templateflow"), hint=hint(errors[0], fallback, node)
        )
