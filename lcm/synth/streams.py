"""Independent random streams, each named by what it draws.

Every generator comes from ``numpy.random.SeedSequence([crc32(purpose), crc32(name), *keys])``
so that any job can rebuild exactly the values it needs (a subject job draws its subject's
values without the cohort job having run) and adding a stream never shifts another.
"""

from __future__ import annotations

import zlib

import numpy as np


def crc(text: str) -> int:
    """Stable 32-bit integer of a string (Python's ``hash`` is salted per process).

    Parameters
    ----------
    text : str
        Any string (encoded as UTF-8).

    Returns
    -------
    int
    """
    return zlib.crc32(text.encode("utf-8"))


def rng_for(purpose: str, *keys: str | int) -> np.random.Generator:
    """Generator for ``purpose`` keyed by names (hashed) and integers (used as given).

    Parameters
    ----------
    purpose : str
        What the stream draws (``"roster"``, ``"latents"``, ``"patterns"``, ``"signals"`` ...).
    *keys : str or int
        Master seed, consortium name, subject index ...
    """
    entropy = [crc(purpose)] + [crc(k) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy))
