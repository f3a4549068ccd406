"""``lcm store --phenotype missing.tsv`` was told "Check datasets.<name>.phenotype.", a key
of no config, to a user who typed ``--phenotype``; a workflow rule (``lcm --rule``), which
passes the config's ``datasets.<name>.phenotype``, now names that key with the dataset's name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcm.cli import main

CATALOGUE = """variables:
  age: {kind: continuous, domain: sociodemographic, units: years, range: [0, 120]}
datasets:
  alpha: {id_column: participant_id, columns: {age: {column: age}}}
"""


@pytest.mark.parametrize(
    ("rule", "said"),
    [([], "--phenotype"), (["--rule", "store"], "datasets.alpha.phenotype")],
    ids=["command_line", "rule"],
)
def test_a_missing_phenotype_is_hinted_by_the_setting_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rule: list[str], said: str
) -> None:
    names = [f"roi{i}" for i in range(4)]
    relmat = tmp_path / "relmat.tsv"
    frame = pd.DataFrame(np.eye(4), index=pd.Index(names, name="Node"), columns=names)
    frame.to_csv(relmat, sep="\t")
    qc = {"dataset": "alpha", "subject": "01", "session": "", "task": "rest", "run": "1"}
    qc |= {"included": "True", "reason": "", "mean_fd": "0.1"}
    qc |= {"run_key": "sub-01_task-rest_run-1", "relmat": str(relmat)}
    pd.DataFrame([qc]).to_csv(tmp_path / "qc.tsv", sep="\t", index=False)
    (tmp_path / "variables.yaml").write_text(CATALOGUE)
    argv = [*rule, "store", "--dataset", "alpha", "--qc-table", str(tmp_path / "qc.tsv")]
    argv += ["--phenotype", str(tmp_path / "missing.tsv"), "--catalogue"]
    argv += [
        str(tmp_path / "variables.yaml"),
        "--atlas",
        "toy",
        "--store-dir",
        str(tmp_path / "store"),
    ]
    capsys.readouterr()
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert f"Phenotype file not found: {tmp_path / 'missing.tsv'}" in err, err
    assert f"hint: Check {said}." in err and "<name>" not in err, err
