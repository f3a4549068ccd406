"""Provenance of the connectome stage's outputs (their paths come from :mod:`lcm.io.paths`)."""

from __future__ import annotations

from pathlib import Path

from lcm.io.provenance import write_dataset_description


def ensure_dataset_description(out_dir: str | Path, dataset: str) -> None:
    """Write ``OUTDIR/dataset_description.json`` (GeneratedBy LCM) unless it exists."""
    if not (Path(out_dir) / "dataset_description.json").is_file():
        write_dataset_description(out_dir, f"LCM connectomes of {dataset}")


def atlas_sources(name: str, path: str | None, labels: str | None) -> list[str]:
    """Files of the atlas, absolute as the BOLD's, for ``Sources`` in sidecars (package files
    for registry atlases; a loaded atlas's own are :attr:`lcm.atlas.Atlas.files`)."""
    if path is not None or labels is not None:
        # A user atlas, or a labels-only one: absolute, as typed relative to the folder run in.
        return [str(Path(p).resolve()) for p in (path, labels) if p]
    from lcm.atlas import atlas_files

    return [str(Path(p).resolve()) for p in atlas_files(name)]
