"""The submission protocol with the worker killed between each pair of its steps.

After each crash a recovery run (and the usual cycles) must leave every job submitted
exactly once, checked against the batch system itself (the local spool, or Slurm's squeue),
and every job must have run exactly once.
"""

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from campaigns.batch.slurm_records import _job_ids
from campaigns.choices import JobState, SubmissionState
from campaigns.execution import descriptions, recovery, submission
from campaigns.execution.submission import CHECKPOINTS, SimulatedCrash
from campaigns.models import Job, Submission
from tests.campaigns.exec_support import (
    DEMO_STAGES,
    all_final,
    demo_template,
    launch,
    run_until,
)

# Each run appends to runs.log in its own element folder: a job reaches nothing outside it
# (campaigns/batch/sandbox.py), and an element started twice would leave two lines.
COUNTING_SCRIPT = """\
import json, pathlib
job = json.loads(pathlib.Path("job.json").read_text())
with open("runs.log", "a") as fh:
    fh.write(f"{{job['index']}}\\n")
out = pathlib.Path("output")
out.mkdir(exist_ok=True)
(out / "events.txt").write_text(str(job["events"]))
"""


@pytest.fixture(params=["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def backend_name(request):
    if request.param == "slurm":
        request.getfixturevalue("slurm_cluster")
    return request.param


def one_stage_campaign(experiment, operator, tmp_path, backend, jobs=4):
    log = tmp_path / "work"  # the runs.log files of every element folder under it
    script = tmp_path / "count.py"
    script.write_text(COUNTING_SCRIPT.format())
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _request = launch(
        experiment, operator, events=jobs * 10, per_job=10, template=template, backend=backend
    )
    return campaign, log


def crash_at(point):
    def hook(name):
        if name == point:
            raise SimulatedCrash(name)

    return hook


def elements_at_batch_system(backend: str, spool: Path, tokens: list[str]) -> Counter:
    """How many array elements the batch system holds per token (from its own records)."""
    found: Counter = Counter()
    if backend == "local":
        for path in (spool / "arrays").glob("*.json"):
            rec = json.loads(path.read_text())
            found[rec["token"]] += rec["size"] - rec["start"]
        return found
    out = subprocess.run(
        ["squeue", "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    masters: dict[str, set] = {}
    for record in json.loads(out.stdout)["jobs"]:
        if record.get("name") in tokens:
            ids = _job_ids(record)
            found[record["name"]] += len(ids)
            masters.setdefault(record["name"], set()).update(i.split("_")[0] for i in ids)
    # One sbatch per token: a second array with the same token is a double submission.
    assert all(len(m) == 1 for m in masters.values()), masters
    return found


def assert_exactly_once(campaign, log: Path, backend: str, spool: Path, jobs=4):
    run_until(lambda: all_final(stage__campaign=campaign), timeout=180)
    rows = list(Job.objects.filter(stage__campaign=campaign))
    assert len(rows) == jobs, "no retries: nothing failed"
    assert {j.state for j in rows} == {JobState.SUCCEEDED}
    assert len({j.batch_id for j in rows}) == jobs
    tokens = list(
        Submission.objects.filter(
            stage__campaign=campaign, state=SubmissionState.SUBMITTED
        ).values_list("token", flat=True)
    )
    at_batch = elements_at_batch_system(backend, spool, tokens)
    assert sum(at_batch.values()) == jobs, at_batch
    assert set(at_batch) == set(tokens)
    runs = Counter(int(line) for path in log.rglob("runs.log") for line in path.read_text().split())
    assert runs == Counter(range(jobs)), "every job ran exactly once"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("point", CHECKPOINTS)
def test_crash_between_steps_then_recover_submits_each_job_once(
    exec_env,
    experiment,
    operator,
    monkeypatch,
    point,
    backend_name,
):
    campaign, log = one_stage_campaign(experiment, operator, exec_env, backend_name)
    monkeypatch.setattr(submission, "crash_hook", crash_at(point))
    with pytest.raises(SimulatedCrash):
        submission.submit_ready()
    monkeypatch.setattr(submission, "crash_hook", None)

    # A new worker's cycle must not submit the claimed jobs again...
    submission.submit_ready()
    unresolved = Submission.objects.filter(state=SubmissionState.SUBMITTING).count()
    assert unresolved == (0 if point == "recorded" else 1)
    # ...nor a recovery inside the grace period (the first worker might still be alive).
    assert recovery.recover().adopted == recovery.recover().resubmitted == []
    # After the grace: adopt what exists, submit only what does not.
    report = recovery.recover(grace_s=0)
    expected = {"claimed": "resubmitted", "prepared": "resubmitted", "submitted": "adopted"}
    if point in expected:
        assert len(getattr(report, expected[point])) == 1

    assert_exactly_once(campaign, log, backend_name, exec_env / "spool")


@pytest.mark.django_db(transaction=True)
def test_crash_during_recovery_then_recover_again(
    exec_env,
    experiment,
    operator,
    monkeypatch,
    backend_name,
):
    campaign, log = one_stage_campaign(experiment, operator, exec_env, backend_name)
    monkeypatch.setattr(submission, "crash_hook", crash_at("prepared"))
    with pytest.raises(SimulatedCrash):
        submission.submit_ready()
    # The reconciler itself dies after the backend took the array, before recording it.
    monkeypatch.setattr(submission, "crash_hook", crash_at("submitted"))
    with pytest.raises(SimulatedCrash):
        recovery.recover(grace_s=0)
    monkeypatch.setattr(submission, "crash_hook", None)

    assert recovery.recover(grace_s=0).adopted

    assert_exactly_once(campaign, log, backend_name, exec_env / "spool")


@pytest.mark.django_db
def test_refused_submission_releases_its_jobs(exec_env, experiment, operator, monkeypatch):
    from campaigns.batch import BackendError
    from campaigns.execution import backends

    _campaign, _log = one_stage_campaign(experiment, operator, exec_env, "local")
    real = backends.backend("local")

    def refuse(spec, start=0):
        raise BackendError("invalid partition")

    monkeypatch.setattr(real, "submit", refuse)
    report = submission.submit_ready()

    assert report.errors and "invalid partition" in report.errors[0]
    sub = Submission.objects.get()
    assert sub.state == SubmissionState.FAILED and "invalid partition" in sub.error
    assert Job.objects.filter(submission__isnull=True, state=JobState.READY).count() == 4
    # The stage pauses after a refusal instead of hammering the batch system.
    assert submission.submit_ready().submissions == []


@pytest.mark.django_db
def test_jobs_of_a_request_on_hold_are_not_submitted(exec_env, fake_backend, experiment, operator):
    from requests_app.choices import RequestState
    from requests_app.models import ProductionRequest

    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    _campaign, request = launch(experiment, operator, events=20, per_job=10, template=template)
    ProductionRequest.objects.filter(pk=request.pk).update(
        state=RequestState.ON_HOLD, held_from=RequestState.SCHEDULED, hold_reason="account"
    )

    assert submission.submit_ready().jobs == 0
    assert fake_backend.calls["submit"] == 0

    ProductionRequest.objects.filter(pk=request.pk).update(state=RequestState.SCHEDULED)
    assert submission.submit_ready().jobs == 2


@pytest.mark.django_db
def test_an_outage_does_not_pile_up_claimed_submissions(
    exec_env, fake_backend, experiment, operator, settings
):
    settings.OPOS_BACKEND_CAPACITY = {"local": 2}
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    launch(experiment, operator, events=40, per_job=10, template=template)
    fake_backend.unavailable = True

    first = submission.submit_ready()
    second = submission.submit_ready()  # the probe finds the backend still down

    assert first.unavailable == second.unavailable == {"local"}
    assert Submission.objects.count() == 1
    assert fake_backend.calls["submit"] == 1
    assert Submission.objects.get().error.startswith("backend unavailable")

    fake_backend.unavailable = False
    assert submission.submit_ready().jobs == 2  # reachable again: the free jobs go
    assert recovery.recover(grace_s=0).resubmitted  # the unanswered one, after the grace
    jobs = list(Job.objects.all())
    assert {j.state for j in jobs} == {JobState.QUEUED}
    assert len({j.batch_id for j in jobs}) == 4
    assert sum(fake_backend.arrays.values()) == 4


@pytest.mark.django_db
def test_full_work_area_releases_the_claimed_jobs(
    exec_env, fake_backend, experiment, operator, monkeypatch
):
    import errno

    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    launch(experiment, operator, events=20, per_job=10, template=template)

    def full(path, text, mode=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(submission, "write_atomic", full)
    report = submission.submit_ready()

    assert "No space left on device" in report.errors[0]
    assert fake_backend.calls["submit"] == 0
    assert Submission.objects.get().state == SubmissionState.FAILED
    assert Job.objects.filter(state=JobState.READY, submission__isnull=True).count() == 2


def _submit_counting_queries(experiment, operator, jobs: int) -> tuple[int, Submission]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _request = launch(
        experiment, operator, events=jobs * 10, per_job=10, template=template
    )
    stage = campaign.stages.get()
    with CaptureQueriesContext(connection) as queries:
        [done] = submission.submit_stage(stage.pk, jobs)
    return len(queries), done


@pytest.mark.django_db
def test_claim_prepare_and_record_cost_the_same_queries_for_5_or_300_jobs(
    exec_env, fake_backend, experiment, operator, settings
):
    settings.OPOS_BACKEND_CAPACITY = {"local": 1000}
    small, _ = _submit_counting_queries(experiment, operator, 5)
    large, done = _submit_counting_queries(experiment, operator, 300)

    from django.db import connection

    if connection.vendor == "postgresql":
        assert small == large, "claim and record must not send a statement per job"
    else:
        # SQLite's ORM path: bulk_update writes in batches its parameter limit allows.
        assert large <= small + 4
    assert small <= 16
    assert done.size == 300
    assert Job.objects.filter(submission=done, state=JobState.QUEUED).count() == 300


@pytest.mark.django_db
def test_prepare_writes_two_files_and_no_element_folder(
    exec_env, fake_backend, experiment, operator, settings
):
    from campaigns.execution.wrapper import ARRAY_FILE, JOBS_FILE, load_description

    settings.OPOS_BACKEND_CAPACITY = {"local": 1000}
    _, done = _submit_counting_queries(experiment, operator, 12)

    jobs = list(Job.objects.filter(submission=done).order_by("index", "id"))
    array_dir = Path(jobs[0].workdir).parent
    assert sorted(p.name for p in array_dir.iterdir()) == [ARRAY_FILE, JOBS_FILE]
    lines = (array_dir / JOBS_FILE).read_text().splitlines()
    assert len(lines) == 12
    common = json.loads((array_dir / ARRAY_FILE).read_text())
    assert common["code"]["sha256"] == done.stage.code_sha256
    assert common["resources"]["memory_mb"] == done.stage.memory_mb
    for element, job in enumerate(jobs):
        assert job.workdir == str(array_dir / str(element))
        line = json.loads(lines[element])
        assert (line["job"], line["index"], line["events"]) == (job.pk, job.index, job.events)
        assert "code" not in line and "parameters" not in line  # shared, written once
        # What the wrapper of this element will put together once the shim made its folder.
        folder = Path(job.workdir)
        folder.mkdir()
        described = load_description(folder)
        assert described == descriptions.job_description(
            done.stage,
            {
                **line,
                "id": job.pk,
                "events_first": job.events_first,
                "input_files": job.input_files,
                "memory_mb": job.memory_mb,
                "walltime_s": job.walltime_s,
            },
            line["inputs"],
        )


@pytest.mark.django_db
def test_claim_splits_by_resource_request_and_keeps_element_order(
    exec_env, fake_backend, experiment, operator, settings
):
    settings.OPOS_BACKEND_CAPACITY = {"local": 1000}
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _request = launch(experiment, operator, events=100, per_job=10, template=template)
    stage = campaign.stages.get()
    # Retries asking for more memory go into an array of their own.
    Job.objects.filter(stage=stage, index__in=[2, 5, 7]).update(memory_mb=4000)

    done = submission.submit_stage(stage.pk, 100)

    assert sorted(s.size for s in done) == [3, 7]
    for sub in done:
        jobs = list(Job.objects.filter(submission=sub).order_by("index", "id"))
        assert len({j.memory_mb for j in jobs}) == 1
        assert [j.batch_id for j in jobs] == [f"fake:{sub.token}:{i}" for i in range(sub.size)]
        assert [j.workdir.rsplit("/", 1)[1] for j in jobs] == [str(i) for i in range(sub.size)]
    assert Job.objects.filter(stage=stage, state=JobState.QUEUED).count() == 10
    stage.refresh_from_db()
    assert (stage.n_ready, stage.n_queued) == (0, 10)


@pytest.mark.django_db
def test_a_claim_holds_its_jobs_by_listing_them_until_recorded(
    exec_env, fake_backend, experiment, operator, settings
):
    settings.OPOS_BACKEND_CAPACITY = {"local": 1000}
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _request = launch(experiment, operator, events=50, per_job=10, template=template)
    stage = campaign.stages.get()

    [(first, rows)] = submission.claim(stage, 3)  # the worker then dies: never recorded
    [(second, _)] = submission.claim(stage, 10)

    assert first.job_ids == [row["id"] for row in rows]
    assert len(first.job_ids) == 3 and len(second.job_ids) == 2
    assert not set(first.job_ids) & set(second.job_ids)  # no job claimed twice
    assert submission.claim(stage, 10) == []  # all five held
    # The claim writes no job row: they are linked only when recorded.
    assert not Job.objects.filter(submission__isnull=False).exists()
    claimed_by_second = list(second.job_ids)
    submission.submit_claimed(second, stage)
    linked = Job.objects.filter(submission=second).order_by("index", "id")
    assert list(linked.values_list("id", flat=True)) == claimed_by_second
    assert Submission.objects.get(pk=second.pk).job_ids == []  # the links say it now
    assert recovery.recover(grace_s=0).resubmitted == [first.token]
    assert Job.objects.filter(stage=stage, state=JobState.QUEUED).count() == 5
    assert len(set(Job.objects.filter(stage=stage).values_list("batch_id", flat=True))) == 5
