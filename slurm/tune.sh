#!/usr/bin/env bash
# A Ray Tune sweep across the nodes of one Slurm job.
#
#   cd /path/to/lotj && source .venv/bin/activate        # the environment travels with the job
#   sbatch slurm/tune.sh conf=baseline tune=arch sweep.num_samples=64 sweep.resources.gpu=1
#
# Arguments are those of `python -m tune.sweep` (run from the submit directory). The first node runs
# the Ray head and the sweep driver; every other node runs a Ray worker; all join one cluster with
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
#   LOTJ_RAY_HEAD_IP     head address, when hostname --ip-address picks the wrong interface
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

# First IPv4 address of the head node (IPv6 addresses contain ':').
pick_ip() {
    local ip
    for ip in "$@"; do
        if [[ $ip != *:* ]]; then
            echo "$ip"
            return 0
        fi
    done
    echo "${1:-}"
}
if [[ -n ${LOTJ_RAY_HEAD_IP:-} ]]; then
    head_ip=$LOTJ_RAY_HEAD_IP
else
    read -r -a head_ips <<<"$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address)"
    head_ip=$(pick_ip "${head_ips[@]}")
fi
if [[ -z $head_ip ]]; then
    echo "tune.sh: no IP address for head node $head_node" >&2
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
echo "tune.sh: $cpus CPUs and $gpus GPUs per node, Ray temp dir $ray_tmp, auth $RAY_AUTH_MODE"

# --- stop Ray at exit: SIGTERM to every `ray start --block` step ends that node's Ray; workers first -----
pids=()  # pids[0]: the head's step, then one per worker
# shellcheck disable=SC2317  # invoked by the EXIT trap
stop_group() {
    local pid
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        wait "$pid" 2>/dev/null || true
    done
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
stop_ray() {
    if [[ ${#pids[@]} -gt 0 ]]; then
        stop_group "${pids[@]:1}"
        stop_group "${pids[0]}"
        echo "tune.sh: Ray stopped"
    fi
}
trap stop_ray EXIT

# The Ray Client server (only with ray[client], i.e. grpc, installed) would take port 10001 on every job.
head_ports=()
if "$python_bin" -c "import grpc" 2>/dev/null; then
    head_ports+=(--ray-client-server-port=$((port_base + 7)))
fi

srun --nodes=1 --ntasks=1 --cpus-per-task="$cpus" -w "$head_node" \
    ray start --head --block --node-ip-address="$head_ip" --port="$gcs_port" \
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
    srun --nodes=1 --ntasks=1 --cpus-per-task="$cpus" -w "$node" \
        ray start --block --address="$address" "${node_ports[@]}" \
        --num-cpus="$cpus" --num-gpus="$gpus" --temp-dir="$ray_tmp" --disable-usage-stats &
    pids+=($!)
done

wait_for_nodes "$num_nodes"

# --- the sweep, against this cluster ---------------------------------------------------------------
# In the background so that a SIGUSR1 (time limit near) reaches this shell, which passes it on: Tune stops
# the trials and saves the experiment state, and `python -m tune.sweep resume=DIR` continues later.
"$python_bin" -m tune.sweep "$@" "sweep.address=$address" &
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
