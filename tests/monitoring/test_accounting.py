"""The accounting ledger: core hours used and wasted per experiment, working group, campaign
and request, against allocations, with the projection to the period's end."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.models import Job, Stage
from monitoring.models import Allocation
from monitoring.services import accounting

from .accounting_builders import allocation, attempts, failed, succeeded
from .builders import planned_campaign

pytestmark = pytest.mark.django_db


def ledger_now(now: dt.datetime | None = None):
    jobs = Job.objects.all()
    return accounting.build_ledger(jobs, Allocation.objects.all(), now=now)


def test_ledger_sums_used_and_wasted_core_hours_per_level(experiment, operator):
    campaign = planned_campaign(experiment, operator, events=2000, per_job=100, name="MCC")
    stage = Stage.objects.filter(campaign=campaign).order_by("position").first()
    Stage.objects.filter(pk=stage.pk).update(cores=2)
    succeeded(campaign, 4, core_s=3600, cpu_s=1800, max_rss_kb=500_000)
    failed(campaign, 2, core_s=1800, cpu_s=900, max_rss_kb=2_000_000)
    # No batch figures: the wrapper's wall time (2 h) x the stage's 2 cores.
    attempts(campaign, 1, state="succeeded", walltime_observed_s=7200, usage_source="none")
    # Ended before the period: not counted.
    succeeded(campaign, 1, core_s=99_999, cpu_s=1, finished=timezone.now() - dt.timedelta(days=62))

    ledger = ledger_now()

    [row] = ledger.levels["experiment"]
    assert (row.label, row.experiment) == ("dune", "dune")
    assert row.attempts == 7
    assert (row.succeeded, row.wasted, row.measured) == (5, 2, 6)
    assert row.succeeded_core_hours == pytest.approx(4 * 1 + 4)
    assert row.wasted_core_hours == pytest.approx(2 * 0.5)
    assert row.core_hours == pytest.approx(9)
    assert row.cpu_hours == pytest.approx(4 * 0.5 + 2 * 0.25)
    assert row.max_rss_kb == 2_000_000
    assert row.wasted_percent == pytest.approx(100 / 9)
    request = stage.request
    assert [(r.label, r.core_hours) for r in ledger.levels["request"]] == [
        (request.number, pytest.approx(9))
    ]
    assert [(r.label, r.core_hours) for r in ledger.levels["group"]] == [
        (request.physics_group.slug, pytest.approx(9))
    ]
    assert [(r.label, r.experiment) for r in ledger.levels["campaign"]] == [("MCC", "dune")]
    assert ledger.total().core_hours == pytest.approx(9)


def test_allocation_projection_at_the_current_rate(experiment, other_experiment, operator):
    campaign = planned_campaign(experiment, operator, events=1000, per_job=100)
    today = timezone.localdate()
    # A 20-day period, a quarter gone at `now`: 5 h used projects to 20 h.
    start = today - dt.timedelta(days=5)
    grant = allocation(experiment, 10, start, start + dt.timedelta(days=19))
    allocation(other_experiment, 50, start, start + dt.timedelta(days=19))
    now = accounting.day_start(start) + dt.timedelta(days=5)
    succeeded(campaign, 5, core_s=3600, cpu_s=3000, finished=now - dt.timedelta(hours=1))

    by_experiment = {s.allocation.experiment_id: s for s in ledger_now(now).allocations}

    status = by_experiment[experiment.pk]
    assert status.allocation == grant
    assert status.used.core_hours == pytest.approx(5)
    assert status.elapsed_fraction == pytest.approx(0.25)
    assert status.used_percent == pytest.approx(50)
    assert status.projected_core_hours == pytest.approx(20)
    assert status.projected_percent == pytest.approx(200)
    assert status.status == "at_risk"
    idle = by_experiment[other_experiment.pk]
    assert (idle.used.core_hours, idle.projected_core_hours, idle.status) == (0, 0, "ok")


def test_allocation_used_up_is_over(experiment, operator):
    campaign = planned_campaign(experiment, operator, events=1000, per_job=100)
    today = timezone.localdate()
    allocation(experiment, 2, today - dt.timedelta(days=1), today + dt.timedelta(days=1))
    succeeded(campaign, 3, core_s=3600, cpu_s=3600)
    [status] = ledger_now().allocations
    assert status.status == "over"


def test_allocations_of_one_experiment_may_not_overlap(experiment):
    today = timezone.localdate()
    allocation(experiment, 10, today, today + dt.timedelta(days=30))
    clash = Allocation(
        experiment=experiment,
        cpu_hours=5,
        start=today + dt.timedelta(days=30),
        end=today + dt.timedelta(days=60),
    )
    with pytest.raises(ValidationError, match="overlaps"):
        clash.full_clean()
    backwards = Allocation(experiment=experiment, cpu_hours=5, start=today, end=today)
    backwards.end = today - dt.timedelta(days=1)
    with pytest.raises(ValidationError, match="end on or after"):
        backwards.full_clean()


def test_ledger_queries_are_bounded(
    experiment, other_experiment, operator, django_assert_max_num_queries
):
    for exp in (experiment, other_experiment):
        campaign = planned_campaign(exp, operator, requests=2, events=1000, per_job=100)
        succeeded(campaign, 3, core_s=3600, cpu_s=100)
        failed(campaign, 2, core_s=60, cpu_s=10)
        today = timezone.localdate()
        allocation(exp, 100, today, today + dt.timedelta(days=9))
    # The allocations, their use (one aggregate), and one aggregate per level.
    with django_assert_max_num_queries(2 + len(accounting.LEVELS)):
        ledger = ledger_now()
    assert len(ledger.levels["experiment"]) == 2
    assert len(ledger.levels["request"]) == 2  # the first stage is one request's
    assert len(ledger.allocations) == 2
