#!/usr/bin/env bash
# One Ray node as a Slurm job step of slurm/tune.sh:
#
#   srun ... bash slurm/ray-step.sh PIDFILE start --block ...      # runs `ray start --block ...`
#   srun --overlap ... bash slurm/ray-step.sh --stop PIDFILE        # ends it, from another step
#
# The first form writes its process id to PIDFILE (node-local) and runs `ray "$@"`. A SIGTERM to it is
# passed on to `ray start --block`, which shuts the node's Ray processes down; it then exits 0, so that a
# node that was asked to stop ends its step cleanly (Ray exits 1 after a SIGTERM, which srun would report
# as an error). A node that ends by itself keeps Ray's exit status.
# The second form sends that SIGTERM: a plain kill on the node. (SIGTERM through Slurm, to srun or with
# scancel, makes Slurm log the step as CANCELLED, or SIGKILL it.)
# Draining before shutdown (RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S, 30 s by default, for Ray Serve) is off:
# by then the sweep is over.
set -uo pipefail

if [[ ${1:-} == --stop ]]; then
    pid=$(cat "${2:?usage: ray-step.sh --stop PIDFILE}" 2>/dev/null) || exit 0  # never started
    kill -TERM "$pid" 2>/dev/null || true
    exit 0
fi

pidfile=${1:?usage: ray-step.sh PIDFILE ray-arguments...}
shift
mkdir -p "$(dirname "$pidfile")"
echo $$ >"$pidfile"

export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=${RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S:-0}
stopping=""
pid=""
# shellcheck disable=SC2317  # invoked by the TERM trap
on_term() {
    stopping=1
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null
}
trap on_term TERM
ray "$@" &
pid=$!
[[ -n $stopping ]] && kill -TERM "$pid" 2>/dev/null  # a TERM before $pid was known
rc=0
wait "$pid" || rc=$?
while kill -0 "$pid" 2>/dev/null; do  # the trap interrupted `wait`: wait for Ray itself
    rc=0
    wait "$pid" || rc=$?
done
rm -f "$pidfile"
if [[ -n $stopping ]]; then
    exit 0
fi
exit "$rc"
