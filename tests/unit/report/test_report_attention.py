"""The report's brain maps of the diagnosis queries' attention (tables as ``lcm embed`` writes)."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.report import run_report

from lcm.atlas import NO_SPACE, Atlas, atlas_files, labels_only_atlas, load_atlas
from lcm.exceptions import AtlasError, InputDataError
from lcm.io.provenance import provenance_path
from lcm.model.export_tables import read_attention_table
from lcm.report.attention import attention_brain_figure, attention_section

LABEL = {"name": "autism", "levels": ["control", "autism"], "positive": "autism"}


def _attention_table(path, roi_names, label=LABEL, hot=(0, 5)) -> None:
    """Runs x queries rows, one column per ROI; the positive query attends to ``hot`` ROIs."""
    rng = np.random.default_rng(0)
    queries = ["age", "sex=F", "sex=M"] + [f"{label['name']}={lv}" for lv in label["levels"]]
    rows = []
    for run in range(7):
        for query in queries:
            w = rng.random(len(roi_names))
            if query.endswith("=autism"):
                w[list(hot)] += 20.0
            weights = dict(zip(roi_names, w / w.sum(), strict=True))
            ids = {"dataset": "abidelike", "subject": f"s{run}", "task": "rest", "query": query}
            rows.append({**ids, **weights})
    table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
    meta = {**(table.schema.metadata or {}), b"lcm.label": json.dumps(label).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


def test_section_maps_each_diagnosis_query(tmp_path, atlas):
    names = atlas.labels["name"].astype(str).tolist()
    path = tmp_path / "task-autism_attention.parquet"
    _attention_table(path, names)
    frame, rois, label = read_attention_table(path)
    assert rois == names and label == LABEL and len(frame) == 35
    section = attention_section([path], atlas)
    assert "Task: autism" in section
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', section)
    alts = [alt for alt, _ in images]
    assert [alt.split(" over ")[0] for alt in alts] == [
        "autism: mean attention of query autism=control",
        "autism: mean attention of query autism=autism",
    ]
    # Built from the data: how many ROIs and runs, and the ROI attended most.
    assert f"over {len(names)} ROIs, mean of 7 runs" in alts[1]
    assert re.search(rf"most attended ({names[0]}|{names[5]}) \(\d+\.\dx", alts[1])
    # The strongly attended ROIs are named first among the top ROIs of the positive query.
    assert f"{names[0]} (" in section and f"{names[5]} (" in section


def test_rois_outside_the_atlas_give_a_warning_not_a_crash(tmp_path, atlas):
    path = tmp_path / "task-toy_attention.parquet"
    _attention_table(path, [f"roi{i}" for i in range(9)])
    section = attention_section([path], atlas)
    assert "not regions of atlas aal116" in section and "<img" not in section
    embeddings = tmp_path / "emb.parquet"
    pq.write_table(pa.table({"subject": ["a"], "emb_000": [0.1]}), embeddings)
    with pytest.raises(InputDataError, match="no 'query' column"):
        read_attention_table(embeddings)


@pytest.mark.slow
def test_report_embeds_the_brain_maps(inputs, tmp_path, atlas):
    path = tmp_path / "task-autism_attention.parquet"
    _attention_table(path, atlas.labels["name"].astype(str).tolist())
    out = run_report(
        inputs, tmp_path / "report", ["--attention", str(path), "--atlas-name", "aal116"]
    )
    page = out["html"].read_text()
    assert 'id="attention"' in page and "autism=autism" in page
    from matplotlib.image import imread

    maps = re.findall(
        r'<img alt="autism: mean attention of [^"]*" src="data:image/png;base64,([^"]+)"', page
    )
    assert len(maps) == 2
    for data in maps:
        pixels = imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[0] > 100 and pixels.std() > 0
    # The atlas files the maps were drawn from are among the page's recorded inputs.
    sources = json.loads(provenance_path(out["html"]).read_text())["Sources"]
    atlas_inputs = {str(p) for p in atlas_files("aal116")}
    assert atlas_inputs and atlas_inputs <= set(sources)
    plain = run_report(inputs, tmp_path / "plain")["html"]
    assert 'id="attention"' not in plain.read_text()
    assert not atlas_inputs & set(json.loads(provenance_path(plain).read_text())["Sources"])


@pytest.fixture(scope="module")
def labels_only(tmp_path_factory, atlas):
    """aal116's names in a labels TSV alone: an atlas with no image and no coordinates."""
    path = tmp_path_factory.mktemp("labels") / "labels.tsv"
    atlas.labels[["index", "name"]].to_csv(path, sep="\t", index=False)
    return labels_only_atlas("mine", path)


def test_an_atlas_without_coordinates_lists_the_top_rois_without_a_map(tmp_path, labels_only):
    """Every centroid of a labels-only atlas is NaN: drawing them raised on an empty array
    (``w.max()``), and the report was not written."""
    names = labels_only.roi_names
    path = tmp_path / "task-autism_attention.parquet"
    _attention_table(path, names)
    section = attention_section([path], labels_only)
    assert "<img" not in section
    assert "No brain map: atlas mine has no ROI coordinates" in section
    assert "given by its labels alone" in section
    assert section.count("Top ROIs of autism=") == 2
    assert f"{names[0]} (" in section and f"{names[5]} (" in section


@pytest.mark.slow
def test_report_is_written_with_an_atlas_given_by_labels_alone(inputs, tmp_path, labels_only):
    path = tmp_path / "task-autism_attention.parquet"
    _attention_table(path, labels_only.roi_names)
    labels = labels_only.files[0]
    extra = ["--attention", str(path), "--atlas", "mine", "--atlas-labels", labels]
    page = run_report(inputs, tmp_path / "report", extra)["html"].read_text()
    assert 'id="attention"' in page and "has no ROI coordinates" in page
    assert "Top ROIs of autism=autism" in page and 'id="qc"' in page


@pytest.mark.slow
def test_report_refuses_a_one_line_text_file_as_the_atlas_labels(inputs, tmp_path, labels_only):
    """A text file that is not a labels table was read as one name per line: an atlas of one
    region, the maps dropped with only "not regions of atlas mine" said on the page."""
    path = tmp_path / "task-autism_attention.parquet"
    _attention_table(path, labels_only.roi_names)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello, I am text\n")
    extra = ["--attention", str(path), "--atlas", "mine", "--atlas-labels", str(notes)]
    with pytest.raises(AtlasError, match=r"notes\.txt names one region \('hello, I am text'\)"):
        run_report(inputs, tmp_path / "report", extra)
    assert not (tmp_path / "report" / "report" / "index.html").exists()


def test_a_probe_on_an_atlas_without_coordinates_keeps_its_coefficients(tmp_path, labels_only):
    path = tmp_path / "task-autism_attention.parquet"
    _attention_table(path, labels_only.roi_names, label={**LABEL, "levels": []})
    probe = {"features": "bei", "coef": {"age": 2.0, "sex=M": -0.5}}
    table = pq.read_table(path)
    meta = {**table.schema.metadata, b"lcm.label": json.dumps({**LABEL, "probe": probe}).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)
    section = attention_section([path], labels_only)
    assert "<img" not in section and "has no ROI coordinates" in section
    assert "age +2.00, sex=M -0.50" in section and "Top ROIs:" in section


def test_rois_without_coordinates_are_left_off_the_map_and_said_so(tmp_path):
    names = [f"roi{i}" for i in range(9)]
    xyz = np.random.default_rng(1).uniform(-60, 60, size=(9, 3))
    xyz[[2, 7]] = np.nan
    labels = pd.DataFrame({"index": range(1, 10), "name": names})
    labels[["x", "y", "z"]] = xyz
    partial = Atlas(name="part", img=None, labels=labels, space=NO_SPACE)
    path = tmp_path / "task-autism_attention.parquet"
    _attention_table(path, names)
    section = attention_section([path], partial)
    assert section.count("<img") == 2
    assert "2 of 9 ROIs of atlas part have no coordinates" in section


def test_the_figure_refuses_centroids_it_cannot_draw():
    with pytest.raises(ValueError, match="no ROI has coordinates"):
        attention_brain_figure(np.full(3, 1 / 3), np.full((3, 3), np.nan), "t")


def test_a_level_no_run_attends_with_is_said_not_raised(tmp_path, atlas):
    path = tmp_path / "task-autism_attention.parquet"
    _attention_table(path, atlas.roi_names)
    table = pq.read_table(path)
    levels = {**LABEL, "levels": ["control", "autism", "asperger"]}
    meta = {**table.schema.metadata, b"lcm.label": json.dumps(levels).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)
    section = attention_section([path], atlas)
    assert section.count("<img") == 2 and "No run attends with autism=asperger" in section


def test_a_probe_model_maps_the_bei_queries_it_reads(tmp_path, atlas):
    names = atlas.labels["name"].astype(str).tolist()
    # A probe's attention table has no diagnosis query: only the pretrained BEI queries.
    probe = {"features": "bei", "coef": {"age": 2.0, "sex=F": 0.0, "sex=M": -0.5}}
    path = tmp_path / "task-autism_attention.parquet"
    _attention_table(path, names, label={**LABEL, "levels": []})
    table = pq.read_table(path)
    meta = {**table.schema.metadata, b"lcm.label": json.dumps({**LABEL, "probe": probe}).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)
    frame, rois, _ = read_attention_table(path)
    section = attention_section([path], atlas)
    assert section.count("<img") == 1
    assert (
        "autism: attention of the probe" in section and "linear probe of the pretrained" in section
    )
    assert "age +2.00, sex=M -0.50, sex=F +0.00" in section
    # The map is the |coefficient|-weighted mean of the queries' attention (age 0.8, sex=M 0.2).
    from lcm.report.attention import mean_query_attention

    expected = 0.8 * mean_query_attention(frame, "age", rois) + 0.2 * mean_query_attention(
        frame, "sex=M", rois
    )
    top = names[int(np.argmax(expected))]
    assert f"{top} (" in section


def test_an_embedding_probe_says_it_has_no_map(tmp_path, atlas):
    path = tmp_path / "task-autism_attention.parquet"
    label = {**LABEL, "probe": {"features": "embedding"}}
    _attention_table(path, atlas.labels["name"].astype(str).tolist(), label={**LABEL, "levels": []})
    table = pq.read_table(path)
    meta = {**table.schema.metadata, b"lcm.label": json.dumps(label).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)
    section = attention_section([path], atlas)
    assert "<img" not in section and "no attention map" in section


def test_the_brain_maps_record_a_templateflow_atlas_files(tmp_path, atlas, monkeypatch):
    """A TemplateFlow atlas's files were no input of the page (its brain maps were drawn from
    them); now they are, as found in TEMPLATEFLOW_HOME, as the connectome sidecars list them."""
    import argparse

    from helpers.connectome import templateflow_atlas

    from lcm.commands import report as report_cmd

    image, table = templateflow_atlas(tmp_path / "tf", atlas)
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "tf"))
    query = json.dumps({"template": "MNI152NLin2009cAsym", "atlas": "Toy"})
    args = argparse.Namespace(
        attention=[str(tmp_path / "task-toy_attention.parquet")],
        atlas="toy",
        atlas_path=None,
        atlas_labels=None,
        atlas_seg=None,
        atlas_templateflow=query,
    )
    assert report_cmd._atlas_inputs(args) == [str(image), str(table)]
    assert report_cmd._atlas_inputs(argparse.Namespace(**{**vars(args), "attention": []})) == []


def _marks(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes[:3] for t in ax.texts]


def test_maps_mark_the_hemispheres_and_share_one_colour_scale(tmp_path, atlas, monkeypatch):
    import lcm.report.attention as attention

    drawn = []
    original = attention.attention_brain_figure

    def spy(*args, **kwargs):
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(attention, "attention_brain_figure", spy)
    path = tmp_path / "task-autism_attention.parquet"
    _attention_table(path, atlas.labels["name"].astype(str).tolist())
    attention_section([path], atlas)
    assert len(drawn) == 2
    # Sagittal posterior/anterior; coronal and axial left/right (MNI x grows to the right).
    assert _marks(drawn[0]) == ["P", "A", "L", "R", "L", "R"]
    limits = {ax.collections[0].get_clim() for fig in drawn for ax in fig.axes[:3]}
    assert len(limits) == 1  # the control and autism queries on one colour scale
    low, high = limits.pop()
    assert high > 2 > 1 > low  # the autism query's hot ROIs set the top of both maps


def test_a_dollar_in_a_title_or_roi_name_is_not_math():
    fig = attention_brain_figure(
        np.full(3, 1 / 3), np.eye(3) * 10, "task $x$", roi_names=["$a$", "b", "c"]
    )
    title = next(t for t in fig.texts if "$" in t.get_text())
    assert "$x$" in title.get_text() and "$a$" in title.get_text() and not title.get_parse_math()
