"""Model size without allocating it: modules built on torch's ``meta`` device."""

from __future__ import annotations

import torch

from lcm.model.config import LCMConfig
from lcm.model.lcm import LCM


def parameter_counts(config: LCMConfig) -> dict[str, int]:
    """Parameters per top-level part of the model, and their ``total``.

    Built on the meta device: shapes only, no memory, so LCM-Big (~1.2e9) is counted instantly.

    Parameters
    ----------
    config : LCMConfig

    Returns
    -------
    dict of str to int
        ``tokenizer``, ``encoder``, ``decoder``, ``queries``, ``heads`` and ``total``.
    """
    with torch.device("meta"):
        model = LCM(config)
    parts = {
        "tokenizer": model.tokenizer,
        "encoder": [model.encoder, model.norm_memory],
        "decoder": model.decoder,
        "heads": [model.norm_out, model.head, model.reconstruct_head],
    }
    counts = {}
    for name, modules in parts.items():
        mods = modules if isinstance(modules, list) else [modules]
        counts[name] = sum(p.numel() for m in mods for p in m.parameters())
    counts["queries"] = model.queries.numel()
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
