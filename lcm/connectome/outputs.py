"""Provenance of the connectome stage's outputs (their paths come from :mod:`lcm.io.paths`)."""

from __future__ import annotations

from pathlib import Path

from lcm.io.provenance import write_dataset_description


def ensure_dataset_description(out_dir: str | Path, dataset: str) -> None:
    """Write ``OUTDIR/dataset_description.json`` (GeneratedBy LCM) unless it exists.

    Parameters
    ----------
    out_dir : str or Path
        The connectome derivatives folder.
    dataset : str
        Dataset name, in the description's ``Name``.
    """
    if not (Path(out_dir) / "dataset_description.json").is_file():
        write_dataset_description(out_dir, f"LCM connectomes of {dataset}")


def atlas_sources(name: str, path: str | None, labels: str | None) -> list[str]:
    """Files of the atlas, absolute as the BOLD's, for ``Sources`` in sidecars (package files
    for registry atlases; a loaded atlas's own are :attr:`lcm.atlas.Atlas.files`).

    Parameters
    ----------
    name : str
        The atlas name (``--atlas``); a registry atlas's files are looked up by it.
    path : str or None
        A user atlas's label image (``--atlas-path``).
    labels : str or None
        A user atlas's labels table (``--atlas-labels``).
    """
    if path is not None or labels is not None:
        # A user atlas, or a labels-only one: absolute, as typed relative to the folder run in.
        return [str(Path(p).resolve()) for p in (path, labels) if p]
    from lcm.atlas import atlas_files

    return [str(Path(p).resolve()) for p in atlas_files(name)]
