"""One process of a streamed data parallel pretraining (torchrun): `lcm pretrain` with the
sample indices of every batch this process trained on written to ``<out>/rank-<r>.json``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from lcm.cli import main
from lcm.train import streamed

if __name__ == "__main__":
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    seen: dict[int, list[list[int]]] = {}
    original = streamed.StreamedConnectomes.batches

    def recording(self, epoch, skip=0):
        for index in original(self, epoch, skip):
            seen.setdefault(epoch, []).append(index.tolist())
            yield index

    streamed.StreamedConnectomes.batches = recording
    code = main(argv)
    rank = os.environ.get("RANK", "0")
    (out / f"rank-{rank}.json").write_text(json.dumps(seen))
    sys.exit(code)
