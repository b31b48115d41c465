"""Builders of the accounting tests: attempts that ended with usage figures, as the poller
and the usage collection would have written them."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from campaigns.choices import JobState
from campaigns.models import Job, Stage
from monitoring.models import Allocation


def attempts(campaign, n: int, **values) -> list[int]:
    """Give ``n`` not yet used attempts of the campaign's first stage ``values`` (state,
    finished, core_time_s, ...); return their ids."""
    stage = Stage.objects.filter(campaign=campaign).order_by("position").first()
    ids = list(
        Job.objects.filter(stage=stage, finished__isnull=True)
        .order_by("index")
        .values_list("id", flat=True)[:n]
    )
    assert len(ids) == n, f"the stage has {len(ids)} unused attempts, not {n}"
    values.setdefault("finished", timezone.now() - dt.timedelta(minutes=5))
    values.setdefault("usage_at", values["finished"])
    Job.objects.filter(pk__in=ids).update(**values)
    return ids


def succeeded(campaign, n: int, core_s: float, cpu_s: float, **values) -> list[int]:
    return attempts(
        campaign,
        n,
        state=JobState.SUCCEEDED,
        core_time_s=core_s,
        cpu_time_s=cpu_s,
        usage_source="sacct",
        **values,
    )


def failed(campaign, n: int, core_s: float, cpu_s: float, **values) -> list[int]:
    return attempts(
        campaign,
        n,
        state=JobState.FAILED,
        core_time_s=core_s,
        cpu_time_s=cpu_s,
        usage_source="sacct",
        **values,
    )


def allocation(experiment, hours: int, start: dt.date, end: dt.date, **values) -> Allocation:
    return Allocation.objects.create(
        experiment=experiment, cpu_hours=hours, start=start, end=end, **values
    )
