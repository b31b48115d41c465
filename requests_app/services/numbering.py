"""Human-friendly request numbers, unique per year: ``REQ-2026-0042``."""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import RequestCounter


def next_request_number(year: int | None = None) -> str:
    """Hand out the next number of ``year``.

    The counter row is bumped with an ``UPDATE ... SET last = last + 1``
    inside the caller's transaction, so concurrent callers queue on the row
    lock and never get the same number.
    """
    year = year or timezone.now().year
    with transaction.atomic():
        RequestCounter.objects.get_or_create(year=year)
        RequestCounter.objects.filter(year=year).update(last=F("last") + 1)
        last = RequestCounter.objects.get(year=year).last
    return f"REQ-{year}-{last:04d}"
