"""Time: each person chooses the zone pages and exports show times in; pages name it;
exports agree with the pages (a deadline is the date the page shows)."""

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse

from experiments.models import AuditEvent
from monitoring.services.reports import CSV_HEADER
from requests_app.choices import RequestState
from requests_app.models import UserPreference
from requests_app.services.preferences import set_time_zone
from tests.monitoring.builders import launch, planned_campaign
from tests.requests_app.builders import make_request, qualify

PREFS = reverse("requests:preferences")


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


def test_pages_name_the_zone_and_a_user_chooses_theirs(client, liaison, settings):
    settings.TIME_ZONE = "UTC"
    client.force_login(liaison)
    assert "times in UTC" in client.get(reverse("requests:home")).content.decode()
    response = client.post(PREFS, {"time_zone": "Asia/Tokyo"})
    assert response.status_code == 302 and response["Location"] == PREFS
    assert UserPreference.objects.get(user=liaison).time_zone == "Asia/Tokyo"
    assert AuditEvent.objects.filter(action="preference.time_zone", actor=liaison).exists()
    assert "times in Asia/Tokyo" in client.get(reverse("requests:home")).content.decode()
    # A zone that does not exist is refused and named; nothing changes.
    response = client.post(PREFS, {"time_zone": "Mars/Olympus_Mons"})
    assert response.status_code == 400
    assert "Mars/Olympus_Mons" in response.content.decode()
    assert UserPreference.objects.get(user=liaison).time_zone == "Asia/Tokyo"
    # Back to the site's zone.
    client.post(PREFS, {"time_zone": ""})
    assert "times in UTC" in client.get(reverse("requests:home")).content.decode()


def test_the_zone_follows_the_user_across_sessions(client, experiment, liaison, template):
    req = make_request(experiment, liaison, RequestState.SUBMITTED)
    req.submitted = dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC)
    req.save(update_fields=["submitted"])
    set_time_zone(liaison, "Asia/Tokyo")
    client.force_login(liaison)  # a new session reads the preference at sign-in
    html = client.get(req.get_absolute_url()).content.decode()
    assert "submitted 2026-12-02 08:30" in html  # 23:30 UTC is 08:30 next day in Tokyo
    body = b"".join(
        client.get(reverse("requests:list"), {"format": "csv"}).streaming_content
    ).decode()
    lines = list(csv.reader(io.StringIO(body)))
    assert lines[0] == ["# time zone: Asia/Tokyo"]
    row = dict(zip(lines[1], lines[2], strict=True))
    assert row["submitted"] == "2026-12-02T08:30:00+09:00"


def test_progress_csv_deadline_is_the_date_the_page_shows(
    client, experiment, operator, physicist, settings
):
    settings.TIME_ZONE = "UTC"
    campaign = launch(planned_campaign(experiment, operator, requests=1, samples=1), operator)
    campaign.deadline = dt.date(2026, 12, 24)
    campaign.save(update_fields=["deadline"])
    for user_zone in ("", "America/Los_Angeles", "Pacific/Auckland"):
        set_time_zone(physicist, user_zone)
        client.force_login(physicist)
        response = client.get(reverse("monitoring:csv", args=[experiment.slug]))
        data = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert list(data[0]) == CSV_HEADER
        top = next(r for r in data if r["level"] == "campaign")
        assert top["deadline"] == "2026-12-24", user_zone
        page = client.get(campaign.get_absolute_url()).content.decode()
        assert "2026-12-24" in page
