#!/usr/bin/env bash
# Bring up a real XRootD server on this machine (Debian 12, run as root) for the storage tests
# and for a development installation's output storage.
#
# Idempotent: installs xrootd-server and xrootd-client when missing, writes the configuration
# under OPOS_XROOTD_DIR (default /var/lib/opos-xrootd), starts xrootd as a daemon when it is
# not running, and waits until it answers. Running it again on a healthy server changes
# nothing. The server exports /data (files under OPOS_XROOTD_DIR/data), answers adler32
# checksum queries (`xrootd.chksum adler32`) and has no authentication: a test server only.
#
# Environment:
#   OPOS_XROOTD_DIR       state folder (default /var/lib/opos-xrootd)
#   OPOS_XROOTD_PORT      port (default 1094)
#   OPOS_XROOTD_TIMEOUT   seconds to wait for the server to answer (default 30)
#
# Prints `export OPOS_XROOTD_URL=root://127.0.0.1:PORT//data` on success; exits non-zero with
# the tail of the server's log on failure.
set -euo pipefail

state_dir="${OPOS_XROOTD_DIR:-/var/lib/opos-xrootd}"
port="${OPOS_XROOTD_PORT:-1094}"
timeout_s="${OPOS_XROOTD_TIMEOUT:-30}"
conf="$state_dir/xrootd.cfg"
pidfile="$state_dir/run/xrootd.pid"
logfile="$state_dir/log/xrootd.log"
url="root://127.0.0.1:$port//data"
export PATH="/usr/sbin:/sbin:$PATH"

log() { echo "[xrootd-up] $*" >&2; }

fail() {
    log "ERROR: $1"
    if [[ -f "$logfile" ]]; then
        echo "----- tail $logfile -----" >&2
        tail -n 25 "$logfile" >&2 || true
    fi
    exit 1
}

pid_alive() {
    local pid
    [[ -s "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

answers() { xrdfs "root://127.0.0.1:$port" stat /data >/dev/null 2>&1; }

if [[ $EUID -ne 0 ]]; then
    fail "must run as root (it installs packages and starts a daemon)"
fi

# 1. Packages.
if ! command -v xrootd >/dev/null 2>&1 || ! command -v xrdcp >/dev/null 2>&1; then
    log "installing xrootd-server and xrootd-client"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
        xrootd-server xrootd-client >&2
fi

# 2. The account the daemon runs as (it refuses to serve files as root).
if ! getent passwd opos-xrootd >/dev/null; then
    log "creating the account opos-xrootd"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin opos-xrootd
fi
mkdir -p "$state_dir"/{data/data,run,log,admin}
chown -R opos-xrootd: "$state_dir"/{data,run,log,admin}
chmod 0755 "$state_dir"

# 3. Configuration.
new_conf="$(mktemp "$state_dir/xrootd.cfg.XXXXXX")"
cat >"$new_conf" <<CFG
# Written by scripts/xrootd/up.sh: a single data server without authentication.
xrd.port $port
all.role server
all.export /data
oss.localroot $state_dir/data
all.adminpath $state_dir/admin
all.pidpath $state_dir/run
# Checksums computed by the server on request: what the tracker compares with its own.
xrootd.chksum adler32
CFG
chmod 0644 "$new_conf"
changed=0
if [[ -f "$conf" ]] && cmp -s "$new_conf" "$conf"; then
    rm -f "$new_conf"
else
    mv -f "$new_conf" "$conf"
    changed=1
fi

if ((changed)) && pid_alive "$pidfile"; then
    log "configuration changed: restarting the server"
    "$(dirname "${BASH_SOURCE[0]}")/down.sh" >&2
fi

# 4. The daemon (-b: it daemonizes itself; -s: its pid file).
if ! pid_alive "$pidfile"; then
    log "starting xrootd on port $port"
    xrootd -b -c "$conf" -l "$logfile" -s "$pidfile" -R opos-xrootd -n opos >&2 ||
        fail "xrootd did not start"
fi

# 5. Wait until it answers.
deadline=$((SECONDS + timeout_s))
while ((SECONDS < deadline)); do
    if answers; then
        log "xrootd answers at $url"
        echo "export OPOS_XROOTD_URL=$url"
        exit 0
    fi
    sleep 0.5
done
fail "xrootd does not answer on port $port after ${timeout_s}s"
