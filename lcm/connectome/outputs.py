"""Provenance of the connectome stage's outputs (their paths come from :mod:`lcm.io.paths`)."""

from __future__ import annotations

from pathlib import Path

from lcm.io.provenance import write_dataset_description


def ensure_dataset_description(out_dir: str | Path, dataset: str) -> None:
    """Write ``OUTDIR/dataset_description.json`` (GeneratedBy LCM) unless it exists."""
    if not (Path(out_dir) / "dataset_description.json").is_file():
        write_dataset_description(out_dir, f"LCM connectomes of {dataset}")


def atlas_sources(name: str, path: str | None, labels: str | None) -> list[str]:
    """Files of the atlas, for ``Sources`` in sidecars (package files for registry atlases)."""
    if path is not None or labels is not None:
        return [p for p in (path, labels) if p]  # a user atlas, or a labels-only one
    from lcm.atlas import atlas_files

    return [str(p) for p in atlas_files(name)]
