#!/usr/bin/env bash
# Start a real single-node Slurm cluster (Debian slurm-wlm + munge) on this machine,
# for testing sbatch job-array scripts (`rethink sweep --emit-slurm`).
#
# Idempotent: installs the packages if slurmctld is missing, creates the munge key if
# missing, (re)writes /etc/slurm/slurm.conf, starts munged/slurmctld/slurmd unless they
# already run with the same config, and waits until `sinfo` shows the node idle.
# Needs root. Works without systemd (PID 1 need not be an init system) and without
# cgroup plugins (proctrack/linuxproc, task/none).
#
# Env: SLURM_START_TIMEOUT (seconds to wait for the node to become idle; default 60).
set -euo pipefail

LOG_DIR=/var/log/slurm
CTLD_LOG=$LOG_DIR/slurmctld.log
SLURMD_LOG=$LOG_DIR/slurmd.log
MUNGE_LOG=/var/log/munge/munged.log
MUNGE_STDERR=$LOG_DIR/munged.stderr
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
TIMEOUT=${SLURM_START_TIMEOUT:-60}

say() { echo "[slurm/start] $*"; }

dump_logs() {
    local f
    for f in "$MUNGE_STDERR" "$MUNGE_LOG" "$LOG_DIR/slurmctld.stderr" "$CTLD_LOG" "$LOG_DIR/slurmd.stderr" "$SLURMD_LOG"; do
        if [[ -s $f ]]; then
            echo "----- tail -n 30 $f -----" >&2
            tail -n 30 "$f" >&2 || true
        fi
    done
}

die() {
    echo "[slurm/start] ERROR: $*" >&2
    dump_logs
    exit 1
}

if [[ $(id -u) -ne 0 ]]; then
    echo "[slurm/start] ERROR: must run as root" >&2
    exit 1
fi

t0=$SECONDS

# ---------------------------------------------------------------- install
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
    || ! command -v munged >/dev/null 2>&1 || ! command -v sbatch >/dev/null 2>&1; then
    say "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Keep the packages' maintainer scripts from starting services themselves
    # (we start the daemons below with our own config).
    policy_created=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_created=1
    fi
    install_rc=0
    {
        apt-get update -q &&
            apt-get install -y -q --no-install-recommends slurm-wlm munge
    } || install_rc=$?
    if [[ $policy_created -eq 1 ]]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    [[ $install_rc -eq 0 ]] || die "apt-get install slurm-wlm munge failed (exit $install_rc)"
    say "installed in $((SECONDS - t0)) s"
fi
say "$(slurmctld -V)"

# ---------------------------------------------------------------- munge
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

if ! getent passwd munge >/dev/null; then
    die "user 'munge' missing (the munge package should have created it)"
fi
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge "$LOG_DIR"
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge /etc/munge/munge.key /var/lib/munge /var/log/munge /run/munge
# munged refuses to log to a file it does not own.
[[ -e $MUNGE_LOG ]] && chown munge:munge "$MUNGE_LOG"
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge

if munge_ok; then
    say "munged already running"
else
    say "starting munged"
    # munged daemonizes itself and logs to $MUNGE_LOG; run it as the munge user, which
    # owns the key and its directories (the packaged setup). --force: start even if a
    # killed munged left a stale socket behind.
    runuser -u munge -- /usr/sbin/munged --force >"$MUNGE_STDERR" 2>&1 \
        || die "munged failed to start"
    for _ in $(seq 1 50); do
        munge_ok && break
        sleep 0.1
    done
    munge_ok || die "munge -n | unmunge fails after starting munged"
fi

# ---------------------------------------------------------------- slurm.conf
host=$(hostname -s)
[[ -n $host ]] || die "hostname -s is empty"
cpus=$(nproc)
mem_total=$(free -m | awk '/^Mem:/ {print $2}')
# Leave a margin: slurmd marks the node invalid if RealMemory exceeds what it detects.
real_mem=$((mem_total - mem_total / 10 - 256))
((real_mem >= 256)) || real_mem=$((mem_total / 2))

mkdir -p "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
chmod 0755 /var/spool/slurmctld /var/spool/slurmd

new_conf=$(mktemp)
trap 'rm -f "$new_conf"' EXIT
# NodeAddr/SlurmctldHost address are 127.0.0.1 so that nothing depends on the
# hostname resolving (NodeName must still equal `hostname -s` for slurmd to find itself).
cat >"$new_conf" <<EOF
# Written by tests/slurm/start.sh: minimal single-node test cluster (no cgroups, no accounting).
ClusterName=rethinktest
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${CTLD_LOG}
SlurmdLogFile=${SLURMD_LOG}
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldPort=6817
SlurmdPort=6818
MaxArraySize=10001
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${real_mem} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF

conf_changed=0
if ! cmp -s "$new_conf" "$CONF"; then
    install -m 0644 "$new_conf" "$CONF"
    conf_changed=1
    say "wrote $CONF (NodeName=$host CPUs=$cpus RealMemory=$real_mem)"
fi
# ---------------------------------------------------------------- daemons
pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [[ $conf_changed -eq 1 ]] && { pid_alive /run/slurmctld.pid || pid_alive /run/slurmd.pid; }; then
    say "config changed: restarting the Slurm daemons"
    "$(dirname "$0")/stop.sh" --keep-munge
fi

if pid_alive /run/slurmctld.pid && scontrol ping >/dev/null 2>&1; then
    say "slurmctld already running"
else
    say "starting slurmctld"
    : >"$LOG_DIR/slurmctld.stderr"
    # slurmctld daemonizes itself (writes its pid file, logs to SlurmctldLogFile).
    slurmctld >>"$LOG_DIR/slurmctld.stderr" 2>&1 || die "slurmctld failed to start"
fi

if pid_alive /run/slurmd.pid; then
    say "slurmd already running"
else
    say "starting slurmd"
    : >"$LOG_DIR/slurmd.stderr"
    slurmd >>"$LOG_DIR/slurmd.stderr" 2>&1 || die "slurmd failed to start"
fi

# ---------------------------------------------------------------- wait for idle node
say "waiting up to ${TIMEOUT} s for node $host to be idle"
deadline=$((SECONDS + TIMEOUT))
state=""
resumed=0
while ((SECONDS < deadline)); do
    state=$(sinfo -h -N -n "$host" -o '%t' 2>/dev/null | head -n 1 || true)
    case $state in
    idle) break ;;
    down* | drain* | drng*)
        # Left over from an earlier run (e.g. a killed slurmd): bring it back once.
        if [[ $resumed -eq 0 ]]; then
            scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
            resumed=1
        fi
        ;;
    esac
    pid_alive /run/slurmctld.pid || die "slurmctld is not running"
    pid_alive /run/slurmd.pid || die "slurmd is not running"
    sleep 1
done
if [[ $state != idle ]]; then
    sinfo -N -l >&2 || true
    scontrol show node "$host" >&2 || true
    die "node $host not idle after ${TIMEOUT} s (state: '${state:-none}')"
fi
say "cluster ready in $((SECONDS - t0)) s:"
sinfo
