"""A folder given where a file is read is named a folder, not "not found".

``lcm connectome timeseries --manifest results/ingest/ds`` (the manifest's folder) said
"Manifest not found: results/ingest/ds", and so did the catalogue, phenotype, config and atlas
readers of a folder: the user looked for a path that exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lcm.atlas import load_atlas
from lcm.bids.manifest import read_manifest
from lcm.catalogue import load_catalogue
from lcm.config import read_yaml_mapping
from lcm.exceptions import LCMError
from lcm.io.file_kind import not_a_file, not_a_folder
from lcm.store.phenotype import read_table

READERS: dict[str, tuple[Callable[[Path, Path], object], str]] = {
    "manifest": (lambda p, _: read_manifest(p), "Manifest"),
    "catalogue": (lambda p, _: load_catalogue(p), "Variable catalogue"),
    "phenotype": (lambda p, _: read_table(p), "Phenotype file"),
    "config": (lambda p, _: read_yaml_mapping(p), "Config file"),
    "atlas labels": (lambda p, _: load_atlas("mine", labels=str(p)), "labels file"),
    "atlas image": (lambda p, t: load_atlas("mine", str(p), str(t)), "file"),
}


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    (tmp_path / "labels.tsv").write_text("index\tname\n1\tA\n")
    return tmp_path / "labels.tsv"


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_folder_is_named_a_folder(reader: str, tmp_path: Path, labels: Path) -> None:
    folder = tmp_path / "given.ext"
    folder.mkdir()
    read, what = READERS[reader]
    with pytest.raises(LCMError) as caught:
        read(folder, labels)
    assert f"{what} is a folder, not a file: {folder}" in str(caught.value)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_missing_file_is_still_not_found(reader: str, tmp_path: Path, labels: Path) -> None:
    read, what = READERS[reader]
    with pytest.raises(LCMError) as caught:
        read(tmp_path / "absent.ext", labels)
    assert f"{what} not found: {tmp_path / 'absent.ext'}" in str(caught.value)


def test_not_a_file_says_which(tmp_path: Path) -> None:
    assert not_a_file(tmp_path) == "is a folder, not a file"
    assert not_a_file(tmp_path / "absent") == "not found"


def test_not_a_folder_says_which(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    assert not_a_folder(tmp_path / "afile") == "is a file, not a folder"
    assert not_a_folder(tmp_path / "absent") == "not found"
