"""Connectomes by content: a 64-bit digest per run, to find one dataset's runs in another's.

Pretraining records the digests of every run it saw; an evaluation refuses a checkpoint that
saw one of its runs, whatever the dataset was called then (the names alone miss one dataset
configured twice, under two names or two paths to the same files).
"""

from __future__ import annotations

import base64
import hashlib

import numpy as np


def connectome_digests(fc: np.ndarray) -> np.ndarray:
    """One 64-bit digest per connectome (blake2b of its float32 bytes), in row order.

    A pretrained checkpoint records those of its training runs (``model.json``,
    ``data.run_digests``), so an evaluation finds its runs among them whatever the dataset
    was called when it was pretrained on (the same data under two names).
    """
    mats = np.ascontiguousarray(fc, dtype=np.float32).reshape(len(fc), -1)
    values = [
        int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little")
        for row in mats
    ]
    return np.asarray(values, dtype=np.uint64)


def encode_digests(digests: np.ndarray) -> str:
    """Digests (:func:`connectome_digests`), unique and sorted, as one base64 string of 8
    bytes each, for a JSON file."""
    unique = np.unique(np.asarray(digests, dtype=np.uint64))
    return base64.b64encode(unique.astype("<u8").tobytes()).decode("ascii")


def decode_digests(text: str) -> np.ndarray:
    """The inverse of :func:`encode_digests`."""
    return np.frombuffer(base64.b64decode(text), dtype="<u8").astype(np.uint64)
