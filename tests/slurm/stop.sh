#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by tests/slurm/start.sh
# (slurmd, slurmctld and munged). Idempotent: daemons that are not running are skipped.
# Usage: stop.sh [--keep-munge]
set -euo pipefail

LOG_DIR=/var/log/slurm
keep_munge=0
[[ ${1:-} == --keep-munge ]] && keep_munge=1

say() { echo "[slurm/stop] $*"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "[slurm/stop] ERROR: must run as root" >&2
    exit 1
fi

failed=0

# stop_pidfile NAME PIDFILE: SIGTERM, wait up to 15 s, then SIGKILL.
stop_pidfile() {
    local name=$1 pidfile=$2 pid
    if [[ ! -s $pidfile ]]; then
        say "$name: no pid file ($pidfile), not running"
        return 0
    fi
    pid=$(cat "$pidfile")
    if ! kill -0 "$pid" 2>/dev/null; then
        say "$name: pid $pid not running"
        rm -f "$pidfile"
        return 0
    fi
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name did not exit after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    if kill -0 "$pid" 2>/dev/null; then
        echo "[slurm/stop] ERROR: $name (pid $pid) is still running" >&2
        failed=1
    else
        rm -f "$pidfile"
    fi
}

stop_pidfile slurmd /run/slurmd.pid
stop_pidfile slurmctld /run/slurmctld.pid
if [[ $keep_munge -eq 0 ]]; then
    stop_pidfile munged /run/munge/munged.pid
fi

if [[ $failed -ne 0 ]]; then
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"; do
        [[ -s $f ]] && { echo "----- tail -n 20 $f -----" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
fi
say "done"
