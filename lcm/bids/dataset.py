"""The ``dataset_description.json`` of a BIDS (or BIDS-derivative) folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lcm.exceptions import BIDSError


def read_dataset_description(root: str | Path) -> dict[str, Any]:
    """Return the parsed ``dataset_description.json`` of ``root``.

    Parameters
    ----------
    root : path-like
        Top folder of a BIDS dataset or derivatives folder.

    Raises
    ------
    BIDSError
        If the folder or its ``dataset_description.json`` is missing or not a JSON object.
    """
    root = Path(root)
    if not root.is_dir():
        raise BIDSError(
            f"BIDS folder not found: {root}",
            hint="Check the dataset's path in config.yaml (datasets.<name>.path).",
        )
    desc_path = root / "dataset_description.json"
    if not desc_path.is_file():
        raise BIDSError(
            f"{root} has no dataset_description.json: expected a BIDS dataset root.",
            hint="Point the path at the dataset's top folder (the one holding sub-* folders), or "
            'add a dataset_description.json with at least {"Name": ..., "BIDSVersion": "1.10.0"}.',
        )
    try:
        desc = json.loads(desc_path.read_text())
    except json.JSONDecodeError as exc:
        raise BIDSError(
            f"{desc_path} is not valid JSON: {exc}", hint="Fix or regenerate the file."
        ) from exc
    if not isinstance(desc, dict):
        raise BIDSError(
            f"{desc_path}: expected a JSON object, received {type(desc).__name__}.",
            hint="The file must hold an object with Name and BIDSVersion.",
        )
    return desc


def is_derivative(desc: dict[str, Any]) -> bool:
    """Whether a dataset description declares a derivative dataset.

    Parameters
    ----------
    desc : dict
        The parsed ``dataset_description.json`` (:func:`read_dataset_description`); a missing
        ``DatasetType`` means ``raw``, as BIDS says, unless the description has the
        ``PipelineDescription`` of derivatives written before BIDS 1.4 named ``DatasetType``
        (fMRIPrep before 20.2: read as raw, every ``desc-preproc`` file was left out).
    """
    if "DatasetType" not in desc:
        return "PipelineDescription" in desc
    return str(desc["DatasetType"]).lower() == "derivative"
