"""Which atlas a name, files or a TemplateFlow query designate: the one entry point of loading."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lcm.atlas.files import (
    TEMPLATEFLOW_ENV,
    file_space,
    labels_only_atlas,
    load_label_files,
    templateflow_atlas,
)
from lcm.atlas.model import CUSTOM_SPACE, Atlas, setting_names
from lcm.atlas.registry import ATLASES, available_atlases, registry_atlas, registry_space
from lcm.exceptions import AtlasError, ConfigError
from lcm.io.output_space import is_native_space, parse_output_space


def load_atlas(
    name: str = "aal116",
    path: str | None = None,
    labels: str | None = None,
    templateflow: dict | None = None,
    names: Mapping[str, str] | None = None,
) -> Atlas:
    """Load an atlas from the offline registry, a user's files or a local TemplateFlow tree.

    Parameters
    ----------
    name : str
        Registry name (see :func:`lcm.atlas.registry.available_atlases`) or, with ``path`` or
        ``templateflow``, any alphanumeric name (the ``seg-`` label of outputs).
    path : str, optional
        Label NIfTI of a user atlas.
    labels : str, optional
        TSV with columns ``index`` and ``name`` for a user atlas. Without ``path`` (and without
        ``templateflow``) it makes a labels-only atlas (:func:`labels_only_atlas`): enough for
        ROI time series and precomputed connectomes, refused for voxel-wise runs.
    templateflow : dict, optional
        ``{template, atlas, desc, resolution}`` resolved by :func:`templateflow_atlas` in
        ``$TEMPLATEFLOW_HOME``.
    names : mapping of str to str, optional
        How the user gave these settings, named in hints: the config's keys by default, a
        verb's options where they came from those (:func:`lcm.atlas.model.setting_names`).

    Returns
    -------
    Atlas
    """
    keys = setting_names(names)
    if templateflow:
        if path is not None:
            raise AtlasError(
                f"Atlas {name!r}: both a path ({path}) and a TemplateFlow query are given.",
                hint=f"Set either {keys['path']} (with {keys['labels']}) or "
                f"{keys['templateflow']}.",
            )
        query = {k: templateflow.get(k) for k in ("template", "atlas", "desc", "resolution")}
        found = templateflow_atlas(**query, names=names)
        return dataclasses.replace(found, name=name)
    if path is not None:
        if labels is None:
            raise AtlasError(
                f"Atlas {name!r}: image {path} given without a labels table.",
                hint=f"Set {keys['labels']} to a TSV with columns 'index' and 'name'.",
            )
        space = file_space(path) or CUSTOM_SPACE
        return load_label_files(name, Path(path), Path(labels), space=space, names=names)
    if labels is not None:
        return labels_only_atlas(name, labels, names)
    return registry_atlas(name, names)


def atlas_from_settings(
    settings: Mapping[str, Any], names: Mapping[str, str] | None = None
) -> Atlas:
    """The atlas of a config's ``atlas`` section (every verb's atlas goes through here).

    Parameters
    ----------
    settings : mapping
        ``name`` (default ``aal116``), and optionally ``path``, ``labels`` and
        ``templateflow`` (other keys, such as ``seg`` or ``min_coverage``, are not about which
        atlas it is).
    names : mapping of str to str, optional
        How the user gave each setting, named in messages and hints (:func:`load_atlas`).

    Returns
    -------
    Atlas

    Raises
    ------
    ConfigError
        When files of the user's (``path``, ``labels``, ``templateflow``) come with a registry
        atlas's name: their outputs (``seg-<name>``) and store partition (``atlas=<name>``)
        would pass for the registry atlas's, and mix with them.
    """
    name = settings.get("name") or "aal116"
    said = setting_names(names)
    given = [k for k in ("path", "labels", "templateflow") if settings.get(k)]
    if given and name in ATLASES:
        keys = " and ".join(said[k] for k in given)
        raise ConfigError(
            f"{said['name']} is {name!r}, a registry atlas's name (`lcm atlases`), but {keys} "
            f"give an atlas of your own: its outputs (seg-{name}) and its store partition "
            f"(atlas={name}) would pass for the registry's {name}, and mix with them.",
            hint=f"Give your atlas a name of its own in {said['name']} (letters and digits, e.g. "
            f"my{name}; the default is {name!r}), or remove {keys} to use the registry's.",
        )
    return load_atlas(
        name,
        settings.get("path"),
        settings.get("labels"),
        templateflow=settings.get("templateflow"),
        names=names,
    )


def native_space_fix(
    setting: str, roi_entry: str = "entry: roi_timeseries", atlas_space: str | None = None
) -> str:
    """The hint given when voxel-level runs are read in a subject's own space.

    Parameters
    ----------
    setting : str
        The output space setting as the user gives it: ``fmriprep.output_space`` in the
        config, ``lcm fmriprep --output-space`` on the command line: one of them, never both.
    roi_entry : str, default ``entry: roi_timeseries``
        How the user enters a dataset as ROI time series (``datasets.<name>.entry:
        roi_timeseries``, ``lcm ingest --entry roi_timeseries``:
        :func:`lcm.hints.set_to`).
    atlas_space : str, optional
        The atlas's template, when known (named as the space to set).

    Returns
    -------
    str
    """
    template = (
        f"the atlas's template, {atlas_space},"
        if atlas_space
        else "the template the atlas image was made in (MNI152NLin2009cAsym for the registry "
        "atlases)"
    )
    return (
        f"Set {setting} to {template} and run fMRIPrep with it in --output-spaces. An atlas in "
        "each subject's own space is not supported: bring such parcellations as ROI time "
        f"series ({roi_entry})."
    )


def check_atlas_space(config: dict[str, Any], datasets: list[str], source: str = "config") -> None:
    """Voxel-level ``datasets`` are read in the atlas's template space, or refused.

    The connectome stage excludes every run of another space (an atlas image of one template
    does not parcellate BOLD registered to another): said when the workflow loads and by
    ``lcm run`` before it writes anything, not after fMRIPrep ran for hours. A user atlas
    given by path is in the template its file name says (``tpl-``, else ``space-``, as
    TemplateFlow and XCP-D name them: :func:`lcm.atlas.files.file_space`); one whose name
    says none is not checked against a template. No atlas parcellates a subject's own space
    (``T1w``, ``func`` ...: :func:`lcm.io.output_space.is_native_space`): one atlas image
    serves every subject, so such an output space is refused whatever the atlas, one whose
    name says no template included.

    Parameters
    ----------
    config : dict
        The validated config (its ``atlas`` and ``fmriprep.output_space``).
    datasets : list of str
        The names of the config's voxel-level datasets; nothing is checked without one.
    source : str, default "config"
        Where the config was read (``lcm run --config-file <file>``), named in the error.

    Raises
    ------
    ConfigError
        Naming ``fmriprep.output_space``, the atlas's space and the fix.
    """
    atlas = config.get("atlas") or {}
    setting = (config.get("fmriprep") or {}).get("output_space")  # filled in by validation
    if not datasets or not setting:
        return
    if atlas.get("path"):
        space, what = file_space(atlas["path"]), f"atlas.path {atlas['path']!r} (its name)"
    elif atlas.get("templateflow"):
        space, what = atlas["templateflow"]["template"], "atlas.templateflow.template"
    else:
        space, what = (
            registry_space(str(atlas.get("name"))),
            f"registry atlas {atlas.get('name')!r}",
        )
    wanted = parse_output_space(setting).label
    if is_native_space(wanted):
        where = f"in {space!r}" if space else "whose file name says no template"
        raise ConfigError(
            f"{source}: fmriprep.output_space is {wanted!r}, each subject's own space, but the "
            f"voxel-level datasets {datasets} are parcellated with one atlas image for every "
            f"subject, the {what.removesuffix(' (its name)')}, {where}: each subject's BOLD "
            "would be cut with regions that are not its own.",
            hint=native_space_fix(
                "fmriprep.output_space",
                ", ".join(f"datasets.{name}.entry" for name in datasets) + ": roi_timeseries",
                space,
            ),
        )
    if space is None or space == wanted:
        return
    raise ConfigError(
        f"{source}: fmriprep.output_space is {wanted!r} but the {what} is in {space!r}: no run "
        f"of the voxel-level datasets {datasets} could be parcellated with it.",
        hint=f"Set fmriprep.output_space to {space} (fMRIPrep's --output-spaces, and the space "
        "of the derivatives read), or use an atlas in that space.",
    )


# Atlases loaded by check_atlas_files in this process, by their files' identity: the workflow
# loads its config more than once per process (Snakemake's parse, `lcm run`'s own check).
_CHECKED: dict[tuple, str] = {}


def _files_key(settings: Mapping[str, Any]) -> tuple:
    """What the atlas of ``settings`` is read from: each file by path, size and mtime (a file
    edited in place, or gone, is read again), the TemplateFlow query with its root."""
    import os

    def stat(path: Any) -> tuple:
        try:
            st = Path(path).stat()
        except OSError:
            return (str(path), None)
        return (str(path), st.st_size, st.st_mtime_ns)

    tf = settings.get("templateflow") or {}
    return (
        settings.get("name"),
        stat(settings["path"]) if settings.get("path") else None,
        stat(settings["labels"]) if settings.get("labels") else None,
        tuple(sorted((k, str(v)) for k, v in tf.items())),
        os.environ.get(TEMPLATEFLOW_ENV) if tf else None,
    )


def check_atlas_files(config: Mapping[str, Any], source: str = "config") -> None:
    """Load the atlas a config names by files (``path``, ``labels`` or ``templateflow``).

    Said when the workflow loads, not by the connectome jobs after fMRIPrep ran for hours: a
    missing file, a table that does not match its image. A registry atlas (its files are the
    package's) is not loaded: its name is checked against the registry. Loading is cheap (one
    label image); an atlas already loaded in this process from the same files is not loaded
    again.

    Parameters
    ----------
    config : mapping
        The validated config (its ``atlas``).
    source : str, default "config"
        Where the config was read (``lcm run --config-file <file>``), named in the error.

    Raises
    ------
    ConfigError
        With the loader's message (naming the file) and hint.
    """
    settings = config.get("atlas") or {}
    if not any(settings.get(k) for k in ("path", "labels", "templateflow")):
        # A registry atlas: its name is the registry's (its files are the package's). Said
        # whatever the datasets' level: an ROI-level config with a mistyped name passed the
        # dry run and failed at its first job that reads the atlas.
        name = settings.get("name")  # in a validated config (its default: aal116)
        if name is not None and name not in available_atlases():
            raise ConfigError(
                f"{source}: atlas.name is {name!r}, which is not in the offline registry "
                f"(have {available_atlases()}).",
                hint="Pick a registry name (lcm atlases lists them), give atlas.path and "
                "atlas.labels for your own atlas, or atlas.templateflow for a TemplateFlow atlas.",
            )
        return
    key = _files_key(settings)
    if key in _CHECKED:
        return
    try:
        atlas = atlas_from_settings(settings)
    except AtlasError as exc:
        raise ConfigError(f"{source}: atlas: {exc.message}", hint=exc.hint) from exc
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}", hint=exc.hint) from exc
    _CHECKED[key] = atlas.identity
