"""Just the facts ingestion needs from a NIfTI header: dimensions and the TR.

Reading the first 540 bytes with ``struct`` is ~20x cheaper than ``nibabel.load`` and matters
when a dataset has tens of thousands of runs. NIfTI-1 and NIfTI-2, either byte order, plain or
gzipped. Results agree with nibabel (``tests/test_ingest_header.py``).
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_TIME_UNIT_SECONDS = {8: 1.0, 16: 1e-3, 24: 1e-6}  # NIFTI_UNITS_SEC / MSEC / USEC


class UnreadableHeader(ValueError):
    """The file is empty, truncated or not a NIfTI image."""


@dataclass(frozen=True)
class BoldHeader:
    """Dimensions and repetition time of a NIfTI image.

    Attributes
    ----------
    ndim : int
        Number of dimensions as written in ``dim[0]``.
    shape : tuple of int
    t_r : float or None
        ``pixdim[4]`` in seconds (``msec``/``usec`` converted, unknown units taken as seconds),
        ``None`` when 0 or not finite.
    """

    ndim: int
    shape: tuple[int, ...]
    t_r: float | None


def read_bold_header(path: str | Path) -> BoldHeader:
    """Read the dimensions and TR of a ``.nii`` or ``.nii.gz`` file.

    Raises
    ------
    UnreadableHeader
        When the file is empty, truncated, not gzip where its name says so, or has no valid
        NIfTI ``sizeof_hdr``.
    """
    path = str(path)
    try:
        with open(path, "rb") as fh:
            raw = _gunzip_head(fh) if path.endswith(".gz") else fh.read(540)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableHeader(f"{type(exc).__name__}: {exc}") from exc
    if not raw:
        raise UnreadableHeader("empty file")
    return parse_header(raw)


def _gunzip_head(fh: BinaryIO, n: int = 540) -> bytes:
    """The first ``n`` decompressed bytes of a gzip stream (a raw zlib object: no GzipFile)."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    out = b""
    while len(out) < n:
        chunk = fh.read(4096)
        if not chunk:
            break
        out += inflater.decompress(chunk, n - len(out))
        while inflater.unconsumed_tail and len(out) < n:
            out += inflater.decompress(inflater.unconsumed_tail, n - len(out))
        if inflater.eof:
            break
    return out


def parse_header(raw: bytes) -> BoldHeader:
    """Parse NIfTI-1 or NIfTI-2 header bytes (see :func:`read_bold_header`)."""
    for order in "<>":
        if len(raw) >= 348 and struct.unpack(order + "i", raw[:4])[0] == 348:
            dims = struct.unpack(order + "8h", raw[40:56])
            pixdim = struct.unpack(order + "8f", raw[76:108])
            units = raw[123]
            break
        if len(raw) >= 540 and struct.unpack(order + "i", raw[:4])[0] == 540:
            dims = struct.unpack(order + "8q", raw[16:80])
            pixdim = struct.unpack(order + "8d", raw[104:168])
            units = struct.unpack(order + "i", raw[500:504])[0]
            break
    else:
        raise UnreadableHeader(f"not a NIfTI header ({len(raw)} bytes read)")
    ndim = int(dims[0])
    if not 1 <= ndim <= 7:
        raise UnreadableHeader(f"dim[0] is {ndim}; expected 1 to 7")
    shape = tuple(int(d) for d in dims[1 : ndim + 1])
    t_r = None
    if ndim >= 4:
        value = float(pixdim[4])
        if math.isfinite(value) and value > 0:
            t_r = value * _TIME_UNIT_SECONDS.get(units & 0x38, 1.0)
    return BoldHeader(ndim=ndim, shape=shape, t_r=t_r)
