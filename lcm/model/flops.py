"""Analytic FLOP counts of the LCM's matrix multiplications (for model-FLOP utilisation).

Only matmuls are counted (a multiply-add = 2 FLOPs), as in the usual MFU convention; norms,
activations, softmax and the optimiser are overhead that the measured throughput has to carry.
Backward costs twice the forward (gradients of inputs and of weights), except for the ROI
tokenizer's projection, whose input (the connectome) needs no gradient.

Two counts: the architecture's (``executed=False``, the default): the decoder's cross-attention
in its standard form, keys and values of every ROI in every layer; that is what MFU counts,
whatever the implementation. And the FLOPs LCM executes (``executed=True``): the cross-attention
as :meth:`lcm.model.lcm.Attention._cross` computes the same function, with the key and value
projections moved to the queries' side; their ratio is the hardware's share of MFU.
"""

from __future__ import annotations

from lcm.model.config import LCMConfig


def _linear(rows: int, d_in: int, d_out: int) -> int:
    return 2 * rows * d_in * d_out


def _attention(n_q: int, n_kv: int, d: int) -> int:
    """Scores ``Q K^T`` and the weighted sum ``A V`` (all heads together)."""
    return 2 * (2 * n_q * n_kv * d)


def encode_flops(config: LCMConfig) -> dict[str, int]:
    """Forward FLOPs of one sample's ROI tokenizer and ROI-mixer encoder.

    Parameters
    ----------
    config : LCMConfig
        The model's sizes.

    Returns
    -------
    dict of str to int
        ``tokenizer`` and ``encoder`` (all encoder layers).
    """
    r, d, f = config.n_rois, config.d_model, config.d_ffn
    per_layer = (
        _linear(r, d, 3 * d)  # q, k, v projections
        + _attention(r, r, d)
        + _linear(r, d, d)  # output projection
        + _linear(r, d, f)
        + _linear(r, f, d)  # feed-forward
    )
    return {"tokenizer": _linear(r, r, d), "encoder": config.n_encoder_layers * per_layer}


def _cross_attention(config: LCMConfig, executed: bool) -> int:
    """One decoder layer's cross-attention of the queries to the ROIs (see the module note)."""
    r, q, d, h = config.n_rois, config.n_queries, config.d_model, config.n_heads
    if not executed:  # q of the queries, k and v of every ROI, attention, output projection
        return _linear(q, d, d) + _linear(r, d, 2 * d) + _attention(q, r, d) + _linear(q, d, d)
    # q; each head's query to the ROIs' width; scores and weighted sums of every head over the
    # full width; each head's values from those sums; output projection.
    return _linear(q, d, d) * 4 + _attention(h * q, r, d)


def forward_flops(config: LCMConfig, ssl: bool = True, executed: bool = False) -> dict[str, int]:
    """Forward FLOPs of one training sample, per part, and their ``total``.

    Parameters
    ----------
    config : LCMConfig
    ssl : bool
        Include the masked-ROI reconstruction pass (a second encoding plus its head).
    executed : bool
        The FLOPs LCM's implementation executes instead of the architecture's (module note).

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
        + _cross_attention(config, executed)
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


def train_flops_per_sample(config: LCMConfig, ssl: bool = True, executed: bool = False) -> int:
    """FLOPs of one sample's forward and backward pass (see the module note).

    Parameters
    ----------
    config : LCMConfig
        The model's sizes.
    ssl : bool, default True
        As :func:`forward_flops`.
    executed : bool, default False
        As :func:`forward_flops`.

    Returns
    -------
    int
        Three times the forward FLOPs (the backward twice the forward), but two for the ROI
        tokenizer, whose input needs no gradient.
    """
    fwd = forward_flops(config, ssl, executed)
    tokenizer = fwd["tokenizer"] * (2 if ssl else 1)
    return 3 * (fwd["total"] - tokenizer) + 2 * tokenizer
