"""Lists that scale: the requests list and triage sorted by any column, paginated with a
bounded number of queries, searchable by sample name, exported as CSV exactly as filtered
and sorted, and saved filters per user."""

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from experiments.models import AuditEvent
from requests_app.choices import Priority, RequestState
from requests_app.models import SavedFilter
from tests.factories import SampleFactory
from tests.requests_app.builders import make_request, qualify

S = RequestState
LIST = reverse("requests:list")
TRIAGE = reverse("requests:triage")


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


def numbers(response):
    return [row.record.number for row in response.context["page"].object_list]


def due(days):
    return timezone.localdate() + dt.timedelta(days=days)


def test_sorted_by_a_column_both_ways(client, experiment, liaison, operator, template):
    late = make_request(experiment, liaison, S.SUBMITTED, deadline=due(40), title="b")
    soon = make_request(experiment, liaison, S.SUBMITTED, deadline=due(5), title="a")
    client.force_login(operator)
    assert numbers(client.get(LIST, {"sort": "deadline"})) == [soon.number, late.number]
    assert numbers(client.get(LIST, {"sort": "-deadline"})) == [late.number, soon.number]
    html = client.get(LIST, {"sort": "deadline"}).content.decode()
    assert 'aria-sort="ascending"' in html and "sort=-deadline" in html
    # Triage keeps its urgency order unsorted and sorts by a column when asked.
    assert numbers(client.get(TRIAGE)) == [soon.number, late.number]
    assert numbers(client.get(TRIAGE, {"sort": "-deadline"})) == [late.number, soon.number]


def test_priority_sorts_by_weight_not_by_name(client, experiment, liaison, operator, template):
    critical = make_request(experiment, liaison, S.SUBMITTED, priority=Priority.CRITICAL)
    low = make_request(experiment, liaison, S.SUBMITTED, priority=Priority.LOW)
    normal = make_request(experiment, liaison, S.SUBMITTED, priority=Priority.NORMAL)
    client.force_login(operator)
    assert numbers(client.get(LIST, {"sort": "-priority"})) == [
        critical.number,
        normal.number,
        low.number,
    ]


def test_pages_with_bounded_queries(
    client, experiment, liaison, operator, template, django_assert_max_num_queries
):
    for _ in range(60):
        make_request(experiment, liaison, S.SUBMITTED, samples=2)
    client.force_login(operator)
    for url, size in ((LIST, 25), (TRIAGE, 50)):
        with django_assert_max_num_queries(14):
            first = client.get(url, {"sort": "deadline"})
        assert len(numbers(first)) == size
        with django_assert_max_num_queries(14):
            last = client.get(url, {"sort": "deadline", "page": 2 if url == TRIAGE else 3})
        assert len(numbers(last)) == 10
        assert not set(numbers(first)) & set(numbers(last))


def test_sample_names_are_searchable(client, experiment, liaison, operator, template):
    wanted = make_request(experiment, liaison, S.SUBMITTED, samples=0)
    SampleFactory(request=wanted, template=template, name="nue-appearance-fhc")
    SampleFactory(request=wanted, template=template, name="nue-appearance-rhc")
    make_request(experiment, liaison, S.SUBMITTED)
    client.force_login(operator)
    # Two matching samples still give the request once.
    assert numbers(client.get(LIST, {"q": "appearance"})) == [wanted.number]
    assert numbers(client.get(TRIAGE, {"q": "APPEARANCE-rhc"})) == [wanted.number]


def test_triage_state_filter_is_a_set_of_checkboxes(
    client, experiment, liaison, operator, template
):
    approved = make_request(experiment, liaison, S.APPROVED)
    submitted = make_request(experiment, liaison, S.SUBMITTED)
    client.force_login(operator)
    html = client.get(TRIAGE).content.decode()
    for value, _label in RequestState.choices:
        assert f'type="checkbox" name="state" value="{value}"' in html
    both = numbers(client.get(TRIAGE, {"state": ["approved", "submitted"]}))
    assert set(both) == {approved.number, submitted.number}
    assert set(numbers(client.get(TRIAGE, {"state": "approved"}))) == {approved.number}


def read_csv(response):
    body = b"".join(response.streaming_content).decode()
    lines = list(csv.reader(io.StringIO(body)))
    return lines[0], lines[1], lines[2:]


def test_csv_exports_what_is_filtered_and_sorted_in_the_page_zone(
    client, experiment, liaison, operator, template, settings
):
    settings.TIME_ZONE = "America/Chicago"
    a = make_request(experiment, liaison, S.SUBMITTED, deadline=dt.date(2026, 12, 24))
    a.submitted = dt.datetime(2026, 12, 1, 3, 30, tzinfo=dt.UTC)
    a.save(update_fields=["submitted"])
    b = make_request(experiment, liaison, S.SUBMITTED, deadline=due(90))
    make_request(experiment, liaison, S.DRAFT, title="not this one")
    for _ in range(30):  # more than a page: the export is every page
        make_request(experiment, liaison, S.APPROVED)
    client.force_login(operator)
    response = client.get(LIST, {"state": "submitted", "sort": "-deadline", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    zone, header, rows = read_csv(response)
    assert zone == ["# time zone: America/Chicago"]
    assert header[0] == "number" and "deadline" in header
    assert [r[0] for r in rows] == [b.number, a.number]
    row = dict(zip(header, rows[1], strict=True))
    # The deadline is the date the page shows; the instant carries the page's offset.
    assert row["deadline"] == "2026-12-24"
    assert row["submitted"] == "2026-11-30T21:30:00-06:00"
    everything = read_csv(client.get(LIST, {"state": "approved", "format": "csv"}))[2]
    assert len(everything) == 30


def test_triage_exports_its_queue(client, experiment, liaison, operator, template):
    waiting = make_request(experiment, liaison, S.SUBMITTED)
    make_request(experiment, liaison, S.APPROVED)
    client.force_login(operator)
    rows = read_csv(client.get(TRIAGE, {"format": "csv"}))[2]
    assert [r[0] for r in rows] == [waiting.number]


def test_saved_filters_are_per_user_and_audited(
    client, experiment, liaison, operator, admin_user, template
):
    make_request(experiment, liaison, S.SUBMITTED)
    client.force_login(operator)
    save = reverse("requests:filter_save")
    response = client.post(
        save, {"page": "requests", "name": "  Late  DUNE ", "query": "state=submitted&page=3"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"{LIST}?state=submitted"  # the page number is not kept
    saved = SavedFilter.objects.get(user=operator)
    assert (saved.name, saved.page, saved.query) == ("Late DUNE", "requests", "state=submitted")
    assert AuditEvent.objects.filter(action="saved_filter.save", actor=operator).exists()
    html = client.get(LIST).content.decode()
    assert 'href="?state=submitted">Late DUNE</a>' in html
    # Saving under the same name replaces; a nameless save is refused and says why.
    client.post(save, {"page": "requests", "name": "Late DUNE", "query": "sort=deadline"})
    assert SavedFilter.objects.get(user=operator).query == "sort=deadline"
    response = client.post(save, {"page": "requests", "name": " ", "query": "q=x"}, follow=True)
    assert "Filter not saved: Give the filter a name." in response.content.decode()
    assert SavedFilter.objects.filter(user=operator).count() == 1
    # Someone else neither sees nor deletes it.
    client.force_login(admin_user)
    assert "Late DUNE" not in client.get(LIST).content.decode()
    client.post(reverse("requests:filter_delete", args=[saved.pk]), {"page": "requests"})
    assert SavedFilter.objects.filter(pk=saved.pk).exists()
    client.force_login(operator)
    client.post(reverse("requests:filter_delete", args=[saved.pk]), {"page": "requests"})
    assert not SavedFilter.objects.filter(pk=saved.pk).exists()
    assert AuditEvent.objects.filter(action="saved_filter.delete", actor=operator).exists()
