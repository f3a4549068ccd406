"""What a workflow job reads of the variable catalogue (lcm.workflow.catalogue): its digest
follows the variables and the codings of the job's own datasets, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from lcm.workflow.catalogue import catalogue_digest

DOWNSTREAM = ("adnilike",)
PRETRAINING = ("hcplike", "ukblike")


@pytest.fixture
def catalogue(tmp_path: Path) -> tuple[Path, dict]:
    """A copy of the demo catalogue and its contents."""
    path = tmp_path / "variables.yaml"
    path.write_text((ROOT / "config" / "variables.yaml").read_text())
    return path, yaml.safe_load(path.read_text())


def _digests(path: Path) -> tuple[str, str]:
    return catalogue_digest(path, DOWNSTREAM), catalogue_digest(path, PRETRAINING)


def _write(path: Path, document: dict) -> None:
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_other_datasets_codings_comments_and_layout_change_nothing(catalogue) -> None:
    path, document = catalogue
    before = _digests(path)
    document["datasets"]["abidelike"]["columns"]["age"]["column"] = "AGE_YEARS"
    document["datasets"]["newcohort"] = {"id_column": "ID", "columns": {"age": {"column": "A"}}}
    path.write_text("# edited\n" + yaml.safe_dump(document, sort_keys=True))
    assert _digests(path) == before
    # The datasets as a job names them: order and repeats do not count.
    assert catalogue_digest(path, ("ukblike", "hcplike", "hcplike")) == before[1]


@pytest.mark.parametrize(
    ("where", "dataset", "change"),
    [
        (0, "adnilike", {"site_column": "SITE2"}),
        (0, "adnilike", {"columns": {"education": {"column": "PTEDUCAT"}}}),
        (1, "ukblike", {"id_column": "EID"}),
    ],
)
def test_the_jobs_own_datasets_coding_changes_its_digest(catalogue, where, dataset, change):
    path, document = catalogue
    before = _digests(path)
    coding = document["datasets"][dataset]
    for key, value in change.items():
        coding[key] = {**coding[key], **value} if isinstance(value, dict) else value
    _write(path, document)
    after = _digests(path)
    assert after[where] != before[where] and after[1 - where] == before[1 - where]


def test_the_variables_change_every_digest(catalogue) -> None:
    path, document = catalogue
    before = _digests(path)
    for variable, key, value in [("age", "range", [5, 90]), ("sex", "levels", ["M", "F"])]:
        document["variables"][variable][key] = value
        _write(path, document)
        after = _digests(path)
        assert after[0] != before[0] and after[1] != before[1], (variable, key)
        before = after
    # A coding added for a dataset the job reads, where it had none: the job's data change.
    assert "newcohort" not in document["datasets"]
    without = catalogue_digest(path, ["newcohort"])
    document["datasets"]["newcohort"] = {"id_column": "ID", "columns": {}}
    _write(path, document)
    assert catalogue_digest(path, ["newcohort"]) != without


def test_a_file_that_is_no_catalogue_counts_whole(tmp_path: Path) -> None:
    """Unreadable as YAML, or no mapping: every edit changes every digest (the jobs then
    name the problem); a missing file has a digest of its own."""
    path = tmp_path / "variables.yaml"
    missing = catalogue_digest(path, DOWNSTREAM)
    for text in ("variables: [unclosed\n", "- a list\n", "variables: {}\ndatasets: [x]\n"):
        path.write_text(text)
        first = catalogue_digest(path, DOWNSTREAM)
        path.write_text(text + "# edited\n")
        assert catalogue_digest(path, DOWNSTREAM) not in (first, missing), text
