#!/usr/bin/env bash
# Bring up a real single-node Slurm cluster on this machine (Debian 12, run as root).
#
# Idempotent: installs slurm-wlm and munge when missing, starts munged, slurmctld and slurmd
# when they are not running, and waits until the node is idle. Running it again on a healthy
# cluster changes nothing. State, spool, pid and log files live under OPOS_SLURM_DIR
# (default /var/lib/opos-slurm); the generated slurm.conf is written there and also
# installed as /etc/slurm/slurm.conf so that plain `sbatch` works without SLURM_CONF.
#
# Environment:
#   OPOS_SLURM_DIR       writable state folder (default /var/lib/opos-slurm)
#   OPOS_SLURM_TIMEOUT   seconds to wait for the node to become idle (default 60)
#
# Prints `export SLURM_CONF=...` on success; exits non-zero with the daemon log tails on failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state_dir="${OPOS_SLURM_DIR:-/var/lib/opos-slurm}"
timeout_s="${OPOS_SLURM_TIMEOUT:-60}"
conf="$state_dir/slurm.conf"
system_conf=/etc/slurm/slurm.conf
export PATH="/usr/sbin:/sbin:$PATH"

log() { echo "[slurm-up] $*" >&2; }

# fail MESSAGE [LOG...]: report, show the tail of the logs (default: the Slurm daemons'), exit 1.
fail() {
    local message="$1" f
    shift
    (($#)) || set -- "$state_dir/log/slurmctld.log" "$state_dir/log/slurmd.log"
    log "ERROR: $message"
    for f in "$@"; do
        if [[ -f "$f" ]]; then
            echo "----- tail $f -----" >&2
            tail -n 25 "$f" >&2 || true
        fi
    done
    exit 1
}

# pid_alive PIDFILE: true when the file names a running process.
pid_alive() {
    local pid
    [[ -s "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

if [[ $EUID -ne 0 ]]; then
    fail "must run as root (it installs packages and starts system daemons)"
fi

# 1. Packages.
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends slurm-wlm munge >&2
fi

# 2. Munge: the package creates the key; make sure it exists and is private.
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating munge key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge

# A batch account for the tests: jobs submitted with `sbatch --uid=opos-job` run under it,
# never as the service's account (README, "Batch accounts").
if ! getent passwd opos-job >/dev/null; then
    log "creating the batch account opos-job"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin opos-job
fi

mkdir -p "$state_dir"/{state,spool,run,log}
chmod 0755 "$state_dir"

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    runuser -u munge -- munged || fail "munged did not start" /var/log/munge/munged.log
    touch "$state_dir/run/munged.started-by-up"
    for _ in $(seq 1 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null || fail "munge does not work" /var/log/munge/munged.log
fi

# 3. Configuration.
cpus="$(nproc)"
mem_total_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
# Leave headroom for the OS and the daemons: 10 %, at least 256 MB.
headroom_mb=$((mem_total_mb / 10))
((headroom_mb < 256)) && headroom_mb=256
memory_mb=$((mem_total_mb - headroom_mb))
((memory_mb < 1)) && memory_mb=1

new_conf="$(mktemp "$state_dir/slurm.conf.XXXXXX")"
sed -e "s|@STATE_DIR@|$state_dir|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEMORY_MB@|$memory_mb|g" \
    "$here/slurm.conf.in" >"$new_conf"
chmod 0644 "$new_conf"
changed=0
if [[ -f "$conf" ]] && cmp -s "$new_conf" "$conf"; then
    rm -f "$new_conf"
else
    mv -f "$new_conf" "$conf"
    changed=1
fi
mkdir -p /etc/slurm
if ! cmp -s "$conf" "$system_conf" 2>/dev/null; then
    cp -f "$conf" "$system_conf"
fi
export SLURM_CONF="$conf"

ctld_pidfile="$state_dir/run/slurmctld.pid"
slurmd_pidfile="$state_dir/run/slurmd.pid"

if ((changed)) && { pid_alive "$ctld_pidfile" || pid_alive "$slurmd_pidfile"; }; then
    log "configuration changed: restarting the daemons"
    "$here/down.sh" --keep-munge >&2
fi

# 4. Daemons. Both daemonize themselves; their pid files tell whether they run.
if ! pid_alive "$ctld_pidfile"; then
    log "starting slurmctld"
    slurmctld -f "$conf" || fail "slurmctld did not start"
fi
if ! pid_alive "$slurmd_pidfile"; then
    log "starting slurmd"
    # -N: the node is called localhost whatever this machine's host name is.
    slurmd -f "$conf" -N localhost || fail "slurmd did not start"
fi

# 5. Wait until the node accepts work.
deadline=$((SECONDS + timeout_s))
state=""
while ((SECONDS < deadline)); do
    state="$(sinfo -h -N -n localhost -o '%T' 2>/dev/null | head -n 1 || true)"
    case "$state" in
    idle | mixed | allocated | completing)
        log "node localhost is $state"
        echo "export SLURM_CONF=$conf"
        exit 0
        ;;
    down | drained | draining | "drained*" | fail)
        # Not responding (a trailing *) is left alone: slurmd has not registered yet.
        log "node localhost is $state: resuming"
        scontrol update nodename=localhost state=resume >&2 || true
        ;;
    esac
    pid_alive "$ctld_pidfile" || fail "slurmctld exited"
    pid_alive "$slurmd_pidfile" || fail "slurmd exited"
    sleep 1
done
fail "node localhost not idle after ${timeout_s}s (state: '${state:-no answer}')"
