"""``lcm report``'s tables, page and their provenance records are all this run's or all the
last run's after a failure.

The records were written after the set of tables and page: a full disk (or a SIGTERM, with no
handler at all) at one left this run's page beside the last run's records, which ``lcm
provenance verify`` failed on, or a first run's files without records, refused on the rerun
as files LCM did not write.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from helpers.output_set import (
    assert_last_runs_set,
    full_disk_at,
    output_files,
    sigterm_at_record,
)
from helpers.report import write_report_inputs

from lcm.cli import main
from lcm.exceptions import OutputSpaceError
from lcm.io.output_set import PREVIOUS_SUFFIX
from lcm.io.provenance import provenance_path

# In the order of lcm.commands.report.REPORT_OUTPUTS, as they are written.
FILES = ("metrics.parquet", "predictions.parquet", "summary.tsv", "index.html")
OPTIONS = ("--out-metrics", "--out-predictions", "--out-summary", "--out-html")
RECORDS = tuple(provenance_path(Path(name)).name for name in FILES)
SET = (*FILES, *RECORDS)

pytestmark = pytest.mark.hostile


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_report_inputs(tmp_path_factory.mktemp("report-set"))


def _report(inputs: dict, out: Path, tasks: int) -> int:
    """``lcm report`` of the first ``tasks`` tasks' tables, every output in ``out``."""
    argv = ["report", "--metrics", *map(str, inputs["metrics"][:tasks])]
    argv += ["--predictions", *map(str, inputs["predictions"][:tasks]), "--n-boot", "50"]
    for option, name in zip(OPTIONS, FILES, strict=True):
        argv += [option, str(out / name)]
    return main(argv)


@pytest.mark.parametrize("failing", SET[1:])
def test_a_full_disk_between_two_files_leaves_the_last_runs_set(
    inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd, failing
) -> None:
    out = tmp_path / "report"
    assert _report(inputs, out, tasks=2) == 0
    before = output_files(out)
    assert set(SET) <= set(before)

    full_disk_at(monkeypatch, failing)
    capfd.readouterr()
    # One task fewer: this run's files (and records) differ from the last run's.
    code = _report(inputs, out, tasks=1)
    err = capfd.readouterr().err
    assert code == OutputSpaceError.exit_code, err
    assert_last_runs_set(out, before, err, SET, failing)


def test_a_sigterm_at_a_record_leaves_the_last_runs_set(
    inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    """No handler was installed: a SIGTERM at a record ended the job at once, this run's
    files beside the last run's records. It exits 143 through the set now."""
    out = tmp_path / "report"
    assert _report(inputs, out, tasks=2) == 0
    before = output_files(out)
    capfd.readouterr()
    with sigterm_at_record(monkeypatch, RECORDS[2]), pytest.raises(SystemExit) as stopped:
        _report(inputs, out, tasks=1)
    err = capfd.readouterr().err
    assert stopped.value.code == 128 + signal.SIGTERM, err
    assert output_files(out) == before
    assert not [p for p in out.iterdir() if p.name.endswith(PREVIOUS_SUFFIX)]
    assert "lcm report: stopped by SIGTERM while writing its outputs" in err, err
    assert f"the earlier run's {', '.join(SET)} put back as they were" in err, err
