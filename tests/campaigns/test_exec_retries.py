"""Failures are classified by rules (template rules first, then the defaults) and retried
accordingly: more memory, more walltime, never, or as is up to the attempt limit. Every
attempt is kept, linked to its parent."""

import pytest

from campaigns.batch import BatchState
from campaigns.choices import FailureClass, JobState
from campaigns.execution import failures
from campaigns.models import FailureRule, Job, RetryAction
from tests.campaigns.exec_support import (
    DEMO_STAGES,
    all_final,
    demo_template,
    launch,
    run_until,
)

SCRIPT = """\
import json, pathlib, sys
job = json.loads(pathlib.Path("job.json").read_text())
i, attempt = job["index"], job["attempt"]
def fail(code, message=""):
    print(message, file=sys.stderr)
    sys.exit(code)
if i == 0 and attempt == 1:
    fail(1, "Traceback (most recent call last):\\nMemoryError")
if i == 1 and attempt == 1:
    fail(1, "slurmstepd: error: *** JOB 7 CANCELLED AT 2026-11-30 DUE TO TIME LIMIT ***")
if i == 2:
    fail(3, "segmentation violation")
if i == 3:
    fail(42, "bad configuration")
if i == 4 and attempt == 1:
    fail(17, "license server busy")
out = pathlib.Path("output")
out.mkdir(exist_ok=True)
(out / "r.txt").write_text(f"{i}:{attempt}")
"""


@pytest.mark.django_db(transaction=True)
def test_retries_by_failure_class(exec_env, experiment, operator, settings, tmp_path):
    settings.OPOS_NEVER_RETRY_EXIT_CODES = [42]
    script = tmp_path / "flaky.py"
    script.write_text(SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    FailureRule.objects.create(
        template=template,
        exit_codes=[17],
        stderr_pattern=r"license server",
        failure_class=FailureClass.OTHER,
        action=RetryAction.MORE_WALLTIME,
        factor=2.0,
        description="license server busy: give it longer",
    )
    campaign, _request = launch(experiment, operator, events=60, per_job=10, template=template)

    run_until(lambda: all_final(stage__campaign=campaign), timeout=120)

    attempts = {}
    for job in Job.objects.filter(stage__campaign=campaign).order_by("index", "attempt"):
        attempts.setdefault(job.index, []).append(job)
    for chain in attempts.values():  # every attempt kept, each pointing at the one before
        assert [j.attempt for j in chain] == list(range(1, len(chain) + 1))
        assert [j.parent_id for j in chain] == [None] + [j.pk for j in chain[:-1]]

    oom, retried = attempts[0]
    assert (oom.state, oom.failure_class) == (JobState.FAILED, FailureClass.OUT_OF_MEMORY)
    assert (retried.state, retried.memory_mb) == (JobState.SUCCEEDED, 750)  # 500 x 1.5

    slow, retried = attempts[1]
    assert slow.failure_class == FailureClass.WALLTIME
    assert (retried.state, retried.walltime_s) == (JobState.SUCCEEDED, 90)  # 60 x 1.5

    assert [j.failure_class for j in attempts[2]] == [FailureClass.OTHER] * 3  # the limit
    assert "gave up after 3 attempts" in attempts[2][-1].failure_reason

    [fatal] = attempts[3]
    assert (fatal.state, fatal.failure_class, fatal.exit_code) == (
        JobState.FAILED,
        FailureClass.FATAL,
        42,
    )

    licensed, retried = attempts[4]  # the template's own rule came first
    assert "license server busy" in licensed.failure_reason
    assert (retried.state, retried.walltime_s) == (JobState.SUCCEEDED, 120)

    assert [j.state for j in attempts[5]] == [JobState.SUCCEEDED]


def test_default_classification():
    decide = dict(attempt=1, memory_mb=1000, walltime_s=600, tail="", batch_reason="")
    lost = failures.decide(outcome=BatchState.LOST, exit_code=None, **decide)
    assert (lost.failure_class, lost.retry) == (FailureClass.LOST, True)
    cancelled = failures.decide(outcome=BatchState.CANCELLED, exit_code=143, **decide)
    assert (cancelled.failure_class, cancelled.retry) == (FailureClass.CANCELLED, False)
    oom = failures.decide(
        outcome=BatchState.FAILED, exit_code=None, **{**decide, "batch_reason": "OUT_OF_MEMORY"}
    )
    assert (oom.failure_class, oom.memory_mb) == (FailureClass.OUT_OF_MEMORY, 1500)
    timeout = failures.decide(
        outcome=BatchState.FAILED, exit_code=None, **{**decide, "batch_reason": "TIMEOUT"}
    )
    assert (timeout.failure_class, timeout.walltime_s) == (FailureClass.WALLTIME, 900)
    full = failures.decide(
        outcome=BatchState.FAILED,
        exit_code=1,
        **{**decide, "tail": "OSError: [Errno 28] No space left on device"},
    )
    assert (full.failure_class, full.retry) == (FailureClass.STORAGE, True)
    closed = failures.decide(outcome=BatchState.FAILED, exit_code=1, may_retry=False, **decide)
    assert closed.retry is False


def test_the_reason_names_the_exit_code_once():
    """The batch system's own "exit code 91" (read from the folder) is not said twice."""
    verdict = failures.decide(
        outcome=BatchState.FAILED,
        exit_code=91,
        tail="",
        batch_reason="exit code 91",
        attempt=1,
        memory_mb=1000,
        walltime_s=60,
    )
    assert verdict.reason.count("exit code 91") == 1, verdict.reason
    other = failures.decide(
        outcome=BatchState.FAILED,
        exit_code=1,
        tail="",
        batch_reason="NODE_FAIL",
        attempt=1,
        memory_mb=1000,
        walltime_s=60,
    )
    assert other.reason.endswith("exit code 1; NODE_FAIL"), other.reason


def test_memory_ceiling_stops_retries(settings):
    settings.OPOS_MAX_MEMORY_MB = 1000
    verdict = failures.decide(
        outcome=BatchState.FAILED,
        exit_code=137,
        tail="oom-kill event",
        batch_reason="",
        attempt=1,
        memory_mb=1000,
        walltime_s=60,
    )
    assert verdict.failure_class == FailureClass.OUT_OF_MEMORY
    assert verdict.retry is False and "already at 1000 MB" in verdict.reason


def test_backoff_doubles_with_jitter_up_to_the_cap(settings):
    settings.OPOS_RETRY_BACKOFF_S = 10
    settings.OPOS_RETRY_BACKOFF_MAX_S = 60
    for attempt, full in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60)]:
        delays = [failures.backoff_s(attempt) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
