"""One parser of the atlas options (issue 16, item 2).

Every verb that takes an atlas spells it ``--atlas`` through :func:`add_atlas_arguments`, and
loads it through :func:`atlas_from_args` (or, from a config, :func:`atlas_from_settings`), the
TemplateFlow query included: a TemplateFlow atlas works for a ``connectome``-entry import and
for ``lcm synth`` as it does for voxel runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers.cli import verb_parsers
from helpers.connectome import cli, read_qc_table

from lcm.bids.ingest import ingest
from lcm.cli import VERBS, build_parser
from lcm.commands import connectome as connectome_cmd
from lcm.commands import synth as synth_cmd
from lcm.commands._atlas import add_atlas_arguments, atlas_name
from lcm.commands._atlas_load import atlas_from_args
from lcm.exceptions import ConfigError
from lcm.io.relmat import read_relmat

TPL = "MNI152NLin2009cAsym"
QUERY = {"template": TPL, "atlas": "Toy2024", "desc": "12Parcels", "resolution": 2}
NAMES = [f"Net{i // 4}_{i:02d}" for i in range(12)]
# Every option a verb may have about its atlas; anything else spelled --atlas* is a second parser.
ATLAS_OPTIONS = {"--atlas", "--atlas-path", "--atlas-labels", "--atlas-templateflow", "--atlas-seg"}


def _templateflow_home(home: Path) -> Path:
    """An offline $TEMPLATEFLOW_HOME with one 12-parcel atlas on a small 2 mm grid."""
    folder = home / f"tpl-{TPL}"
    folder.mkdir(parents=True)
    data = np.zeros((12, 7, 8), dtype=np.int16)
    for i in range(12):
        data[i] = i + 1
    base = f"tpl-{TPL}_res-02_atlas-Toy2024_desc-12Parcels"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2, 2, 1])), folder / f"{base}_dseg.nii.gz")
    table = "index\tname\n" + "".join(f"{i + 1}\t{n}\n" for i, n in enumerate(NAMES))
    (folder / f"tpl-{TPL}_atlas-Toy2024_desc-12Parcels_dseg.tsv").write_text(table)
    return home


@pytest.fixture
def tf_home(tmp_path: Path, monkeypatch) -> Path:
    home = _templateflow_home(tmp_path / "templateflow")
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    monkeypatch.setenv("TEMPLATEFLOW_AUTOUPDATE", "0")
    return home


def test_every_verb_taking_an_atlas_uses_the_one_parser() -> None:
    takes_atlas = {}
    for command, parser in verb_parsers().items():
        options = {s for a in parser._actions for s in a.option_strings if "atlas" in s}
        if not options:
            continue
        takes_atlas[command] = parser
        assert options <= ATLAS_OPTIONS, f"lcm {command}: atlas options {sorted(options)}"
        action = parser._option_string_actions["--atlas"]
        # One action for both spellings, checked by the one type; only --atlas is shown.
        assert action.type is atlas_name and action.dest == "atlas", command
        assert parser._option_string_actions["--atlas-name"] is action, command
        assert "--atlas-name" not in parser.format_help(), command
    expected = {
        "atlases",
        "ingest",
        "store",
        "splits",
        "pretrain",
        "bei-maps",
        "finetune",
        "evaluate",
        "embed",
        "report",
        "connectome run",
        "connectome settings",
        "connectome timeseries",
        "connectome import",
        "connectome dataset",
    }
    assert set(takes_atlas) == expected
    assert set(VERBS) >= {c.split()[0].replace("-", "_") for c in takes_atlas}


def test_both_spellings_parse_to_one_value_and_bad_names_are_refused(capsys) -> None:
    parser = build_parser("store")
    base = [
        "store",
        "--dataset",
        "d",
        "--qc-table",
        "q",
        "--phenotype",
        "p",
        "--catalogue",
        "c",
        "--store-dir",
        "s",
    ]
    assert parser.parse_args([*base, "--atlas", "aal116"]).atlas == "aal116"
    assert parser.parse_args([*base, "--atlas-name", "aal116"]).atlas == "aal116"
    with pytest.raises(SystemExit):
        parser.parse_args(base)
    assert "the following arguments are required: --atlas" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--atlas", "../x"])
    assert "expected an atlas name of letters and digits" in capsys.readouterr().err


def test_atlas_from_args_resolves_registry_labels_and_templateflow(tmp_path, tf_home) -> None:
    p = argparse.ArgumentParser()
    add_atlas_arguments(p, files=True, seg=True)
    assert atlas_from_args(p.parse_args(["--atlas", "aal116"])).n_rois == 116
    labels = tmp_path / "l.tsv"
    labels.write_text("name\nA\nB\n")
    got = atlas_from_args(p.parse_args(["--atlas", "two", "--atlas-labels", str(labels)]))
    assert got.n_rois == 2 and got.img is None
    args = p.parse_args(["--atlas", "toy12", "--atlas-templateflow", json.dumps(QUERY)])
    atlas = atlas_from_args(args)
    assert atlas.name == "toy12" and atlas.space == TPL and list(atlas.labels["name"]) == NAMES
    # The query is checked as the config's atlas.templateflow is.
    bad = p.parse_args(["--atlas", "toy12", "--atlas-templateflow", '{"atlas": "Toy2024"}'])
    with pytest.raises(ConfigError, match=r"--atlas-templateflow: .*'template' is a required"):
        atlas_from_args(bad)


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        ([], "--atlas-templateflow: unknown key 'templat' (did you mean 'template'?) at top"),
        (
            ["--rule", "connectome_roi"],
            "config: unknown key 'templat' (did you mean 'template'?) under 'atlas.templateflow'",
        ),
    ],
    ids=["command_line", "rule"],
)
def test_a_templateflow_query_key_is_named_as_the_user_gave_it(rule: list[str], said: str) -> None:
    """An unknown key of --atlas-templateflow was said to sit "under 'atlas.templateflow'", a
    config key the command-line user never wrote; a workflow rule's, built from that key, is."""
    p = argparse.ArgumentParser()
    p.add_argument("--rule")
    add_atlas_arguments(p, files=True)
    query = json.dumps({"templat": TPL, "atlas": "Toy2024"})
    args = p.parse_args([*rule, "--atlas", "toy12", "--atlas-templateflow", query])
    with pytest.raises(ConfigError) as info:
        atlas_from_args(args)
    assert said in str(info.value), str(info.value)
    # Each names the one setting its user wrote.
    assert bool(rule) != ("--atlas" in str(info.value)), str(info.value)


def test_templateflow_atlas_for_a_connectome_entry_import(tmp_path, tf_home) -> None:
    rng = np.random.default_rng(4)
    root = tmp_path / "connectomes"
    root.mkdir()
    for sub in ("01", "02"):
        x = rng.standard_normal((60, 12))
        np.save(root / f"sub-{sub}.npy", np.corrcoef(x, rowvar=False))
    manifest = tmp_path / "manifest.parquet"
    ingest("tfdata", "connectome", root, manifest)
    qc_path = tmp_path / "qc.tsv"
    rc = cli(
        connectome_cmd,
        [
            "connectome",
            "import",
            "--dataset",
            "tfdata",
            "--manifest",
            str(manifest),
            "--atlas",
            "toy12",
            "--atlas-templateflow",
            json.dumps(QUERY),
            "--out-dir",
            str(tmp_path / "conn"),
            "--qc-table",
            str(qc_path),
        ],
    )
    assert rc == 0
    qc = read_qc_table(qc_path)
    assert qc["included"].all() and len(qc) == 2
    names, fc = read_relmat(qc["relmat"].iloc[0])
    assert names == NAMES and fc.shape == (12, 12)
    assert "seg-toy12" in Path(qc["relmat"].iloc[0]).name


def test_templateflow_atlas_for_synth(tmp_path, tf_home) -> None:
    out = tmp_path / "synth"
    cons = {"preset": "adni", "tier": "roi", "n_subjects": 5, "n_volumes": 23}
    config = {
        "seed": 1,
        "atlas": {"name": "toy12", "templateflow": QUERY},
        "synth": {"enabled": True, "out_dir": str(out), "consortia": {"tfsyn": cons}},
    }
    rc = cli(
        synth_cmd,
        ["synth", "--config-json", json.dumps(config), "--consortium", "tfsyn"],
    )
    assert rc == 0
    series = sorted((out / "tfsyn").rglob("*seg-toy12*timeseries.tsv"))
    assert len(series) == 5
    header = series[0].read_text().splitlines()[0].split("\t")
    assert header == NAMES
