"""Read a 4D NIfTI (``.nii`` or ``.nii.gz``) once, front to back, a block of volumes at a time.

A NIfTI stores x fastest, then y, z and t, so each volume is one contiguous run of bytes: a
block of ``k`` volumes is a ``(k, X*Y*Z)`` array whose columns are voxels in Fortran order.
Compressed files are inflated by ``isal``'s igzip (several times faster than zlib) straight
into one reusable buffer, so the 4D array is never materialised and memory stays bounded by
the block size whatever the run length.
"""

from __future__ import annotations

import io
import logging
import math
import shlex
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import nibabel as nib
import numpy as np

from lcm import reason_codes
from lcm.bids.nifti_header import dimension_problem, size_problem
from lcm.exceptions import ExcludedRunError
from lcm.io.memory import available_memory

log = logging.getLogger(__name__)

# Bytes of BOLD held at once: 16 volumes of a 2 mm MNI run (97 x 115 x 97 float32).
DEFAULT_BLOCK_BYTES = 64 * 2**20
_GZIP_MAGIC = b"\x1f\x8b"
_INFLATE_BLOCK = 4 * 2**20  # compressed bytes per hand-over between the threads
_HEADER_BYTES = {348: nib.Nifti1Header, 540: nib.Nifti2Header}
# Bytes held per voxel of the grid while a run is parcellated: the atlas resampled to the
# grid (int64 labels and their resampling temporaries) and the accumulator's voxel maps.
BYTES_PER_GRID_VOXEL = 64
# Share of the available memory one run may claim (the rest: the process, other jobs).
MEMORY_SHARE = 0.5
_BAD_HEADER_HINT = (
    "The header is corrupt or the file truncated: re-copy the file or regenerate it "
    "(fMRIPrep), or drop the run from the dataset."
)
# A file cut short (an interrupted copy or download, DataLad content partly fetched): gzip says
# "Compressed file ended before the end-of-stream marker", which names no fix.
TRUNCATED_HINT = (
    "The file is truncated or corrupt: re-copy it from its source (`datalad get` it again, "
    "checking its size or checksum) or regenerate it (fMRIPrep), or drop the run from the dataset."
)


def _read_error(what: str, path: Path, exc: BaseException) -> ExcludedRunError:
    """The exclusion of a BOLD that could not be read: a file that is not there (deleted,
    moved, or a DataLad symlink whose content is not fetched) is told apart from one cut short,
    whose "truncated or corrupt" fix sent users to check the size of a file that did not exist.
    """
    if isinstance(exc, FileNotFoundError):
        state = (
            "is a symlink to content that is not present (DataLad/git-annex content not fetched)"
            if path.is_symlink()
            else "does not exist"
        )
        return ExcludedRunError(
            f"{what} BOLD {path}: the file {state}",
            hint=f"Fetch it (`datalad get {shlex.quote(str(path))}`) or copy it back from its "
            "source, or rerun fMRIPrep for the subject (then `lcm fmriprep` records the files "
            "it wrote); or drop the run from the dataset.",
            code=reason_codes.BOLD_UNREADABLE,
        )
    return ExcludedRunError(
        f"{what} BOLD {path.name}: {exc}", hint=TRUNCATED_HINT, code=reason_codes.BOLD_UNREADABLE
    )


@dataclass(frozen=True)
class BoldHeader:
    """What the engine needs from a NIfTI header.

    Attributes
    ----------
    shape : tuple of int
        Image shape as stored (3D images are reported, the caller refuses them).
    affine : ndarray, shape (4, 4)
        Voxel-to-world transform (sform, else qform, as nibabel chooses).
    dtype : numpy.dtype
        On-disk data type, with its byte order.
    slope, inter : float
        Scaling ``value = slope * stored + inter`` (1 and 0 when the header has none).
    vox_offset : int
        Byte offset of the data.
    header : nibabel.Nifti1Header
        The parsed header (TR, units).
    """

    shape: tuple[int, ...]
    affine: np.ndarray
    dtype: np.dtype
    slope: float
    inter: float
    vox_offset: int
    header: nib.Nifti1Header

    @property
    def n_voxels(self) -> int:
        """Voxels per volume."""
        return int(np.prod(self.shape[:3]))

    @property
    def n_volumes(self) -> int:
        """Volumes in the series (1 for a 3D image)."""
        return int(np.prod(self.shape[3:])) if len(self.shape) > 3 else 1


def _open(path: Path, threaded: bool = True) -> BinaryIO:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC and not threaded:
        from isal import igzip

        return igzip.open(path, "rb")  # type: ignore[return-value]
    if magic == _GZIP_MAGIC:
        from isal import igzip_threaded

        # Inflate in a second thread (isal releases the GIL): the parcel sums of one block
        # overlap the decompression of the next, so the run costs about its decompression.
        return igzip_threaded.open(path, "rb", threads=1, block_size=_INFLATE_BLOCK)
    return path.open("rb")


def _isal_error() -> type[Exception]:
    from isal import isal_zlib

    return isal_zlib.error


def _parse_header(raw: bytes, source: str) -> BoldHeader:
    size_le = int.from_bytes(raw[:4], "little")
    size_be = int.from_bytes(raw[:4], "big")
    klass = _HEADER_BYTES.get(size_le) or _HEADER_BYTES.get(size_be)
    if klass is None:
        raise ExcludedRunError(
            f"cannot read BOLD {source}: not a NIfTI-1/2 file (sizeof_hdr {size_le})",
            hint="Check that the file is the preprocessed BOLD written by fMRIPrep.",
            code=reason_codes.BOLD_UNREADABLE,
        )
    try:
        header = klass.from_fileobj(io.BytesIO(raw[: klass.template_dtype.itemsize]))
        shape = tuple(int(n) for n in header.get_data_shape())
        dtype = header.get_data_dtype()
        slope, inter = header.get_slope_inter()
        affine = header.get_best_affine()
    except Exception as exc:  # nibabel raises many types for a broken header
        raise ExcludedRunError(
            f"cannot read BOLD {source}: bad NIfTI header: {exc}",
            hint=_BAD_HEADER_HINT,
            code=reason_codes.BOLD_UNREADABLE,
        ) from exc
    slope = 1.0 if slope is None or not math.isfinite(slope) or slope == 0 else float(slope)
    inter = 0.0 if inter is None or not math.isfinite(inter) else float(inter)
    offset = int(header["vox_offset"])
    if header["magic"].item() == header.single_magic:
        # Data cannot overlap the header of a one-file NIfTI (some writers leave 0 here).
        offset = max(offset, header.single_vox_offset)
    return BoldHeader(
        shape=shape,
        affine=affine,
        dtype=dtype,
        slope=slope,
        inter=inter,
        vox_offset=offset,
        header=header,
    )


def check_bold_size(hdr: BoldHeader, path: Path, memory: int | None = None) -> None:
    """Refuse a header whose dimensions are absurd, do not fit the file, or exceed memory.

    Checked before anything is sized from the header: a corrupt header claiming 30000^3
    voxels must exclude its run, not ask ``numpy`` for terabytes.

    Parameters
    ----------
    hdr : BoldHeader
        The parsed header.
    path : Path
        The file (its size on disk bounds the data it can hold).
    memory : int, optional
        Bytes available (default: :func:`available_memory`).

    Raises
    ------
    ExcludedRunError
        Naming the file, what the header claims and the bound it breaks.
    """
    problem = dimension_problem(hdr.shape)
    volume_bytes = hdr.n_voxels * hdr.dtype.itemsize
    if problem is None:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise _read_error("cannot read", path, exc) from exc
        with path.open("rb") as probe:
            compressed = probe.read(2) == _GZIP_MAGIC
        data = volume_bytes * hdr.n_volumes
        problem = size_problem(data, hdr.vox_offset, size, compressed, volume_bytes)
    if problem:
        raise ExcludedRunError(
            f"BOLD {path.name}: {problem}", hint=_BAD_HEADER_HINT, code=reason_codes.BOLD_UNREADABLE
        )
    # Grid-sized arrays (labels, voxel maps) plus the read buffer (at least one volume).
    need = hdr.n_voxels * BYTES_PER_GRID_VOXEL + max(volume_bytes, DEFAULT_BLOCK_BYTES)
    budget = int(MEMORY_SHARE * (available_memory() if memory is None else memory))
    if need > budget:
        raise ExcludedRunError(
            f"BOLD {path.name}: its grid of {' x '.join(map(str, hdr.shape[:3]))} voxels needs "
            f"about {need / 2**30:.1f} GiB to parcellate, more than the {budget / 2**30:.1f} "
            "GiB this job can use",
            hint="Give the connectome job more memory (its mem_mb resource), "
            "or resample the BOLD to a coarser grid.",
            code=reason_codes.BOLD_TOO_LARGE,
        )


def read_bold_header(path: str | Path) -> BoldHeader:
    """Parse the header of a NIfTI file without touching its data.

    The header is checked against sane bounds and the file's size (:func:`check_bold_size`).

    Parameters
    ----------
    path : str or Path
        A ``.nii`` or ``.nii.gz`` BOLD file.

    Returns
    -------
    BoldHeader
        Its shape, affine, data type, scaling and data offset, and the parsed header.

    Raises
    ------
    ExcludedRunError
        If the file cannot be opened or decompressed, is not NIfTI-1/2, or its header claims
        dimensions that are absurd, do not fit the file or exceed the memory available.
    """
    path = Path(path)
    try:
        with _open(path, threaded=False) as handle:
            raw = handle.read(540)
    except (OSError, EOFError, zlib.error, _isal_error()) as exc:
        raise _read_error("cannot read", path, exc) from exc
    if len(raw) < 348:
        raise ExcludedRunError(
            f"cannot read BOLD {path.name}: {len(raw)} bytes, shorter than a NIfTI header",
            hint=TRUNCATED_HINT,
            code=reason_codes.BOLD_UNREADABLE,
        )
    hdr = _parse_header(raw, path.name)
    check_bold_size(hdr, path)
    return hdr


def iter_volume_blocks(
    path: str | Path, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_volume, block)`` with ``block`` of shape ``(k, X*Y*Z)`` in file dtype.

    The block is a view of one reused buffer: consume it before asking for the next. Values
    are unscaled (apply ``slope``/``inter`` of :func:`read_bold_header` to derived means).

    Parameters
    ----------
    path : path-like
        4D NIfTI, gzipped or not.
    block_bytes : int
        Upper bound of the buffer (at least one volume is read at a time).

    Raises
    ------
    ExcludedRunError
        If the stream is corrupt or ends before the last volume.
    """
    path = Path(path)
    name = path.name
    try:
        with _open(path) as handle:
            head = handle.read(540)
            hdr = _parse_header(head, name) if len(head) >= 348 else None
            if hdr is None:
                raise ExcludedRunError(
                    f"cannot read BOLD {name}: shorter than a NIfTI header",
                    hint=TRUNCATED_HINT,
                    code=reason_codes.BOLD_UNREADABLE,
                )
            check_bold_size(hdr, path)  # before the buffer is sized from the header
            _skip(handle, hdr.vox_offset - len(head), name)
            volume_bytes = hdr.n_voxels * hdr.dtype.itemsize
            per_block = max(1, min(hdr.n_volumes, block_bytes // max(volume_bytes, 1)))
            buffer = bytearray(per_block * volume_bytes)
            view = memoryview(buffer)
            flat = np.frombuffer(buffer, dtype=hdr.dtype).reshape(per_block, hdr.n_voxels)
            pending = head[hdr.vox_offset :] if hdr.vox_offset < len(head) else b""
            for start in range(0, hdr.n_volumes, per_block):
                k = min(per_block, hdr.n_volumes - start)
                want = k * volume_bytes
                # Data bytes already read with the header go first.
                got = min(len(pending), want)
                view[:got] = pending[:got]
                pending = pending[got:]
                while got < want:
                    n = handle.readinto(view[got:want])
                    if not n:
                        raise ExcludedRunError(
                            f"cannot read the data of BOLD {name}: the file ends in volume "
                            f"{start + got // volume_bytes} of {hdr.n_volumes} (truncated?)",
                            hint="Re-copy or regenerate the file; its size is wrong.",
                            code=reason_codes.BOLD_UNREADABLE,
                        )
                    got += n
                yield start, flat[:k]
    except (OSError, EOFError, zlib.error, _isal_error()) as exc:
        raise _read_error("cannot read the data of", path, exc) from exc


def _skip(handle: BinaryIO, n: int, name: str) -> None:
    """Advance past header extensions to the data."""
    while n > 0:
        chunk = handle.read(min(n, 2**20))
        if not chunk:
            raise ExcludedRunError(
                f"cannot read BOLD {name}: the file ends before its data",
                hint=TRUNCATED_HINT,
                code=reason_codes.BOLD_UNREADABLE,
            )
        n -= len(chunk)
