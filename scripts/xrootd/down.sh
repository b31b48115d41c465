#!/usr/bin/env bash
# Stop the XRootD server started by up.sh. The stored files stay in OPOS_XROOTD_DIR/data, so
# up.sh serves them again.
set -euo pipefail

state_dir="${OPOS_XROOTD_DIR:-/var/lib/opos-xrootd}"
pidfile="$state_dir/run/xrootd.pid"

log() { echo "[xrootd-down] $*" >&2; }

[[ -s "$pidfile" ]] || exit 0
pid="$(cat "$pidfile")"
if [[ ! "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    exit 0
fi
log "stopping xrootd (pid $pid)"
kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
    log "xrootd did not stop: killing"
    kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$pidfile"
