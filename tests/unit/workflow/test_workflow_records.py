"""lcm.workflow.records: which Snakemake records belong to a results folder.

Snakemake keeps them in ``.snakemake/`` of the folder it runs in; a results_dir outside it was
planned from another folder with none of its records, and a changed setting reran nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lcm.exceptions import ConfigError, OutputOwnershipError
from lcm.workflow.records import check_records, records_marker, write_records_marker


@pytest.fixture
def results(tmp_path: Path) -> str:
    path = tmp_path / "results"
    path.mkdir()
    return str(path)


def test_no_marker_yet_is_written_then_the_same_records_pass(results, tmp_path: Path) -> None:
    records = tmp_path / "a" / ".snakemake"
    assert check_records(results, records) is True
    marker = write_records_marker(results, records)
    assert marker == records_marker(results)
    assert json.loads(marker.read_text())["working_directory"] == str(tmp_path / "a")
    assert check_records(results, records) is False
    assert [p.name for p in marker.parent.iterdir()] == [marker.name]  # no temporary left


def test_records_elsewhere_are_refused_naming_the_folder_they_were_made_from(
    results, tmp_path: Path
) -> None:
    write_records_marker(results, tmp_path / "a" / ".snakemake")
    with pytest.raises(ConfigError) as info:
        check_records(results, tmp_path / "b" / ".snakemake", source="my.yaml")
    message = info.value.message
    assert message.startswith(f"my.yaml: results_dir {results} holds results of runs from ")
    assert f"{tmp_path / 'a'}, whose Snakemake records" in message
    assert f"{tmp_path / 'b' / '.snakemake'}, which has none of them" in message
    hint = info.value.hint or ""
    assert f"--directory {tmp_path / 'a'}" in hint
    assert "--config adopt_snakemake_records=True" in hint


def test_adopting_other_records_rewrites_the_marker_at_once(results, tmp_path: Path) -> None:
    write_records_marker(results, tmp_path / "a" / ".snakemake")
    assert check_records(results, tmp_path / "b" / ".snakemake", adopt=True) is False
    assert check_records(results, tmp_path / "b" / ".snakemake") is False
    with pytest.raises(ConfigError, match="holds results of runs from"):
        check_records(results, tmp_path / "a" / ".snakemake")


def test_a_project_moved_whole_keeps_its_records(tmp_path: Path) -> None:
    """A relative results_dir moves with the folder Snakemake runs in, records and all."""
    old = tmp_path / "old"
    (old / "results").mkdir(parents=True)
    write_records_marker(str(old / "results"), old / ".snakemake")
    new = tmp_path / "new"
    shutil.move(old, new)
    assert check_records(str(new / "results"), new / ".snakemake") is False


def test_a_file_lcm_did_not_write_is_refused_and_left_alone(results, tmp_path: Path) -> None:
    marker = records_marker(results)
    marker.write_text("my notes\n")
    with pytest.raises(OutputOwnershipError, match="is not the marker LCM writes there"):
        check_records(results, tmp_path / ".snakemake")
    with pytest.raises(OutputOwnershipError):
        write_records_marker(results, tmp_path / ".snakemake")
    assert marker.read_text() == "my notes\n"
