"""What ``pretrain.ssl_mask_ratio`` hides, as the tokenizer does it and as the docs say it.

A masked ROI is hidden as a column too: its entry is zeroed in every visible ROI's row, so at
a ratio of 0.9 each visible token also loses nine tenths of its row. The schema, config/README
and the model's docstring said "fraction of ROI tokens masked" only.
"""

from __future__ import annotations

import re
from importlib import resources

import torch
import yaml
from helpers import ROOT

import lcm.model.lcm
from lcm.model.lcm import ROITokenizer


def test_a_visible_token_does_not_see_the_masked_rois_entries() -> None:
    torch.manual_seed(0)
    tokenizer = ROITokenizer(n_rois=7, d_model=8)
    fc = torch.randn(3, 7, 7)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[:, [1, 5]] = True
    changed = fc.clone()
    changed[:, 0, [1, 5]] = 0.7  # ROI 0 (visible): its entries of the masked ROIs only
    tokens, again = tokenizer(fc, mask), tokenizer(changed, mask)
    torch.testing.assert_close(tokens, again)
    assert not torch.allclose(tokenizer(fc)[:, 0], tokenizer(changed)[:, 0])  # unmasked: seen


def test_the_docs_say_a_masked_roi_is_hidden_as_a_column_too() -> None:
    text = resources.files("lcm.schemas").joinpath("config.schema.yaml").read_text()
    pretrain = yaml.safe_load(text)["properties"]["pretrain"]["properties"]
    readme = (ROOT / "config" / "README.md").read_text()
    entry = readme[readme.index("`ssl_mask_ratio`") :][:400]
    docs = {
        "schema": pretrain["ssl_mask_ratio"]["description"],
        "config/README.md": entry,
        "lcm.model.lcm": lcm.model.lcm.__doc__ or "",
    }
    for where, doc in docs.items():
        flat = " ".join(doc.split())
        assert re.search(r"hidden as (a row and as )?a column", flat), where
        assert re.search(r"every (visible|other) ROI's row", flat), where
