#!/bin/sh
# Entrypoint of the worker container (docker-compose.yml): make the site's batch systems
# reachable, check that they answer, then run the command (the Celery worker).
#
# Slurm: the site's slurm.conf is mounted and named by SLURM_CONF; the site's MUNGE key is
# mounted at MUNGE_KEY_FILE (a compose secret). munged is started on the default socket
# with that key unless a munged already answers there (the host's, shared by a mount).
# HTCondor: CONDOR_CONFIG names the mounted configuration (collector and schedd address);
# its IDTOKEN is mounted under the token folder that configuration names.
#
# Each check that fails says what is wrong and stops the container, so a worker never runs
# with a batch system it cannot reach (it would keep every submission waiting). Set
# OPOS_BATCH_CHECKS=off to start anyway (a site whose controller is down for maintenance).
set -eu

fail() {
    echo "batch-client: $*" >&2
    [ "${OPOS_BATCH_CHECKS:-on}" = off ] && return 0
    exit 64
}

munge_answers() {
    command -v munge >/dev/null 2>&1 && munge -n 2>/dev/null | unmunge >/dev/null 2>&1
}

if [ -n "${SLURM_CONF:-}" ]; then
    [ -r "$SLURM_CONF" ] || fail "SLURM_CONF=$SLURM_CONF is not a readable file (mount the site's slurm.conf there)"
    if ! munge_answers; then
        key="${MUNGE_KEY_FILE:-/run/secrets/munge.key}"
        if [ ! -r "$key" ]; then
            fail "no MUNGE key at $key (mount the site's munge.key there, or set MUNGE_KEY_FILE)"
        else
            install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
            install -d -o munge -g munge -m 0755 /run/munge
            install -o munge -g munge -m 0400 "$key" /etc/munge/munge.key
            su -s /bin/sh munge -c "munged --force" || fail "munged did not start"
            munge_answers || fail "munged started but a credential does not round-trip"
        fi
    fi
    # The controller must answer: sinfo reaches it through slurm.conf with a MUNGE credential.
    timeout "${OPOS_BATCH_TIMEOUT_S:-60}" sinfo --noheader --format=%P >/dev/null \
        || fail "the Slurm controller named in $SLURM_CONF does not answer (sinfo failed)"
fi

# Batch nodes import the job wrapper from the shared file system, not from this image.
if [ -n "${OPOS_JOB_CODE_DIR:-}" ]; then
    project=$(cd "$(dirname "$0")/../.." && pwd)
    python "$project/manage.py" publish_job_wrapper \
        || fail "the job wrapper could not be published to OPOS_JOB_CODE_DIR=$OPOS_JOB_CODE_DIR"
fi

if [ -n "${CONDOR_CONFIG:-}" ]; then
    [ -r "$CONDOR_CONFIG" ] || fail "CONDOR_CONFIG=$CONDOR_CONFIG is not a readable file"
    timeout "${OPOS_BATCH_TIMEOUT_S:-60}" python - <<'PY' || fail "the HTCondor schedd does not answer (see above)"
import os
import sys

import htcondor2

name = os.environ.get("OPOS_HTCONDOR_SCHEDD") or None
pool = os.environ.get("OPOS_HTCONDOR_POOL") or None
try:
    collector = htcondor2.Collector(pool)
    schedd = htcondor2.DaemonType.Schedd
    ad = collector.locate(schedd, name) if name else collector.locate(schedd)
    htcondor2.Schedd(ad).query(constraint="false", projection=["ClusterId"])
except Exception as exc:
    print(f"batch-client: HTCondor: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
PY
fi

exec "$@"
