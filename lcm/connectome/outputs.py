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


# connectome.kinds -> XCP-D's ``stat-`` label of the matrix file.
STAT_LABELS = {
    "pearson": "pearsoncorrelation",
    "partial": "partialcorrelation",
    "covariance": "covariance",
}


def relmat_path(
    out_dir: str | Path,
    ids: RunIds,
    space: str | None,
    atlas: str,
    kind: str = "pearson",
    desc: str | None = None,
) -> Path:
    """``..._space-S_seg-A[_desc-D]_stat-<kind>_relmat.tsv`` beside the time series.

    ``desc`` marks derived matrices: ``win000`` (first window), ``fisherz``, ``win000fisherz``.
    """
    ents = {**ids.entities, "space": space, "seg": atlas, "desc": desc, "stat": STAT_LABELS[kind]}
    return derivative_path(out_dir, ents, "relmat", ".tsv")


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
