#!/usr/bin/env bash
# The GPU checks, in one go, on a machine where torch sees a CUDA device. Prints its figures; each
# part has its own time limit and a failing part does not stop the others.
#
#   bash benchmarks/gpu.sh [OUT_DIR]        # OUT_DIR (default runs/gpu) gets the logs and the smoke run
#
# Exits 1 at once where torch sees no GPU, and 1 at the end if any part failed.
#
# 1. the device-parametrised tests on the GPU (`pytest -k cuda`: conservation, event rates, the
#    two-state employment rate, checkpoint round trips, the joint loop with V on the GPU, the residual
#    and its gradient equal to the CPU's);
# 2. simulator throughput on the GPU from 10^3 to 10^6 firms (benchmarks/simulate.py --device cuda);
# 3. one V training step of the baseline and smoke presets on the GPU and on one CPU thread
#    (benchmarks/train_step.py);
# 4. `python -m lotj.train conf=smoke trainer.accelerator=gpu`: wall time, the training/simulation
#    split and the summary (about 6 minutes on an H100: the smoke network is too small for a GPU).
set -u -o pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/runs/gpu}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd "$root"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} WANDB_MODE=disabled
py=${PYTHON:-python3}
section() { printf '\n==== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
failed=()
check() { local status=$?; [ "$status" -eq 0 ] || { echo "FAILED: $1 (exit status $status)"; failed+=("$1"); }; }

section "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
"$py" -c 'import torch, lightning; print("torch", torch.__version__, "lightning", lightning.__version__)'
if ! "$py" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "gpu.sh: torch sees no GPU here (torch.cuda.is_available() is False)" >&2
    exit 1
fi

section "tests on the GPU"
timeout "${TEST_LIMIT:-150}" "$py" -m pytest -q -k cuda -p no:cacheprovider \
    tests/test_sim_rates.py tests/test_sim_time_order.py tests/test_sim_callback.py tests/test_sim_train.py tests/test_train.py \
    > "$out/tests.log" 2>&1
check "tests on the GPU"
grep -v "Warning\|warnings.warn\|^  \|^INFO" "$out/tests.log" | tail -25

section "simulator throughput on the GPU"
timeout "${SIM_LIMIT:-100}" "$py" benchmarks/simulate.py --device cuda --firms 1000 10000 100000 1000000 \
    --years 2 --warmup 0.5 --precision 32 2>&1 | tee "$out/simulate.log"
check "simulator throughput"

section "one V training step"
for conf in baseline smoke; do
    timeout "${STEP_LIMIT:-120}" "$py" benchmarks/train_step.py --conf $conf --devices cuda cpu --steps 30 \
        --cpu-steps 3 2>&1 | tee -a "$out/train_step.log"
    check "training step, conf=$conf"
done

section "conf=smoke on the GPU"
timeout "${TRAIN_LIMIT:-900}" "$py" -m lotj.train conf=smoke trainer.accelerator=gpu out_dir="$out/smoke" \
    logging.logger=csv logging.progress_bar=false > "$out/train.log" 2>&1
check "conf=smoke on the GPU"
tail -5 "$out/train.log"
if [ -f "$out/smoke/summary.json" ]; then
    "$py" - "$out/smoke/summary.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
keys = ("device", "status", "sim_status", "epochs", "residual", "residual_final", "best_residual", "wall_time_s",
        "time_simulation_s", "w_residual", "total_time_s", "sim_e", "sim_firm_size_mean")
for k in keys:
    print(f"{k:>20}: {s.get(k)}")
EOF
fi
section "done"
if [ ${#failed[@]} -gt 0 ]; then
    printf 'gpu.sh: %d part(s) failed: %s\n' "${#failed[@]}" "$(IFS=';'; echo "${failed[*]}")"
    exit 1
fi
