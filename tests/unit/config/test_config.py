"""Configuration schema: defaults, clear errors naming the key, cross-references."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from lcm.evaluate.config_schema import load_config, validate_config
from lcm.exceptions import ConfigError


@pytest.fixture
def demo() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_demo_config_is_valid_and_defaults_are_filled(demo: dict) -> None:
    cfg = validate_config(demo)
    assert cfg["fmriprep"]["runner"] == "existing"
    assert cfg["datasets"]["hcplike"]["task"] == "rest"  # default filled
    assert cfg["evaluate"]["finetune"]["pseudo_labels"] is True
    assert "lcm" in cfg["evaluate"]["models"]


def test_minimal_config_gets_every_section() -> None:
    cfg = validate_config(
        {
            "datasets": {
                "a": {
                    "entry": "roi_timeseries",
                    "path": "x",
                    "phenotype": "p.tsv",
                    "role": "pretrain",
                }
            }
        }
    )
    assert cfg["denoise"]["strategy"] == "24P"
    assert cfg["model"]["preset"] == "tiny"
    assert cfg["synth"]["enabled"] is False


def test_wrong_type_names_key_and_expectation(demo: dict) -> None:
    bad = copy.deepcopy(demo)
    bad["pretrain"]["epochs"] = "ten"
    with pytest.raises(ConfigError, match=r"key 'pretrain\.epochs'.*not of type 'integer'"):
        validate_config(bad)


def test_unknown_key_lists_allowed_keys(demo: dict) -> None:
    bad = copy.deepcopy(demo)
    bad["denoise"]["stratgey"] = "36P"
    with pytest.raises(ConfigError, match="stratgey") as info:
        validate_config(bad)
    assert "strategy" in (info.value.hint or "")


def test_enum_error_lists_choices(demo: dict) -> None:
    bad = copy.deepcopy(demo)
    bad["denoise"]["strategy"] = "99P"
    with pytest.raises(ConfigError, match=r"denoise\.strategy") as info:
        validate_config(bad)
    assert "36P" in (info.value.hint or "")


def test_dataset_name_with_shell_characters_is_refused(demo: dict) -> None:
    bad = copy.deepcopy(demo)
    bad["datasets"]["evil; rm -rf"] = bad["datasets"]["hcplike"]
    with pytest.raises(ConfigError, match="evil"):
        validate_config(bad)


def test_task_on_pretrain_dataset_is_refused(demo: dict) -> None:
    bad = copy.deepcopy(demo)
    bad["tasks"]["autism"]["dataset"] = "hcplike"
    with pytest.raises(ConfigError, match=r"role: downstream"):
        validate_config(bad)


def test_task_on_unknown_dataset_is_refused(demo: dict) -> None:
    bad = copy.deepcopy(demo)
    bad["tasks"]["autism"]["dataset"] = "nope"
    with pytest.raises(ConfigError, match="'nope'"):
        validate_config(bad)


def test_bids_without_derivatives_needs_a_runner(demo: dict) -> None:
    bad = copy.deepcopy(demo)
    bad["datasets"]["bidsdemo"]["derivatives"] = None
    with pytest.raises(ConfigError, match="derivatives"):
        validate_config(bad)


def test_container_runner_requires_license(demo: dict) -> None:
    bad = copy.deepcopy(demo)
    bad["fmriprep"]["runner"] = "docker"
    with pytest.raises(ConfigError, match="fs_license"):
        validate_config(bad)


def test_an_apptainer_image_that_is_no_file_nor_uri_is_refused_at_load(
    demo: dict, tmp_path: Path
) -> None:
    """The default image is a Docker name: under apptainer every subject's job failed on it
    ('Apptainer image not found', retried after queueing); now the config is refused."""
    cfg = copy.deepcopy(demo)
    cfg["fmriprep"].update(runner="apptainer", fs_license=str(tmp_path / "license.txt"))
    assert cfg["fmriprep"].get("image") is None or "://" not in cfg["fmriprep"]["image"]
    with pytest.raises(ConfigError, match=r"fmriprep\.image .*nipreps/fmriprep") as info:
        validate_config(cfg)
    assert "docker://nipreps/fmriprep" in (info.value.hint or "")
    cfg["fmriprep"]["image"] = str(tmp_path / "missing.sif")
    with pytest.raises(ConfigError, match=r"missing\.sif"):
        validate_config(cfg)
    sif = tmp_path / "fmriprep 25.2.7.sif"
    sif.write_bytes(b"sif")
    for image in (str(sif), "docker://nipreps/fmriprep:25.2.7", "library://x/y/z:1"):
        cfg["fmriprep"]["image"] = image
        assert validate_config(cfg)["fmriprep"]["image"] == image
    # docker takes the name; an existing runner runs no image.
    cfg["fmriprep"].update(runner="docker", image="nipreps/fmriprep:25.2.7")
    validate_config(cfg)


def test_an_fmriprep_writing_its_legacy_layout_is_refused_at_load(
    demo: dict, tmp_path: Path
) -> None:
    """fMRIPrep 20.2.x writes <out>/fmriprep/sub-X unless told --output-layout bids."""
    cfg = copy.deepcopy(demo)
    cfg["fmriprep"].update(
        runner="docker", fs_license=str(tmp_path / "license.txt"), image="nipreps/fmriprep:20.2.7"
    )
    with pytest.raises(
        ConfigError, match=r"fmriprep\.image 'nipreps/fmriprep:20\.2\.7' is"
    ) as info:
        validate_config(cfg)
    # The config's keys, the check being the config's.
    assert info.value.hint == (
        "Add --output-layout bids to fmriprep.extra_args, or set fmriprep.image to fMRIPrep "
        "21.0 or later."
    )
    cfg["fmriprep"]["extra_args"] = ["--output-layout", "bids"]
    validate_config(cfg)


def test_raw_bids_without_derivatives_under_runner_existing_names_the_config_key(
    demo: dict,
) -> None:
    """The hint said "(lcm run: --derivatives DIR)" inside a config check that plain snakemake
    users meet too; lcm run's --derivatives sets the runner and the folder at once, so the key
    (its dataset filled in) is the one fix for both."""
    cfg = copy.deepcopy(demo)
    cfg["fmriprep"]["runner"] = "existing"
    cfg["datasets"]["bidsdemo"].pop("derivatives", None)
    with pytest.raises(ConfigError, match=r"datasets\.bidsdemo\.derivatives is not set") as info:
        validate_config(cfg)
    assert info.value.hint == (
        "Set datasets.bidsdemo.derivatives to the fMRIPrep output folder, or set "
        "fmriprep.runner to docker or apptainer to run fMRIPrep."
    )


def test_existing_derivatives_in_the_legacy_layout_are_refused_at_load(
    demo: dict, tmp_path: Path
) -> None:
    """<out>/fmriprep/sub-X given as <out>: every run was 'fmriprep_outputs_missing', with a
    fix that did not say the outputs were one folder down."""
    (tmp_path / "out" / "fmriprep" / "sub-01").mkdir(parents=True)
    cfg = copy.deepcopy(demo)
    cfg["fmriprep"]["runner"] = "existing"
    cfg["datasets"]["bidsdemo"]["derivatives"] = str(tmp_path / "out")
    with pytest.raises(ConfigError, match=r"datasets\.bidsdemo\.derivatives .* legacy") as info:
        validate_config(cfg)
    assert (
        info.value.hint
        == f"Point datasets.bidsdemo.derivatives at {tmp_path / 'out' / 'fmriprep'}."
    )
    cfg["datasets"]["bidsdemo"]["derivatives"] = str(tmp_path / "out" / "fmriprep")
    validate_config(cfg)


@pytest.mark.parametrize("work", ["derivatives", "derivatives/work", "scratch"])
def test_a_work_folder_overlapping_the_derivatives_is_refused_at_load(
    demo: dict, tmp_path: Path, work: str
) -> None:
    """Each subject's work folder is removed after a complete run: one that is, or holds, its
    derivatives took the fMRIPrep outputs with it."""
    cfg = copy.deepcopy(demo)
    cfg["fmriprep"].update(runner="docker", fs_license=str(tmp_path / "license.txt"))
    derivatives = tmp_path / ("scratch/sub-01" if work == "scratch" else "derivatives")
    cfg["datasets"]["bidsdemo"]["derivatives"] = str(derivatives)
    cfg["fmriprep"]["work_dir"] = str(tmp_path / work)
    with pytest.raises(ConfigError, match=r"derivatives folder .* of datasets\.bidsdemo overlap"):
        validate_config(cfg)
    # Apart, or the derivatives in the work folder but in no subject's: accepted.
    for apart in ("work", "scratch"):
        cfg["fmriprep"]["work_dir"] = str(tmp_path / apart)
        cfg["datasets"]["bidsdemo"]["derivatives"] = str(tmp_path / "scratch" / "fmriprep")
        validate_config(cfg)


@pytest.mark.parametrize("runner", ["docker", "apptainer"])
def test_a_container_work_folder_inside_the_bids_folder_is_refused_at_load(
    demo: dict, tmp_path: Path, runner: str
) -> None:
    """results_dir in BIDS/derivatives put the default work folder inside the BIDS folder:
    each subject failed at its fMRIPrep job instead (fmriprep-docker refuses it)."""
    bids = tmp_path / "raw study's"
    cfg = copy.deepcopy(demo)
    cfg["datasets"]["bidsdemo"]["path"] = str(bids)
    cfg["fmriprep"].update(runner=runner, fs_license=str(tmp_path / "license.txt"))
    if runner == "apptainer":
        cfg["fmriprep"]["image"] = "docker://nipreps/fmriprep:25.2.7"
    cfg["results_dir"] = str(bids / "derivatives" / "lcm")
    with pytest.raises(
        ConfigError, match=r"work folder .*work/fmriprep \(fmriprep\.work_dir unset"
    ) as info:
        validate_config(cfg)
    assert "lies inside datasets.bidsdemo.path" in str(info.value)
    assert "Set fmriprep.work_dir" in (info.value.hint or "")
    cfg["fmriprep"]["work_dir"] = str(bids / "code" / "work")
    with pytest.raises(ConfigError, match=r"fmriprep\.work_dir .*code/work lies inside"):
        validate_config(cfg)
    cfg["fmriprep"]["work_dir"] = str(tmp_path / "scratch" / "work")
    assert validate_config(cfg)["fmriprep"]["work_dir"] == cfg["fmriprep"]["work_dir"]
    # An existing runner only reads derivatives: no work folder.
    cfg["fmriprep"].update(runner="existing", work_dir=None)
    validate_config(cfg)


def test_load_config_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_load_config_reports_yaml_syntax(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("datasets: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


@pytest.mark.parametrize(
    ("datasets", "what"),
    [
        ("datasets: {}", "datasets is empty"),
        ("datasets:\n  # mystudy: {}", "datasets is empty"),
        # No key at all said "Add 'datasets': Datasets entering the workflow, by name ...",
        # the key's description: neither the file nor an example.
        ("", "no datasets key"),
    ],
)
def test_a_config_without_datasets_names_the_file_and_what_to_add(
    demo: dict, tmp_path: Path, datasets: str, what: str
) -> None:
    """It said only "invalid value at key 'datasets': {} should be non-empty" and quoted the
    key's description: not what a dataset needs, nor where the example is."""
    p = tmp_path / "c.yaml"
    p.write_text(f"results_dir: results\n{datasets}\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert info.value.message == f"{p}: {what}: the workflow needs at least one dataset to run on."
    hint = info.value.hint
    assert '(config/README.md, "Pointing the workflow at your data"' not in hint
    assert 'config/README.md, "Pointing the workflow at your data", has a complete' in hint
    assert "## Pointing the workflow at your data" in (ROOT / "config" / "README.md").read_text()
    # The example is a minimal dataset the config takes as it is (under the default
    # fmriprep.runner), its paths made real: the schema's required keys and no other.
    example = yaml.safe_load(hint.split("`")[1])["datasets"]["mystudy"]
    node = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert sorted(example) == sorted(
        node["properties"]["datasets"]["additionalProperties"]["required"]
    )
    cfg = copy.deepcopy(demo)
    cfg.pop("fmriprep", None)
    cfg["tasks"] = {}
    cfg["datasets"] = {"mystudy": {**example, "path": str(tmp_path), "phenotype": str(p)}}
    assert validate_config(cfg)["datasets"]["mystudy"]["entry"] == example["entry"]


@pytest.mark.parametrize("key", ["results_dir", "variables"])
def test_braces_in_workflow_paths_are_refused(demo: dict, key: str) -> None:
    # Snakemake would read {x} in an output path as a wildcard.
    bad = copy.deepcopy(demo)
    bad[key] = "results/{x}"
    with pytest.raises(ConfigError, match=rf"key '{key}': expected a value matching"):
        validate_config(bad)


def test_free_paths_accept_spaces_and_quotes(demo: dict, tmp_path) -> None:
    cfg = copy.deepcopy(demo)
    cfg["results_dir"] = 'my results/it\'s "here"'
    for task in ("autism", "autismnull"):
        cfg["tasks"][task]["positive"] = "autism spectrum"  # a level with an inner space
    catalogue = tmp_path / "it's variables.yaml"
    text = (ROOT / "config" / "variables.yaml").read_text()
    text = text.replace("[control, autism]", "[control, autism spectrum]")
    # The maps to the level too (a map value that is no level is refused at load).
    assert '"1": autism,' in text
    catalogue.write_text(text.replace('"1": autism,', '"1": "autism spectrum",'))
    cfg["variables"] = str(catalogue)
    assert validate_config(cfg)["results_dir"] == cfg["results_dir"]


def test_received_value_is_a_bounded_excerpt(demo: dict) -> None:
    bad = copy.deepcopy(demo)
    bad["seed"] = {"k": list(range(100_000))}
    with pytest.raises(ConfigError, match="key 'seed'") as info:
        validate_config(bad)
    assert "\n" not in info.value.message and len(info.value.message) < 500


def test_labels_only_atlas_is_for_roi_level_datasets(tmp_path) -> None:
    """A labels TSV alone parcellates nothing: refused at load when a dataset is voxel-level."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["atlas"] = {"name": "aal2", "labels": str(tmp_path / "aal2.tsv"), "seg": "AAL2"}
    with pytest.raises(ConfigError, match=r"labels-only atlas, but datasets \['bidsdemo'\]"):
        validate_config(cfg)
    cfg["datasets"] = {k: v for k, v in cfg["datasets"].items() if v["entry"] == "roi_timeseries"}
    kept = cfg["datasets"]
    cfg["synth"]["consortia"] = {k: v for k, v in cfg["synth"]["consortia"].items() if k in kept}
    cfg["tasks"] = {k: v for k, v in cfg["tasks"].items() if v["dataset"] in kept}
    assert validate_config(cfg)["atlas"]["seg"] == "AAL2"


@pytest.mark.parametrize("space", ["fsLR", "fsaverage5", "fsnative"])
def test_a_surface_output_space_is_refused_for_voxel_datasets(demo: dict, space: str) -> None:
    """fMRIPrep's surface outputs cannot be parcellated with an atlas image: refused at load,
    naming the setting and the fix, not found run by run after fMRIPrep ran for hours."""
    bad = copy.deepcopy(demo)
    bad["fmriprep"]["output_space"] = space
    match = rf"fmriprep.output_space '{space}' is a surface space, but datasets \['bidsdemo'\]"
    with pytest.raises(ConfigError, match=match) as caught:
        validate_config(bad)
    assert "volumetric template" in caught.value.hint and "roi_timeseries" in caught.value.hint
    # The config's user is told the key to set, not the command-line options.
    assert caught.value.hint.startswith("Set fmriprep.output_space to")
    assert "--" not in caught.value.hint
    # The ROI way in by the dataset's own keys (the schema's space.include), no placeholder.
    assert "datasets.bidsdemo.entry: roi_timeseries" in caught.value.hint
    assert "(ingest.select.bidsdemo.space.include chooses one)" in caught.value.hint
    # A volumetric space other than the default stays accepted.
    bad["fmriprep"]["output_space"] = "MNI152NLin6Asym"
    assert validate_config(bad)["fmriprep"]["output_space"] == "MNI152NLin6Asym"


def test_a_surface_space_is_free_for_roi_level_datasets(demo: dict) -> None:
    """XCP-D's surface time series (space-fsLR) enter as roi_timeseries: no voxel dataset, no
    refusal."""
    cfg = copy.deepcopy(demo)
    cfg["datasets"] = {k: v for k, v in cfg["datasets"].items() if v["entry"] == "roi_timeseries"}
    kept = cfg["datasets"]
    cfg["synth"]["consortia"] = {k: v for k, v in cfg["synth"]["consortia"].items() if k in kept}
    cfg["tasks"] = {k: v for k, v in cfg["tasks"].items() if v["dataset"] in kept}
    cfg["fmriprep"]["output_space"] = "fsLR"
    assert validate_config(cfg)["fmriprep"]["output_space"] == "fsLR"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"label": "diagnosis"}, r"tasks.autism|Task 'autism': label 'diagnosis' is not in"),
        ({"positive": "ASD"}, r"Task 'autism'.*'ASD' among its levels"),
    ],
)
def test_task_labels_are_checked_against_the_catalogue_at_load(
    demo: dict, change: dict, match: str
) -> None:
    """A task whose label the catalogue lacks failed in the splits job, after connectomes and
    store had run (`snakemake -n` passed); now the config is refused when it loads."""
    cfg = copy.deepcopy(demo)
    cfg["tasks"]["autism"].update(change)
    with pytest.raises(ConfigError, match=match) as info:
        validate_config(cfg)
    assert "tasks." in (info.value.hint or "")


def test_task_dataset_must_code_the_label(demo: dict, tmp_path) -> None:
    cfg = copy.deepcopy(demo)
    text = (ROOT / "config" / "variables.yaml").read_text()
    catalogue = tmp_path / "variables.yaml"
    marker = "  abidelike:\n    id_column: SUB_ID\n    site_column: SITE_ID\n    columns:\n"
    row = '      autism: {column: DX_GROUP, map: {"1": autism, "2": control}}\n'
    assert marker + row in text
    catalogue.write_text(text.replace(marker + row, marker))
    cfg["variables"] = str(catalogue)
    with pytest.raises(ConfigError, match=r"codes no 'autism' column for dataset 'abidelike'"):
        validate_config(cfg)


def test_a_binary_task_label_coded_for_pretraining_is_refused_for_lcm_models(
    demo: dict, tmp_path
) -> None:
    """The checkpoint would predict the diagnosis as a BEI variable and finetuning refuses it,
    after pretraining (hours on a GPU): refused at load. Baselines only, or a continuous label
    (age, read from the pretrained head), are fine."""
    text = (ROOT / "config" / "variables.yaml").read_text()
    marker = "  hcplike:\n    id_column: Subject\n    columns:\n"
    assert marker in text
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(text.replace(marker, marker + "      autism: {column: ASD}\n"))
    cfg = copy.deepcopy(demo)
    cfg["variables"] = str(catalogue)
    with pytest.raises(ConfigError, match=r"pretraining datasets \['hcplike'\] code 'autism'") as e:
        validate_config(cfg)
    # The dataset's key filled in (it said datasets.<name>.columns of ['hcplike']).
    assert e.value.hint.startswith(f"Remove autism from datasets.hcplike.columns in {catalogue}, ")
    for task in ("autism", "autismnull"):
        cfg["tasks"][task]["models"] = ["logreg", "bei-linear"]
    assert validate_config(cfg)["tasks"]["age"]["label"] == "age"


def test_a_roi_timeseries_dataset_may_change_denoise_keys_for_itself(demo: dict) -> None:
    """XCP-D time series are already filtered: denoising them again with the section's band-pass
    gave other connectomes than XCP-D's relmats of the same series."""
    from lcm.config import dataset_denoise

    demo["denoise"] = {"strategy": "36P", "high_pass": 0.009}
    demo["datasets"]["hcplike"]["denoise"] = {"high_pass": None, "low_pass": None}
    cfg = validate_config(demo)
    # Only the keys given: the section's values (and defaults) fill the rest.
    assert cfg["datasets"]["hcplike"]["denoise"] == {"high_pass": None, "low_pass": None}
    own = dataset_denoise(cfg, "hcplike")
    assert own == {**cfg["denoise"], "high_pass": None, "low_pass": None}
    assert own["strategy"] == "36P" and own["detrend"] == cfg["denoise"]["detrend"]
    assert dataset_denoise(cfg, "ukblike") == cfg["denoise"]
    # Checked like the section's keys.
    demo["datasets"]["hcplike"]["denoise"] = {"high_pass": "x"}
    with pytest.raises(ConfigError, match=r"datasets\.hcplike\.denoise\.high_pass"):
        validate_config(demo)
    demo["datasets"]["hcplike"]["denoise"] = {"strategy": "99P"}
    with pytest.raises(ConfigError, match=r"datasets\.hcplike\.denoise\.strategy"):
        validate_config(demo)
    # Voxel-level datasets take the section as it is.
    demo["datasets"]["hcplike"]["denoise"] = {}
    demo["datasets"]["bidsdemo"]["denoise"] = {"high_pass": None}
    with pytest.raises(ConfigError, match=r"datasets\.bidsdemo\.denoise is given.*voxel-level"):
        validate_config(demo)


@pytest.mark.parametrize(
    ("atlas", "space", "refused"),
    [
        (
            {"name": "aal116"},
            "MNI152NLin6Asym",
            "registry atlas 'aal116' is in 'MNI152NLin2009cAsym'",
        ),
        ({"name": "aal116"}, "MNI152NLin2009cAsym:res-2", None),
        ({"name": "power264"}, "MNI152NLin6Asym", "registry atlas 'power264'"),
        (
            {
                "name": "schaefer",
                "templateflow": {"template": "MNI152NLin6Asym", "atlas": "Schaefer2018"},
            },
            "MNI152NLin2009cAsym",
            "atlas.templateflow.template is in 'MNI152NLin6Asym'",
        ),
        (
            {
                "name": "schaefer",
                "templateflow": {"template": "MNI152NLin6Asym", "atlas": "Schaefer2018"},
            },
            "MNI152NLin6Asym:res-2",
            None,
        ),
    ],
)
def test_voxel_datasets_in_another_space_than_the_atlas_are_refused_when_the_workflow_loads(
    demo: dict, atlas: dict, space: str, refused: str | None, tmp_path: Path, monkeypatch
) -> None:
    """The connectome stage excluded every run of another space, one by one, after fMRIPrep;
    the workflow's plan refuses the pair when it loads, naming the setting and the fix."""
    from lcm.workflow.plan import WorkflowPlan

    if "templateflow" in atlas:  # loaded when the workflow loads: a TemplateFlow tree
        folder = tmp_path / "tpl-MNI152NLin6Asym"
        folder.mkdir()
        toy = _toy_atlas(folder, "tpl-MNI152NLin6Asym_atlas-Schaefer2018_dseg.nii.gz")
        Path(toy["labels"]).rename(folder / "tpl-MNI152NLin6Asym_atlas-Schaefer2018_dseg.tsv")
        monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path))
    cfg = copy.deepcopy(demo)
    cfg["atlas"] = atlas
    cfg["fmriprep"]["output_space"] = space
    cfg = validate_config(cfg)
    if refused is None:
        WorkflowPlan(cfg)
        return
    with pytest.raises(ConfigError, match=rf"fmriprep.output_space is '\w+' but the {refused}"):
        WorkflowPlan(cfg)
    cfg["datasets"] = {k: v for k, v in cfg["datasets"].items() if v["entry"] == "roi_timeseries"}
    WorkflowPlan(cfg)  # no voxel dataset: the space is not read


def _toy_atlas(root: Path, image: str) -> dict:
    """A user atlas section: a 3-label image saved as ``image`` in ``root``, and its table."""
    import nibabel as nib
    import numpy as np

    data = np.zeros((5, 6, 7), dtype=np.int16)
    data[:2], data[2:4, :3], data[4] = 1, 2, 3
    nib.save(nib.Nifti1Image(data, np.eye(4)), root / image)
    (root / "toy.tsv").write_text("index\tname\n1\tA\n2\tB\n3\tC\n")
    return {"name": "toy", "path": str(root / image), "labels": str(root / "toy.tsv")}


@pytest.mark.parametrize(
    ("image", "refused"),
    [
        ("tpl-MNI152NLin6Asym_atlas-Toy_res-02_dseg.nii.gz", "MNI152NLin6Asym"),
        ("space-MNI152NLin6Asym_atlas-Toy_dseg.nii.gz", "MNI152NLin6Asym"),
        ("tpl-MNI152NLin2009cAsym_atlas-Toy_res-02_dseg.nii.gz", None),
        ("toy.nii.gz", None),  # no template in its name: not checked
    ],
)
def test_a_user_atlas_in_the_template_its_name_says_is_checked_when_the_workflow_loads(
    demo: dict, tmp_path: Path, image: str, refused: str | None
) -> None:
    """XCP-D's atlases (tpl-MNI152NLin6Asym_...) beside runs in MNI152NLin2009cAsym: refused
    when the workflow loads, as a TemplateFlow atlas is, not parcellated in the wrong space."""
    from lcm.workflow.plan import WorkflowPlan

    cfg = copy.deepcopy(demo)
    cfg["atlas"] = _toy_atlas(tmp_path, image)
    cfg["fmriprep"]["output_space"] = "MNI152NLin2009cAsym:res-2"
    cfg = validate_config(cfg)
    if refused is None:
        WorkflowPlan(cfg)
        return
    with pytest.raises(
        ConfigError, match=rf"but the atlas.path '.*{image}' \(its name\) is in '{refused}'"
    ):
        WorkflowPlan(cfg)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda a: a.update(path=a["path"] + ".gone"), r"file not found: .*toy.nii.gz.gone"),
        (
            lambda a: Path(a["labels"]).write_text("index\tname\n1\tA\n2\tB\n"),
            r"labels .*toy.tsv do not match image .*toy.nii.gz: in the image only \[3\]",
        ),
    ],
    ids=["missing-image", "table-not-the-image's"],
)
def test_a_user_atlas_is_loaded_when_the_workflow_loads(
    demo: dict, tmp_path: Path, edit, message: str
) -> None:
    """A missing atlas file or a table of another image failed only in the connectome jobs,
    after fMRIPrep (or, after a finished run, went unseen: "Nothing to be done")."""
    from lcm.workflow.plan import WorkflowPlan

    cfg = copy.deepcopy(demo)
    cfg["atlas"] = _toy_atlas(tmp_path, "toy.nii.gz")
    WorkflowPlan(validate_config(copy.deepcopy(cfg)))
    edit(cfg["atlas"])
    with pytest.raises(ConfigError, match=rf"^config: atlas: Atlas ('toy': )?{message}"):
        WorkflowPlan(validate_config(cfg))
    cfg["datasets"] = {k: v for k, v in cfg["datasets"].items() if v["entry"] != "bids"}
    cfg["datasets"] = {k: v for k, v in cfg["datasets"].items() if v["entry"] != "fmriprep"}
    with pytest.raises(ConfigError, match=message):
        WorkflowPlan(validate_config(cfg))  # also without voxel datasets
    # A job's own process (a SLURM job re-reading the Snakefile) does not read them again.
    WorkflowPlan(validate_config(cfg), check_files=False)


def test_the_ridge_maps_threshold_defaults_to_the_fits_and_refuses_a_non_count(demo) -> None:
    """evaluate.bei_linear_min_values: the training values a bei-linear ridge map needs
    (rule bei_maps' --min-values). Its default is lcm.train.bei_maps's (one owner, as lcm
    bei-maps's is); 0 or a fraction stops the load naming the key."""
    from lcm.train.bei_maps import MIN_TRAIN_VALUES

    assert validate_config(demo)["evaluate"]["bei_linear_min_values"] == MIN_TRAIN_VALUES == 20
    for bad in (0, 2.5, "20"):
        cfg = copy.deepcopy(demo)
        cfg["evaluate"]["bei_linear_min_values"] = bad
        with pytest.raises(ConfigError, match=r"evaluate\.bei_linear_min_values"):
            validate_config(cfg)
    cfg = copy.deepcopy(demo)
    cfg["evaluate"]["bei_linear_min_values"] = 5
    assert validate_config(cfg)["evaluate"]["bei_linear_min_values"] == 5


ABIDE = {"metric": "accuracy", "range": [0.65, 0.72], "source": "Author et al. 2020"}


def test_a_published_reference_range_is_optional_and_kept(demo: dict) -> None:
    """tasks.<name>.reference: none by default (the demo's tasks are synthetic); a binary
    task takes a binary metric's range, a continuous one (age) Pearson r's or R²'s."""
    assert not any("reference" in t for t in validate_config(demo)["tasks"].values())
    cfg = copy.deepcopy(demo)
    cfg["tasks"]["autism"]["reference"] = ABIDE
    cfg["tasks"]["age"]["reference"] = {"metric": "r2", "range": [-0.2, 0.3], "source": "x"}
    tasks = validate_config(cfg)["tasks"]
    assert tasks["autism"]["reference"] == ABIDE
    assert tasks["age"]["reference"]["range"] == [-0.2, 0.3]


@pytest.mark.parametrize(
    ("task", "change", "key", "expected"),
    [
        ("autism", {"range": [0.72, 0.65]}, "range", "low < high"),
        ("autism", {"range": [0.7, 0.7]}, "range", "low < high"),
        ("autism", {"range": [0.5, 1.2]}, "range", r"within \[0, 1\]"),
        ("age", {"metric": "pearson_r", "range": [-1.5, 0.3]}, "range", r"within \[-1, 1\]"),
        ("autism", {"range": [0.6, float("inf")]}, r"range\.1", "not a finite number"),
        ("autism", {"range": [0.6]}, "range", "too short"),
        ("autism", {"range": [0.6, "0.7"]}, r"range\.1", "not of type 'number'"),
        ("autism", {"metric": "pearson_r"}, "metric", "binary task does not measure"),
        ("age", {"metric": "auc"}, "metric", "continuous task does not measure"),
        ("autism", {"metric": "mae"}, "metric", "is not one of"),
        ("autism", {"source": ""}, "source", "at least 1 characters"),
    ],
)
def test_a_bad_reference_range_names_its_key(
    demo: dict, task: str, change: dict, key: str, expected: str
) -> None:
    cfg = copy.deepcopy(demo)
    cfg["tasks"][task]["reference"] = {**ABIDE, **change}
    where = rf"tasks\.{task}\.reference" + (rf"\.{key}" if key else "")
    with pytest.raises(ConfigError, match=rf"key '{where}'.*{expected}") as info:
        validate_config(cfg)
    assert "\n" not in info.value.message


def test_a_reference_range_without_its_source_is_refused(demo: dict) -> None:
    """The range is the user's to cite: it never reaches the report without a source."""
    cfg = copy.deepcopy(demo)
    cfg["tasks"]["autism"]["reference"] = {"metric": "auc", "range": [0.65, 0.72]}
    with pytest.raises(ConfigError, match=r"key 'tasks\.autism\.reference'.*'source'"):
        validate_config(cfg)
    cfg["tasks"]["autism"]["reference"] = {**ABIDE, "cite": "x"}
    with pytest.raises(ConfigError, match=r"unknown key 'cite' under 'tasks\.autism\.reference'"):
        validate_config(cfg)
