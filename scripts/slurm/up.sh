#!/usr/bin/env bash
# Bring up a real single-node Slurm cluster on this machine (Debian 12, run as root), with
# job accounting: slurmdbd on a MariaDB database, so that sacct reports CPU time, wall time,
# memory and exit state per job.
#
# Usage: up.sh [a|b|all]
#   a (the default) the first cluster, "opos": state in /var/lib/opos-slurm, the default ports
#                   (slurmctld 6817, slurmd 6818), its slurm.conf also in /etc/slurm.
#   b               a second cluster, "oposb", beside the first, for several Slurm endpoints
#                   (docs/deployment.md, "Several batch endpoints"): its own slurm.conf, state,
#                   spool, pid and log files in /var/lib/opos-slurm-b, its own controller and
#                   node daemon on ports 6827 and 6828, and nothing in /etc/slurm, so it is only
#                   reached with SLURM_CONF=/var/lib/opos-slurm-b/slurm.conf. It shares munge,
#                   MariaDB and slurmdbd with the first cluster (one accounting daemon serving
#                   two clusters, as sites run it), so bring up the first one before it.
#   all             a, then b.
#
# Idempotent: installs slurm-wlm, munge, slurmdbd and mariadb-server when missing, starts
# munged, MariaDB, slurmdbd, slurmctld and slurmd when they are not running, registers the
# cluster and a test account in the accounting database when they are not there, and waits
# until the node is idle. Running it again on a healthy cluster changes nothing. State, spool,
# pid and log files live under OPOS_SLURM_DIR (default /var/lib/opos-slurm); the generated
# slurm.conf and slurmdbd.conf are written there and also installed in /etc/slurm so that
# plain `sbatch` and `sacct` work without SLURM_CONF.
#
# Environment:
#   OPOS_SLURM_DIR       writable state folder of the first cluster (default /var/lib/opos-slurm)
#   OPOS_SLURM_B_DIR     the second cluster's (default /var/lib/opos-slurm-b)
#   OPOS_SLURM_B_PORTS   the second cluster's slurmctld and slurmd ports (default "6827 6828")
#   OPOS_SLURM_TIMEOUT   seconds to wait for the node to become idle (default 60)
#   OPOS_MARIADB_DATADIR MariaDB's data folder when this script starts it (default: Debian's,
#                        /var/lib/mysql); a MariaDB already answering on its socket is used
#
# Prints `export SLURM_CONF=...` on success (`export OPOS_SLURM_B_CONF=...` for the second
# cluster); exits non-zero with the daemon log tails on failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cluster="${1:-a}"
case "$cluster" in
all)
    bash "$here/up.sh" a
    exec bash "$here/up.sh" b
    ;;
a)
    state_dir="${OPOS_SLURM_DIR:-/var/lib/opos-slurm}"
    cluster_name=opos
    ports=""
    conf_variable=SLURM_CONF
    ;;
b)
    state_dir="${OPOS_SLURM_B_DIR:-/var/lib/opos-slurm-b}"
    cluster_name=oposb
    ports="${OPOS_SLURM_B_PORTS:-6827 6828}"
    conf_variable=OPOS_SLURM_B_CONF
    ;;
*)
    echo "usage: $0 [a|b|all]" >&2
    exit 2
    ;;
esac
# The first cluster owns what the two share (MariaDB, slurmdbd, /etc/slurm); the second
# only uses them.
primary=0
[[ "$cluster" == a ]] && primary=1
timeout_s="${OPOS_SLURM_TIMEOUT:-60}"
conf="$state_dir/slurm.conf"
system_conf=/etc/slurm/slurm.conf
export PATH="/usr/sbin:/sbin:$PATH"

log() { echo "[slurm-up $cluster] $*" >&2; }

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
missing=()
for pair in slurmctld:slurm-wlm munged:munge slurmdbd:slurmdbd mariadbd:mariadb-server; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2
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

# 3. Accounting: MariaDB, the slurm_acct_db database and its user, slurmdbd (the first
# cluster's; the second cluster's controller reports to the same slurmdbd).
if ((primary)); then
mariadb_sock=/run/mysqld/mysqld.sock
mariadb_ping() { mariadb-admin --socket="$mariadb_sock" --connect-timeout=2 ping >/dev/null 2>&1; }
if ! mariadb_ping; then
    datadir="${OPOS_MARIADB_DATADIR:-/var/lib/mysql}"
    if [[ ! -d "$datadir/mysql" ]]; then
        log "initialising MariaDB in $datadir"
        install -d -o mysql -g mysql -m 0750 "$datadir"
        mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=socket \
            >"$state_dir/log/mariadb-install.log" 2>&1 ||
            fail "mariadb-install-db failed" "$state_dir/log/mariadb-install.log"
    fi
    log "starting MariaDB ($datadir)"
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    touch "$state_dir/log/mariadb.log"
    chown mysql:mysql "$state_dir/log/mariadb.log"
    # Its own session, detached from ours: it must outlive this script.
    setsid mariadbd --user=mysql --datadir="$datadir" --socket="$mariadb_sock" \
        --pid-file="$state_dir/run/mariadb.pid" --log-error="$state_dir/log/mariadb.log" \
        --bind-address=127.0.0.1 </dev/null >/dev/null 2>&1 &
    touch "$state_dir/run/mariadb.started-by-up"
    for _ in $(seq 1 100); do
        mariadb_ping && break
        sleep 0.2
    done
    mariadb_ping || fail "MariaDB did not start" "$state_dir/log/mariadb.log"
fi

# The database password is made once and kept private in the state folder.
dbd_pass_file="$state_dir/slurmdbd.pass"
if [[ ! -s "$dbd_pass_file" ]]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$dbd_pass_file")
fi
dbd_pass="$(cat "$dbd_pass_file")"
mariadb --socket="$mariadb_sock" <<SQL || fail "cannot create the accounting database" "$state_dir/log/mariadb.log"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$dbd_pass';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$dbd_pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

dbd_conf="$state_dir/slurmdbd.conf"
new_dbd_conf="$(mktemp "$state_dir/slurmdbd.conf.XXXXXX")"
chmod 0600 "$new_dbd_conf"
cat >"$new_dbd_conf" <<CONF
# Generated by scripts/slurm/up.sh; edits here are overwritten. Private (0600, SlurmUser root):
# it holds the database password.
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=slurm
StoragePass=$dbd_pass
StorageLoc=slurm_acct_db
PidFile=$state_dir/run/slurmdbd.pid
LogFile=$state_dir/log/slurmdbd.log
DebugLevel=info
CONF
dbd_changed=0
if [[ -f "$dbd_conf" ]] && cmp -s "$new_dbd_conf" "$dbd_conf"; then
    rm -f "$new_dbd_conf"
else
    mv -f "$new_dbd_conf" "$dbd_conf"
    dbd_changed=1
fi
chown root:root "$dbd_conf"
chmod 0600 "$dbd_conf"
mkdir -p /etc/slurm
if ! cmp -s "$dbd_conf" /etc/slurm/slurmdbd.conf 2>/dev/null; then
    install -o root -g root -m 0600 "$dbd_conf" /etc/slurm/slurmdbd.conf
fi

dbd_pidfile="$state_dir/run/slurmdbd.pid"
if ((dbd_changed)) && pid_alive "$dbd_pidfile"; then
    log "slurmdbd.conf changed: restarting slurmdbd"
    kill -TERM "$(cat "$dbd_pidfile")" 2>/dev/null || true
    for _ in $(seq 1 100); do
        pid_alive "$dbd_pidfile" || break
        sleep 0.1
    done
fi
if ! pid_alive "$dbd_pidfile"; then
    log "starting slurmdbd"
    # slurmdbd reads slurmdbd.conf from the folder of SLURM_CONF.
    SLURM_CONF="$state_dir/slurm.conf" slurmdbd || fail "slurmdbd did not start" "$state_dir/log/slurmdbd.log"
fi
fi
# 4. Slurm configuration.
cpus="$(nproc)"
mem_total_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
# Leave headroom for the OS and the daemons: 10 %, at least 256 MB.
headroom_mb=$((mem_total_mb / 10))
((headroom_mb < 256)) && headroom_mb=256
memory_mb=$((mem_total_mb - headroom_mb))
((memory_mb < 1)) && memory_mb=1

new_conf="$(mktemp "$state_dir/slurm.conf.XXXXXX")"
sed -e "s|@STATE_DIR@|$state_dir|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEMORY_MB@|$memory_mb|g" \
    -e "s|@CLUSTER@|$cluster_name|g" "$here/slurm.conf.in" >"$new_conf"
if [[ -n "$ports" ]]; then
    # A second controller and node daemon on this machine need ports of their own; the
    # first cluster keeps Slurm's defaults, so its slurm.conf is the same as before.
    read -r ctld_port slurmd_port <<<"$ports"
    sed -i -e "/^ClusterName=/a SlurmctldPort=$ctld_port\\nSlurmdPort=$slurmd_port" "$new_conf"
fi
chmod 0644 "$new_conf"
changed=0
if [[ -f "$conf" ]] && cmp -s "$new_conf" "$conf"; then
    rm -f "$new_conf"
else
    mv -f "$new_conf" "$conf"
    changed=1
fi
if ((primary)); then
    mkdir -p /etc/slurm
    if ! cmp -s "$conf" "$system_conf" 2>/dev/null; then
        cp -f "$conf" "$system_conf"
    fi
fi
export SLURM_CONF="$conf"

# sacctmgr asks slurmdbd directly: it answers once slurmdbd has its database.
sacctmgr_ok=0
for _ in $(seq 1 100); do
    if sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; then
        sacctmgr_ok=1
        break
    fi
    sleep 0.2
done
if ! ((sacctmgr_ok)); then
    ((primary)) || fail "slurmdbd does not answer: bring up the first cluster first (up.sh a)"
    fail "slurmdbd does not answer" "$state_dir/log/slurmdbd.log"
fi

# The cluster, an account for the tests, and the users that submit (root for the service
# here, opos-job the batch account) in it. Without AccountingStorageEnforce other users'
# jobs still run and are accounted.
if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$cluster_name"; then
    log "registering the cluster $cluster_name"
    sacctmgr -i add cluster "$cluster_name" >&2
fi
# Accounts are global, their associations per cluster: the second cluster adds its own.
if ! sacctmgr -n -P show assoc where cluster="$cluster_name" account=opos-test format=account |
    grep -qx opos-test; then
    log "adding the account opos-test"
    sacctmgr -i add account opos-test cluster="$cluster_name" Description="OPOS Tracker tests" \
        Organization=opos >&2
fi
for user in root opos-job; do
    if ! sacctmgr -n -P show assoc where cluster="$cluster_name" account=opos-test user="$user" \
        format=user | grep -qx "$user"; then
        log "adding $user to the account opos-test"
        sacctmgr -i add user "$user" account=opos-test cluster="$cluster_name" >&2
    fi
done

ctld_pidfile="$state_dir/run/slurmctld.pid"
slurmd_pidfile="$state_dir/run/slurmd.pid"

if ((changed)) && { pid_alive "$ctld_pidfile" || pid_alive "$slurmd_pidfile"; }; then
    log "configuration changed: restarting the daemons"
    "$here/down.sh" "$cluster" --keep-munge >&2
fi

# 5. Daemons. Both daemonize themselves; their pid files tell whether they run.
if ! pid_alive "$ctld_pidfile"; then
    log "starting slurmctld"
    slurmctld -f "$conf" || fail "slurmctld did not start"
fi
if ! pid_alive "$slurmd_pidfile"; then
    log "starting slurmd"
    # -N: the node is called localhost whatever this machine's host name is.
    slurmd -f "$conf" -N localhost || fail "slurmd did not start"
fi

# 6. Wait until the node accepts work.
deadline=$((SECONDS + timeout_s))
state=""
while ((SECONDS < deadline)); do
    state="$(sinfo -h -N -n localhost -o '%T' 2>/dev/null | head -n 1 || true)"
    case "$state" in
    idle | mixed | allocated | completing)
        log "node localhost is $state"
        echo "export $conf_variable=$conf"
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
