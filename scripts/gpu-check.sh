#!/usr/bin/env bash
# The GPU check, for a machine with one CUDA device: one script, run from the
# repository root of a bare copy (no pip install: vaekit from src/), ending within 6 minutes.
#
#   VAEKIT_DATA=/path/to/fashion-mnist scripts/gpu-check.sh [OUTPUT_DIR]    (default: $OUT)
#
# Writes 7 files to OUTPUT_DIR:
#   tests.log      pytest of tests/train/test_cuda.py and of the CUDA tests of the other test files
#                  that mention cuda (-k cuda), but for files that import hypothesis, playwright or
#                  tensorboard (not installed there); tests/conftest.py's hypothesis profiles get a
#                  stand-in module when hypothesis is missing
#   autocast.json  bench/autocast_cpu.py --json, when that file exists
#   gpu.json       bench/gpu.py --out: vaekit's seconds per epoch (float32, bf16), the peers, the
#   gpu.log          k = 5,000 evaluation and the ratios; gpu.log has its table
#   budget.json    the wall seconds of `python -m vaekit train --config configs/fashion-mnist-best.toml
#   budget.log       --device cuda --time-budget 40s` against its 40 s, and what the run says it spent
#                    (its epochs, their seconds, the run's own clock from checkpoint.json)
#   check.log      each part's exit status and seconds, and the summary printed at the end
# A part that fails or hangs (each has a `timeout`) is recorded and the next one runs; the exit
# status is 0 when every part passed, 1 otherwise. No CUDA device: one sentence, exit status 2.
# $PYTHON picks the interpreter (default: python, else python3); $GPU_CHECK_SECONDS the whole
# script's limit (default: 345). GPU_CHECK_DEVICE=cpu runs the script itself on a machine without a
# GPU (bench/gpu.py --device cpu --smoke; the demo MLP under a 20 s budget), to try its plumbing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
    PYTHON=$(command -v python || command -v python3 || true)
fi
if [[ -z "$PYTHON" ]]; then
    echo "gpu-check: no python or python3 on PATH; set \$PYTHON to the interpreter with torch." >&2
    exit 2
fi
START=$(date +%s)
TOTAL=${GPU_CHECK_SECONDS:-345}

DEVICE=${GPU_CHECK_DEVICE:-cuda}
# one torch import: what the machine has (said in check.log), and exit status 3 without CUDA
describe='import sys, torch
cuda = torch.cuda.is_available()
name = torch.cuda.get_device_name() if cuda else "no CUDA device"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {name}")
sys.exit(0 if cuda or sys.argv[1] == "cpu" else 3)'
cuda_rc=0
machine=$(timeout -k 5 60 "$PYTHON" -c "$describe" "$DEVICE" 2>/dev/null) || cuda_rc=$?
if [[ $cuda_rc == 3 ]]; then
    echo "gpu-check: torch sees no CUDA device on this machine; run this script where one is." >&2
    exit 2
elif [[ $cuda_rc != 0 ]]; then
    echo "gpu-check: $PYTHON could not import torch (exit status $cuda_rc); run this script where torch is installed." >&2
    exit 2
fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
if [[ -z "${VAEKIT_DATA:-}" || ! -d "$VAEKIT_DATA" ]]; then
    echo "gpu-check: \$VAEKIT_DATA must name the folder of Fashion-MNIST's four .gz IDX files (it is ${VAEKIT_DATA:-unset})." >&2
    exit 2
fi
OUT_DIR=${1:-${OUT:-}}
if [[ -z "$OUT_DIR" ]]; then
    echo "gpu-check: give the output directory as the first argument or in \$OUT." >&2
    exit 2
fi
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
LOG="$OUT_DIR/check.log"
: >"$LOG"

say() { echo "$*" | tee -a "$LOG"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# allow CAP RESERVE: the seconds a part may run: CAP, or less so that the parts after it keep
# RESERVE seconds of the script's TOTAL (5 s of each part's kill grace counted in); at least 10.
allow() {
    local left=$((START + TOTAL - $(date +%s) - $2 - 5))
    if ((left < 10)); then left=10; fi
    if ((left < $1)); then echo "$left"; else echo "$1"; fi
}
declare -A RC SECONDS_OF
record() {  # record PART RC T0
    RC[$1]=$2
    SECONDS_OF[$1]=$(since "$3")
    local what="passed"
    if [[ $2 == 124 || $2 == 137 ]]; then what="TIMED OUT"; elif [[ $2 != 0 ]]; then what="FAILED"; fi
    say "[$1] exit status $2 ($what) after ${SECONDS_OF[$1]} s"
}

say "gpu-check: $machine, device $DEVICE, VAEKIT_DATA=$VAEKIT_DATA, limit ${TOTAL} s"

# ---------------------------------------------------------------- (a) the CUDA tests
tests=()
while IFS= read -r f; do
    if ! grep -qE "^[[:space:]]*(import|from)[[:space:]]+(hypothesis|playwright|tensorboard)\b" "$f"; then
        tests+=("$f")
    else
        say "[tests] left out: $f (imports hypothesis, playwright or tensorboard)"
    fi
done < <( (ls tests/train/test_cuda.py 2>/dev/null; grep -rlis --include='test_*.py' cuda tests) | sort -u)
if ! "$PYTHON" -c 'import hypothesis' >/dev/null 2>&1; then
    # tests/conftest.py registers hypothesis profiles at import; the files run here draw no examples
    mkdir -p "$WORK/stubs/hypothesis"
    cat >"$WORK/stubs/hypothesis/__init__.py" <<'EOF'
"""gpu-check's stand-in for hypothesis (not installed here): tests/conftest.py's profiles only."""


class settings:  # noqa: N801 - hypothesis's name
    @staticmethod
    def register_profile(*args, **kwargs):
        pass

    @staticmethod
    def load_profile(*args, **kwargs):
        pass
EOF
    say "[tests] hypothesis is not installed: tests/conftest.py gets a stand-in for its profiles"
fi
if ((${#tests[@]})); then
    t0=$(now)
    rc=0
    say "[tests] pytest -k cuda ${tests[*]}"
    PYTHONPATH="$WORK/stubs:$PYTHONPATH" timeout -k 5 "$(allow 45 250)" \
        "$PYTHON" -m pytest -q -p no:cacheprovider -k cuda "${tests[@]}" >"$OUT_DIR/tests.log" 2>&1 || rc=$?
    record tests "$rc" "$t0"
    tail -n 1 "$OUT_DIR/tests.log" | sed 's/^/[tests] /' | tee -a "$LOG"
else
    say "[tests] no test file mentions cuda: skipped"
fi

# ---------------------------------------------------------------- (b) autocast on the CPU
if [[ -f bench/autocast_cpu.py ]]; then
    t0=$(now)
    rc=0
    timeout -k 5 "$(allow 25 225)" "$PYTHON" bench/autocast_cpu.py --json \
        >"$OUT_DIR/autocast.json" 2> >(sed 's/^/[autocast] /' >>"$LOG") || rc=$?
    record autocast "$rc" "$t0"
else
    say "[autocast] bench/autocast_cpu.py does not exist: skipped"
fi

# ---------------------------------------------------------------- (c) bench/gpu.py
t0=$(now)
rc=0
gpu_args=(--out "$OUT_DIR/gpu.json")
if [[ $DEVICE == cpu ]]; then gpu_args+=(--device cpu --smoke); fi
timeout -k 5 "$(allow 240 75)" "$PYTHON" bench/gpu.py "${gpu_args[@]}" >"$OUT_DIR/gpu.log" 2>&1 || rc=$?
record gpu "$rc" "$t0"

# ---------------------------------------------------------------- (d) the time budget
BUDGET=40
BUDGET_CONFIG=configs/fashion-mnist-best.toml
budget_args=()
if [[ $DEVICE == cpu ]]; then  # the demo MLP's patience (15) is more than 20 s plans: refused, so none
    BUDGET=20 BUDGET_CONFIG=configs/fashion-mnist-mlp.toml budget_args=(--patience 0)
fi
RUN="$WORK/budget-run"
t0=$(now)
rc=0
timeout -k 5 "$(allow 75 0)" "$PYTHON" -m vaekit train --config "$BUDGET_CONFIG" --device "$DEVICE" \
    --time-budget "${BUDGET}s" ${budget_args[@]+"${budget_args[@]}"} --out "$RUN" --no-progress \
    >"$OUT_DIR/budget.log" 2>&1 || rc=$?
t1=$(now)
record budget "$rc" "$t0"
"$PYTHON" - "$OUT_DIR/budget.json" "$BUDGET" "$t0" "$t1" "$rc" "$RUN" "$DEVICE" "$BUDGET_CONFIG" <<'EOF' | tee -a "$LOG" \
    || say "[budget] budget.json not written"
import json, pathlib, sys

out, budget, t0, t1, rc, run, device, config = sys.argv[1:]
run = pathlib.Path(run)
result = {"command": f"python -m vaekit train --config {config} --device {device} "
                     f"--time-budget {budget}s --out RUN --no-progress",
          "budget_s": float(budget), "command_s": round(float(t1) - float(t0), 3), "exit_status": int(rc),
          "timed_out": int(rc) in (124, 137)}
result["over_budget_s"] = round(result["command_s"] - result["budget_s"], 3)
try:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    result.update(epochs=len(rows), epoch_seconds_sum=round(sum(r.get("epoch_seconds", 0) for r in rows), 3),
                  last_epoch_seconds=rows[-1].get("epoch_seconds") if rows else None)
except OSError as err:
    result["metrics_error"] = str(err)
try:
    state = json.loads((run / "checkpoint.json").read_text())
    progress = state.get("progress", state)
    spent = progress.get("train_seconds")
    result["run_train_seconds"] = round(spent, 3) if isinstance(spent, (int, float)) else spent
    result["run_stopped"] = progress.get("stopped")
except (OSError, ValueError, AttributeError) as err:
    result["checkpoint_error"] = str(err)
pathlib.Path(out).write_text(json.dumps(result, indent=1) + "\n")
print(f"[budget] {result['command_s']:.1f} s of command for a {result['budget_s']:.0f} s budget "
      f"({result.get('epochs', '?')} epochs, the run's own clock {result.get('run_train_seconds', '?')} s)")
EOF

# ---------------------------------------------------------------- summary
say ""
say "gpu-check summary ($(since "$START.0") s in all; files in $OUT_DIR):"
status=0
for part in tests autocast gpu budget; do
    if [[ -n "${RC[$part]:-}" ]]; then
        say "  $part: exit status ${RC[$part]} in ${SECONDS_OF[$part]} s"
        if [[ ${RC[$part]} != 0 ]]; then status=1; fi
    fi
done
if [[ -f "$OUT_DIR/gpu.log" ]]; then
    grep -E "the speed|^k = |FAILED" "$OUT_DIR/gpu.log" | sed 's/^/  gpu: /' | tee -a "$LOG" || true
fi
exit "$status"
