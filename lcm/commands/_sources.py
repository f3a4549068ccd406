"""Inputs of the store-reading verbs, as files, for their provenance sidecars."""

from __future__ import annotations

from pathlib import Path

from lcm.io.paths import connectome_path, variables_path


def store_sources(store: str | Path, atlas: str, datasets: list[str]) -> list[Path]:
    """The Parquet partitions of ``datasets`` in ``store`` that exist (connectomes, variables)."""
    files = [
        p for ds in datasets for p in (connectome_path(store, atlas, ds), variables_path(store, ds))
    ]
    return [p for p in files if p.is_file()]


def existing(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """``folder/name`` for each of ``names`` that was written."""
    return [Path(folder) / n for n in names if (Path(folder) / n).is_file()]
