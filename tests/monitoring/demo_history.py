"""A realistic monitoring history in a development database, for looking at the pages.

Not a test: ``OPOS_DATA_DIR=/tmp/monitoring-dev .venv/bin/python -m
tests.monitoring.demo_history`` (after ``migrate`` and ``seed_demo``) adds to the
DUNE demo experiment:

* "MCC5.0 production": three requests of the working groups, launched 2.5 days
  ago, following the seed's good round (full speed by day two, half done now),
  with some failures by class and snapshots every 20 minutes;
* "MCC5.0 cosmogenics": launched 1.5 days ago at a slow pace against a close
  deadline (at risk), one request on hold for an account permission problem,
  a stuck job;
* "MCC5.1 planning": scheduled, not launched (the scheduler's estimate);
* commitments of every request of the two rounds, as the operator confirmed the
  tracker's proposals: met or on track for the three working groups of the good round,
  100 % promised a day before the forecast for cosmogenics (at risk), then checked
  (the at-risk promise announced on its ticket).

``build(scale=...)`` multiplies the events (and so the jobs) for benchmarks.
"""

from __future__ import annotations

import datetime as dt
import os

import django


def build(scale: int = 1, now: dt.datetime | None = None) -> dict[str, int]:
    from django.contrib.auth import get_user_model
    from django.db.models import F
    from django.utils import timezone

    from campaigns.choices import FailureClass, JobState
    from campaigns.models import Campaign, Job, Stage, StuckFlag, StuckKind
    from experiments.models import Experiment
    from monitoring.services import record_snapshots
    from requests_app.models import ProductionRequest
    from requests_app.services import system_transition
    from requests_app.services.transitions import transition
    from tests.factories import PhysicsGroupFactory

    from .builders import fail_jobs, launch, planned_campaign, seed_shape, set_progress

    now = now or timezone.now()
    dune = Experiment.objects.get(slug="dune")
    operator = get_user_model().objects.get(username="olivia")
    ids = {}

    def groups(request_ids, slugs):
        for rid, slug in zip(request_ids, slugs, strict=False):
            group = PhysicsGroupFactory(experiment=dune, slug=slug)
            ProductionRequest.objects.filter(pk=rid).update(physics_group=group)

    def start_requests(campaign):
        for rid in campaign.links.values_list("request_id", flat=True):
            system_transition(rid, "start", note="The first job is running.")

    def follow(campaign, shape, target, slots, running_days=2.0):
        # Only this campaign runs while its past is recorded: record_snapshots takes
        # every running campaign, and the others' counters are not those of the past.
        others = list(
            Campaign.objects.filter(state="active")
            .exclude(pk=campaign.pk)
            .values_list("pk", flat=True)
        )
        Campaign.objects.filter(pk__in=others).update(state="planned")
        first_stages = Stage.objects.filter(campaign=campaign, position=0).count()
        for at, done in shape:
            days = (at - campaign.launched_at) / dt.timedelta(days=1)
            running = round(slots * min(days / running_days, 1.0)) if done < target else 0
            set_progress(campaign, done / target, running=round(running / first_stages))
            record_snapshots(now=at)
        Campaign.objects.filter(pk__in=others).update(state="active")

    # 1. The good round.
    good = planned_campaign(
        dune,
        operator,
        requests=3,
        samples=2,
        events=50_000 * scale,
        per_job=500,
        days=3,
        name="MCC5.0 production",
    )
    groups(
        good.links.values_list("request_id", flat=True),
        ["oscillations", "supernova", "proton-decay"],
    )
    start = now - dt.timedelta(days=2.5)
    good = launch(good, operator, at=start)
    start_requests(good)
    target = 6 * 50_000 * scale
    shape = [(at, e) for at, e in seed_shape(start, target, hours=60, step_h=1 / 3) if at <= now]
    follow(good, shape, target, slots=20)
    fail_jobs(good, 23, FailureClass.OUT_OF_MEMORY, now - dt.timedelta(hours=3))
    fail_jobs(good, 9, FailureClass.OUT_OF_MEMORY, now - dt.timedelta(hours=30))
    fail_jobs(good, 6, FailureClass.WALLTIME, now - dt.timedelta(hours=10))
    fail_jobs(good, 2, FailureClass.LOST, now - dt.timedelta(hours=40))
    ids["good"] = good.pk

    # 2. A slow round against a close deadline, one request on hold.
    slow = planned_campaign(
        dune,
        operator,
        requests=2,
        samples=1,
        events=40_000 * scale,
        per_job=500,
        days=2,
        name="MCC5.0 cosmogenics",
    )
    groups(slow.links.values_list("request_id", flat=True), ["cosmogenics"])
    start = now - dt.timedelta(days=1.5)
    slow = launch(slow, operator, at=start)
    start_requests(slow)
    target = 2 * 40_000 * scale
    shape = []
    t = start
    while t <= now:
        hours = (t - start).total_seconds() / 3600
        shape.append((t, min(round(target * 0.011 * max(hours - 2, 0)), target)))
        t += dt.timedelta(minutes=20)
    follow(slow, shape, target, slots=8, running_days=0.5)
    held = slow.links.order_by("request_id").last().request
    transition(held, "hold", operator, note="Account permission problem at the storage element.")
    ProductionRequest.objects.filter(pk=held.pk).update(
        hold_started=now - dt.timedelta(hours=7), hold_seconds=3 * 3600
    )
    job = Job.objects.filter(stage__campaign=slow, state=JobState.PLANNED).order_by("id").first()
    Job.objects.filter(pk=job.pk).update(
        state=JobState.HELD,
        state_since=now - dt.timedelta(hours=5),
        batch_id="4711_3",
        backend="local",
    )
    Stage.objects.filter(pk=job.stage_id).update(
        n_planned=F("n_planned") - 1, n_held=F("n_held") + 1
    )
    StuckFlag.objects.create(
        campaign=slow,
        stage_id=job.stage_id,
        job=job,
        kind=StuckKind.HELD,
        reason="held for 5.0 h (batch id 4711_3)",
    )
    ids["slow"] = slow.pk

    # 3. Scheduled, not launched.
    planned = planned_campaign(
        dune,
        operator,
        requests=1,
        samples=1,
        events=20_000 * scale,
        per_job=500,
        days=12,
        name="MCC5.1 planning",
    )
    ids["planned"] = planned.pk
    Campaign.objects.filter(pk__in=ids.values()).update(backend="local")

    # 4. What was promised to each working group, then judged.
    from monitoring.choices import MilestoneKind
    from monitoring.services import commitments as promises

    for campaign, tighter in ((good, dt.timedelta(0)), (slow, dt.timedelta(days=1))):
        for link in campaign.links.select_related("request__experiment"):
            request = link.request
            if request.state == "on_hold":
                continue  # its promises wait for the hold to be solved
            moments = promises.proposal(request, now)
            # The proposal is the slow end of the band; cosmogenics promised a day sooner.
            moments[MilestoneKind.ALL_EVENTS] = max(
                moments[MilestoneKind.ALL_EVENTS] - tighter, moments[MilestoneKind.HALF_EVENTS]
            )
            promises.confirm(request, operator, moments, now=now)
    promises.check(now)
    return ids


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opos.settings")
    django.setup()
    print(build())
