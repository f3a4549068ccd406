#!/usr/bin/env bash
# GPU measurements of issue 6, under 5 minutes on one 80 GB GPU: MFU of LCM-Base and LCM-Big in
# bf16 autocast, and LCM-Big training at batch 128 (targets: mfu >= 0.4; big fits batch 128).
# Each line of JSON is the last line of one train_throughput.py run.
#   bash benchmarks/gpu_smoke.sh            (from the repository root, package installed;
#                                            PYTHON=python3 where `python` is not the one)
#   bash benchmarks/gpu_smoke.sh --quick    (seconds, on CPU, no GPU needed: the same three runs
#                                            with train_throughput.py --quick; run by make test)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
case "${1:-}" in
  -h | --help)
    sed -n '2,8s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
  --quick)
    # Later options win in argparse: the tiny preset on CPU replaces each run's preset and device.
    quick=(--quick --device cpu)
    ;;
  "") nvidia-smi --query-gpu=name,memory.total --format=csv,noheader ;;
  *)
    echo "usage: bash benchmarks/gpu_smoke.sh [--quick | --help]" >&2
    exit 2
    ;;
esac
run() {
  timeout 150 "${PYTHON:-python}" benchmarks/train_throughput.py --device cuda --rounds 2 "$@" \
    ${quick[@]+"${quick[@]}"} | tail -n 1
}
run --preset base --batch 128 --steps 10
run --preset big --batch 128 --steps 4
# Memory head-room: the same batch with gradient checkpointing.
run --preset big --batch 128 --steps 2 --gradient-checkpointing
