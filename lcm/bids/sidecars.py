"""JSON sidecars resolved by the BIDS inheritance principle, without a BIDS index.

A data file's metadata is the merge of every ``*_<suffix>.json`` in its folder and the folders
above it (up to the dataset root) whose entities are a subset of the file's: a top-level
``task-rest_bold.json`` applies to every subject, and a sidecar closer to the file (or naming
more entities) overrides keys of a farther one. This is how pybids' ``get_metadata`` resolves
metadata (``tests/unit/bids/test_bids_fast_index.py`` checks both agree).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from lcm.bids.nifti_header import is_annex_pointer

# Same pattern as lcm.io.bids_names.parse_entities, applied to a bare file name (hot path).
_ENTITY_RE = re.compile(r"(?:^|_)([a-zA-Z]+)-([^_/]+)")


@dataclass(frozen=True)
class Sidecar:
    """One JSON file that may apply to data files of its folder and below."""

    path: str
    entities: dict[str, str]
    suffix: str
    # False for a dangling symlink (an annexed file not fetched): its runs cannot be resolved.
    present: bool = True

    @classmethod
    def from_path(cls, path: str) -> Sidecar:
        """Sidecar of a ``.json`` path (its entities and suffix parsed from the name).

        Parameters
        ----------
        path : str
            The sidecar's path.
        """
        return cls.from_name(path, os.path.basename(path))

    @classmethod
    def from_name(cls, path: str, name: str, present: bool = True) -> Sidecar:
        """:meth:`from_path` when the caller already has the file name (indexing hot path).

        Parameters
        ----------
        path : str
            The sidecar's path.
        name : str
            Its file name, ending ``.json``.
        present : bool, default True
            False for a dangling symlink (content not fetched).
        """
        stem = name[: -len(".json")]
        return cls(
            path=path, entities=entities_of(stem), suffix=stem.rsplit("_", 1)[-1], present=present
        )

    def applies_to(self, entities: dict[str, str], suffix: str) -> bool:
        """Whether this sidecar's suffix matches and its entities are a subset of ``entities``.

        Parameters
        ----------
        entities : dict
            The data file's entities.
        suffix : str
            The data file's suffix (``bold``).
        """
        if self.suffix != suffix:
            return False
        for key, value in self.entities.items():
            if entities.get(key) != value:
                return False
        return True


_EXTENSIONS = (".nii.gz", ".nii", ".json", ".tsv.gz", ".tsv")


def entities_of(name: str) -> dict[str, str]:
    """``key-value`` entities of a bare file name or stem.

    Known extensions are cut from the end, so a label with dots (``sub-01..x``) is kept
    whole and refused later with its name, instead of the file silently losing its entities.

    Parameters
    ----------
    name : str
        A file name or stem, no folder.
    """
    for ext in _EXTENSIONS:
        if name.endswith(ext):
            return dict(_ENTITY_RE.findall(name[: -len(ext)]))
    return dict(_ENTITY_RE.findall(name.split(".", 1)[0]))


# What :func:`read_json_object` says of a file it cannot open or read (permissions, I/O): its
# fix is read access, not an edit of the JSON.
UNREADABLE = "cannot be read"


@dataclass(frozen=True)
class NotFetched:
    """A sidecar that is an unlocked git-annex file whose content is not fetched (a pointer
    naming ``/annex/objects/``): its runs are ``not_fetched``, never an invalid JSON to edit."""

    path: str


class SidecarReader:
    """Reads and caches sidecars: each inherited file is parsed once per indexing run."""

    def __init__(self) -> None:
        self._cache: dict[str, dict[str, Any] | str | NotFetched] = {}

    def read(self, path: str) -> dict[str, Any] | str | NotFetched:
        """Parsed JSON object of ``path``, a message saying why it cannot be used, or
        :class:`NotFetched` for a git-annex pointer.

        Parameters
        ----------
        path : str
            A JSON sidecar; read once, then from the reader's cache.
        """
        if path not in self._cache:
            self._cache[path] = read_json_object(path)
        return self._cache[path]

    def resolve(
        self, levels: list[list[Sidecar]], entities: dict[str, str], suffix: str
    ) -> tuple[dict[str, Any], list[str], str | NotFetched]:
        """Merged metadata of a data file.

        Parameters
        ----------
        levels : list of list of Sidecar
            Candidate sidecars per folder, from the dataset root down to the file's folder.
        entities, suffix
            The data file's entities and suffix.

        Returns
        -------
        metadata : dict
            Merged keys, nearer and more specific sidecars winning.
        sources : list of str
            Paths of the sidecars that applied, farthest first.
        problem : str or NotFetched
            ``""``, why an applicable sidecar could not be read, or :class:`NotFetched` for one
            whose content is not fetched (the run is then excluded).
        """
        merged: dict[str, Any] = {}
        sources: list[str] = []
        for level in levels:
            applicable = [s for s in level if s.applies_to(entities, suffix)]
            if len(applicable) > 1:  # the more entities a sidecar names, the later it wins
                applicable.sort(key=_specificity)
            for side in applicable:
                content = self.read(side.path)
                if not isinstance(content, dict):
                    return merged, sources, content
                merged.update(content)
                sources.append(side.path)
        return merged, sources, ""


def _specificity(side: Sidecar) -> tuple[int, str]:
    return len(side.entities), side.path


def read_json_object(path: str) -> dict[str, Any] | str | NotFetched:
    """One JSON sidecar read as BIDS tools read it, or why it cannot be used.

    Read as bytes, whatever the locale: UTF-8 (a byte-order mark skipped, as Windows editors
    write one), UTF-16 or UTF-32, as :func:`json.loads` detects them. The one reader of
    sidecars, for ingest and for the fMRIPrep stage alike (a file one accepts, the other must).

    Parameters
    ----------
    path : str
        The sidecar.

    Returns
    -------
    dict, str or NotFetched
        Its JSON object; else a message naming the file (by name) and why: it cannot be read
        (``"cannot be read (<why>)"``, :data:`UNREADABLE`), is not JSON, or holds no
        object; or :class:`NotFetched` for a git-annex pointer.
    """
    name = os.path.basename(path)
    try:
        data = _read_bytes(path)
        content = json.loads(data)
    except OSError as exc:
        return f"sidecar {name} {UNREADABLE} ({exc.strerror or exc})"
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        if is_annex_pointer(data):
            return NotFetched(path)
        return f"sidecar {name} is not valid JSON: {exc}"
    if not isinstance(content, dict):
        return f"sidecar {name} is not a JSON object"
    return content


def _read_bytes(path: str) -> bytes:
    """Whole file, with bare ``os`` calls: a buffered ``open`` costs ~30 % more per sidecar."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.read(fd, _CHUNK)]
        while len(chunks[-1]) == _CHUNK:  # a short read of a regular file means its end
            chunks.append(os.read(fd, _CHUNK))
    finally:
        os.close(fd)
    return b"".join(chunks)


_CHUNK = 1 << 16
