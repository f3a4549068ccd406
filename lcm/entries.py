"""How a dataset enters the workflow (``datasets.<name>.entry``): one row per entry type.

An entry is the level a dataset enters at: raw BIDS, fMRIPrep derivatives, ROI time series or
precomputed connectomes. This table owns the entry names and what tells them apart; every place
that treats entries differently reads it: the schema's enum (:func:`lcm.config.schema`),
``lcm ingest --entry`` and its routing (:mod:`lcm.bids.ingest`, the fast index's
:class:`lcm.bids.fast_index.IndexSpec`, the file index's
:func:`lcm.bids.file_entries.uses_file_index`), the workflow plan's dataset lists and listing
hash, the Snakemake rules' options, ``lcm connectome dataset`` and the config's
cross-reference checks. Adding an entry is one row here plus, for a parcellated entry, the
module that turns its manifest into the QC table (``docs/extending.md``, section 4).

The module imports nothing from ``lcm``: every layer may read it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

# Not duplicates: the echoes of a multi-echo run (combined) and the phase of complex-valued BOLD
# (other_part), lcm.bids.selection. {space}: how the user names the output space
# (TreeIndex.duplicate_hint).
_BOLD_HINT = (
    "keep one file per run: .nii or .nii.gz, one resolution (of fMRIPrep's: name it in "
    "{space}, e.g. MNI152NLin2009cAsym:res-2)"
)


@dataclass(frozen=True)
class TreeIndex:
    """How the fast index finds an entry's runs in a BIDS(-derivative) tree.

    Parameters
    ----------
    suffix : str
        BIDS suffix of the data files (sidecars of that suffix are inherited).
    endings : tuple of str
        File-name endings of the data files.
    entities : tuple of (str, str)
        Entities a data file must carry with these values (fMRIPrep: ``desc-preproc``).
    one_of : tuple of str
        Entities of which a data file must carry at least one (XCP-D's ``stat-`` and
        parcellation: ``seg-``, or ``atlas-`` before its version 0.7).
    space : {"ignored", "required", "optional"}
        ``space-``: not looked at; must equal the space asked for (default
        :data:`lcm.bids.fast_index.DEFAULT_SPACE`); kept only when a space is asked for.
    images : bool
        NIfTI images: each included run's header is checked (shape, TR).
    duplicate_hint : str
        How the user keeps one file per run, for the duplicate reason; ``{setting}`` fields
        name a dataset's setting as the user gives it (a key of
        :data:`lcm.bids.dataset.CONFIG_KEYS`: ``{space}``, ``{roi_space}``, ``{seg}`` ...),
        filled by :meth:`lcm.bids.fast_index.IndexSpec.duplicate_hint`.
    """

    suffix: str
    endings: tuple[str, ...]
    entities: tuple[tuple[str, str], ...] = ()
    one_of: tuple[str, ...] = ()
    space: Literal["ignored", "required", "optional"] = "ignored"
    images: bool = True
    duplicate_hint: str = _BOLD_HINT


@dataclass(frozen=True)
class Entry:
    """What one entry type is and needs.

    Parameters
    ----------
    name : str
        The ``datasets.<name>.entry`` value.
    voxel : bool
        Voxel level: one ``connectome_run`` job per run (confound regression, parcellation
        with an atlas image), then ``connectome_collect``. Otherwise parcellated: one job per
        dataset runs :attr:`process` (the atlas's labels suffice).
    tree : TreeIndex or None
        How a BIDS(-derivative) tree of this entry is indexed; ``None``: never a tree.
    files : {"never", "always", "plain"}
        When the plain-file index (:mod:`lcm.bids.file_entries`) is used instead: never,
        always, or when ``path`` is a listing file or a folder without
        ``dataset_description.json``.
    needs_tr : bool
        Runs need a repetition time from their sidecars; ``repetition_time`` (config,
        ``--repetition-time``) fills in where sidecars give none.
    raw : bool
        Raw BIDS: validated, refused when the root is a derivative dataset, preprocessed by
        the fmriprep stage (which needs ``derivatives`` with ``fmriprep.runner: existing``, a
        FreeSurfer license otherwise).
    derivatives_root : bool
        ``path`` may be the raw dataset and ``derivatives`` the root to index (fMRIPrep).
    ingest_checks_confounds : bool
        Ingest checks the denoising strategy's confound columns on the first run.
    process : str or None
        Parcellated entries: ``"module:function"`` writing the dataset's QC table from its
        manifest, called as ``function(dataset, manifest_path, atlas, out_dir=...,
        qc_table=..., seg=..., names=..., **settings)`` by ``lcm connectome dataset`` (see
        :meth:`processor`); ``names`` is how its hints name the atlas settings (None: the
        config's keys; :func:`lcm.atlas.model.setting_names`).
    settings : tuple of str
        Config sections :attr:`process` reads (``denoise``, ``connectome``), passed as
        keyword arguments of those names; changing one reruns the dataset's job.
    settings_read : str or None
        ``"module:function"`` called as ``function(section, value)``: the part of a section of
        :attr:`settings` that :attr:`process` reads, all that is passed (and made a param of
        the dataset's job), so that a key it ignores reruns nothing; ``None``: the whole
        section (see :meth:`read_settings`).
    synth_tier : str or None
        The synthetic consortium tier (``roi``, ``voxel``) whose data this entry reads; the
        first entry of a tier is the one a consortium's dataset is told to use.
    file_suffixes : tuple of str
        Plain-file index: the BIDS suffixes of this entry's files in a folder of BIDS-named
        files (XCP-D writes ``_timeseries``, ``_relmat``, ``_bold`` coverage and ``_motion``
        beside each other); files with another suffix are not runs. Names without a suffix
        (``sub-01_run-1.npy``) always are.
    """

    name: str
    voxel: bool
    tree: TreeIndex | None
    files: Literal["never", "always", "plain"] = "never"
    needs_tr: bool = False
    raw: bool = False
    derivatives_root: bool = False
    ingest_checks_confounds: bool = False
    process: str | None = None
    settings: tuple[str, ...] = ()
    settings_read: str | None = None
    synth_tier: str | None = None
    file_suffixes: tuple[str, ...] = ()

    @property
    def parcellated(self) -> bool:
        """Runs come parcellated: files of other atlases are left out at ingest."""
        return not self.voxel

    @property
    def listing(self) -> Literal["runs", "files"]:
        """What the workflow hashes to see runs added: the planned runs, or the file names."""
        return "runs" if self.voxel else "files"

    def processor(self) -> Callable[..., Any]:
        """The function :attr:`process` names, imported now (not when the table loads)."""
        if self.process is None:
            raise ValueError(f"entry {self.name!r} is voxel-level: its runs are processed singly")
        return _function(self.process)

    def read_settings(self, section: str, value: dict[str, Any]) -> dict[str, Any]:
        """What :attr:`process` reads of the config section ``section`` (one of
        :attr:`settings`) holding ``value``: :attr:`settings_read`'s answer, else ``value``.

        Parameters
        ----------
        section : str
            A config section name among :attr:`settings` (``denoise``, ``connectome``).
        value : dict
            That section's settings (``denoise``: the dataset's, its overrides applied).

        Returns
        -------
        dict
            The settings :attr:`process` reads, which a workflow job is given as JSON.

        Raises
        ------
        ValueError
            When the entry reads no ``section`` settings.
        """
        if section not in self.settings:
            raise ValueError(f"entry {self.name!r} reads no {section} settings")
        return _function(self.settings_read)(section, value) if self.settings_read else value


def _function(name: str) -> Callable[..., Any]:
    """The function a ``"module:function"`` string names, imported now."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


_TABLE = (
    Entry(
        "bids",
        voxel=True,
        raw=True,
        synth_tier="voxel",
        tree=TreeIndex("bold", ("_bold.nii.gz", "_bold.nii")),
    ),
    Entry(
        "fmriprep",
        voxel=True,
        derivatives_root=True,
        ingest_checks_confounds=True,
        synth_tier="voxel",
        tree=TreeIndex(
            "bold",
            ("_bold.nii.gz", "_bold.nii"),
            entities=(("desc", "preproc"),),
            space="required",
        ),
    ),
    Entry(
        "roi_timeseries",
        voxel=False,
        files="plain",
        needs_tr=True,
        synth_tier="roi",
        tree=TreeIndex(
            "timeseries",
            # XCP-D >= 0.7: ..._seg-X_stat-mean_timeseries.tsv; before: ..._atlas-X_timeseries.tsv
            ("_timeseries.tsv",),
            # Not fMRIPrep's _desc-confounds_timeseries.tsv, which a tree may hold too.
            one_of=("seg", "atlas", "stat"),
            space="optional",
            images=False,
            # Not spaces or atlases (exclude_duplicates tells those apart): no setting picks
            # between these, so the fix is the tree's.
            duplicate_hint="keep one series file per run, space and atlas (run-01 and run-1 "
            "are one run; a second stat- or desc- of it is a duplicate)",
        ),
        process="lcm.connectome.roi_runs:process_timeseries_manifest",
        settings=("denoise", "connectome"),
        # Not the denoise strategy, but for its scrubbing rule (lcm.connectome.roi_runs).
        settings_read="lcm.connectome.roi_runs:settings_read",
        file_suffixes=("timeseries",),
    ),
    Entry(
        "connectome",
        voxel=False,
        tree=None,
        files="always",
        process="lcm.connectome.imported:process_connectome_manifest",
        # XCP-D's relmat; its versions before 0.7 wrote conmat.
        file_suffixes=("relmat", "conmat"),
    ),
)

# Read at call time (never copied into constants elsewhere), so that a row added here, or by a
# test, reaches every consumer.
TABLE: dict[str, Entry] = {e.name: e for e in _TABLE}


def names(voxel: bool | None = None) -> list[str]:
    """Entry names in table order: all, or only the voxel-level (or parcellated) ones.

    Parameters
    ----------
    voxel : bool, optional
        True: only the voxel-level entries; False: only the parcellated ones; None: all.

    Returns
    -------
    list of str
        The entry names.
    """
    return [n for n, e in TABLE.items() if voxel is None or e.voxel == voxel]


def entry_type(name: str) -> Entry:
    """The row of entry ``name``.

    Parameters
    ----------
    name : str
        An entry name (a dataset's ``entry:`` in the config).

    Returns
    -------
    Entry
        The entry's row of the table.

    Raises
    ------
    KeyError
        ``name`` is no entry (the config schema and ``--entry`` refuse it earlier).
    """
    return TABLE[name]
