"""The streaming engine: NIfTI read in blocks of volumes, parcel sums, tSNR, coverage."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lcm.connectome.bold_stream import iter_volume_blocks, read_bold_header
from lcm.connectome.parcellate import ParcelAccumulator, parcellate_file
from lcm.exceptions import ExcludedRunError

SHAPE = (7, 8, 9)  # distinct axis sizes: an axis mix-up changes the result
N_VOL = 11


def _labels(rng: np.random.Generator) -> np.ndarray:
    labels = rng.integers(0, 5, SHAPE)  # 0 = background, 1..4 parcels
    labels[labels == 3] = 0  # label 3 declared but absent
    return labels


def _data(rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    data = 600 + rng.standard_normal((*SHAPE, N_VOL)) * 3
    return data.astype(dtype)


def _reference(data: np.ndarray, labels: np.ndarray, ids: list[int]) -> np.ndarray:
    """Parcel means by boolean masks in float64: slow and obviously right."""
    out = np.zeros((data.shape[3], len(ids)))
    for j, i in enumerate(ids):
        if (labels == i).any():
            out[:, j] = data[labels == i].astype(np.float64).mean(axis=0)
    return out


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@pytest.mark.parametrize("block_bytes", [1, 3 * 7 * 8 * 9 * 4, 2**30])
def test_stream_matches_masks(tmp_path: Path, suffix: str, block_bytes: int) -> None:
    rng = np.random.default_rng(0)
    data, labels = _data(rng), _labels(rng)
    path = tmp_path / f"bold{suffix}"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    ids = [4, 1, 2, 3]  # output order follows ids, not label values
    stats = parcellate_file(path, labels, np.array(ids), block_bytes=block_bytes)
    np.testing.assert_allclose(stats.signals, _reference(data, labels, ids), rtol=0, atol=1e-6)
    assert stats.voxel_counts.tolist() == [int((labels == i).sum()) for i in ids]
    assert stats.live_counts.tolist() == stats.voxel_counts.tolist()
    assert np.isnan(stats.tsnr[3]) and stats.n_nonfinite_voxels == 0
    voxel = data[labels == 4].astype(np.float64)
    expected = np.mean(voxel.mean(axis=1) / voxel.std(axis=1))
    assert stats.tsnr[0] == pytest.approx(expected, rel=1e-6)


def test_blocks_cover_every_volume_once(tmp_path: Path) -> None:
    data = np.arange(np.prod(SHAPE) * N_VOL, dtype=np.float32).reshape((*SHAPE, N_VOL), order="F")
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    seen = []
    for start, block in iter_volume_blocks(path, block_bytes=4 * np.prod(SHAPE) * 4):
        assert block.shape[0] <= 4
        for j, vol in enumerate(block):
            np.testing.assert_array_equal(vol, data[..., start + j].reshape(-1, order="F"))
            seen.append(start + j)
    assert seen == list(range(N_VOL))


def test_scaled_int16_and_big_endian(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = _labels(rng)
    stored = rng.integers(-2000, 2000, (*SHAPE, N_VOL)).astype(">i2")
    img = nib.Nifti1Image(stored, np.eye(4))
    img.header.set_data_dtype(">i2")
    img.header.set_slope_inter(0.5, 100.0)
    path = tmp_path / "bold.nii.gz"
    nib.save(img, path)
    assert read_bold_header(path).slope == 0.5
    stats = parcellate_file(path, labels, np.array([1, 2, 4]))
    np.testing.assert_allclose(
        stats.signals, _reference(stored * 0.5 + 100.0, labels, [1, 2, 4]), atol=1e-9
    )


def test_nifti2_with_extension(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    data, labels = _data(rng, np.float64), _labels(rng)
    img = nib.Nifti2Image(data, np.eye(4))
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"x" * 100))
    path = tmp_path / "bold.nii.gz"
    nib.save(img, path)
    assert read_bold_header(path).vox_offset > 540
    stats = parcellate_file(path, labels, np.array([1, 2]))
    np.testing.assert_allclose(stats.signals, _reference(data, labels, [1, 2]), atol=1e-9)


def test_dead_and_nonfinite_voxels(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data, labels = _data(rng), _labels(rng)
    dead = np.argwhere(labels == 2)[:3]
    for x, y, z in dead:
        data[x, y, z] = 0.0  # outside fMRIPrep's mask: constant 0
    x, y, z = np.argwhere(labels == 1)[0]
    data[x, y, z, 5] = np.nan
    stats = parcellate_file(_save(tmp_path, data), labels, np.array([1, 2]))
    assert stats.n_nonfinite_voxels == 1
    assert stats.live_counts[1] == stats.voxel_counts[1] - 3


def test_in_memory_parcel_means_agree() -> None:
    rng = np.random.default_rng(4)
    data, labels = _data(rng), _labels(rng)
    acc = ParcelAccumulator(labels, np.array([2, 1]), N_VOL)
    # (X, Y, Z, T) in Fortran order viewed as (T, X*Y*Z): volumes as rows, like the stream.
    acc.add(0, data.reshape(-1, N_VOL, order="F").T)
    stats = acc.result()
    signals, counts = stats.signals, stats.voxel_counts
    np.testing.assert_allclose(signals, _reference(data, labels, [2, 1]), atol=1e-6)
    assert counts.tolist() == [(labels == 2).sum(), (labels == 1).sum()]
    acc = ParcelAccumulator(labels, np.array([1]), N_VOL)
    with pytest.raises(ValueError, match="0 of 11 volumes"):
        acc.result()


def _save(tmp_path: Path, data: np.ndarray) -> Path:
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: raw[: len(raw) // 2], r"cannot read the data of BOLD bold.nii.gz"),
        (lambda raw: raw[:30], r"cannot read BOLD bold.nii.gz"),
        (
            lambda raw: raw[:200] + bytes(b ^ 0x5A for b in raw[200:400]) + raw[400:],
            r"cannot read (the data of )?BOLD bold.nii.gz",
        ),
        (lambda raw: gzip.compress(b"\x00" * 400), r"not a NIfTI-1/2 file"),
    ],
)
def test_damaged_file_is_excluded(tmp_path: Path, damage, message: str) -> None:
    rng = np.random.default_rng(5)
    path = _save(tmp_path, _data(rng))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ExcludedRunError, match=message):
        parcellate_file(path, _labels(rng), np.array([1, 2]))


def test_uncompressed_truncated_names_volume(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    path = tmp_path / "bold.nii"
    nib.save(nib.Nifti1Image(_data(rng), np.eye(4)), path)
    raw = path.read_bytes()
    path.write_bytes(raw[: 352 + 4 * np.prod(SHAPE) * 5 + 10])
    with pytest.raises(ExcludedRunError, match=r"ends in volume 5 of 11 \(truncated\?\)"):
        parcellate_file(path, _labels(rng), np.array([1]))


@pytest.mark.parametrize("dangling", [False, True])
def test_a_missing_bold_is_told_apart_from_a_truncated_one(tmp_path: Path, dangling: bool) -> None:
    """A BOLD deleted, moved or not fetched (a dangling DataLad symlink) got the "truncated or
    corrupt" fix, which sent users to check the size of a file that was not there."""
    path = tmp_path / "sub-01 x" / "sub-01_task-rest_desc-preproc_bold.nii.gz"
    path.parent.mkdir()
    if dangling:
        path.symlink_to(tmp_path / ".git" / "annex" / "objects" / "MD5E-s1--0a.nii.gz")
    with pytest.raises(ExcludedRunError) as info:
        read_bold_header(path)
    assert str(path) in info.value.message
    assert ("not fetched" if dangling else "does not exist") in info.value.message
    assert "truncated" not in info.value.one_line()
    assert f"`datalad get '{path}'`" in (info.value.hint or "")
    with pytest.raises(ExcludedRunError, match=r"does not exist|not fetched") as info:
        parcellate_file(path, _labels(np.random.default_rng(7)), np.array([1]))
    assert info.value.code == "bold_unreadable"
