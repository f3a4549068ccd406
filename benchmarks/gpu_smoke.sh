#!/usr/bin/env bash
# GPU measurements of issues 6 and 17, under 8 minutes on one GPU: LCM-Base and LCM-Big training
# in bf16 autocast at batch 128 and at the largest power-of-two batch that fits, eager and with
# torch.compile, then LCM-Big at batch 128 with gradient checkpointing (targets: mfu >= 0.4),
# then, in what is left of the budget, variants of compiled LCM-Base at batch 128.
# One JSON line per case (train_throughput.py): samples_s, mfu, hfu, max_memory_gib, matmul_flops_s
# (bf16 matmul reference of the same run), compile_s (compiling, graph capture; null uncompiled), loss;
# last, the spread of the losses of the cases that trained the same steps (loss_agreement).
#   bash benchmarks/gpu_smoke.sh            (from the repository root, package installed;
#                                            PYTHON=python3 where `python` is not the one;
#                                            COMPILE_MODE=default: compile without CUDA graphs;
#                                            PROFILE_DIR=DIR: each case's log and profile there;
#                                            BUDGET_S=SECONDS: the whole run's cap, 460 s)
#   bash benchmarks/gpu_smoke.sh --variants (only compiled LCM-Base at batch 128 as training
#                                            compiles it, then every variant of it, each given
#                                            the time it needs: to choose between them)
#   bash benchmarks/gpu_smoke.sh --no-variants (the cases before the variants only)
#   bash benchmarks/gpu_smoke.sh --quick    (seconds, on CPU, no GPU needed: the same runs
#                                            with train_throughput.py --quick; make test runs
#                                            --quick --no-variants and --quick --variants)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
only_variants=false
with_variants=true
for arg in "$@"; do
  case "$arg" in
    -h | --help)
      sed -n '2,20s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    --quick)
      # Later options win in argparse: the tiny preset on CPU replaces each run's preset and device.
      quick=(--quick --device cpu)
      ;;
    --variants) only_variants=true ;;
    --no-variants) with_variants=false ;;
    *)
      echo "usage: bash benchmarks/gpu_smoke.sh [--quick] [--variants | --no-variants] | --help" >&2
      exit 2
      ;;
  esac
done
if $only_variants && ! $with_variants; then
  echo "gpu_smoke.sh: --variants and --no-variants exclude each other" >&2
  exit 2
fi
((${#quick[@]})) || nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
py="${PYTHON:-python}"
mode="${COMPILE_MODE:-reduce-overhead}"
# Every case gets at most its own limit and never more than what is left of the whole budget.
deadline=$((SECONDS + ${BUDGET_S:-460}))
out="$(mktemp)"
all="$(mktemp)" # every case's lines, for the agreement of their losses at the end
trap 'rm -f "$out" "$all"' EXIT

# run LIMIT_S ARGS...: one train_throughput.py process; its JSON lines are printed as they come
# (a case cut short keeps the lines it finished), and a failure prints a JSON line saying so.
run() {
  local limit=$1 left=$((deadline - SECONDS))
  shift
  ((limit > left)) && limit=$left
  if ((limit < 10)); then
    echo "{\"args\": \"$*\", \"error\": \"skipped: the time budget is spent\"}"
    return 1
  fi
  local status=0 profile=()
  if [[ -n "${PROFILE_DIR:-}" ]]; then
    mkdir -p "$PROFILE_DIR"
    profile=(--profile "$PROFILE_DIR")
  fi
  timeout "$limit" "$py" benchmarks/train_throughput.py --device cuda --rounds 2 "$@" \
    ${profile[@]+"${profile[@]}"} ${quick[@]+"${quick[@]}"} 2>"$out.err" | grep '^{' |
    tee "$out" || status=$?
  cat "$out" >>"$all"
  if [[ -n "${PROFILE_DIR:-}" ]]; then # the whole log of the case, named by its arguments
    local name
    name="$(tr -cs 'a-zA-Z0-9,.' '_' <<<"$*")"
    name="${name#_}"
    cp "$out.err" "$PROFILE_DIR/${name%_}.log"
  fi
  if ((status != 0)); then
    local why="exit status $status"
    ((status == 124)) && why="timed out after ${limit}s"
    local last
    last="$(grep -v '^\s*$' "$out.err" | tail -n 1 | tr -d '"\\' | cut -c1-200 || true)"
    echo "{\"args\": \"$*\", \"gradient_checkpointing\": false, \"error\": \"$why: $last\"}"
  fi
  rm -f "$out.err"
  return "$status"
}

# One JSON line: the cases that trained the same steps on the same data (preset, batch,
# steps_trained) grouped, with the spread of their final losses; a variant that trains wrongly
# (a replayed graph that misses an update, streams that race) stands out of its group.
agreement() {
  "$py" - "$all" <<'EOF'
import json, sys
groups = {}
for line in open(sys.argv[1]):
    try:
        run = json.loads(line)
    except ValueError:  # a line of some library's output that merely starts with "{"
        continue
    if isinstance(run, dict) and "loss" in run:
        key = (run["preset"], run["batch"], run["steps_trained"])
        groups.setdefault(key, []).append(run["loss"])
rows = [
    {"preset": p, "batch": b, "steps_trained": s, "cases": len(v), "loss_min": min(v),
     "loss_max": max(v), "rel_spread": round((max(v) - min(v)) / abs(min(v)), 6)}
    for (p, b, s), v in groups.items() if len(v) > 1
]
print(json.dumps({"loss_agreement": rows}))
EOF
}

# The largest batch an eager run found (its last line), for the compiled run of that model.
largest() { "$py" -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])["batch"])' <"$out"; }

# compiled PRESET STEPS MAX: the compiled case, falling back to plain compiling (no CUDA graphs)
# when the chosen mode fails to run at all.
compiled() {
  local preset=$1 steps=$2 max=$3
  if ! run 170 --preset "$preset" --batch "128,$max" --steps "$steps" --compile "$mode" &&
    [[ "$mode" != default && ! -s "$out" ]]; then
    mode=default
    run 170 --preset "$preset" --batch "128,$max" --steps "$steps" --compile default || true
  fi
}

# variants LIMIT_S: the compiled LCM-Base step at batch 128 in other forms, most promising first,
# each given at most LIMIT_S (twice that where it compiles whole or afresh):
# - the whole training step as one CUDA graph (forward, backward, clipping, AdamW:
#   --compile-scope step; at 73c518e the step was ~21 ms for ~12 ms of kernels, the rest launches);
# - so with the masked-ROI reconstruction on a stream of its own beside the decoder, whose
#   896-row matmuls leave most SMs idle (--overlap), and the math backend for the queries'
#   self-attention (7 queries: short rows; cuDNN's kernels took ~75 us a layer at 73c518e), then
#   each of the two alone, then both with inductor's autotuned matmuls (max-autotune);
# - the model compiled whole (one CUDA graph per call instead of one per block: at 8fb7f3e its
#   profile spent ~0.2 ms of host time per block call), so with each step marked as one for CUDA
#   graph trees (their fast path was missed for "pending, uninvoked backwards");
# - the math backend alone and with the whole model, the other backends, LCM-Big compiled whole
#   (whether one scope can serve every preset; 127 s of compiling at 158038e), inductor's combo
#   kernels (fewer launches) and the marked steps by blocks.
# A variant of the attention backend or of inductor compiles afresh (train_throughput.py: no
# cached graphs), hence its longer limit.
variants() {
  local limit=$1 base=(--preset base --batch 128 --steps 10 --compile "$mode")
  run $((2 * limit)) "${base[@]}" --compile-scope step || true
  run $((2 * limit)) "${base[@]}" --compile-scope step --overlap --math-attention 16 || true
  run $((2 * limit)) "${base[@]}" --compile-scope step --overlap || true
  run $((2 * limit)) "${base[@]}" --compile-scope step --math-attention 16 || true
  run $((2 * limit)) --preset base --batch 128 --steps 10 --compile max-autotune \
    --compile-scope step --overlap --math-attention 16 || true
  run $((2 * limit)) "${base[@]}" --compile-scope model || true
  run $((2 * limit)) "${base[@]}" --compile-scope model --mark-step || true
  run $((2 * limit)) "${base[@]}" --sdp math || true
  run $((2 * limit)) "${base[@]}" --compile-scope model --sdp math || true
  run $((2 * limit)) "${base[@]}" --sdp flash || true
  run $((2 * limit)) --preset big --batch 128 --steps 4 --compile "$mode" --compile-scope model ||
    true
  run $((2 * limit)) "${base[@]}" --sdp mem_efficient || true
  run $((2 * limit)) "${base[@]}" --inductor combo_kernels=True || true
  run "$limit" "${base[@]}" --mark-step || true
}

if $only_variants; then # the reference first: the same step as training compiles it
  run 90 --preset base --batch 128 --steps 10 --compile "$mode" || true
  variants 90
  agreement
  exit 0
fi
run 60 --preset base --batch 128,max --max-batch 4096 --steps 10 --compile off || true
compiled base 10 "$(largest || echo 128)"
run 75 --preset big --batch 128,max --max-batch 1024 --steps 4 --compile off || true
compiled big 4 "$(largest || echo 128)"
# Memory head-room: the same batch with gradient checkpointing.
run 45 --preset big --batch 128 --steps 2 --gradient-checkpointing --compile off || true
if $with_variants; then
  variants 75 # with what is left of the budget
fi
agreement
