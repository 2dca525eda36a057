#!/usr/bin/env bash
# A Ray Tune sweep across the nodes of one Slurm job.
#
#   cd /path/to/lotj && source .venv/bin/activate        # the environment travels with the job
#   sbatch slurm/tune.sh conf=baseline tune=arch sweep.num_samples=64 sweep.resources.gpu=1
#   sbatch slurm/tune.sh calibrate conf=baseline calibrate=source calibrate.num_trials=256 calibrate.resources.gpu=1
#   sbatch slurm/tune.sh counterfactuals conf=smoke --seeds 2 sweep.resources.gpu=1   # docs/counterfactuals.md
#
# Arguments are those of `python -m tune.sweep` (run from the submit directory); after a first argument
# `calibrate`, those of `python -m tune.calibrate` (a calibration by the simulated method of moments, which
# stops the same way near the time limit and continues with resume=DIR); after `counterfactuals`, those of
# `python -m lotj.counterfactuals`. The first node runs the Ray head and the driver; every other node runs a
# Ray worker; all join one cluster with
# this job's own ports, temp dir and auth token, so jobs sharing nodes do not collide.
#
# Edit the #SBATCH lines: nodes, CPUs per node (--cpus-per-task), GPUs per node (--gpus-per-task,
# one task per node), time. Trial sizes are sweep options (sweep.resources.cpu / .gpu).
#
# Settings read from the environment (all optional):
#   LOTJ_PYTHON          python to run (default: python on PATH)
#   LOTJ_ROOT            repository root (default: the directory sbatch was called from)
#   LOTJ_RAY_PORT_BASE   first of 200 ports this job uses (default: 10000 + 200 * (job id % 250))
#   LOTJ_RAY_TMPDIR      node-local Ray temp dir (default: /tmp/ray-USER-JOBID; keep it short)
#   LOTJ_RAY_HEAD_IP     head address (default: found by slurm/head-ip.sh on the head node, never loopback)
#   LOTJ_RAY_TIMEOUT     seconds to wait for the cluster (default 300)
#   RAY_AUTH_MODE        token (default: a fresh token per job in RAY_AUTH_TOKEN) or disabled
#
#SBATCH --job-name=lotj-tune
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --gpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --output=%x-%j.out
#SBATCH --signal=B:USR1@180
# (--signal: 3 minutes before the time limit the sweep stops and saves its state; resume=DIR continues it)

set -euo pipefail

: "${SLURM_JOB_ID:?run this script with sbatch (SLURM_JOB_ID is not set)}"
: "${SLURM_JOB_NODELIST:?SLURM_JOB_NODELIST is not set}"

# A SIGUSR1 (the time limit is near) before the sweep runs is noted, and the sweep is then not started;
# bash's default would end this shell at once.
early_stop=""
trap 'early_stop=1' USR1

# The driver on the head node: a sweep, a calibration or the counterfactual economies (trials on the same cluster).
driver_module=tune.sweep
address_option=sweep.address
if [[ ${1:-} == counterfactuals ]]; then
    driver_module=lotj.counterfactuals
    shift
elif [[ ${1:-} == calibrate ]]; then
    driver_module=tune.calibrate
    address_option=calibrate.address
    shift
fi

python_bin=${LOTJ_PYTHON:-python}
root=${LOTJ_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # tune/ and lotj/ importable on every node

# --- nodes: the first is the head ------------------------------------------------------------
mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
if [[ ${#nodes[@]} -eq 0 ]]; then
    echo "tune.sh: no nodes in SLURM_JOB_NODELIST=$SLURM_JOB_NODELIST" >&2
    exit 1
fi
head_node=${nodes[0]}
num_nodes=${#nodes[@]}

# The head's address for the other nodes, never loopback: LOTJ_RAY_HEAD_IP, or what slurm/head-ip.sh finds
# on the head node (the route to the second node, the host name's address, the default route, hostname -I).
if [[ -n ${LOTJ_RAY_HEAD_IP:-} ]]; then
    head_ip=$LOTJ_RAY_HEAD_IP
    head_why="set by LOTJ_RAY_HEAD_IP"
else
    read -r head_ip head_why < <(srun --nodes=1 --ntasks=1 -w "$head_node" --job-name=lotj-head-ip \
        bash "$root/slurm/head-ip.sh" "${nodes[1]:-}") || true
fi
if [[ -z ${head_ip:-} ]]; then
    echo "tune.sh: no address for head node $head_node (set LOTJ_RAY_HEAD_IP)" >&2
    exit 1
fi
if [[ $head_ip == 127.* && $num_nodes -gt 1 ]]; then
    echo "tune.sh: LOTJ_RAY_HEAD_IP=$head_ip is a loopback address, which the other nodes cannot reach" >&2
    exit 1
fi

# --- per-job ports, temp dir, auth --------------------------------------------------------------
port_base=${LOTJ_RAY_PORT_BASE:-$((10000 + 200 * (SLURM_JOB_ID % 250)))}
gcs_port=$port_base
address="$head_ip:$gcs_port"
ray_tmp=${LOTJ_RAY_TMPDIR:-/tmp/ray-$(id -un)-$SLURM_JOB_ID}
node_ports=(
    --node-manager-port=$((port_base + 1))
    --object-manager-port=$((port_base + 2))
    --dashboard-agent-grpc-port=$((port_base + 3))
    --dashboard-agent-listen-port=$((port_base + 4))
    --metrics-export-port=$((port_base + 5))
    --runtime-env-agent-port=$((port_base + 6))
    --min-worker-port=$((port_base + 20))
    --max-worker-port=$((port_base + 199))
)

export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
if [[ $RAY_AUTH_MODE == token && -z ${RAY_AUTH_TOKEN:-} ]]; then
    RAY_AUTH_TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
    export RAY_AUTH_TOKEN  # srun passes the environment to every node; nothing is written to ~/.ray
fi

cpus=${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-1}}
gpus=${SLURM_GPUS_PER_TASK:-${SLURM_GPUS_ON_NODE:-0}}
gpus=${gpus##*:}  # "a100:2" -> 2
timeout=${LOTJ_RAY_TIMEOUT:-300}

echo "tune.sh: job $SLURM_JOB_ID, $num_nodes nodes (${nodes[*]}), head $head_node at $address"
echo "tune.sh: head address $head_ip: $head_why"
echo "tune.sh: $cpus CPUs and $gpus GPUs per node, Ray temp dir $ray_tmp, auth $RAY_AUTH_MODE"

# --- stop Ray at exit, also after a failure: workers first, then the head ---------------------------------
# Each node's `ray start --block` runs as a job step under slurm/ray-step.sh, which writes its process id to
# the node's Ray temp dir. A short step beside it (srun --overlap) sends it SIGTERM: Ray shuts the node down
# and the step ends with status 0. (SIGTERM to the srun process would make srun SIGKILL the step, "forcing
# job termination"; SIGTERM through scancel would log the step as CANCELLED.)
pids=()   # the background srun of each node's step: pids[0] the head's, then one per worker
steps=()  # the node of each
step_pidfile() { echo "$ray_tmp/ray-step-$1.pid"; }
# shellcheck disable=SC2317  # invoked by the EXIT trap
stop_steps() {  # stop_steps INDEX...: SIGTERM to those nodes' Ray steps, then wait for their srun to end
    local k pid tick stoppers=()
    for k in "$@"; do
        kill -0 "${pids[k]}" 2>/dev/null || continue
        srun --overlap --nodes=1 --ntasks=1 --cpus-per-task=1 -w "${steps[k]}" --job-name=lotj-ray-stop \
            bash "$root/slurm/ray-step.sh" --stop "$(step_pidfile "${steps[k]}")" &
        stoppers+=($!)
    done
    for pid in "${stoppers[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for k in "$@"; do  # Ray takes a few seconds; after a minute, srun ends the step by force
        for ((tick = 0; tick < 120; tick++)); do
            kill -0 "${pids[k]}" 2>/dev/null || break
            sleep 0.5
        done
        kill -TERM "${pids[k]}" 2>/dev/null || true
        wait "${pids[k]}" 2>/dev/null || true
    done
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
stop_ray() {
    if [[ ${#pids[@]} -gt 0 ]]; then
        local k workers=()
        for ((k = 1; k < ${#pids[@]}; k++)); do
            workers+=("$k")
        done
        if [[ ${#workers[@]} -gt 0 ]]; then
            stop_steps "${workers[@]}"
        fi
        stop_steps 0
        echo "tune.sh: Ray stopped"
    fi
}
trap stop_ray EXIT

# Ray's (minimal) dashboard would take port 8265 on every job, even with --include-dashboard=false; the Ray
# Client server (only with ray[client], i.e. grpc, installed) port 10001.
head_ports=(--dashboard-port=$((port_base + 8)))
if "$python_bin" -c "import grpc" 2>/dev/null; then
    head_ports+=(--ray-client-server-port=$((port_base + 7)))
fi

steps+=("$head_node")
srun --nodes=1 --ntasks=1 --cpus-per-task="$cpus" -w "$head_node" --job-name=lotj-ray-head \
    bash "$root/slurm/ray-step.sh" "$(step_pidfile "$head_node")" start --head --block --node-ip-address="$head_ip" --port="$gcs_port" \
    "${head_ports[@]}" "${node_ports[@]}" \
    --num-cpus="$cpus" --num-gpus="$gpus" --temp-dir="$ray_tmp" \
    --include-dashboard=false --disable-usage-stats &
pids+=($!)

# Waits for the cluster, and stops early when one of the `ray start` steps has exited.
wait_for_nodes() {
    local pid watch=()
    for pid in "${pids[@]}"; do
        watch+=(--pid "$pid")
    done
    "$python_bin" -m tune.cluster --address "$address" --nodes "$1" --timeout "$timeout" "${watch[@]}"
}

wait_for_nodes 1

for node in "${nodes[@]:1}"; do
    steps+=("$node")
    srun --nodes=1 --ntasks=1 --cpus-per-task="$cpus" -w "$node" --job-name=lotj-ray-worker \
        bash "$root/slurm/ray-step.sh" "$(step_pidfile "$node")" start --block --address="$address" "${node_ports[@]}" \
        --num-cpus="$cpus" --num-gpus="$gpus" --temp-dir="$ray_tmp" --disable-usage-stats &
    pids+=($!)
done

wait_for_nodes "$num_nodes"

# --- the sweep, against this cluster ---------------------------------------------------------------
if [[ -n $early_stop ]]; then
    echo "tune.sh: the time limit is near (SIGUSR1) and the sweep has not started; not starting it" >&2
    exit 1
fi
# In the background so that a SIGUSR1 (time limit near) reaches this shell, which passes it on: Tune stops
# the trials and saves the experiment state, and `python -m tune.sweep resume=DIR` continues later.
"$python_bin" -m "$driver_module" "$@" "$address_option=$address" &
driver=$!
# shellcheck disable=SC2317  # invoked by the USR1 trap
forward_stop() {
    echo "tune.sh: stopping the sweep (its state is saved; continue it with resume=DIR)"
    interrupted=1
    kill -USR1 "$driver" 2>/dev/null || true
}
trap forward_stop USR1
# A USR1 interrupts `wait`, which then returns 128+10 whether or not the sweep has ended (it may end in
# the trap itself); the sweep's own status comes from the next `wait`, which bash answers even for a
# sweep that has already been reaped.
status=0
while true; do
    interrupted=0
    wait "$driver" && status=0 || status=$?
    ((interrupted && status > 128)) || break
done
echo "tune.sh: sweep exited with status $status"
exit "$status"
