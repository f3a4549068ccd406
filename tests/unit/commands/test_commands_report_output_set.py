"""``lcm report``'s tables, page and their provenance records are all this run's or all the
last run's after a failure.

The records were written after the set of tables and page: a full disk (or a SIGTERM, with no
handler at all) at one left this run's page beside the last run's records, which ``lcm
provenance verify`` failed on, or a first run's files without records, refused on the rerun
as files LCM did not write.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.output_set import VerbSet, check_full_disk_at, check_sigterm_at_record, with_records
from helpers.report import write_report_inputs

from lcm.cli import main

# In the order of lcm.commands.report.REPORT_OUTPUTS, as they are written.
FILES = ("metrics.parquet", "predictions.parquet", "summary.tsv", "index.html")
OPTIONS = ("--out-metrics", "--out-predictions", "--out-summary", "--out-html")
SET = with_records(FILES)

pytestmark = pytest.mark.hostile


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> VerbSet:
    """``lcm report`` of two tasks' tables, then (one task fewer, so that this run's files and
    records differ from the last run's) of one."""
    inputs = write_report_inputs(tmp_path_factory.mktemp("report-set"))

    def run(out: Path, tasks: int) -> int:
        """``lcm report`` of the first ``tasks`` tasks' tables, every output in ``out``."""
        argv = ["report", "--metrics", *map(str, inputs["metrics"][:tasks])]
        argv += ["--predictions", *map(str, inputs["predictions"][:tasks]), "--n-boot", "50"]
        for option, name in zip(OPTIONS, FILES, strict=True):
            argv += [option, str(out / name)]
        return main(argv)

    return VerbSet("report", SET, lambda out: run(out, 2), lambda out: run(out, 1))


@pytest.mark.parametrize("failing", SET[1:])
def test_a_full_disk_between_two_files_leaves_the_last_runs_set(
    report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd, failing
) -> None:
    check_full_disk_at(report, tmp_path / "report", failing, monkeypatch, capfd)


def test_a_sigterm_at_a_record_leaves_the_last_runs_set(
    report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    """No handler was installed: a SIGTERM at a record ended the job at once, this run's
    files beside the last run's records. It exits 143 through the set now."""
    check_sigterm_at_record(report, tmp_path / "report", "summary.json", monkeypatch, capfd)
