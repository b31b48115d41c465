#!/bin/bash
# OPOS job shim for batch arrays (fixed script, submitted by campaigns/batch/slurm.py and
# campaigns/batch/htcondor.py).
#
# Usage: job_shim.sh COMMAND [ARG...] with OPOS_ARRAY_DIR in the environment and the element
# index either in OPOS_ARRAY_INDEX (HTCondor computes it) or as OPOS_ARRAY_OFFSET +
# SLURM_ARRAY_TASK_ID (Slurm: arrays larger than the site's MaxArraySize are submitted in
# chunks, each with its own offset; the shim adds it, so no per-element file is needed).
#
# The submitter writes nothing per element: this shim makes the element folder
# OPOS_ARRAY_DIR/<index> when the element starts (a mkdir in the job is free, 10,000 of them at
# submission were seconds), links the batch system's log files (OPOS_ARRAY_DIR/logs/<batch
# id>.out/.err, written from before the job starts, and also holding what the batch system
# itself says, "DUE TO TIME LIMIT" say) into it as stdout.log/stderr.log, runs COMMAND with its
# arguments exactly as given ("$@", no re-parsing) there with OPOS_JOB_DIR and OPOS_ARRAY_INDEX
# exported, then writes the exit status to <folder>/exit_code atomically (temp file + rename)
# and exits with it. A job that never started has no folder: absent means it never ran.
set -u

if [[ -z "${OPOS_ARRAY_DIR:-}" || $# -eq 0 ]]; then
    echo "job_shim.sh: OPOS_ARRAY_DIR must be set and a command given" >&2
    exit 2
fi
if [[ -n "${OPOS_ARRAY_INDEX:-}" ]]; then
    if [[ ! "$OPOS_ARRAY_INDEX" =~ ^[0-9]+$ ]]; then
        echo "job_shim.sh: bad OPOS_ARRAY_INDEX" >&2
        exit 2
    fi
    index=$((10#$OPOS_ARRAY_INDEX))
else
    offset="${OPOS_ARRAY_OFFSET:-0}"
    task="${SLURM_ARRAY_TASK_ID:-}"
    if [[ ! "$offset" =~ ^[0-9]+$ || ! "$task" =~ ^[0-9]+$ ]]; then
        echo "job_shim.sh: bad OPOS_ARRAY_OFFSET or SLURM_ARRAY_TASK_ID" >&2
        exit 2
    fi
    index=$((10#$offset + 10#$task))
fi
# The batch id names the log files: <array job>_<task> (Slurm), <cluster>.<proc> (HTCondor).
if [[ -n "${OPOS_LOG_NAME:-}" ]]; then
    log_name="$OPOS_LOG_NAME"
elif [[ -n "${SLURM_ARRAY_JOB_ID:-}" && -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
    log_name="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
else
    log_name=""
fi
OPOS_JOB_DIR="$OPOS_ARRAY_DIR/$index"
if ! { mkdir -p -- "$OPOS_JOB_DIR" && cd -- "$OPOS_JOB_DIR"; }; then
    # Exit 93, the wrapper's "output area" status, so the failure is classified as storage
    # and retried: the work area is full or unwritable (and with no folder there is no
    # stderr.log for the classifier to read "No space left on device" in).
    echo "job_shim.sh: cannot make the element folder $OPOS_JOB_DIR" >&2
    exit 93
fi
export OPOS_JOB_DIR
export OPOS_ARRAY_INDEX="$index"
rm -f exit_code # a stale one from an earlier attempt (requeue)
if [[ "$log_name" =~ ^[0-9]+[._][0-9]+$ ]]; then
    # Relative links: the array folder can be seen under another path on another host.
    ln -sfn -- "../logs/$log_name.out" stdout.log
    ln -sfn -- "../logs/$log_name.err" stderr.log
fi

# The batch system signals every process of the job on cancel or time limit. Trapping TERM
# keeps this shell alive until the command has ended, so the exit status is still recorded.
trap 'echo "job_shim.sh: got SIGTERM" >&2' TERM
"$@"
rc=$?

tmp="exit_code.tmp.$$"
printf '%d\n' "$rc" >"$tmp" && mv -f "$tmp" exit_code
exit "$rc"
