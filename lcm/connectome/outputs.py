"""Output paths and provenance of the connectome stage."""

from __future__ import annotations

from pathlib import Path

from lcm.bids.runs import RunIds
from lcm.io.bids_names import derivative_path
from lcm.io.provenance import write_dataset_description


def timeseries_path(out_dir: str | Path, ids: RunIds, space: str | None, atlas: str) -> Path:
    """``OUTDIR/sub-X/[ses-Y/]func/<run_key>_space-S_seg-A_stat-mean_timeseries.tsv``."""
    ents = {**ids.entities, "space": space, "seg": atlas, "stat": "mean"}
    return derivative_path(out_dir, ents, "timeseries", ".tsv")


def relmat_path(out_dir: str | Path, ids: RunIds, space: str | None, atlas: str) -> Path:
    """``..._space-S_seg-A_stat-pearsoncorrelation_relmat.tsv`` beside the time series."""
    ents = {**ids.entities, "space": space, "seg": atlas, "stat": "pearsoncorrelation"}
    return derivative_path(out_dir, ents, "relmat", ".tsv")


def ensure_dataset_description(out_dir: str | Path, dataset: str) -> None:
    """Write ``OUTDIR/dataset_description.json`` (GeneratedBy LCM) unless it exists."""
    if not (Path(out_dir) / "dataset_description.json").is_file():
        write_dataset_description(out_dir, f"LCM connectomes of {dataset}")


def atlas_sources(name: str, path: str | None, labels: str | None) -> list[str]:
    """Files of the atlas, for ``Sources`` in sidecars (package files for registry atlases)."""
    if path is not None:
        return [p for p in (path, labels) if p]
    from lcm.atlas import atlas_files

    return [str(p) for p in atlas_files(name)]
