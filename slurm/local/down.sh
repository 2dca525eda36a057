#!/usr/bin/env bash
# Stop the local Slurm of slurm/local/up.sh: cancel its jobs, then stop slurmd, slurmctld and munged
# (the last only when up.sh started it) by the process ids they wrote under $STATE/run.
#
#   sudo slurm/local/down.sh           # the configuration and the job state stay (up.sh starts it again)
#   sudo slurm/local/down.sh --purge   # also remove /etc/slurm/slurm.conf and $STATE
#
# Settings: LOTJ_SLURM_STATE (default /var/spool/lotj-slurm), as for up.sh.
set -euo pipefail

purge=""
case ${1:-} in
"") ;;
--purge) purge=1 ;;
*)
    echo "down.sh: unknown argument $1 (use --purge)" >&2
    exit 1
    ;;
esac

readonly marker="# lotj local Slurm, written by slurm/local/up.sh (slurm/local/down.sh --purge removes it)"
readonly conf=/etc/slurm/slurm.conf
state=${LOTJ_SLURM_STATE:-/var/spool/lotj-slurm}
run=$state/run

running() {  # running PIDFILE: the process it names is alive
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# stop NAME: SIGTERM to the daemon of $run/NAME.pid, then wait for it (SIGKILL after 30 s)
stop() {
    local file=$run/$1.pid pid
    running "$file" || { rm -f "$file"; return 0; }
    pid=$(<"$file")
    kill -TERM "$pid"
    for _ in $(seq 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "down.sh: $1 ($pid) still runs 30 s after SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
    echo "down.sh: stopped $1 ($pid)"
}

if [[ -e $conf ]] && ! grep -qxF "$marker" "$conf"; then
    echo "down.sh: $conf was not written by slurm/local/up.sh; leaving this machine's Slurm alone" >&2
    exit 1
fi

# Jobs first: their steps (slurmstepd and what they run, e.g. Ray) would outlive slurmd.
if running "$run/slurmctld.pid" && running "$run/slurmd.pid"; then
    mapfile -t jobs < <(squeue --noheader --format=%A 2>/dev/null || true)
    if [[ ${#jobs[@]} -gt 0 ]]; then
        echo "down.sh: cancelling jobs ${jobs[*]}"
        scancel "${jobs[@]}" || true
        for _ in $(seq 120); do
            [[ -z $(squeue --noheader --format=%A 2>/dev/null || true) ]] && break
            sleep 0.5
        done
    fi
fi

stop slurmd
stop slurmctld
stop munged

if [[ -n $purge ]]; then
    [[ -e $conf ]] && rm -f "$conf" && echo "down.sh: removed $conf"
    rm -rf "$state" && echo "down.sh: removed $state"
fi
