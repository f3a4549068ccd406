"""``lcm embed``'s tables round-trip through their one owner, lcm.model.export_tables."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from lcm.exceptions import InputDataError
from lcm.model.export_tables import (
    CHECKPOINT_KEY,
    read_attention_table,
    write_export_table,
)

LABEL = {"name": "dx", "levels": ["control", "patient"], "positive": "patient"}


def _attention() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject": ["01", "01"],
            "query": ["dx=patient", "age"],
            "ROI_A": [0.25, 0.5],
            "ROI_B": [0.75, 0.5],
        }
    )


def test_attention_table_round_trips_label_and_absolute_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir()
    write_export_table(
        _attention(),
        "att.parquet",
        checkpoint="ckpt",
        weights_sha256="ab" * 32,
        atlas="aal116",
        label=LABEL,
    )
    frame, rois, label = read_attention_table(tmp_path / "att.parquet")
    assert rois == ["ROI_A", "ROI_B"]
    assert label == LABEL
    assert frame["query"].tolist() == ["dx=patient", "age"]
    meta = pq.read_schema(tmp_path / "att.parquet").metadata
    # Relative on the command line, absolute in the table: it is read from other folders.
    assert meta[CHECKPOINT_KEY].decode() == str(tmp_path / "ckpt")
    assert sorted(os.listdir(tmp_path)) == ["att.parquet", "ckpt"]  # no temporary left


def test_pretrained_label_is_none_and_embeddings_table_is_refused(tmp_path):
    emb = pd.DataFrame({"subject": ["01"], "emb_000": [0.1]})
    write_export_table(
        emb,
        tmp_path / "emb.parquet",
        checkpoint=tmp_path,
        weights_sha256="",
        atlas="aal116",
        label=None,
    )
    with pytest.raises(InputDataError, match="no 'query' column"):
        read_attention_table(tmp_path / "emb.parquet")
    write_export_table(
        _attention(),
        tmp_path / "att.parquet",
        checkpoint=tmp_path,
        weights_sha256="",
        atlas="aal116",
        label=None,
    )
    assert read_attention_table(tmp_path / "att.parquet")[2] is None


def test_identifiers_without_a_value_keep_their_types(tmp_path):
    """Runs with no session and no empty ROI wrote ``session: null`` and ``empty_rois:
    list<null>``: the schema changed with the data, and two embed tables did not union."""
    frame = _attention()
    frame.insert(1, "session", [None, None])
    frame.insert(2, "empty_rois", [[], []])
    path = tmp_path / "att.parquet"
    write_export_table(
        frame, path, checkpoint=tmp_path, weights_sha256="ab" * 32, atlas="aal116", label=None
    )
    schema = pq.read_schema(path)
    assert str(schema.field("session").type) == "string"
    assert str(schema.field("empty_rois").type) in ("list<item: string>", "list<element: string>")
    assert str(schema.field("ROI_A").type) == "double"
    back, rois, _ = read_attention_table(path)
    assert rois == ["ROI_A", "ROI_B"] and back["empty_rois"].map(len).tolist() == [0, 0]


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("missing", "it does not exist"),
        ("folder", "it is a folder"),
        ("empty", "Parquet file size is 0 bytes"),
        ("text", "magic bytes not found"),
        ("truncated", "magic bytes not found"),
    ],
)
def test_an_unreadable_attention_table_says_why_and_what_to_pass(tmp_path, case, said):
    path = tmp_path / "att.parquet"
    write_export_table(
        _attention(), path, checkpoint=tmp_path, weights_sha256="", atlas="aal116", label=None
    )
    data = path.read_bytes()
    path.unlink()
    if case == "folder":
        path.mkdir()
    elif case != "missing":
        path.write_bytes(
            {"empty": b"", "text": b"hello, I am text\n", "truncated": data[: len(data) // 2]}[case]
        )
    with pytest.raises(InputDataError) as raised:
        read_attention_table(path)
    assert str(raised.value).startswith(f"Cannot read attention table {path}: ")
    assert said in str(raised.value)
    assert "hint: Pass the --attention-out files written by `lcm embed`" in str(raised.value)
