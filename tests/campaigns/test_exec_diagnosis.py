"""Failures that can be diagnosed: exit statuses named by their signal and classed by the
default rules (with a retry behaviour per class), the host and both logs of every attempt,
the batch id linked to the batch system's view where configured."""

import signal
import socket
from pathlib import Path

import pytest
from django.urls import reverse

from campaigns import conf
from campaigns.batch import BatchState
from campaigns.choices import FailureClass, JobState
from campaigns.execution import failures, logs
from campaigns.models import Job, Stage
from tests.campaigns.exec_support import (
    DEMO_STAGES,
    all_final,
    assert_counters_match,
    demo_template,
    launch,
    run_until,
)

DEFAULTS = dict(tail="", batch_reason="", attempt=1, memory_mb=1000, walltime_s=600)


def decide(exit_code, **kw):
    return failures.decide(outcome=BatchState.FAILED, exit_code=exit_code, **{**DEFAULTS, **kw})


@pytest.mark.parametrize(
    ("code", "named"),
    [
        (137, "137 (SIGKILL: killed: by the batch system for memory, or preemption)"),
        (143, "143 (SIGTERM: terminated)"),
        (139, "139 (SIGSEGV: segmentation fault)"),
        (134, "134 (SIGABRT: aborted)"),
        (130, "130 (SIGINT: interrupted)"),
        (128 + signal.SIGUSR1, f"{128 + signal.SIGUSR1} (SIGUSR1)"),  # any 128+N by name
        (-9, "-9 (SIGKILL: killed: by the batch system for memory, or preemption)"),
        (1, "1"),
        (128, "128"),
        (255, "255"),
        (None, ""),
    ],
)
def test_exit_statuses_are_named_by_their_signal(code, named):
    assert failures.describe_exit(code) == named


def test_signals_and_batch_states_are_classed_with_a_retry_behaviour_each():
    killed = decide(137)
    assert (killed.failure_class, killed.retry, killed.memory_mb) == (
        FailureClass.KILLED,
        True,
        1500,  # mostly the memory limit: more memory next time
    )
    assert "exit code 137 (SIGKILL)" in killed.reason
    terminated = decide(143)
    assert (terminated.failure_class, terminated.retry) == (FailureClass.TERMINATED, True)
    assert (terminated.memory_mb, terminated.walltime_s) == (None, None)  # as is
    assert decide(130).failure_class == FailureClass.TERMINATED
    crash = decide(139)
    assert (crash.failure_class, crash.retry) == (FailureClass.CRASH, True)
    assert decide(134).failure_class == FailureClass.CRASH
    again = decide(139, attempt=2)  # a crash is tried once more only
    assert again.retry is False and "gave up after 2 attempts" in again.reason
    # What the batch system or the stderr says comes before the signal.
    assert decide(137, batch_reason="OUT_OF_MEMORY").failure_class == FailureClass.OUT_OF_MEMORY
    assert decide(137, tail="oom-kill event").failure_class == FailureClass.OUT_OF_MEMORY
    assert decide(143, batch_reason="TIMEOUT").failure_class == FailureClass.WALLTIME
    preempted = decide(143, batch_reason="PREEMPTED")
    assert (preempted.failure_class, preempted.retry) == (FailureClass.PREEMPTED, True)
    node = decide(None, batch_reason="NODE_FAIL")
    assert (node.failure_class, node.retry) == (FailureClass.NODE_FAILURE, True)
    assert decide(1).failure_class == FailureClass.OTHER


def test_the_batch_systems_logs_are_found_by_batch_id_without_the_links(tmp_path):
    """A job killed before the shim linked its logs: Slurm's files in ``logs/`` still say
    why, and are read by the batch id that names them."""
    array = tmp_path / "array"
    (array / "logs").mkdir(parents=True)
    (array / "3").mkdir()
    (array / "logs" / "77_3.err").write_text("slurmstepd: error: *** JOB 77 ON n1 CANCELLED ***")
    (array / "logs" / "77_3.out").write_text("event 41 done\n")
    workdir = array / "3"
    assert "CANCELLED" in logs.stderr_tail(workdir, batch_id="77_3")
    assert [(t.name, t.text) for t in logs.job_logs(workdir, "77_3")] == [
        ("stdout.log", "event 41 done\n"),
        ("stderr.log", "slurmstepd: error: *** JOB 77 ON n1 CANCELLED ***"),
    ]
    assert logs.stderr_tail(workdir, batch_id="../../etc/passwd") == ""  # never a path
    # With the shim's link, the link is read.
    (workdir / "stderr.log").symlink_to("../logs/77_3.err")
    assert logs.log_path(workdir, "stderr.log", "77_3") == workdir / "stderr.log"


def test_the_batch_link_is_made_only_from_a_configured_http_address(settings):
    settings.OPOS_BATCH_JOB_URL = {
        "slurm": "https://ood.example.org/activejobs?jobid={batch_id}&array={array_id}",
        "htcondor": "javascript:alert(1)//{batch_id}",
    }
    assert conf.batch_job_url("slurm", "77_3") == (
        "https://ood.example.org/activejobs?jobid=77_3&array=77"
    )
    assert conf.batch_job_url("slurm", "77 3") == ""
    assert conf.batch_job_url("htcondor", "12.0") == ""
    assert conf.batch_job_url("local", "local:t:0") == ""
    settings.OPOS_BATCH_JOB_URL = "https://batch.example.org/{batch_id}"
    assert conf.batch_job_url("local", "local:t:0") == "https://batch.example.org/local%3At%3A0"


SCRIPT = """\
import json, os, pathlib, signal, sys
job = json.loads(pathlib.Path("job.json").read_text())
i, attempt = job["index"], job["attempt"]
print(f"job {i} attempt {attempt} says hello on stdout", flush=True)
print(f"job {i} attempt {attempt} on stderr", file=sys.stderr, flush=True)
if attempt == 1 and i < 3:
    os.kill(os.getpid(), [signal.SIGKILL, signal.SIGSEGV, signal.SIGTERM][i])
out = pathlib.Path("output")
out.mkdir(exist_ok=True)
(out / "r.txt").write_text(f"{i}:{attempt}")
"""


@pytest.mark.django_db(transaction=True)
def test_killed_crashed_and_terminated_jobs_are_named_and_their_logs_shown(
    exec_env, experiment, operator, physicist, client, api, settings, tmp_path
):
    settings.OPOS_BATCH_JOB_URL = {"local": "https://batch.example.org/jobs/{batch_id}"}
    script = tmp_path / "signals.py"
    script.write_text(SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, request = launch(experiment, operator, events=40, per_job=10, template=template)

    run_until(lambda: all_final(stage__campaign=campaign), timeout=120)

    first = {
        j.index: j
        for j in Job.objects.filter(stage__campaign=campaign, attempt=1).order_by("index")
    }
    expected = {
        0: (137, FailureClass.KILLED, "SIGKILL"),
        1: (139, FailureClass.CRASH, "SIGSEGV"),
        2: (143, FailureClass.TERMINATED, "SIGTERM"),
    }
    for index, (code, failure_class, name) in expected.items():
        job = first[index]
        assert (job.state, job.exit_code, job.failure_class) == (
            JobState.FAILED,
            code,
            failure_class,
        )
        assert f"exit code {code} ({name})" in job.failure_reason
    # Every attempt knows its host; the killed job's retry asked for more memory.
    hosts = set(Job.objects.filter(stage__campaign=campaign).values_list("host", flat=True))
    assert hosts == {socket.gethostname()}
    retry = Job.objects.get(parent=first[0])
    assert (retry.state, retry.memory_mb) == (JobState.SUCCEEDED, 750)
    assert Job.objects.filter(stage__campaign=campaign, state=JobState.SUCCEEDED).count() == 4
    # Jobs and attempts apart: four succeeded jobs, three failed attempts retried.
    stage = Stage.objects.get(campaign=campaign)
    assert (stage.n_failed, stage.retried_failed, stage.counts()[JobState.FAILED]) == (3, 3, 0)
    assert_counters_match(campaign)

    killed = first[0]
    client.force_login(operator)
    page = client.get(reverse("monitoring:job_log", args=[killed.pk])).content.decode()
    assert "137 (SIGKILL: killed: by the batch system for memory, or preemption)" in page
    assert "job 0 attempt 1 says hello on stdout" in page  # the stdout tail
    assert "job 0 attempt 1 on stderr" in page  # the stderr tail
    assert f"<dd>{socket.gethostname()}</dd>" in page
    assert (
        f'<a href="https://batch.example.org/jobs/{killed.batch_id.replace(":", "%3A")}" '
        f'rel="noopener noreferrer">{killed.batch_id}</a>'
    ) in page
    assert request.number in page and "generation" in page
    assert reverse("monitoring:job_log", args=[retry.pk]) in page  # the next attempt

    detail = api(operator).get(f"/api/v1/jobs/{killed.pk}/").json()
    assert detail["exit_meaning"].startswith("137 (SIGKILL")
    assert detail["host"] == socket.gethostname()
    assert "says hello on stdout" in detail["stdout_tail"]
    assert "on stderr" in detail["stderr_tail"]
    assert detail["batch_url"].startswith("https://batch.example.org/jobs/local%3A")
    member = api(physicist).get(f"/api/v1/jobs/{killed.pk}/").json()
    assert member["exit_meaning"] == detail["exit_meaning"]
    # Operators only: null for members (one schema for every caller).
    assert all(member[f] is None for f in ("host", "batch_url", "stdout_tail", "stderr_tail"))


@pytest.mark.slurm
@pytest.mark.django_db(transaction=True)
def test_on_slurm_the_logs_are_the_batch_systems_files_named_by_batch_id(
    slurm_cluster, exec_env, experiment, operator, client, settings, tmp_path
):
    """On Slurm the job's logs are Slurm's own files ``logs/<array>_<task>.out/.err``,
    linked into the job folder by the shim; the job log reads them (also without the
    links), names the exit status and links the batch id."""
    settings.OPOS_BATCH_JOB_URL = {"slurm": "https://ood.example.org/activejobs?jobid={batch_id}"}
    script = tmp_path / "signals.py"
    script.write_text(SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _request = launch(
        experiment, operator, events=40, per_job=10, template=template, backend="slurm"
    )

    run_until(lambda: all_final(stage__campaign=campaign), timeout=240, pause=1.0)

    first = {
        j.index: j
        for j in Job.objects.filter(stage__campaign=campaign, attempt=1).order_by("index")
    }
    assert [(first[i].exit_code, first[i].failure_class) for i in range(3)] == [
        (137, FailureClass.KILLED),
        (139, FailureClass.CRASH),
        (143, FailureClass.TERMINATED),
    ]
    assert Job.objects.filter(stage__campaign=campaign, state=JobState.SUCCEEDED).count() == 4
    killed = first[0]
    assert killed.host == socket.gethostname()
    folder = Path(killed.workdir)
    assert (folder / "stderr.log").resolve() == (folder.parent / "logs" / f"{killed.batch_id}.err")
    client.force_login(operator)
    page = client.get(reverse("monitoring:job_log", args=[killed.pk])).content.decode()
    assert "job 0 attempt 1 says hello on stdout" in page
    assert "job 0 attempt 1 on stderr" in page
    assert f'href="https://ood.example.org/activejobs?jobid={killed.batch_id}"' in page
    assert "137 (SIGKILL" in page
    # Without the shim's links (a job killed before it made them), the same files by id.
    (folder / "stderr.log").unlink()
    (folder / "stdout.log").unlink()
    assert "job 0 attempt 1 on stderr" in logs.stderr_tail(folder, batch_id=killed.batch_id)
    page = client.get(reverse("monitoring:job_log", args=[killed.pk])).content.decode()
    assert "job 0 attempt 1 says hello on stdout" in page
