"""A verb whose provenance record could not be written is refused before it writes anything.

Where the record of an output would go, a JSON that LCM did not write (a user's notes, a tool's
sidecar) is never overwritten. The refusal comes before the verb runs: no output is left
without its record, and none of hours of work is spent first.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import verb_parsers

from lcm.cli import main
from lcm.io.provenance import provenance_path

pytestmark = pytest.mark.hostile

# Every command writing files with provenance records, with the options naming them.
RECORDED = {
    "ingest": ("out",),
    "fmriprep": ("out",),
    "connectome run": ("qc_out",),
    "connectome settings": ("out",),
    "connectome dataset": ("qc_table",),
    "connectome timeseries": ("qc_table",),
    "connectome import": ("qc_table",),
    "connectome collect": ("out",),
    "splits": ("out",),
    "evaluate": ("out", "predictions"),
    "report": ("out_metrics", "out_summary", "out_headline", "out_contrasts", "out_html"),
    "embed": ("out", "attention_out"),
}
# Values that pass the command line's own checks (labels, run keys, choices).
VALUES = {"run_key": "sub-01_task-rest"}
SUFFIXES = {"qc_out": ".json", "out_html": ".html", "out_summary": ".tsv", "out_headline": ".tsv"}


def test_every_recording_command_declares_its_outputs() -> None:
    declared = {
        cmd: parser._defaults["recorded"]
        for cmd, parser in verb_parsers().items()
        if parser._defaults.get("recorded")
    }
    assert declared == RECORDED


@pytest.mark.parametrize("command", sorted(RECORDED))
def test_a_users_json_in_a_records_place_stops_the_command_first(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = verb_parsers()[command]
    outputs = {
        dest: tmp_path / "out 'q'" / f"{dest}{SUFFIXES.get(dest, '.parquet')}"
        for dest in RECORDED[command]
    }
    argv = command.split()
    for action in parser._actions:
        if action.dest in outputs:
            argv += [action.option_strings[0], str(outputs[action.dest])]
        elif action.required and action.option_strings:
            value = action.choices[0] if action.choices else VALUES.get(action.dest, "x1")
            argv += [action.option_strings[0], value]
    last = outputs[RECORDED[command][-1]]
    users = provenance_path(last)
    users.parent.mkdir()
    users.write_text(json.dumps({"RepetitionTime": 2.0}))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{users} exists and is not an LCM provenance record" in err
    assert json.loads(users.read_text()) == {"RepetitionTime": 2.0}
    assert [p.name for p in users.parent.iterdir()] == [users.name]  # nothing written
