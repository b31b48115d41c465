"""What the request lists share: their CSV export and the user's saved filters."""

from __future__ import annotations

import csv

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from ..models import SavedFilter
from ..tables import RequestTable

MAX_EXPORT = 50_000  # rows; a CSV beyond that is a job for the API
EXPORT_CHUNK = 2000


def saved_filters_context(request, page: str) -> dict:
    """The user's saved filters of ``page`` and the current query to save."""
    return {
        "saved_filters": list(SavedFilter.objects.filter(user=request.user, page=page)),
        "saved_page": page,
        "current_query": request.GET.urlencode(),
    }


CSV_HEADER = [
    "number",
    "title",
    "experiment",
    "working_group",
    "state",
    "priority",
    "deadline",
    "ticket",
    "requester",
    "assignee",
    "samples",
    "events",
    "submitted",
    "updated",
]


def _instant(value, zone) -> str:
    """ISO 8601 with the offset of the zone the pages show (the user's)."""
    return timezone.localtime(value, zone).isoformat(timespec="seconds") if value else ""


def export_csv(table: RequestTable, name: str) -> HttpResponse:
    """The table's rows (all pages, as filtered and sorted) as CSV. Deadlines are dates,
    as on the page (no midnight-UTC instant that reads as the day before elsewhere);
    instants carry the offset of the page's time zone."""
    rows = table.data.data  # the filtered, sorted queryset (not one page of it)
    if rows.count() > MAX_EXPORT:
        return HttpResponse(
            f"More than {MAX_EXPORT} requests match: narrow the filters, or use the API.",
            status=400,
            content_type="text/plain; charset=utf-8",
        )

    class Echo:
        def write(self, value):
            return value

    writer = csv.writer(Echo())
    # The rows are written while the response streams, after the middleware that activated
    # the user's zone has returned: take the zone now.
    zone = timezone.get_current_timezone()

    def lines():
        yield writer.writerow([f"# time zone: {zone.key if hasattr(zone, 'key') else zone}"])
        yield writer.writerow(CSV_HEADER)
        for r in rows.iterator(chunk_size=EXPORT_CHUNK):
            yield writer.writerow(
                [
                    r.number,
                    r.title,
                    r.experiment.name,
                    r.physics_group.name if r.physics_group_id else "",
                    r.state,
                    r.priority,
                    r.deadline.isoformat(),
                    r.ticket,
                    r.requester.get_username() if r.requester_id else "",
                    r.assignee.get_username() if r.assignee_id else "",
                    r.sample_count,
                    r.events or 0,
                    _instant(r.submitted, zone),
                    _instant(r.updated, zone),
                ]
            )

    stamp = timezone.localtime().strftime("%Y%m%dT%H%M")
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    return response
