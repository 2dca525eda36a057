#!/usr/bin/env bash
# A throwaway single-node Slurm on this machine, to try slurm/tune.sh and slurm/train.sh without a cluster.
#
#   sudo slurm/local/up.sh              # install slurm-wlm and munge if missing, configure, start
#   sudo slurm/local/up.sh --no-install # the same, but exit 3 instead of installing
#   sbatch --gpus-per-task=0 --cpus-per-task=2 slurm/tune.sh conf=smoke ...
#   sudo slurm/local/down.sh            # cancel the jobs, stop the daemons
#
# Debian's packages (Slurm 22.05 on Debian 12). One node, this machine, with the CPUs and memory that
# `slurmd -C` finds, in partition `debug`; munge authentication; no accounting (read finished jobs with
# `scontrol show job ID`: they stay visible for MinJobAge, an hour). The daemons run as root, are started
# by this script and stopped by down.sh through the process ids they write under $STATE/run.
#
# Idempotent: daemons that are already running are left alone. /etc/slurm/slurm.conf is written only
# when it is absent or was written by this script (a marker line), and never while slurmctld runs; an
# existing Slurm configuration of the machine is refused.
#
# Exit status: 0 when the node is idle (or busy with jobs) and accepts jobs; 3 when Slurm cannot be
# brought up here (not root, slurm-wlm not installed with --no-install, no apt-get, installation failed);
# 1 for other failures (a daemon that does not start: its log is printed).
#
# Settings: LOTJ_SLURM_STATE (default /var/spool/lotj-slurm): state, spool, logs, pid files.
set -euo pipefail

install=1
case ${1:-} in
"") ;;
--no-install) install="" ;;
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "up.sh: unknown argument $1 (use --no-install or --help)" >&2
    exit 1
    ;;
esac

readonly marker="# lotj local Slurm, written by slurm/local/up.sh (slurm/local/down.sh --purge removes it)"
readonly conf=/etc/slurm/slurm.conf
state=${LOTJ_SLURM_STATE:-/var/spool/lotj-slurm}
run=$state/run
logs=$state/log

cannot() {
    echo "up.sh: cannot bring up a local Slurm here: $*" >&2
    exit 3
}

# --- packages -------------------------------------------------------------------------------------
if [[ $(id -u) -ne 0 ]]; then
    cannot "it needs root (run it with sudo); the daemons of a single-node Slurm run as root"
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null ||
    ! command -v sbatch >/dev/null; then
    if [[ -z $install ]]; then
        cannot "slurm-wlm and munge are not installed (run slurm/local/up.sh without --no-install, as root)"
    fi
    if ! command -v apt-get >/dev/null; then
        cannot "slurm-wlm is not installed and there is no apt-get; install Slurm and munge with your package manager"
    fi
    echo "up.sh: installing slurm-wlm and munge with apt-get"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge; }; then
        cannot "apt-get install slurm-wlm munge failed (see above)"
    fi
fi

# --- helpers ------------------------------------------------------------------------------------------
running() {  # running PIDFILE: the process it names is alive
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

node=$(hostname -s)

write_conf() {
    local hw
    # "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
    hw=$(slurmd -C | head -n 1)
    if [[ $hw != NodeName=* ]]; then
        echo "up.sh: slurmd -C did not describe this node: $hw" >&2
        exit 1
    fi
    mkdir -p /etc/slurm
    cat >"$conf.tmp" <<CONF
$marker
ClusterName=lotj-local
SlurmctldHost=$node
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.pid
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# finished jobs stay visible to scontrol show job for an hour (no accounting: sacct has nothing)
MinJobAge=3600
MpiDefault=none
$hw
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
    mv "$conf.tmp" "$conf"
}

# --- configuration --------------------------------------------------------------------------------
if [[ -e $conf ]] && ! grep -qxF "$marker" "$conf"; then
    cannot "$conf exists and was not written by this script: this machine has a Slurm of its own"
fi
mkdir -p "$state/ctld" "$state/d" "$run" "$logs" /run/munge
if ! running "$run/slurmctld.pid"; then
    write_conf
fi

# --- daemons --------------------------------------------------------------------------------------
started=()
if running "$run/munged.pid"; then
    :
elif munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    echo "up.sh: using the munged that is already running (down.sh will not stop it)"
else
    munged --force --pid-file="$run/munged.pid" --log-file="$logs/munged.log"
    started+=(munged)
fi
if ! running "$run/slurmctld.pid"; then
    slurmctld
    started+=(slurmctld)
fi
if ! running "$run/slurmd.pid"; then
    slurmd
    started+=(slurmd)
fi

# --- wait until the node takes jobs (a hang guard of 60 s; it takes a few seconds) -------------------------
node_state=""
for _ in $(seq 120); do
    node_state=$(sinfo --noheader --nodes="$node" --format=%T 2>/dev/null | head -n 1 || true)
    case $node_state in
    idle | mixed | allocated | completing) break ;;
    drained | draining | down | down\*)
        scontrol update NodeName="$node" State=RESUME 2>/dev/null || true
        ;;
    esac
    sleep 0.5
done
case $node_state in
idle | mixed | allocated | completing) ;;
*)
    echo "up.sh: node $node is '${node_state:-not answering}' after 60 s; the daemons' logs:" >&2
    tail -n 20 "$logs/slurmctld.log" "$logs/slurmd.log" >&2 || true
    exit 1
    ;;
esac

if [[ ${#started[@]} -gt 0 ]]; then
    echo "up.sh: local Slurm up (started now: ${started[*]}); node $node $node_state, partition debug"
else
    echo "up.sh: local Slurm up (already running); node $node $node_state, partition debug"
fi
echo "up.sh: $(grep '^NodeName=' "$conf")"
