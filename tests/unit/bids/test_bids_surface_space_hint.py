"""A surface space's fix names the setting the user gave, not every place a space is set.

``lcm ingest --space fsLR`` was told to "Set fmriprep.output_space (lcm ingest --space, lcm
fmriprep --output-space)": a config key a command-line user never wrote, among three names.
The hint now names the option typed, or the config's key when a workflow rule (``lcm --rule``)
ran the verb from its user's config.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.connectome import make_raw_bids

from lcm.cli import main


@pytest.mark.parametrize(
    ("rule", "said", "unsaid", "roi"),
    [
        (
            [],
            "--space",
            "fmriprep.output_space",
            "--entry roi_timeseries, which keeps any space (--space chooses one)",
        ),
        (
            ["--rule", "ingest"],
            "fmriprep.output_space",
            "--space",
            "datasets.tiny.entry: "
            "roi_timeseries, which keeps any space (ingest.select.tiny.space.include chooses one)",
        ),
    ],
    ids=["command_line", "rule"],
)
def test_ingest_hints_a_surface_space_by_the_setting_given(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rule: list[str],
    said: str,
    unsaid: str,
    roi: str,
) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    out = tmp_path / "out" / "manifest.parquet"
    argv = [*rule, "ingest", "--dataset", "tiny", "--entry", "bids", "--path", str(root)]
    argv += ["--space", "fsLR", "--out", str(out), "--no-validate"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{said} 'fsLR' is a surface space" in err, err
    hint = err.split("hint:", 1)[1]
    assert f"Set {said} to a volumetric template" in hint, hint
    assert unsaid not in hint and "lcm fmriprep" not in hint, hint
    # The ROI time-series way in, in the same one form, the dataset's name filled in (it was
    # ingest.select.<dataset>.space, a key that is not the schema's, to either user).
    assert roi in hint and "<dataset>" not in hint, hint
    assert not out.parent.exists()


def test_a_surface_space_in_fmriprep_spelling_is_refused_as_a_surface_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--space fsLR:den-32k``, as fMRIPrep's --output-spaces takes it, was refused as
    malformed, told to "write it as fMRIPrep's --output-spaces does", which it was."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    argv = ["ingest", "--dataset", "tiny", "--entry", "bids", "--path", str(root)]
    argv += ["--space", "fsLR:den-32k", "--out", str(tmp_path / "m.parquet"), "--no-validate"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--space 'fsLR:den-32k' is a surface space" in err, err
    assert "Set --space to a volumetric template" in err and "expected a template" not in err
