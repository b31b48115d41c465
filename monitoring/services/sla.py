"""The service-desk clock: how long a request waited at each step, from its transition log.

Measured from the first submission (a ticket reaches the operators as a submitted
request):

* **first response**: to the first operator decision on it (ask for information,
  approve or reject);
* **needs info**: time spent waiting for the liaison (``needs_info``), added up;
* **on hold**: time spent on hold, added up;
* **to approval**, **to first job** (the ``start`` transition execution records once a
  job ran) and **to completion**.

Open intervals (a request waiting now) count until now. Targets come from the
experiment's SLA (``Experiment.sla_*_hours``); a step is late when it took (or has
already been waiting) longer than its target. Aggregates give the median and the 90th
percentile per experiment and month (of the submission), and per operator (who gave the
first response). The clock of one request is intake's (``requests_app.services.clock``,
which the service-desk connector also writes on the ticket); the aggregates read the
transitions of many requests in one query.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

from django.utils import timezone

from experiments.models import Experiment
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from requests_app.services.clock import (  # noqa: F401 - the clock's names, as pages use them
    MEASURES,
    RESPONSES,
    Clock,
    ClockRow,
    Step,
    clock,
    clock_rows,
    request_clock,
    steps_of,
)

MONTHS_SHOWN = 12


def quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank, so a figure that happened); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


@dataclass
class Aggregate:
    """Median and 90th percentile of each measure over a group of requests."""

    experiment: Experiment
    month: str  # YYYY-MM of the submission
    operator: str  # who answered first ("" for the experiment's row)
    requests: int
    median: dict[str, float | None]
    p90: dict[str, float | None]
    late: dict[str, int]  # requests over the target

    @property
    def cells(self) -> list[tuple[str, float | None, float | None, int]]:
        return [(k, self.median[k], self.p90[k], self.late.get(k, 0)) for k in MEASURES]


def aggregates(
    experiments: list[Experiment], now: dt.datetime | None = None, months: int = MONTHS_SHOWN
) -> tuple[list[Aggregate], list[Aggregate]]:
    """Per experiment and month, and per experiment, month and operator: three queries
    (requests, their logs, the operators' names) whatever the number of requests."""
    from django.contrib.auth import get_user_model

    now = now or timezone.now()
    since = now - dt.timedelta(days=31 * months)
    by_id = {e.pk: e for e in experiments}
    requests = list(
        ProductionRequest.objects.filter(experiment_id__in=list(by_id))
        .exclude(state=RequestState.DRAFT)
        .filter(created__gte=since)
        .values_list("pk", "experiment_id")
    )
    logs = steps_of([pk for pk, _ in requests])
    groups: dict[tuple[int, str, int | None], list[Clock]] = defaultdict(list)
    for pk, eid in requests:
        c = clock(logs.get(pk, []), now)
        if c.submitted_at is None:
            continue
        month = timezone.localtime(c.submitted_at).strftime("%Y-%m")
        groups[(eid, month, None)].append(c)
        if c.responder_id is not None:
            groups[(eid, month, c.responder_id)].append(c)
    names = dict(
        get_user_model()
        .objects.filter(pk__in={k[2] for k in groups if k[2] is not None})
        .values_list("pk", "username")
    )
    per_experiment, per_operator = [], []
    for (eid, month, op), clocks in sorted(
        groups.items(), key=lambda kv: (by_id[kv[0][0]].name, kv[0][1], kv[0][2] or 0)
    ):
        e = by_id[eid]
        median, p90, late = {}, {}, {}
        for key, (_label, target_field) in MEASURES.items():
            values = [c.seconds[key] for c in clocks if c.seconds.get(key) is not None]
            median[key] = statistics.median(values) if values else None
            p90[key] = quantile(values, 0.9)
            if target_field:
                target = getattr(e, target_field) * 3600
                late[key] = sum(1 for v in values if v > target)
        agg = Aggregate(e, month, names.get(op, "") if op else "", len(clocks), median, p90, late)
        (per_operator if op else per_experiment).append(agg)
    return per_experiment, per_operator
