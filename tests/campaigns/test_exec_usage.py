"""What finished attempts used: sacct's figures of real Slurm jobs (scripts/slurm/up.sh sets
up accounting), the local runner's wait4, HTCondor ClassAds, and their recording on the
attempts by the usage collection after the poll.

Set OPOS_REQUIRE_SLURM=1 to make a missing cluster a failure (CI).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import pytest
from django.utils import timezone

from campaigns.batch import ArraySpec, BatchState, JobRef
from campaigns.batch.local import LocalBackend
from campaigns.batch.slurm import SlurmBackend
from campaigns.batch.usage import (
    parse_duration,
    parse_memory_kb,
    parse_sacct_usage,
    read_usage_file,
    usage_from_ad,
)
from campaigns.execution import usage
from campaigns.models import Job, Stage

# Burns CPU for `seconds` with `mb` of memory touched: Slurm samples memory every 5 s
# (JobAcctGatherFrequency), so the job runs longer than that.
BURN = """\
import sys, time
seconds, mb, code = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
block = bytearray(mb * 1024 * 1024)
block[::4096] = b"x" * len(block[::4096])
end = time.time() + seconds
n = 0
while time.time() < end:
    n += 1
sys.exit(code)
"""


@pytest.fixture
def burn(tmp_path: Path) -> Path:
    path = tmp_path / "burn.py"
    path.write_text(BURN)
    path.chmod(0o644)
    return path


def wait_usage(backend, job_refs, timeout: float = 90.0):
    """Ask for usage until every job has final figures (accounting lags behind squeue)."""
    deadline = time.monotonic() + timeout
    while True:
        found = backend.usage(job_refs)
        if len(found) == len(job_refs) and all(u.final for u in found.values()):
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"no final usage after {timeout}s: {found}")
        time.sleep(1)


@pytest.mark.slurm
def test_sacct_reports_cpu_wall_memory_and_state_of_real_jobs(
    slurm_cluster, make_array, wait_terminal, burn, tmp_path
):
    backend = SlurmBackend(state_dir=tmp_path / "slurm-state", timeout=60)
    assert backend.use_sacct, "the cluster keeps no accounting: run scripts/slurm/up.sh"
    array_dir = make_array(1, name="burn")
    ok = ArraySpec(
        f"usage{time.time_ns()}",
        array_dir,
        1,
        [sys.executable, str(burn), "7", "150", "0"],
        memory_mb=400,
        walltime_s=300,
    )
    bad_dir = make_array(1, name="fail")
    bad = ArraySpec(
        f"usagef{time.time_ns()}",
        bad_dir,
        1,
        [sys.executable, str(burn), "0.2", "1", "3"],
        memory_mb=100,
        walltime_s=300,
    )
    refs = [JobRef(backend.submit(ok)[0], array_dir / "0")]
    refs.append(JobRef(backend.submit(bad)[0], bad_dir / "0"))
    wait_terminal(backend, refs, timeout=120, interval=1)

    found = wait_usage(backend, refs)

    burned, failed = found[refs[0].batch_id], found[refs[1].batch_id]
    assert burned.source == "sacct"
    assert (burned.state, burned.exit_code) == ("COMPLETED", "0:0")
    assert 6 <= burned.wall_s <= 60
    # Busy for 7 s, but the machine's cores are shared: some of that time went to others.
    assert 0.5 <= burned.cpu_s <= burned.wall_s + 1
    assert burned.core_s >= burned.wall_s  # cores reserved x wall
    assert burned.max_rss_kb is not None and burned.max_rss_kb >= 100 * 1024
    assert (failed.state, failed.exit_code) == ("FAILED", "3:0")
    assert failed.cpu_s < 5


def _recorded_on_attempts(refs, found) -> None:
    """Attempts with these batch ids get the figures sacct gives for them, from the
    collection that runs after each poll (one sacct call)."""
    from tests.factories import ExperimentFactory, UserFactory, grant
    from tests.monitoring.builders import planned_campaign

    experiment = ExperimentFactory(slug="acct", name="Accounting")
    operator = grant(UserFactory(username="acct-op"), "operator")
    campaign = planned_campaign(experiment, operator, events=200, per_job=100)
    stage = Stage.objects.filter(campaign=campaign).order_by("position").first()
    jobs = list(Job.objects.filter(stage=stage).order_by("index")[:2])
    finished = timezone.now() - dt.timedelta(seconds=30)
    for job, ref in zip(jobs, refs, strict=True):
        Job.objects.filter(pk=job.pk).update(
            backend="slurm", batch_id=ref.batch_id, workdir=str(ref.workdir), finished=finished
        )

    report = usage.collect()

    assert (report.asked, report.recorded, report.given_up) == (2, 2, 0)
    for job, ref in zip(jobs, refs, strict=True):
        job.refresh_from_db()
        figures = found[ref.batch_id]
        assert job.usage_source == "sacct"
        assert job.batch_state == figures.state
        assert job.cpu_time_s == pytest.approx(figures.cpu_s)
        assert job.core_time_s == figures.core_s
        assert job.wall_time_s == figures.wall_s
        assert job.max_rss_kb == figures.max_rss_kb
        assert job.usage_at is not None
    assert usage.collect().asked == 0  # recorded once


@pytest.mark.django_db
@pytest.mark.slurm
def test_sacct_figures_recorded_on_the_attempts(
    slurm_cluster, make_array, wait_terminal, burn, tmp_path, settings
):
    settings.OPOS_BACKEND_OPTIONS = {
        **settings.OPOS_BACKEND_OPTIONS,
        "slurm": {"state_dir": str(tmp_path / "slurm-state"), "timeout": 60},
    }
    backend = SlurmBackend(state_dir=tmp_path / "slurm-state", timeout=60)
    array_dir = make_array(2, name="pair")
    spec = ArraySpec(
        f"usagep{time.time_ns()}",
        array_dir,
        2,
        [sys.executable, str(burn), "1", "10", "0"],
        memory_mb=100,
        walltime_s=300,
    )
    ids = backend.submit(spec)
    refs = [JobRef(batch_id, array_dir / str(n)) for n, batch_id in enumerate(ids)]
    wait_terminal(backend, refs, timeout=120, interval=1)
    found = wait_usage(backend, refs)
    _recorded_on_attempts(refs, found)


class SqueueForgot(SlurmBackend):
    """A squeue that lists nothing, as once finished jobs have left it (MinJobAge)."""

    def _squeue(self, filters=()):
        return []


@pytest.mark.slurm
def test_jobs_that_left_squeue_resolve_from_sacct(
    slurm_cluster, make_array, wait_terminal, burn, tmp_path
):
    backend = SlurmBackend(state_dir=tmp_path / "slurm-state", timeout=60)
    array_dir = make_array(2, name="gone")
    spec = ArraySpec(
        f"usageg{time.time_ns()}",
        array_dir,
        2,
        ["/bin/sh", "-c", 'exit "$OPOS_ARRAY_INDEX"'],
        memory_mb=100,
        walltime_s=300,
    )
    ids = backend.submit(spec)
    refs = [JobRef(batch_id, array_dir / str(n)) for n, batch_id in enumerate(ids)]
    wait_terminal(backend, refs, timeout=120, interval=1)
    for ref in refs:  # nothing on disk either: only accounting can tell
        (Path(ref.workdir) / "exit_code").unlink()

    forgot = SqueueForgot(state_dir=tmp_path / "slurm-state", timeout=60)
    deadline = time.monotonic() + 60
    while True:
        states = forgot.status(refs)
        if all(s.state is not BatchState.LOST for s in states.values()):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"sacct did not resolve the jobs: {states}")
        time.sleep(1)

    assert states[ids[0]].state is BatchState.SUCCEEDED
    assert states[ids[1]].state is BatchState.FAILED
    # Without accounting the same jobs would be lost: the folder says nothing.
    blind = SqueueForgot(state_dir=tmp_path / "slurm-state", timeout=60, use_sacct=False)
    assert {s.state for s in blind.status(refs).values()} == {BatchState.LOST}


def test_local_runner_measures_the_command_with_wait4(make_array, wait_terminal, burn, tmp_path):
    backend = LocalBackend(spool_dir=tmp_path / "spool", slots=1)
    array_dir = make_array(1)
    spec = ArraySpec(
        "localusage",
        array_dir,
        1,
        [sys.executable, str(burn), "1.5", "60", "0"],
        read_paths=(str(burn),),  # the sandbox hides the rest of the test's folder
    )
    ids = backend.submit(spec)
    refs = [JobRef(ids[0], array_dir / "0")]
    wait_terminal(backend, refs, timeout=60)

    figures = backend.usage(refs)[ids[0]]

    assert figures.source == "rusage"
    assert figures.final and figures.exit_code == "0"
    assert 1.4 <= figures.wall_s <= 30
    assert 0.2 <= figures.cpu_s <= figures.wall_s + 0.5  # busy, on shared cores
    assert figures.max_rss_kb >= 60 * 1024
    assert figures.core_s is None  # the ledger takes wall x the stage's cores
    assert read_usage_file(array_dir / "0") == figures
    assert backend.usage([JobRef("local:localusage:5", tmp_path / "nowhere")]) == {}


def test_sacct_lines_are_parsed_per_array_element():
    text = "\n".join(
        [
            "7_0|COMPLETED|0:0|65|01:02.500|130|",
            "7_0.batch|COMPLETED|0:0|65|01:02.500|130|99033088",
            "7_0.extern|COMPLETED|0:0|65|00:00.001|130|1024K",
            "7_1|CANCELLED by 0|0:15|3|00:01.000|6|",
            "7_1.batch|CANCELLED|0:15|3|00:01.000|6|2048",
            "7_2|RUNNING|0:0|10|00:00:00|20|",
            "7_[3-9]|PENDING|0:0|0|00:00:00|0|",
            "8|COMPLETED|0:0|12|00:00:00|12|",
            "malformed",
        ]
    )
    parsed = parse_sacct_usage(text)
    assert set(parsed) == {"7_0", "7_1", "7_2", "8"}
    first = parsed["7_0"]
    assert (first.cpu_s, first.wall_s, first.core_s) == (62.5, 65.0, 130.0)
    assert first.max_rss_kb == 99033088 // 1024
    assert (first.state, first.final) == ("COMPLETED", True)
    assert (parsed["7_1"].state, parsed["7_1"].max_rss_kb) == ("CANCELLED", 2)
    assert parsed["7_2"].final is False  # still running
    assert parsed["8"].final is False  # ran, but its steps are not recorded yet


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:03.067", 3.067), ("01:02:03", 3723), ("2-01:00:00", 176400), ("", None), ("x", None)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_parse_memory():
    assert parse_memory_kb("2048") == 2
    assert parse_memory_kb("1.5M") == 1536
    assert parse_memory_kb("2G") == 2 * 1024 * 1024
    assert parse_memory_kb("") is None


def test_htcondor_classad_usage():
    ad = {
        "ClusterId": 12,
        "ProcId": 3,
        "JobStatus": 4,
        "ExitCode": 0,
        "ExitBySignal": False,
        "RemoteUserCpu": 3000.0,
        "RemoteSysCpu": 60.0,
        "RemoteWallClockTime": 3600.0,
        "ResidentSetSize": 250_000,
        "RequestCpus": 2,
    }
    figures = usage_from_ad(ad)
    assert figures.source == "classad"
    assert (figures.cpu_s, figures.wall_s, figures.core_s) == (3060.0, 3600.0, 7200.0)
    assert (figures.max_rss_kb, figures.state, figures.exit_code) == (250_000, "COMPLETED", "0")
    assert figures.final
    running = usage_from_ad({**ad, "JobStatus": 2, "CumulativeSlotTime": 100.0})
    assert not running.final and running.core_s == 200.0


@pytest.mark.django_db
def test_attempts_without_figures_are_given_up_after_an_hour(experiment, operator, tmp_path):
    from tests.monitoring.builders import planned_campaign

    campaign = planned_campaign(experiment, operator, events=300, per_job=100)
    jobs = list(Job.objects.filter(stage__campaign=campaign).order_by("id")[:3])
    now = timezone.now()
    ends = [now - dt.timedelta(minutes=5), now - dt.timedelta(hours=2), now - dt.timedelta(days=9)]
    for n, (job, finished) in enumerate(zip(jobs, ends, strict=True)):
        Job.objects.filter(pk=job.pk).update(
            backend="local",
            batch_id=f"local:gone:{n}",
            workdir=str(tmp_path / str(n)),
            finished=finished,
        )

    never_ran = Job.objects.filter(stage__campaign=campaign).exclude(pk__in=[j.pk for j in jobs])[0]
    Job.objects.filter(pk=never_ran.pk).update(state="cancelled", finished=now)

    report = usage.collect(now)

    # The recent one is asked again later; the old one is given up; the very old one
    # (before the look-back) is not asked about at all; the one that never reached a
    # batch system has nothing to ask for.
    assert (report.asked, report.recorded, report.given_up) == (2, 0, 2)
    ids = [j.pk for j in jobs] + [never_ran.pk]
    states = dict(Job.objects.filter(pk__in=ids).values_list("pk", "usage_source"))
    assert [states[pk] for pk in ids] == ["", "none", "", "none"]
