"""Which container image produced a subject's fMRIPrep derivatives: its content digest.

A tag (``nipreps/fmriprep:25.2.7``) can be pushed again with other content, so the record of an
fMRIPrep run keeps the digest of the image that ran, resolved after the run:

- a reference that carries one (``name@sha256:...``, ``docker://name@sha256:...``): that digest;
- docker: ``docker image inspect`` of the image (the ``docker`` that fmriprep-docker calls): its
  registry digest (``RepoDigests``, the ``name@sha256:...`` that ``docker pull`` accepts) and
  its local image ID; an image built or loaded locally has no registry digest, only the ID;
- apptainer with a local ``.sif``: the sha256 of the file, read once per file and kept in a
  cache beside the work folders, keyed by the file's path, size, modification time and inode
  (a multi-GB image is not read again for every subject; a file rewritten in place with the
  same size and time, which no build or copy does, would not be read again);
- apptainer with another URI (``docker://name:tag``, ``library://``): none is known (apptainer
  converted it in its own cache).

A digest that cannot be resolved never fails the subject: it is recorded as null with the
reason, and logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lcm.io.atomic import write_json
from lcm.io.provenance import sha256_file

log = logging.getLogger(__name__)

_DIGEST_RE = re.compile(r"@(sha256:[0-9a-f]{64})$")
# One docker call answers both: a JSON list of "name@sha256:..." and the local image ID.
DOCKER_INSPECT_FORMAT = '{"repo_digests": {{json .RepoDigests}}, "id": {{json .Id}}}'
# Seconds a `docker image inspect` may take (it is local; a hung daemon must not hang the job).
DOCKER_TIMEOUT_S = 120
# Cache of .sif digests, in the fMRIPrep work folder (shared by the subjects of a config).
SIF_CACHE_NAME = "image_digests.json"


@dataclass(frozen=True)
class ImageDigest:
    """The content digest of a container image, or why none is known.

    Attributes
    ----------
    digest : str or None
        ``sha256:<hex>``: the registry (manifest) digest of a docker image, the digest a
        reference carries, or the sha256 of a ``.sif`` file. None when unknown.
    method : str
        How it was obtained (or looked for).
    reference : str or None
        A reference that names exactly this content (``name@sha256:...``), to pull it again.
    image_id : str or None
        Docker's local image ID (the sha256 of the image's configuration): the same content
        on this host, also when there is no registry digest.
    reason : str or None
        Why ``digest`` is null.
    """

    digest: str | None
    method: str
    reference: str | None = None
    image_id: str | None = None
    reason: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The ``image_digest`` block of an fMRIPrep record."""
        return asdict(self)


def resolve_image_digest(runner: str, image: str, cache_dir: Path | None = None) -> ImageDigest:
    """The digest of the image a container run of fMRIPrep used; never raises.

    Parameters
    ----------
    runner : {"docker", "apptainer"}
        The container tool that ran it.
    image : str
        ``fmriprep.image``: a docker reference, a ``.sif`` path or an apptainer URI.
    cache_dir : Path, optional
        Folder of the ``.sif`` digest cache (the fMRIPrep work folder); without it a ``.sif``
        is read in full.

    Returns
    -------
    ImageDigest
        With ``digest`` None and a ``reason`` when it cannot be resolved (logged as a warning).
    """
    pinned = _DIGEST_RE.search(image)
    if pinned:
        found = ImageDigest(
            pinned.group(1), "the image reference", reference=image.removeprefix("docker://")
        )
    elif runner == "docker":
        found = _docker_digest(image)
    elif "://" in image:
        found = ImageDigest(
            None,
            "apptainer URI",
            reason=f"{image} names no digest: apptainer converted it in its own cache",
        )
    else:
        found = _sif_digest(Path(image), cache_dir)
    if found.digest is None:
        log.warning(
            "The digest of fMRIPrep's image %s is not known (%s); the record says so. Pin "
            "fmriprep.image by digest (name@sha256:..., or a .sif) to make it auditable.",
            image,
            found.reason,
        )
    return found


def _docker_digest(image: str) -> ImageDigest:
    """Registry digest and image ID of ``image`` from ``docker image inspect``."""
    method = "docker image inspect"
    docker = shutil.which("docker")
    if docker is None:
        return ImageDigest(None, method, reason="'docker' is not on PATH")
    try:
        done = subprocess.run(
            [docker, "image", "inspect", "--format", DOCKER_INSPECT_FORMAT, image],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=DOCKER_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return ImageDigest(None, method, reason=f"docker image inspect failed: {exc}")
    if done.returncode != 0:
        said = " ".join(done.stderr.split())[:300] or "no message"
        return ImageDigest(
            None, method, reason=f"docker image inspect exited {done.returncode}: {said}"
        )
    try:
        answer = json.loads(done.stdout)
        repo_digests = [str(d) for d in answer.get("repo_digests") or []]
        image_id = answer.get("id") or None
    except (json.JSONDecodeError, AttributeError, TypeError):
        return ImageDigest(
            None, method, reason=f"unreadable docker image inspect output {done.stdout[:200]!r}"
        )
    # Several names may point at one image: the digest under the image's own name first.
    own = _repository(image)
    repo_digests.sort(key=lambda ref: _repository(ref.partition("@")[0]) != own)
    for ref in repo_digests:
        match = _DIGEST_RE.search(ref)
        if match:
            return ImageDigest(match.group(1), method, reference=ref, image_id=image_id)
    return ImageDigest(
        None,
        method,
        image_id=image_id,
        reason="the image has no registry digest (built or loaded locally, never pushed or "
        "pulled); its local image ID is recorded",
    )


def _repository(reference: str) -> str:
    """``docker.io/library/ubuntu:22.04`` -> ``ubuntu``: the name docker lists digests under."""
    name = reference.partition("@")[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:  # a tag (a ':' before the last '/' is a registry's port)
        name = name[: len(name) - len(last)] + last.partition(":")[0]
    for prefix in ("docker.io/", "index.docker.io/", "library/"):
        name = name.removeprefix(prefix)
    return name


def _sif_digest(path: Path, cache_dir: Path | None) -> ImageDigest:
    """sha256 of a ``.sif`` file, read once per path, size, modification time and inode."""
    method = "sha256 of the image file"
    try:
        real = path.resolve()
        st = real.stat()
    except OSError as exc:
        return ImageDigest(None, method, reason=f"cannot read {path}: {exc.strerror}")
    key = str(real)
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}
    if cache_dir is None:
        return _hash_sif(real, method)
    cache = cache_dir / SIF_CACHE_NAME
    try:
        with _locked(cache_dir / f".{SIF_CACHE_NAME}.lock"):
            known = _read_cache(cache)
            entry = known.get(key)
            if isinstance(entry, dict) and {k: entry.get(k) for k in stamp} == stamp:
                return ImageDigest(entry.get("digest"), f"{method} (cached)")
            found = _hash_sif(real, method)
            if found.digest is not None:
                with contextlib.suppress(OSError):  # a cache not written is only read again
                    write_json(cache, {**known, key: {**stamp, "digest": found.digest}})
            return found
    except OSError as exc:  # no lock there (an unwritable folder): read it without the cache
        log.warning("Cannot use the image digest cache %s (%s)", cache, exc)
        return _hash_sif(real, method)


def _hash_sif(path: Path, method: str) -> ImageDigest:
    try:
        return ImageDigest("sha256:" + sha256_file(path), method)
    except OSError as exc:
        return ImageDigest(None, method, reason=f"cannot read {path}: {exc.strerror}")


def _read_cache(cache: Path) -> dict[str, Any]:
    try:
        known = json.loads(cache.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return known if isinstance(known, dict) else {}


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Wait for an exclusive flock: subjects finishing together read the image once, not each."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
