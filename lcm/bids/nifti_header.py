"""Just the facts ingestion needs from a NIfTI header: dimensions and the TR.

The one reader of a header's TR in seconds (:attr:`BoldHeader.t_r`), for ingest and for the
connectome stage alike (which hands it the header bytes it parsed).

Reading the first 540 bytes with ``struct`` is ~20x cheaper than ``nibabel.load`` and matters
when a dataset has tens of thousands of runs. NIfTI-1 and NIfTI-2, either byte order, plain or
gzipped. Results agree with nibabel (``tests/unit/bids/test_bids_nifti_header.py``).

:func:`header_problem` checks a header against sane bounds and its file's size, so that a
corrupt header excludes its run at ingestion instead of sizing arrays downstream.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_TIME_UNIT_SECONDS = {8: 1.0, 16: 1e-3, 24: 1e-6}  # NIFTI_UNITS_SEC / MSEC / USEC
_TIME_UNIT_NAMES = {8: "sec", 16: "msec", 24: "usec"}  # as nibabel's set_xyzt_units names them

# Sane bounds of a BOLD image, checked before anything is allocated from its header: a
# corrupt or hostile header can claim 30000^3 voxels. The largest real grids (0.5 mm
# high-resolution fMRI, 7 T) stay far below 1024 voxels per axis; HCP runs have 1200 volumes.
MAX_SPATIAL_DIM = 1024
MAX_VOLUMES = 100_000
# Deflate cannot compress better than about 1032:1, so a .nii.gz of n bytes holds at most
# ~1032 n bytes of image: a header claiming more is wrong (or the file is truncated).
GZIP_MAX_RATIO = 1100


class UnreadableHeader(ValueError):
    """The file is empty, truncated or not a NIfTI image."""


# What an unlocked git-annex file holds until its content is fetched: one line naming its key,
# "/annex/objects/MD5E-s123--abc.nii.gz" (a locked one is a symlink, caught by the indexer).
ANNEX_POINTER_MARK = b"/annex/objects/"
_MAX_POINTER_BYTES = 4096
_GZIP_MAGIC = b"\x1f\x8b"


def sniff_image(path: str | Path) -> str:
    """What a file whose header could not be read holds, from its first bytes.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    str
        ``"empty"``; ``"annex_pointer"`` (a short text file naming ``/annex/objects/``: a
        git-annex file whose content is not fetched); ``"gzip"`` (a gzip stream, corrupt or
        truncated); ``"nifti"`` (starts with a NIfTI-1 or NIfTI-2 ``sizeof_hdr``, truncated);
        ``"other"`` (neither: not an image at all); ``"unreadable"`` when it cannot be opened.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(_MAX_POINTER_BYTES + 1)
    except OSError:
        return "unreadable"
    if not head:
        return "empty"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if len(head) >= 4 and any(
        struct.unpack(order + "i", head[:4])[0] in (348, 540) for order in "<>"
    ):
        return "nifti"
    if is_annex_pointer(head):
        return "annex_pointer"
    return "other"


def is_annex_pointer(content: bytes) -> bool:
    """Whether ``content`` (a file's bytes, or its first ``_MAX_POINTER_BYTES + 1``) is an
    unlocked git-annex file not fetched: a short text whose first line names
    ``/annex/objects/``.

    Parameters
    ----------
    content : bytes
        The file's content, from its start.
    """
    return (
        0 < len(content) <= _MAX_POINTER_BYTES
        and b"\0" not in content
        and ANNEX_POINTER_MARK in content.splitlines()[0]
    )


@dataclass(frozen=True)
class BoldHeader:
    """Dimensions and repetition time of a NIfTI image.

    Attributes
    ----------
    ndim : int
        Number of dimensions as written in ``dim[0]``.
    shape : tuple of int
    pixdim_t : float or None
        ``pixdim[4]`` as written, whatever its unit (what nibabel's ``get_zooms()[3]``
        reports), ``None`` for an image of fewer than 4 dimensions and when 0, negative or
        not finite.
    bitpix : int
        Bits per voxel value (0 when the header does not say).
    vox_offset : int
        Byte offset of the data in a one-file NIfTI.
    single_file : bool
        ``True`` for a ``.nii`` (magic ``n+1``/``n+2``), whose data follow the header.
    t_unit : int
        The time bits of ``xyzt_units`` (``xyzt_units & 0x38``): 8 ``sec``, 16 ``msec``,
        24 ``usec``; 0 (unknown) or a code that is no time unit (``hz``, ``ppm``, ``rads``).
    """

    ndim: int
    shape: tuple[int, ...]
    pixdim_t: float | None
    bitpix: int = 0
    vox_offset: int = 0
    single_file: bool = True
    t_unit: int = 0

    @property
    def t_unit_known(self) -> bool:
        """Whether ``xyzt_units`` names a time unit (``sec``, ``msec`` or ``usec``)."""
        return self.t_unit in _TIME_UNIT_SECONDS

    @property
    def t_unit_name(self) -> str:
        """The time unit as nibabel's ``set_xyzt_units`` names it, ``"unknown"`` if none."""
        return _TIME_UNIT_NAMES.get(self.t_unit, "unknown")

    @property
    def t_r(self) -> float | None:
        """The header's TR in seconds, or ``None``: LCM's one reading of it.

        ``pixdim[4]`` converted from the time unit ``xyzt_units`` names; ``None`` when the
        image is not 4D, ``pixdim[4]`` is no positive number, or the unit is not a time unit
        (a number of unknown unit is no TR in seconds: :func:`lcm.bids.timing.compare_header_tr`
        says what it can be compared with).
        """
        if self.pixdim_t is None or not self.t_unit_known:
            return None
        return self.pixdim_t * _TIME_UNIT_SECONDS[self.t_unit]

    def data_bytes(self) -> int:
        """Bytes of image data the header implies (its dimensions times the value size)."""
        return math.prod(self.shape) * max(self.bitpix, 8) // 8


def read_bold_header(path: str | Path) -> BoldHeader:
    """Read the dimensions and TR of a ``.nii`` or ``.nii.gz`` file.

    Parameters
    ----------
    path : str or Path
        The image; a ``.gz`` name is read as gzip.

    Returns
    -------
    BoldHeader
        Its shape, TR, data type size and data offset (:func:`parse_header`).

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
    """Parse NIfTI-1 or NIfTI-2 header bytes (see :func:`read_bold_header`).

    Parameters
    ----------
    raw : bytes
        The file's first bytes, at least 348 (NIfTI-1) or 540 (NIfTI-2).

    Returns
    -------
    BoldHeader
        ``pixdim[4]`` as written and its time unit; ``t_r`` in seconds where the unit is
        named, else ``None``.

    Raises
    ------
    UnreadableHeader
        Not a NIfTI header, or ``dim[0]`` outside 1 to 7.
    """
    for order in "<>":
        if len(raw) >= 348 and struct.unpack(order + "i", raw[:4])[0] == 348:
            dims = struct.unpack(order + "8h", raw[40:56])
            bitpix = struct.unpack(order + "h", raw[72:74])[0]
            pixdim = struct.unpack(order + "8f", raw[76:108])
            offset = struct.unpack(order + "f", raw[108:112])[0]
            units = raw[123]
            single, minimum = raw[344:347] == b"n+1", 352
            break
        if len(raw) >= 540 and struct.unpack(order + "i", raw[:4])[0] == 540:
            bitpix = struct.unpack(order + "h", raw[14:16])[0]
            dims = struct.unpack(order + "8q", raw[16:80])
            pixdim = struct.unpack(order + "8d", raw[104:168])
            offset = struct.unpack(order + "q", raw[168:176])[0]
            units = struct.unpack(order + "i", raw[500:504])[0]
            single, minimum = raw[4:7] == b"n+2", 544
            break
    else:
        raise UnreadableHeader(f"not a NIfTI header ({len(raw)} bytes read)")
    ndim = int(dims[0])
    if not 1 <= ndim <= 7:
        raise UnreadableHeader(f"dim[0] is {ndim}; expected 1 to 7")
    shape = tuple(int(d) for d in dims[1 : ndim + 1])
    value = float(pixdim[4])
    pixdim_t = value if ndim >= 4 and math.isfinite(value) and value > 0 else None
    # Data cannot overlap the header of a one-file NIfTI (some writers leave 0 here).
    offset = int(offset) if math.isfinite(offset) and offset > 0 else 0
    return BoldHeader(
        ndim=ndim,
        shape=shape,
        pixdim_t=pixdim_t,
        bitpix=max(int(bitpix), 0),
        vox_offset=max(offset, minimum),
        single_file=single,
        t_unit=units & 0x38,
    )


def dimension_problem(shape: tuple[int, ...]) -> str | None:
    """Why an image shape cannot be a BOLD series read by LCM, or ``None`` when it can.

    Every dimension must be at least 1, the spatial ones at most :data:`MAX_SPATIAL_DIM` and
    the volume count at most :data:`MAX_VOLUMES`: checked on the header alone, before any
    array is sized from it.

    Parameters
    ----------
    shape : tuple of int
        Image shape from the header (``dim[1:dim[0] + 1]``).

    Returns
    -------
    str or None
        The reason, naming the offending dimension and the bound.
    """
    if any(d < 1 for d in shape):
        return f"its header gives dimensions {shape}; every dimension must be at least 1"
    if any(d > MAX_SPATIAL_DIM for d in shape[:3]):
        return (
            f"its header claims {' x '.join(map(str, shape[:3]))} voxels per volume; "
            f"at most {MAX_SPATIAL_DIM} per axis are accepted"
        )
    n_volumes = math.prod(shape[3:])
    if n_volumes > MAX_VOLUMES:
        return f"its header claims {n_volumes} volumes; at most {MAX_VOLUMES} are accepted"
    return None


def size_problem(
    data_bytes: int, vox_offset: int, file_size: int, compressed: bool, volume_bytes: int = 0
) -> str | None:
    """Why a file cannot hold the data its header claims, or ``None`` when it can.

    An uncompressed ``.nii`` must be at least ``vox_offset + data_bytes`` long; a gzip file
    of ``n`` bytes can hold at most ``GZIP_MAX_RATIO * n`` bytes.

    Parameters
    ----------
    data_bytes : int
        Bytes of data the header implies.
    vox_offset : int
        Offset of the data in the (uncompressed) file.
    file_size : int
        Size of the file on disk.
    compressed : bool
        Whether the file is gzip.
    volume_bytes : int
        Bytes of one volume; when given, the reason says in which volume the file ends.

    Returns
    -------
    str or None
    """
    if compressed:
        if data_bytes > GZIP_MAX_RATIO * file_size:
            return (
                f"its header claims {data_bytes} bytes of data, more than a {file_size}-byte "
                "gzip file can hold (wrong header, or the file is truncated)"
            )
        return None
    if vox_offset + data_bytes <= file_size:
        return None
    implied = f"its header implies {vox_offset + data_bytes} bytes, the file has {file_size}"
    if volume_bytes > 0:
        last, total = max(file_size - vox_offset, 0) // volume_bytes, data_bytes // volume_bytes
        return f"the file ends in volume {last} of {total} (truncated?): {implied}"
    return f"{implied} (truncated, or a wrong header)"


def header_problem(
    path: str | Path, header: BoldHeader, file_size: int | None = None
) -> str | None:
    """Why a readable header cannot describe the file at ``path``, or ``None``.

    :func:`dimension_problem`, then :func:`size_problem` for one-file images, and
    :func:`gzip_end_problem` for one-file ``.nii.gz`` images.

    Parameters
    ----------
    path : str or Path
        The image file.
    header : BoldHeader
        Its header (:func:`read_bold_header`).
    file_size : int, optional
        The file's size in bytes when known; else it is stat'ed.
    """
    problem = dimension_problem(header.shape)
    if problem or not header.single_file or header.bitpix <= 0:
        return problem
    if file_size is None:
        try:
            file_size = os.stat(path).st_size
        except OSError:
            return None  # unreadable files are reported by whoever opens them
    compressed = str(path).endswith(".gz")
    problem = size_problem(header.data_bytes(), header.vox_offset, file_size, compressed)
    return problem or (gzip_end_problem(path, header) if compressed else None)


def gzip_end_problem(path: str | Path, header: BoldHeader) -> str | None:
    """Why a ``.nii.gz`` whose header was read ends before the data it claims, or ``None``.

    A gzip file cut short (an interrupted copy or download) keeps a readable header, and its
    size says nothing of the data it holds: it was included, and failed only once fMRIPrep or
    the connectome stage read it. The gzip trailer's ISIZE (the last 4 bytes: the
    uncompressed size modulo 2**32) is checked against the header's
    ``vox_offset + data``: one read for an intact file. Only a file whose trailer disagrees
    (cut short, or written as several gzip members: bgzip, concatenated) is decompressed to
    tell them apart.

    Parameters
    ----------
    path : str or Path
        A one-file gzip-compressed NIfTI image.
    header : BoldHeader
        Its header (:func:`read_bold_header`).

    Returns
    -------
    str or None
        The reason, naming the volume the data ends in.
    """
    expected = header.vox_offset + header.data_bytes()
    try:
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            isize = int.from_bytes(fh.read(4), "little")
    except OSError:
        return None  # unreadable files are reported by whoever opens them
    if isize == expected % 2**32:
        return None
    got, error = 0, ""
    try:
        with gzip.open(path, "rb") as fh:
            while got < expected and (chunk := fh.read(2**16)):
                got += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        error = f" ({type(exc).__name__}: {exc})"
    if got >= expected:
        return None
    volume = max(math.prod(header.shape[:3]) * max(header.bitpix, 8) // 8, 1)
    total = header.data_bytes() // volume
    last = max(got - header.vox_offset, 0) // volume
    return (
        f"the file ends in volume {last} of {total} (truncated: an interrupted copy or "
        f"download?): its gzip stream holds about {got} of the {expected} bytes its header "
        f"implies{error}"
    )
