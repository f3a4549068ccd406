"""The Large Connectome Model as ``nn.Module``s.

Data flow (B subjects, R ROIs, Q queries, d = d_model, L decoder layers)::

    fc [B, R, R] --ROITokenizer--> tokens [B, R, d] --EncoderBlock x n_encoder_layers--> memory
    queries [Q, d] --DecoderBlock x L (self-attn, cross-attn to memory, FFN)--> [L, B, Q, d]
    --shared LayerNorm + Linear(d, 1), once on the stacked layers--> outputs [L, B, Q]

Masked-ROI reconstruction reads the ROI tokens after the encoder: ``Linear(d, R)`` predicts each
masked ROI's FC row. A masked ROI is hidden as a row and as a column (:class:`ROITokenizer`): its
token is the learned mask token, and its entry is zeroed in every other ROI's row, since FC is
symmetric and the row could be read off the others; so with ``ssl_mask_ratio`` r each visible
token sees only the unmasked fraction 1 - r of its own row. Only the reconstruction pass is
masked; the BEI queries read the intact connectomes.

Under bf16 autocast (GPUs) the ROI tokens enter the decoder in bf16, cast once for all layers
by the memory norm (:class:`MemoryNorm`).

Self-attention uses fused projections (one matmul for q, k, v) and
``scaled_dot_product_attention`` (flash / memory-efficient kernels on GPUs); the decoder's
cross-attention moves the ROIs' key and value projections to the queries' side
(:meth:`Attention._cross`: the same function, several times fewer FLOPs). Both keep the
parameter layout of ``nn.MultiheadAttention``, so checkpoints written before (and after) load
unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from lcm.model.config import LCMConfig

# Initial scale of learned embeddings (queries, ROI positions, mask token), as in GPT-2.
_EMBED_STD = 0.02
# GPUs' decoder pads the ROI tokens to a multiple of this (:func:`aligned_memory`): 8 bf16
# values, the 16-byte rows their fastest matmul kernels read.
MEMORY_ALIGN = 8
# Device types whose autocast state :func:`_in_autocast_dtype` reads (others have none).
_AUTOCAST_DEVICES = ("cuda", "cpu")
# The high-priority CUDA stream of each device that LCM.overlap_reconstruction puts the intact
# connectomes' pass on: one per process and device (a stream is not the model's state).
_PRIORITY_STREAMS: dict[int, torch.cuda.Stream] = {}


def _in_autocast_dtype(memory: torch.Tensor) -> torch.Tensor:
    """``memory`` cast once to the autocast dtype where autocast is on (else unchanged).

    Every decoder layer projects the same ROI tokens to keys and values, and autocast would
    cast them to bf16 in each of those projections: one cast here replaces L casts forward and
    L casts back, and the layers' gradients sum in bf16 (half the traffic) before one cast
    back. The forward values are the same; CPU runs, without autocast, are unchanged.
    """
    device = memory.device.type
    # A string test, not torch.amp.is_autocast_available: torch 2.11's dynamo cannot trace
    # that builtin, and broke the compiled graphs there (issue 17's H200 runs).
    if device in _AUTOCAST_DEVICES and torch.is_autocast_enabled(device):
        return memory.to(torch.get_autocast_dtype(device))
    return memory


def aligned_memory(memory: torch.Tensor, multiple: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ROI tokens ``[B, S, d]`` padded with zero tokens to ``S'``, a multiple of ``multiple``,
    and the scores' bias ``[S']`` that hides the padding (0, then ``-inf``).

    The decoder's cross-attention multiplies by ``memory`` along its token axis; with 116 ROIs
    (232 bytes a row in bf16) GPUs fall back to matmul kernels for unaligned rows (on an H200,
    ~1.4 ms of LCM-Base's 12 ms of kernels per step at batch 128). Padded to 120, the same
    function: a hidden token's probability is an exact zero, so neither the outputs nor the
    real tokens' gradients change. ``(memory, None)`` where nothing is to pad.

    Parameters
    ----------
    memory : torch.Tensor, shape (B, S, d)
        ROI tokens.
    multiple : int
        Pad the token axis to a multiple of this.

    Returns
    -------
    memory : torch.Tensor, shape (B, S', d)
    bias : torch.Tensor, shape (S',), or None
        Of ``memory``'s dtype and device.
    """
    s = memory.shape[1]
    pad = -s % multiple
    if pad == 0:
        return memory, None
    bias = torch.zeros(s + pad, dtype=memory.dtype, device=memory.device)
    bias[s:] = float("-inf")
    return F.pad(memory, (0, 0, 0, pad)), bias


class MemoryPadding(nn.Module):
    """The decoder's ROI tokens, padded (:func:`aligned_memory`): a module without parameters
    (state dicts unchanged), compiled as a region of its own with the blocks, so that under
    CUDA graphs the padded tokens are a graph's output that every decoder block's graph reads
    in place (an eager pad's output was copied into each of them).

    Attributes
    ----------
    multiple : int or None
        Pad to a multiple of this; ``None``: :data:`MEMORY_ALIGN` on CUDA, 1 (nothing)
        elsewhere. A switch of the computation, not of the architecture.
    """

    def __init__(self) -> None:
        super().__init__()
        self.multiple: int | None = None

    def forward(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``[B, S, d]`` -> ``([B, S', d], bias [S'] or None)``.

        Parameters
        ----------
        memory : torch.Tensor, shape (B, S, d)
            ROI tokens, to pad to a multiple of :attr:`multiple` (:func:`aligned_memory`).
        """
        multiple = self.multiple
        if multiple is None:
            multiple = MEMORY_ALIGN if memory.is_cuda else 1
        return aligned_memory(memory, multiple)


class MemoryNorm(nn.LayerNorm):
    """The LayerNorm closing the ROI mixer; its output in the autocast dtype where autocast is on.

    A module (a ``LayerNorm`` with its parameter names: checkpoints load unchanged) so that it
    is compiled with the blocks: under CUDA graphs the ROI tokens are then an output of a graph,
    held in the graphs' memory pool, which every decoder block's graph reads in place, where an
    eager norm's output was copied into each of them (``[B, R, d]`` per layer and step).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d]`` normalised, then cast once for every decoder layer where autocast is on.

        Parameters
        ----------
        x : torch.Tensor, shape (..., d)
            ROI tokens.
        """
        return _in_autocast_dtype(super().forward(x))


class ROITokenizer(nn.Module):
    """One token per ROI: its FC row projected to ``d_model``, plus a learned ROI embedding.

    The official code normalises with BatchNorm; LayerNorm is used here because it is
    batch-independent: a subject's prediction does not depend on who else is in the batch,
    batch size 1 and eval mode behave like training, and data-parallel replicas need no
    synchronised statistics.
    """

    def __init__(self, n_rois: int, d_model: int) -> None:
        super().__init__()
        self.proj = nn.Linear(n_rois, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.act = nn.LeakyReLU()
        self.pos = nn.Parameter(torch.randn(n_rois, d_model) * _EMBED_STD)
        self.mask_token = nn.Parameter(torch.randn(d_model) * _EMBED_STD)

    def forward(self, fc: torch.Tensor, roi_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``fc [B, R, R]`` (and ``roi_mask [B, R]``, True = hidden) -> tokens ``[B, R, d]``.

        Parameters
        ----------
        fc : torch.Tensor, shape (B, R, R)
            Correlation matrices.
        roi_mask : torch.Tensor, shape (B, R), optional
            Bool, True where an ROI is hidden (masked-ROI reconstruction): its column is zeroed in
            every row and its token replaced by the learned mask token.
        """
        if roi_mask is not None:
            # FC is symmetric: a masked ROI's row also sits in every other row's column. Hide
            # those columns too, or reconstruction is a copy task.
            fc = fc * (~roi_mask).unsqueeze(1).to(fc.dtype)  # [B, R, R]
        tokens = self.act(self.norm(self.proj(fc)))  # [B, R, d]
        if roi_mask is not None:
            tokens = torch.where(roi_mask.unsqueeze(-1), self.mask_token, tokens)
        return tokens + self.pos  # [B, R, d]


class FeedForward(nn.Module):
    """Position-wise MLP: ``d -> d_ffn -> d``."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, d_ffn),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(d_ffn, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d] -> [..., d]``.

        Parameters
        ----------
        x : torch.Tensor, shape (..., d)
        """
        return self.net(x)


class Attention(nn.Module):
    """Multi-head attention: fused input projections, then torch's fused attention kernels.

    The parameters are those of ``nn.MultiheadAttention`` (``in_proj_weight`` = ``[W_q; W_k;
    W_v]``, ``in_proj_bias``, ``out_proj``), initialised with the same random draws in the same
    order: a seed builds the same model as before, and state dicts of either load into the
    other. No attention dropout (none was used).

    Cross-attention of a few queries to many memory tokens is computed with the key and value
    projections absorbed into the queries' side (:meth:`_cross`): the same function, without
    projecting every memory token to keys and values.
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        # Self-attention over at most this many tokens takes torch's math backend (see
        # LCM.use_math_attention); 0: the fused kernels always.
        self.math_max_tokens = 0
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)  # draws its own init first, as in MHA
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        """``[B, T, d] -> [B, H, T, d/H]``."""
        return t.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        need_weights: bool = False,
        memory_bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention over ``x [B, T, d]``, or cross-attention to ``memory [B, S, d]``.

        Returns ``([B, T, d], weights)``; ``weights [B, T, S]`` (mean over heads) only when
        ``need_weights`` (explicit softmax then; the fused kernels never form the matrix).
        ``memory_bias [S]`` is added to every cross-attention score: ``-inf`` hides a token
        (the padding of :func:`aligned_memory`).

        Parameters
        ----------
        x : torch.Tensor, shape (B, T, d)
            The tokens that attend.
        memory : torch.Tensor, shape (B, S, d), optional
            The tokens attended to (cross-attention); None: ``x`` itself.
        need_weights : bool, default False
            Also return the attention weights.
        memory_bias : torch.Tensor, shape (S,), optional
            Cross-attention only.
        """
        if memory is not None:
            return self._cross(x, memory, need_weights, memory_bias)
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = self._split(q), self._split(k), self._split(v)  # [B, H, T, d/H]
        weights = None
        if need_weights:
            probs = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)
            out = probs @ v  # [B, H, T, d/H]
            weights = probs.mean(dim=1)  # [B, T, T]
        elif q.shape[-2] <= self.math_max_tokens:
            with sdpa_kernel(SDPBackend.MATH):  # traced by dynamo: plain matmuls and a softmax
                out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = F.scaled_dot_product_attention(q, k, v)  # [B, H, T, d/H]
        return self.out_proj(out.transpose(1, 2).flatten(-2)), weights  # [B, T, d]

    def _cross(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        need_weights: bool,
        memory_bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Cross-attention with the memory's key and value projections moved to the queries.

        Head ``h``'s score of memory token ``m`` is ``q_h . (W_k,h m + b_k,h)``, which equals
        ``(W_k,h^T q_h) . m`` plus a term constant over the tokens that the softmax removes;
        its output ``sum_m p_m (W_v,h m + b_v,h)`` equals ``W_v,h (sum_m p_m m) + b_v,h``, the
        weights summing to 1. The queries are brought to the memory's width instead of every
        memory token to the keys' and values': with T = 7 queries per subject, 8 heads and
        S = 116 ROIs, LCM-Base's cross-attention costs 5.5 times fewer FLOPs, and no ``[B, S,
        2d]`` keys and values are written per layer. The same function up to rounding (float64:
        1e-15; float32: 1e-6). The scores are those of unfused attention: under bf16 autocast
        they are bf16 (fused kernels keep them in float32).
        """
        b, t, d = x.shape
        h, width = self.n_heads, d // self.n_heads
        w, bias = self.in_proj_weight, self.in_proj_bias
        q = F.linear(x, w[:d], bias[:d]).view(b * t, h, width).transpose(0, 1)  # [H, B T, d/H]
        # Each head's query in the memory's space, scaled as in attention: [H, B T, d].
        q = torch.bmm(q, w[d : 2 * d].view(h, width, d)) * width**-0.5
        q = q.view(h, b, t, d).transpose(0, 1).reshape(b, h * t, d)  # [B, H T, d]
        scores = torch.bmm(q, memory.transpose(1, 2))  # [B, H T, S]
        if memory_bias is not None:
            scores = scores + memory_bias
        probs = scores.softmax(dim=-1)
        mixed = torch.bmm(probs.to(memory.dtype), memory)  # [B, H T, d]: weighted memory
        mixed = mixed.view(b, h, t, d).transpose(0, 1).reshape(h, b * t, d)  # [H, B T, d]
        out = torch.bmm(mixed, w[2 * d :].view(h, width, d).transpose(1, 2))  # [H, B T, d/H]
        out = out.view(h, b, t, width).permute(1, 2, 0, 3).reshape(b, t, d) + bias[2 * d :]
        weights = probs.view(b, h, t, -1).mean(dim=1) if need_weights else None  # [B, T, S]
        return self.out_proj(out), weights


class EncoderBlock(nn.Module):
    """Pre-norm ROI mixer: self-attention over ROI tokens, then feed-forward."""

    def __init__(self, cfg: LCMConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm_attn = nn.LayerNorm(d)
        self.attn = Attention(d, cfg.n_heads)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = FeedForward(d, cfg.d_ffn, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, R, d] -> [B, R, d]``.

        Parameters
        ----------
        x : torch.Tensor, shape (B, R, d)
            ROI tokens.
        """
        h = self.norm_attn(x)
        x = x + self.drop(self.attn(h)[0])
        return x + self.ffn(self.norm_ffn(x))


class DecoderBlock(nn.Module):
    """Pre-norm DETR decoder layer: query self-attention, cross-attention to ROIs, feed-forward."""

    def __init__(self, cfg: LCMConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm_self = nn.LayerNorm(d)
        self.self_attn = Attention(d, cfg.n_heads)
        self.norm_cross = nn.LayerNorm(d)
        self.cross_attn = Attention(d, cfg.n_heads)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = FeedForward(d, cfg.d_ffn, cfg.dropout)

    def forward(
        self, q: torch.Tensor, memory: torch.Tensor, memory_bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``q [B, Q, d]``, ``memory [B, R, d]`` (``memory_bias [R]``: see :class:`Attention`)
        -> ``[B, Q, d]``.

        Parameters
        ----------
        q : torch.Tensor, shape (B, Q, d)
            Query tokens.
        memory : torch.Tensor, shape (B, R, d)
            ROI tokens.
        memory_bias : torch.Tensor, shape (R,), optional
            Added to every cross-attention score (:class:`Attention`).
        """
        return self.forward_with_attention(q, memory, False, memory_bias)[0]

    def forward_with_attention(
        self,
        q: torch.Tensor,
        memory: torch.Tensor,
        need_weights: bool = True,
        memory_bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """As :meth:`forward`, also returning the cross-attention ``[B, Q, R]`` (head mean).

        Parameters
        ----------
        q : torch.Tensor, shape (B, Q, d)
            Query tokens.
        memory : torch.Tensor, shape (B, R, d)
            ROI tokens.
        need_weights : bool, default True
            False returns None for the weights (the fused kernel).
        memory_bias : torch.Tensor, shape (R,), optional
            Added to every cross-attention score (:class:`Attention`).
        """
        h = self.norm_self(q)
        q = q + self.drop(self.self_attn(h)[0])
        h = self.norm_cross(q)
        attended, weights = self.cross_attn(h, memory, need_weights, memory_bias)
        q = q + self.drop(attended)
        return q + self.ffn(self.norm_ffn(q)), weights


class LCM(nn.Module):
    """Large Connectome Model: ROI tokens, ROI mixer, query decoder, shared scalar head.

    Parameters
    ----------
    config : LCMConfig
    """

    def __init__(self, config: LCMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.tokenizer = ROITokenizer(config.n_rois, d)
        self.encoder = nn.ModuleList(EncoderBlock(config) for _ in range(config.n_encoder_layers))
        self.norm_memory = MemoryNorm(d)
        self.reconstruct_head = nn.Linear(d, config.n_rois)
        self.queries = nn.Parameter(torch.randn(config.n_queries, d) * _EMBED_STD)
        self.decoder = nn.ModuleList(DecoderBlock(config) for _ in range(config.n_layers))
        self.norm_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, 1)
        # Recompute each block's activations in the backward pass instead of storing them:
        # a training-time switch (memory for compute), not part of the architecture.
        self.gradient_checkpointing = False
        self.memory_padding = MemoryPadding()  # no parameters: state dicts unchanged
        # forward_and_reconstruct compiled (compile_whole); None: eager.
        self._compiled_joint: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None
        self._compiled_reconstruct: Callable[..., torch.Tensor] | None = None
        # forward_and_reconstruct as two passes on two CUDA streams: a switch of the
        # computation (see there), not of the architecture.
        self.overlap_reconstruction = False

    def _run(self, block: nn.Module, *args: torch.Tensor | None) -> torch.Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def _query_tokens(self, batch: int) -> torch.Tensor:
        # Materialised, not a stride-0 view: every decoder layer then sees q with the same
        # strides, and the compiled decoder block has one graph for all layers, not two.
        return self.queries.unsqueeze(0).expand(batch, -1, -1).contiguous()

    def encode(self, fc: torch.Tensor, roi_mask: torch.Tensor | None = None) -> torch.Tensor:
        """ROI tokens after the mixer: ``fc [B, R, R]`` -> ``memory [B, R, d]`` (in the autocast
        dtype under autocast, see :class:`MemoryNorm`).

        Parameters
        ----------
        fc : torch.Tensor, shape (B, R, R)
            Correlation matrices.
        roi_mask : torch.Tensor, shape (B, R), optional
            Bool, True where an ROI is hidden (:class:`ROITokenizer`).
        """
        x = self.tokenizer(fc, roi_mask)
        for block in self.encoder:
            x = self._run(block, x)
        return self.norm_memory(x)

    def forward(self, fc: torch.Tensor) -> torch.Tensor:
        """Query outputs of every supervised decoder layer.

        Parameters
        ----------
        fc : torch.Tensor, shape (B, R, R)

        Returns
        -------
        torch.Tensor, shape (L, B, Q)
            ``L = n_layers`` with deep supervision, else 1 (the last layer).
        """
        return self._decode(self.encode(fc))

    def forward_and_reconstruct(
        self, fc: torch.Tensor, roi_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(self(fc), self.reconstruct(fc, roi_mask))`` from one pass of the ROI mixer.

        Pretraining needs both: the intact connectomes and the masked ones go through the
        tokenizer and encoder as one batch of ``2B`` (a row with nothing hidden is tokenized
        exactly as without a mask), twice the rows per matmul and half the kernel launches of
        two passes. The same values up to the rounding of larger matmuls.

        With :attr:`overlap_reconstruction` the two are computed apart instead, on CUDA
        concurrently: the intact connectomes' pass (encoder, then the decoder's chain of small
        kernels: ``B x Q`` rows, too few to fill a large GPU) on a high-priority stream, the
        masked ones' (encoder and reconstruction head: large matmuls) on the current one, and
        each pass's backward on its forward's stream (autograd's rule), so the reconstruction
        fills the SMs the decoder leaves idle. The same values as the joint pass up to
        rounding; without CUDA the two passes run one after the other.

        Parameters
        ----------
        fc : torch.Tensor, shape (B, R, R)
        roi_mask : torch.Tensor, shape (B, R), bool
            True for the ROIs hidden from the reconstruction.

        Returns
        -------
        outputs : torch.Tensor, shape (L, B, Q)
        reconstructed : torch.Tensor, shape (B, R, R)
        """
        if self.overlap_reconstruction:
            return self._overlapped(fc, roi_mask)
        if self._compiled_joint is not None:  # compile_whole: one graph
            return self._compiled_joint(self, fc, roi_mask)
        return self._joint(fc, roi_mask)

    def _overlapped(
        self, fc: torch.Tensor, roi_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward_and_reconstruct` as two passes, on CUDA on two streams (see there)."""
        if self._compiled_reconstruct is not None:
            reconstruct = functools.partial(self._compiled_reconstruct, self)
        else:
            reconstruct = self.reconstruct
        if not fc.is_cuda:
            return self(fc), reconstruct(fc, roi_mask)
        current = torch.cuda.current_stream(fc.device)
        index = fc.device.index if fc.device.index is not None else torch.cuda.current_device()
        if index not in _PRIORITY_STREAMS:
            high = torch.cuda.Stream.priority_range()[1]  # the lower number, the higher priority
            _PRIORITY_STREAMS[index] = torch.cuda.Stream(fc.device, priority=high)
        priority = _PRIORITY_STREAMS[index]
        priority.wait_stream(current)  # fc and the weights are ready
        with torch.cuda.stream(priority):
            outputs = self(fc)
        reconstructed = reconstruct(fc, roi_mask)
        current.wait_stream(priority)  # the caller's stream sees the outputs
        fc.record_stream(priority)  # read there: not reused before that stream's work is done
        outputs.record_stream(current)  # allocated there, used here
        return outputs, reconstructed

    def _joint(self, fc: torch.Tensor, roi_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = fc.shape[0]
        hidden = torch.cat([torch.zeros_like(roi_mask), roi_mask])  # [2B, R]
        memory = self.encode(torch.cat([fc, fc]), hidden)  # [2B, R, d]
        return self._decode(memory[:b]), self.reconstruct_head(memory[b:])

    def _decode(self, memory: torch.Tensor) -> torch.Tensor:
        """ROI tokens ``[B, R, d]`` -> query outputs ``[L, B, Q]`` (see :meth:`forward`)."""
        q = self._query_tokens(memory.shape[0])  # [B, Q, d]
        memory, bias = self.memory_padding(memory)  # once for every decoder layer
        supervised = []
        for i, block in enumerate(self.decoder):
            q = self._run(block, q, memory, bias)
            if self.config.deep_supervision or i == len(self.decoder) - 1:
                supervised.append(q)
        # One norm and one matmul over all supervised layers instead of L small ones.
        return self.head(self.norm_out(torch.stack(supervised))).squeeze(-1)  # [L, B, Q]

    def compile_blocks(self, **options: object) -> None:
        """``torch.compile`` the tokenizer, every encoder / decoder block and the norm and the
        padding between.

        Regional compilation: blocks of one kind share their code, so LCM-Big's 32 decoder
        layers compile once, not as one 32-layer graph. ``nn.Module.compile`` keeps the state
        dict keys (no ``_orig_mod.`` prefix): checkpoints stay loadable compiled or eager.
        ``options`` go to ``torch.compile`` (``mode="reduce-overhead"``: CUDA graphs).

        Parameters
        ----------
        **options
            Keyword arguments of ``torch.compile``.
        """
        regions = [self.tokenizer, *self.encoder, self.norm_memory, self.memory_padding]
        for block in [*regions, *self.decoder]:
            block.compile(**options)

    def compile_whole(self, **options: object) -> None:
        """``torch.compile`` the forward pass (and :meth:`forward_and_reconstruct`) as one graph
        each (every layer unrolled), in place.

        Fewer graph boundaries than :meth:`compile_blocks` (each a guard check, and under CUDA
        graphs a replay with its own host work per block and step), at a compile time that
        grows with the depth. The blocks are compiled too, for the other entry points
        (:meth:`reconstruct`, :meth:`encode`); inside the forward graph they are inlined.
        ``nn.Module.compile`` keeps the state dict keys.

        Parameters
        ----------
        **options
            Keyword arguments of ``torch.compile``.
        """
        self.compile_blocks(**options)
        self.compile(**options)
        # Pretraining's entry point, one graph too (and the reconstruction for its overlapped
        # form): functions compiled, not methods bound to this instance, so that a deep copy of
        # the model runs on its own parameters.
        self._compiled_joint = torch.compile(LCM._joint, **options)
        self._compiled_reconstruct = torch.compile(LCM.reconstruct, **options)

    def use_math_attention(self, max_tokens: int) -> None:
        """Self-attention over at most ``max_tokens`` tokens (the decoder's queries, not the
        ROIs) computed by torch's math backend instead of a fused kernel; 0 turns it off.

        The same function. Fused attention kernels tile 64-128 queries: for a handful of queries
        per subject most of each tile is empty (cuDNN's took ~75 us a layer for LCM-Base's 7
        queries at batch 128 on an H200), where compiled, the math backend is a few small
        matmuls and one fused softmax. A switch of the computation, not of the architecture.

        Parameters
        ----------
        max_tokens : int
            Set on every :class:`Attention` module.
        """
        for module in self.modules():
            if isinstance(module, Attention):
                module.math_max_tokens = max_tokens

    def predict(self, fc: torch.Tensor) -> torch.Tensor:
        """Last decoder layer's outputs ``[B, Q]`` (what inference uses).

        Parameters
        ----------
        fc : torch.Tensor, shape (B, R, R)
            Correlation matrices.
        """
        return self(fc)[-1]

    def attention(self, fc: torch.Tensor) -> torch.Tensor:
        """Cross-attention of every query over the ROIs, per decoder layer (heads averaged).

        Parameters
        ----------
        fc : torch.Tensor, shape (B, R, R)

        Returns
        -------
        torch.Tensor, shape (L, B, Q, R)
            Rows sum to 1 over the ROIs; ``L = n_layers``.
        """
        memory = self.encode(fc)
        q = self._query_tokens(fc.shape[0])
        maps = []
        for block in self.decoder:
            q, weights = block.forward_with_attention(q, memory)
            maps.append(weights)
        return torch.stack(maps)

    def embed(self, fc: torch.Tensor) -> torch.Tensor:
        """Subject embedding ``[B, d]``: the mean of the ROI tokens after the ROI mixer.

        Task-agnostic (no query involved), so one embedding serves any downstream model.

        Parameters
        ----------
        fc : torch.Tensor, shape (B, R, R)
            Correlation matrices.
        """
        return self.encode(fc).mean(dim=1)

    def reconstruct(self, fc: torch.Tensor, roi_mask: torch.Tensor) -> torch.Tensor:
        """Predicted FC rows ``[B, R, R]`` from the input with ``roi_mask [B, R]`` ROIs hidden.

        Parameters
        ----------
        fc : torch.Tensor, shape (B, R, R)
            Correlation matrices.
        roi_mask : torch.Tensor, shape (B, R)
            Bool, True where an ROI is hidden.
        """
        return self.reconstruct_head(self.encode(fc, roi_mask))

    def add_queries(self, n: int, generator: torch.Generator | None = None) -> None:
        """Append ``n`` freshly initialised queries (new label groups at finetuning).

        Parameters
        ----------
        n : int
            How many queries to add; ``config.n_queries`` grows by as many.
        generator : torch.Generator, optional
            The CPU generator of their initial values; None: torch's global one.
        """
        old = self.queries.data  # [Q, d]
        new = torch.randn(n, old.shape[1], generator=generator, dtype=old.dtype) * _EMBED_STD
        self.queries = nn.Parameter(torch.cat([old, new.to(old.device)]))
        self.config = self.config.replace(n_queries=self.config.n_queries + n)
