"""Analytic FLOP counts of the LCM's matrix multiplications (for model-FLOP utilisation).

Only matmuls are counted (a multiply-add = 2 FLOPs), as in the usual MFU convention; norms,
activations, softmax and the optimiser are overhead that the measured throughput has to carry.
Backward costs twice the forward (gradients of inputs and of weights), except for the ROI
tokenizer's projection, whose input (the connectome) needs no gradient.
"""

from __future__ import annotations

from lcm.model.config import LCMConfig


def _linear(rows: int, d_in: int, d_out: int) -> int:
    return 2 * rows * d_in * d_out


def _attention(n_q: int, n_kv: int, d: int) -> int:
    """Scores ``Q K^T`` and the weighted sum ``A V`` (all heads together)."""
    return 2 * (2 * n_q * n_kv * d)


def encode_flops(config: LCMConfig) -> dict[str, int]:
    """Forward FLOPs of one sample's ROI tokenizer and ROI-mixer encoder."""
    r, d, f = config.n_rois, config.d_model, config.d_ffn
    per_layer = (
        _linear(r, d, 3 * d)  # q, k, v projections
        + _attention(r, r, d)
        + _linear(r, d, d)  # output projection
        + _linear(r, d, f)
        + _linear(r, f, d)  # feed-forward
    )
    return {"tokenizer": _linear(r, r, d), "encoder": config.n_encoder_layers * per_layer}


def forward_flops(config: LCMConfig, ssl: bool = True) -> dict[str, int]:
    """Forward FLOPs of one training sample, per part, and their ``total``.

    Parameters
    ----------
    config : LCMConfig
    ssl : bool
        Include the masked-ROI reconstruction pass (a second encoding plus its head).

    Returns
    -------
    dict of str to int
        ``tokenizer``, ``encoder``, ``decoder``, ``heads``, ``ssl`` and ``total``.
    """
    r, q, d, f = config.n_rois, config.n_queries, config.d_model, config.d_ffn
    per_layer = (
        _linear(q, d, 3 * d)
        + _attention(q, q, d)
        + _linear(q, d, d)  # query self-attention
        + _linear(q, d, d)
        + _linear(r, d, 2 * d)  # cross-attention projections (k, v of ROIs)
        + _attention(q, r, d)
        + _linear(q, d, d)
        + _linear(q, d, f)
        + _linear(q, f, d)  # feed-forward
    )
    supervised = config.n_layers if config.deep_supervision else 1
    enc = encode_flops(config)
    counts = {
        **enc,
        "decoder": config.n_layers * per_layer,
        "heads": supervised * _linear(q, d, 1),
        "ssl": (enc["tokenizer"] + enc["encoder"] + _linear(r, d, r)) if ssl else 0,
    }
    counts["total"] = sum(counts.values())
    return counts


def train_flops_per_sample(config: LCMConfig, ssl: bool = True) -> int:
    """FLOPs of one sample's forward and backward pass (see the module note)."""
    fwd = forward_flops(config, ssl)
    tokenizer = fwd["tokenizer"] * (2 if ssl else 1)
    return 3 * (fwd["total"] - tokenizer) + 2 * tokenizer
