"""Every monitoring page and progress endpoint runs a bounded number of queries.

Measured at two sizes (one small campaign; several campaigns of many requests,
samples and jobs, with failures, stuck flags, snapshots and milestones): the
same ceiling holds for both, so nothing grows with the data.
"""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import FailureClass
from campaigns.models import Job, StuckFlag, StuckKind
from monitoring.models import Allocation
from monitoring.services import record_snapshots

from .builders import fail_jobs, history, launch, planned_campaign, set_progress

pytestmark = pytest.mark.django_db

# Ceilings: measured (17, 16, 14, 16, 24, 15, 9, 10, 21, 11, 10, 9) plus a little room;
# they include the session, the user and their roles. The experiment and operations pages
# and the report show the current allocations (two queries), the report the CPU hours of
# the period (one), /metrics the accounting families (three).
MAX_QUERIES = {
    "experiment": 20,
    "campaign": 18,
    "request": 16,
    # + the partitions (three), + accounting's allocations, + storage's waiting transfers
    "operations": 24,
    "report": 27,
    "csv": 18,
    "campaign_api": 13,
    "request_api": 13,
    "metrics": 25,  # + the partitions and their quotas (the scheduler's input, one)
    "accounting": 14,
    "accounting_csv": 13,
    "accounting_api": 12,
}


def build(experiment, operator, size: str):
    """A small world or a big one; returns (campaign, request) to look at."""
    if size == "small":
        shapes = [dict(requests=1, samples=1, events=1000, per_job=100)]
    else:
        shapes = [dict(requests=3, samples=2, events=20_000, per_job=100)] * 3
    campaigns = []
    for n, shape in enumerate(shapes):
        c = planned_campaign(experiment, operator, name=f"round {n}", **shape)
        campaigns.append(launch(c, operator, at=timezone.now() - dt.timedelta(days=2)))
    now = timezone.now()
    for c in campaigns:
        set_progress(c, 0.4, running=5)
        fail_jobs(c, 3 if size == "small" else 40, FailureClass.OUT_OF_MEMORY)
        fail_jobs(c, 1 if size == "small" else 20, FailureClass.WALLTIME)
        if size == "big":  # more failure classes must not mean more queries
            fail_jobs(c, 10, FailureClass.LOST)
            fail_jobs(c, 10, FailureClass.STORAGE)
        steps = 5 if size == "small" else 200
        history(c, [(now - dt.timedelta(hours=h / 4), 10 * (steps - h)) for h in range(steps)])
        stage = c.stages.first()
        job = Job.objects.filter(stage=stage).first()
        StuckFlag.objects.create(
            campaign=c, stage=stage, job=job, kind=StuckKind.QUEUED, reason="queued for 2 d"
        )
    record_snapshots()
    # What the accounting pages add up: measured attempts, and an allocation.
    Job.objects.filter(stage__campaign__in=campaigns, finished__isnull=False).update(
        core_time_s=3600, cpu_time_s=1800, max_rss_kb=100_000, usage_source="sacct"
    )
    today = timezone.localdate()
    Allocation.objects.create(
        experiment=experiment, cpu_hours=1000, start=today, end=today + dt.timedelta(days=9)
    )
    campaign = campaigns[0]
    request = campaign.links.first().request
    return campaign, request


def urls(experiment, campaign, request):
    return {
        "experiment": reverse("monitoring:experiment", args=[experiment.slug]),
        "campaign": reverse("monitoring:campaign", args=[campaign.pk]),
        "request": reverse("monitoring:request", args=[request.number]),
        "operations": reverse("monitoring:operations"),
        "report": reverse("monitoring:report", args=[experiment.slug]),
        "csv": reverse("monitoring:csv", args=[experiment.slug]),
        "campaign_api": f"/api/v1/campaigns/{campaign.pk}/progress/",
        "request_api": f"/api/v1/requests/{request.pk}/progress/",
        "metrics": "/metrics",
        "accounting": reverse("monitoring:accounting"),
        "accounting_csv": reverse("monitoring:accounting_csv"),
        "accounting_api": "/api/v1/accounting/",
    }


@pytest.mark.parametrize("size", ["small", "big"])
def test_pages_and_endpoints_stay_within_their_ceilings(
    client, experiment, operator, size, django_assert_max_num_queries
):
    campaign, request = build(experiment, operator, size)
    client.force_login(operator)
    assert Job.objects.count() > (1000 if size == "big" else 10)
    for name, url in urls(experiment, campaign, request).items():
        with django_assert_max_num_queries(MAX_QUERIES[name], info=f"{name} ({size})"):
            response = client.get(url)
        assert response.status_code == 200, name


@pytest.mark.parametrize("size", ["small", "big"])
def test_a_physicist_sees_the_same_pages_within_the_same_ceilings(
    client, experiment, operator, physicist, size, django_assert_max_num_queries
):
    campaign, request = build(experiment, operator, size)
    client.force_login(physicist)
    for name in ("experiment", "campaign", "request", "report", "accounting", "accounting_csv"):
        url = urls(experiment, campaign, request)[name]
        with django_assert_max_num_queries(MAX_QUERIES[name], info=name):
            assert client.get(url).status_code == 200
