"""Human-friendly request numbers, per experiment and year: ``DUNE-2026-0042``.

Requests numbered before numbers were per experiment keep their ``REQ-2026-0042``; both
forms are looked up the same way (pages, API, command line), so old links keep working.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from experiments.models import Experiment

from ..models import RequestCounter

# What a request number looks like in a URL (``DUNE-2026-0042``, ``REQ-2026-0042``).
NUMBER_PATTERN = r"[A-Za-z0-9][A-Za-z0-9-]*-[0-9]{4}-[0-9]+"


def number_prefix(experiment: Experiment) -> str:
    return experiment.slug.upper()


def next_request_number(experiment: Experiment, year: int | None = None) -> str:
    """Hand out the next number of ``experiment`` in ``year``.

    The counter row is bumped with an ``UPDATE ... SET last = last + 1``
    inside the caller's transaction, so concurrent callers queue on the row
    lock and never get the same number.
    """
    year = year or timezone.now().year
    with transaction.atomic():
        counters = RequestCounter.objects.filter(experiment=experiment, year=year)
        RequestCounter.objects.get_or_create(experiment=experiment, year=year)
        counters.update(last=F("last") + 1)
        last = counters.values_list("last", flat=True).get()
    return f"{number_prefix(experiment)}-{year}-{last:04d}"
