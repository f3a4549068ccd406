"""safetensors files written with the umask's mode and read with their header checked first.

A weights file is untrusted input: its 8-byte header length and JSON header are read with a size
bound and validated (a pickle or ``torch.save`` archive renamed ``.safetensors`` is refused in
one line), and the tensor shapes it declares are compared with what the model expects before any
tensor is allocated.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from lcm.exceptions import CheckpointError
from lcm.io.atomic import atomic_path

# Headers of LCM files are a few kB per tensor; 100 MB bounds the read of a hostile length field.
MAX_HEADER_BYTES = 100 << 20
_HINT = (
    "LCM reads weights from safetensors files only (never unpickles); use the files written "
    "by `lcm pretrain` or `lcm finetune`."
)


def save_tensors(
    tensors: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write ``tensors`` to ``path`` atomically, with the mode other outputs get (umask).

    Parameters
    ----------
    tensors : mapping of str to torch.Tensor
        Contiguous CPU tensors.
    path : path-like
        Destination ``.safetensors`` file.
    metadata : dict of str to str, optional
        safetensors header metadata.
    """
    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata=metadata)
        _canonical_header(tmp)
        # safetensors recreates the file with mode 0600; shared project folders need the
        # umask-governed mode (e.g. 0644) so that group members can read the weights.
        os.chmod(tmp, 0o666 & ~_umask())


def _canonical_header(path: str | os.PathLike[str]) -> None:
    """Rewrite a safetensors header with its keys sorted, in place (same length).

    safetensors writes the metadata map in hash order, so two identical runs gave weights
    files of different sha256 (``{"format", "format_version"}`` or the reverse): provenance
    could not tell a rerun's weights equal. The tensor data and offsets are untouched.
    """
    with open(path, "r+b") as handle:
        length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(length))
        text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        if len(text) > length:  # never: the same content, differently ordered
            return
        handle.seek(8)
        handle.write(text.ljust(length, b" "))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_header(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Tensor entries of a safetensors file's header, validated, without reading any tensor.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    dict
        ``name -> {"dtype": str, "shape": list of int, "data_offsets": [begin, end]}``
        (the ``__metadata__`` entry is left out).

    Raises
    ------
    CheckpointError
        The file is not a safetensors file (too short, header length beyond the file or the
        bound, header not a JSON object of tensor entries, data offsets outside the file).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or n > min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(
                f"{path}: not a safetensors file (header length {n} for a file of {size} bytes; "
                f"a pickle or torch.save file renamed?).",
                hint=_HINT,
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path}: not a safetensors file (header is not JSON: {exc}).", hint=_HINT
        ) from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (header not an object).", hint=_HINT)
    data_size = size - 8 - n
    entries = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not _valid_entry(entry, data_size) and _valid_entry(entry, sys.maxsize):
            # Well formed but past the end: a copy or a write cut short, not a foreign file.
            raise CheckpointError(
                f"{path}: cut short: tensor {name!r} ends at byte {entry['data_offsets'][1]} of "
                f"the data, the file holds {data_size} (a copy or a write interrupted).",
                hint=f"Copy {path.name} again from the original, or rerun the job that wrote it.",
            )
        if not _valid_entry(entry, data_size):
            raise CheckpointError(
                f"{path}: not a valid safetensors file (tensor {name!r}: bad dtype, shape or "
                f"data offsets {str(entry)[:80]}).",
                hint=_HINT,
            )
        entries[name] = entry
    return entries


def _valid_entry(entry: Any, data_size: int) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str):
        return False
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    ints = (list, tuple)
    if not isinstance(shape, ints) or not all(isinstance(d, int) and d >= 0 for d in shape):
        return False
    if not isinstance(offsets, ints) or len(offsets) != 2:
        return False
    begin, end = offsets
    return isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= data_size


def check_shapes(
    path: str | os.PathLike[str],
    header: dict[str, dict[str, Any]],
    expected: Mapping[str, tuple[int, ...]],
    what: str,
) -> None:
    """Raise unless the header declares exactly the ``expected`` tensor names and shapes.

    Parameters
    ----------
    path : path-like
        The weights file (named in the error).
    header : dict
        From :func:`read_header`.
    expected : mapping of str to tuple of int
        Names and shapes the model holds (e.g. from a model built on the meta device).
    what : str
        Where ``expected`` comes from, for the message (``"model.json's config"``).

    Raises
    ------
    CheckpointError
        Missing or extra tensors, or a shape that differs.
    """
    got = {k: tuple(v["shape"]) for k, v in header.items()}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    differ = [k for k in sorted(set(expected) & set(got)) if tuple(expected[k]) != got[k]]
    if not (missing or extra or differ):
        return
    details = []
    if differ:
        k = differ[0]
        details.append(
            f"{len(differ)} shape(s) differ, e.g. {k}: file {list(got[k])}, "
            f"{what} {list(expected[k])}"
        )
    if missing:
        details.append(f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    if extra:
        details.append(f"unexpected {extra[:3]}{' ...' if len(extra) > 3 else ''}")
    raise CheckpointError(
        f"{path}: weights do not match {what} ({'; '.join(details)}).",
        hint="The files come from different runs or were edited; use the matching original files.",
    )
