"""Inputs of the store-reading verbs: as files, for their provenance sidecars, and as their
errors name them."""

from __future__ import annotations

from pathlib import Path

from lcm.io.paths import connectome_path, variables_path


def store_sources(store: str | Path, atlas: str, datasets: list[str]) -> list[Path]:
    """The Parquet partitions of ``datasets`` in ``store`` that exist (connectomes, variables).

    Parameters
    ----------
    store : str or pathlib.Path
        The feature store's root (``--store``).
    atlas : str
        The atlas partition (``--atlas``).
    datasets : list of str
        The datasets the verb reads.

    Returns
    -------
    list of pathlib.Path
        Each dataset's connectome partition, then its variables partition, where the file exists.
    """
    files = [
        p for ds in datasets for p in (connectome_path(store, atlas, ds), variables_path(store, ds))
    ]
    return [p for p in files if p.is_file()]


def named_store(store: str | Path) -> str:
    """The store ``store`` as errors name it where the connectomes come from (``store
    results/store``): a checkpoint's ``data`` (:func:`lcm.model.checkpoint.check_fits`).

    Named, a checkpoint of another atlas or ROI count is fixed there (another ``--atlas``, or a
    store of the checkpoint's atlas) as often as by another checkpoint.

    Parameters
    ----------
    store : str or pathlib.Path
        The feature store's root (``--store``).

    Returns
    -------
    str
    """
    return f"store {store}"


def existing(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """``folder/name`` for each of ``names`` that was written.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder (a checkpoint folder).
    names : tuple of str
        File names to look for in it.

    Returns
    -------
    list of pathlib.Path
        The paths that are files, in the order of ``names``.
    """
    return [Path(folder) / n for n in names if (Path(folder) / n).is_file()]
