"""Execution goes endpoint by endpoint: one that fails never stops the others.

In-memory batch systems (exec_support.FakeBackend), one per endpoint; the real run on two
Slurm clusters is test_exec_slurm_endpoints.py.
"""

import pytest

from campaigns.batch import BatchState
from campaigns.choices import JobState
from campaigns.execution import backends, polling, submission
from campaigns.models import Job
from tests.campaigns.exec_support import (
    DEMO_STAGES,
    FakeBackend,
    demo_template,
    exec_env,  # noqa: F401 - fixture
    launch,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fakes(exec_env, settings, monkeypatch):  # noqa: F811 - the fixture above
    settings.OPOS_BACKEND_OPTIONS = {
        **settings.OPOS_BACKEND_OPTIONS,
        "slurm-b": {"kind": "slurm", "state_dir": str(exec_env / "slurm-b")},
    }
    settings.OPOS_BACKEND_CAPACITY = {"slurm": 50, "slurm-b": 50}
    made = {"slurm": FakeBackend(), "slurm-b": FakeBackend()}
    monkeypatch.setattr(backends, "backend", lambda name: made[name])
    return made


@pytest.fixture
def two_campaigns(fakes, experiment, operator):
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    a, _ = launch(experiment, operator, events=300, per_job=100, backend="slurm", template=template)
    b, _ = launch(
        experiment, operator, events=200, per_job=100, backend="slurm-b", template=template
    )
    return a, b


def jobs_of(campaign):
    return list(Job.objects.filter(stage__campaign=campaign))


def test_each_endpoint_gets_its_own_campaign_s_jobs(fakes, two_campaigns):
    a, b = two_campaigns
    submission.submit_ready()
    assert {j.backend for j in jobs_of(a)} == {"slurm"}
    assert {j.backend for j in jobs_of(b)} == {"slurm-b"}
    assert len(fakes["slurm"].arrays) == 1 and sum(fakes["slurm"].arrays.values()) == 3
    assert len(fakes["slurm-b"].arrays) == 1 and sum(fakes["slurm-b"].arrays.values()) == 2


def test_an_endpoint_that_is_down_does_not_stop_the_submission_to_the_other(fakes, two_campaigns):
    a, b = two_campaigns
    fakes["slurm-b"].unavailable = True
    report = submission.submit_ready()
    assert report.unavailable == {"slurm-b"}
    assert {j.state for j in jobs_of(a)} == {JobState.QUEUED}
    assert {j.state for j in jobs_of(b)} == {JobState.READY}


def test_an_endpoint_whose_poll_breaks_does_not_stop_the_poll_of_the_other(fakes, two_campaigns):
    a, b = two_campaigns
    submission.submit_ready()

    def broken(jobs):
        raise RuntimeError("squeue printed something nobody expected")

    fakes["slurm-b"].status = broken
    fakes["slurm"].set(jobs_of(a), BatchState.RUNNING)
    report = polling.poll()
    assert {j.state for j in jobs_of(a)} == {JobState.RUNNING}
    assert {j.state for j in jobs_of(b)} == {JobState.QUEUED}  # kept, asked again next cycle
    assert any(e.startswith("slurm-b: RuntimeError") for e in report.errors)


def test_a_cancel_refused_by_one_endpoint_still_reaches_the_other(fakes, two_campaigns):
    from campaigns.batch import BackendUnavailable

    a, b = two_campaigns
    submission.submit_ready()

    def refuse(ids):
        raise BackendUnavailable("controller unreachable")

    fakes["slurm"].cancel = refuse
    both = Job.objects.filter(stage__campaign__in=[a, b])
    assert polling._cancel_in_flight(both, "both campaigns") is False  # asked again later
    assert sorted(fakes["slurm-b"].cancelled) == sorted(j.batch_id for j in jobs_of(b))


def test_a_campaign_whose_endpoint_left_the_settings_is_blocked_with_the_reason(
    fakes, two_campaigns, settings
):
    a, b = two_campaigns
    settings.OPOS_BACKEND_OPTIONS = {
        k: v for k, v in settings.OPOS_BACKEND_OPTIONS.items() if k != "slurm-b"
    }
    report = submission.submit_ready()
    assert {j.state for j in jobs_of(a)} == {JobState.QUEUED}
    assert {j.state for j in jobs_of(b)} == {JobState.READY}  # nothing claimed
    assert fakes["slurm-b"].calls["submit"] == 0
    b.refresh_from_db()
    assert "'slurm-b' is not a configured batch endpoint" in b.fault
    assert any("slurm-b" in e for e in report.errors)
