#!/bin/bash
# OPOS job shim for Slurm arrays (fixed script, submitted by campaigns/batch/slurm.py).
#
# Usage: sbatch --array=0-(m-1) ... slurm_job.sh COMMAND [ARG...]
# with OPOS_ARRAY_DIR and OPOS_ARRAY_OFFSET in the environment (sbatch exports the submitting
# environment). Element index = OPOS_ARRAY_OFFSET + SLURM_ARRAY_TASK_ID; arrays larger than the
# site's MaxArraySize are submitted in chunks, each with its own offset.
#
# Runs COMMAND with its arguments exactly as given ("$@", no re-parsing) in the element folder
# OPOS_ARRAY_DIR/<index>, with OPOS_JOB_DIR and OPOS_ARRAY_INDEX exported, then writes the
# exit status to <folder>/exit_code atomically (temp file + rename) and exits with it.
set -u

if [[ -z "${OPOS_ARRAY_DIR:-}" || -z "${SLURM_ARRAY_TASK_ID:-}" ]]; then
    echo "slurm_job.sh: OPOS_ARRAY_DIR and SLURM_ARRAY_TASK_ID must be set" >&2
    exit 2
fi
offset="${OPOS_ARRAY_OFFSET:-0}"
if [[ ! "$offset" =~ ^[0-9]+$ || ! "$SLURM_ARRAY_TASK_ID" =~ ^[0-9]+$ || $# -eq 0 ]]; then
    echo "slurm_job.sh: bad offset/task id or no command" >&2
    exit 2
fi
index=$((10#$offset + 10#$SLURM_ARRAY_TASK_ID))
OPOS_JOB_DIR="$OPOS_ARRAY_DIR/$index"
cd "$OPOS_JOB_DIR" || exit 2
export OPOS_JOB_DIR
export OPOS_ARRAY_INDEX="$index"
rm -f exit_code # a stale one from an earlier attempt (requeue)

# Slurm signals every process of the job on cancel or time limit. Trapping TERM keeps this
# shell alive until the command has ended, so the exit status is still recorded.
trap 'echo "slurm_job.sh: got SIGTERM" >&2' TERM
"$@"
rc=$?

tmp="exit_code.tmp.$$"
printf '%d\n' "$rc" >"$tmp" && mv -f "$tmp" exit_code
exit "$rc"
