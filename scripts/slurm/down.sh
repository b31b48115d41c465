#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by up.sh (slurmd, slurmctld, slurmdbd, and munged
# and MariaDB when up.sh started them). Job state stays in OPOS_SLURM_DIR and the accounting
# database in MariaDB's data folder, so up.sh resumes where it stopped.
#
# Usage: down.sh [a|b|all] [--keep-munge]
#   a (the default) the first cluster; b the second (its slurmd and slurmctld only: munge,
#   MariaDB and slurmdbd belong to the first); all: b, then a.
# --keep-munge (used by up.sh itself when slurm.conf changed): stop slurmd and slurmctld only.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cluster=a
keep_munge=0
for arg in "$@"; do
    case "$arg" in
    a | b | all) cluster="$arg" ;;
    --keep-munge) keep_munge=1 ;;
    *)
        echo "usage: $0 [a|b|all] [--keep-munge]" >&2
        exit 2
        ;;
    esac
done
if [[ "$cluster" == all ]]; then
    # The second cluster first: it reports to the first one's slurmdbd.
    extra=()
    ((keep_munge)) && extra=(--keep-munge)
    bash "$here/down.sh" b "${extra[@]}"
    exec bash "$here/down.sh" a "${extra[@]}"
fi
if [[ "$cluster" == b ]]; then
    state_dir="${OPOS_SLURM_B_DIR:-/var/lib/opos-slurm-b}"
else
    state_dir="${OPOS_SLURM_DIR:-/var/lib/opos-slurm}"
fi

log() { echo "[slurm-down $cluster] $*" >&2; }

# stop NAME PIDFILE: TERM the pid the file names, wait up to 10 s, then KILL.
stop() {
    local name="$1" pidfile="$2" pid
    [[ -s "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    if [[ ! "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$pidfile"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop: killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

stop slurmd "$state_dir/run/slurmd.pid"
stop slurmctld "$state_dir/run/slurmctld.pid"
if ((keep_munge)) || [[ "$cluster" == b ]]; then
    exit 0
fi
stop slurmdbd "$state_dir/run/slurmdbd.pid"
# MariaDB is stopped only when up.sh started it (a machine's own MariaDB is left alone).
if [[ -e "$state_dir/run/mariadb.started-by-up" ]]; then
    stop mariadbd "$state_dir/run/mariadb.pid"
    rm -f "$state_dir/run/mariadb.started-by-up"
fi
# munged is stopped only when up.sh started it, and not with --keep-munge (used by up.sh itself).
if [[ -e "$state_dir/run/munged.started-by-up" ]]; then
    stop munged /run/munge/munged.pid
    rm -f "$state_dir/run/munged.started-by-up"
fi
