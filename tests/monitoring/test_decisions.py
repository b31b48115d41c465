"""The four decisions that move everyone else's promises (approve, launch, schedule, change
a campaign's priority) are taken through their decision page in the browser, and every
decision records its effect on others: shown before it (the page), computed at it (the
REST API, the CLI), or why it could not be, without ever being blocked by the what-if."""

import datetime as dt

import pytest
from django.urls import reverse

from campaigns import extensions as campaign_extensions
from campaigns.models import CampaignEvent
from experiments.choices import TrainingTopic
from experiments.models import TrainingRecord
from requests_app import extensions as request_extensions
from requests_app.choices import RequestState
from requests_app.models import Transition
from tests.campaigns.factories import approved_request, workflow

from .builders import launch, planned_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy(experiment, operator):
    """A running round on the local slots and a planned urgent one that would share them."""
    running = launch(
        planned_campaign(
            experiment, operator, events=40_000, per_job=100, days=30, name="SBND reprocessing"
        ),
        operator,
    )
    urgent = planned_campaign(
        experiment, operator, events=40_000, per_job=100, days=30, name="urgent"
    )
    urgent.priority = "critical"
    urgent.save(update_fields=["priority"])
    return running, urgent


@pytest.fixture
def asked(experiment):
    """A submitted, eligible request (its experiment's people trained)."""
    TrainingRecord.objects.create(
        experiment=experiment, held_on=dt.date(2026, 1, 15), topics=list(TrainingTopic.values)
    )
    return approved_request(
        experiment,
        template=workflow(experiment, name="asked"),
        events=40_000,
        priority="critical",
        state=RequestState.SUBMITTED,
    )


@pytest.fixture
def broken_projection(monkeypatch):
    """The what-if failing as a bug would: every computation at a decision raises."""

    def explode(*_args):
        raise RuntimeError("projection exploded")

    monkeypatch.setattr(request_extensions, "_approval_effect", [explode])
    monkeypatch.setattr(campaign_extensions, "_decision_effect", [explode])


# --- the browser: the controls lead to the decision page -----------------------------


def test_approve_on_the_request_page_leads_to_its_decision_page(client, busy, operator, asked):
    client.force_login(operator)
    detail = client.get(reverse("requests:detail", args=[asked.number])).content.decode()
    url = reverse("monitoring:request_what_if", args=[asked.number])
    # A form that asks (GET, to the decision page), not one that approves.
    assert f'<form method="get" action="{url}"' in detail
    assert "Approve…" in detail
    page = client.get(url, {"note": "physics first"})
    assert page.status_code == 200
    assert b"Effect, projected on the live state" in page.content
    assert b'value="physics first"' in page.content  # the note typed is carried
    assert b"Back to the request, nothing changed" in page.content
    asked.refresh_from_db()
    assert asked.state == RequestState.SUBMITTED


def test_an_approval_posted_without_the_effect_is_led_to_look_first(client, operator, asked):
    client.force_login(operator)
    done = client.post(
        reverse("requests:action", args=[asked.number]), {"action": "approve", "note": "ok"}
    )
    url = reverse("monitoring:request_what_if", args=[asked.number])
    assert done.status_code == 302 and done["Location"] == f"{url}?note=ok"
    asked.refresh_from_db()
    assert asked.state == RequestState.SUBMITTED
    assert not Transition.objects.filter(request=asked, action="approve").exists()
    # Other actions still act at once.
    held = client.post(
        reverse("requests:action", args=[asked.number]), {"action": "request_info", "note": "?"}
    )
    assert held.status_code == 302
    asked.refresh_from_db()
    assert asked.state == RequestState.NEEDS_INFO


def test_launch_schedule_and_priority_lead_to_the_decision_page(client, busy, operator, experiment):
    running, urgent = busy
    more = approved_request(experiment, template=workflow(experiment, name="more"), events=100)
    client.force_login(operator)
    url = reverse("monitoring:campaign_what_if", args=[urgent.pk])
    html = client.get(reverse("campaigns:detail", args=[urgent.pk])).content.decode()
    assert html.count(f'<form method="get" action="{url}"') == 3  # launch, schedule, priority
    for change in ("launch", "schedule", "priority"):
        assert f'name="change" value="{change}"' in html
    assert "Launch…" in html and "Change the priority…" in html
    assert 'name="pause"' not in html  # pause, cancel stay direct (posted forms)
    assert 'name="action" value="cancel"' in html

    # Posted without a shown effect (a form of before): led to look, nothing changed.
    launched = client.post(reverse("campaigns:action", args=[urgent.pk]), {"action": "launch"})
    assert launched.status_code == 302 and launched["Location"] == f"{url}?change=launch"
    scheduled = client.post(
        reverse("campaigns:schedule", args=[urgent.pk]), {"requests": [more.pk], "note": "n"}
    )
    assert scheduled["Location"] == f"{url}?change=schedule&requests={more.pk}&note=n"
    edited = client.post(
        reverse("campaigns:edit", args=[urgent.pk]),
        {"priority": "low", "deadline": urgent.deadline, "throttle": "", "reason": "later"},
    )
    assert edited["Location"] == f"{url}?change=priority&priority=low&reason=later"
    urgent.refresh_from_db()
    more.refresh_from_db()
    assert (urgent.state, urgent.priority) == ("planned", "critical")
    assert more.state == RequestState.APPROVED
    # The deadline and the throttle still change at once, with the page's form.
    client.post(
        reverse("campaigns:edit", args=[urgent.pk]),
        {"deadline": urgent.deadline, "throttle": "5", "reason": ""},
    )
    urgent.refresh_from_db()
    assert urgent.throttle == 5 and urgent.priority == "critical"
    # Pause acts at once, as before.
    client.post(reverse("campaigns:action", args=[running.pk]), {"action": "pause"})
    running.refresh_from_db()
    assert running.state == "paused"


def test_the_decision_page_carries_the_schedule_note_to_the_go_ahead(
    client, busy, operator, experiment
):
    running, _urgent = busy
    more = approved_request(experiment, template=workflow(experiment, name="more"), events=100)
    client.force_login(operator)
    page = client.get(
        reverse("monitoring:campaign_what_if", args=[running.pk]),
        {"change": "schedule", "requests": [str(more.pk)], "note": "round two"},
    )
    assert page.status_code == 200
    assert b'id="go-note" name="note" maxlength="5000" value="round two"' in page.content


# --- the REST API and the CLI: computed at the decision -------------------------------


def test_api_decisions_record_the_effect_computed_at_the_decision(
    api, busy, operator, experiment, asked
):
    running, urgent = busy
    client = api(operator)
    done = client.post(
        f"/api/v1/requests/{asked.number}/transitions/",
        {"action": "approve", "note": ""},
        format="json",
    )
    assert done.status_code == 200, done.content
    record = Transition.objects.get(request=asked, action="approve")
    assert "effect_shown" not in record.changes
    lines = record.changes["effect_computed"]
    assert any(line.startswith("SBND reprocessing") for line in lines), lines

    launched = client.post(
        f"/api/v1/campaigns/{urgent.pk}/actions/", {"action": "launch"}, format="json"
    )
    assert launched.status_code == 200, launched.content
    event = CampaignEvent.objects.get(campaign=urgent, kind="launch")
    assert event.changes["effect_computed"][0].startswith("itself: urgent")
    assert any(line.startswith("SBND reprocessing") for line in event.changes["effect_computed"])

    lowered = client.patch(
        f"/api/v1/campaigns/{urgent.pk}/", {"priority": "low", "reason": "can wait"}, format="json"
    )
    assert lowered.status_code == 200, lowered.content
    edited = CampaignEvent.objects.get(campaign=urgent, kind="edited")
    assert edited.changes["priority"] == ["critical", "low"]
    assert "effect_computed" in edited.changes

    more = approved_request(experiment, template=workflow(experiment, name="more"), events=100)
    added = client.post(
        f"/api/v1/campaigns/{running.pk}/schedule/", {"requests": [more.pk]}, format="json"
    )
    assert added.status_code == 200, added.content
    event = CampaignEvent.objects.get(campaign=running, kind="request_added", request=more)
    assert event.changes["effect_computed"][0].startswith("itself: SBND reprocessing")

    # Other changes record no effect: a pause moves nobody's promise up.
    client.post(f"/api/v1/campaigns/{running.pk}/actions/", {"action": "pause"}, format="json")
    paused = CampaignEvent.objects.get(campaign=running, kind="pause")
    assert not {"effect_shown", "effect_computed", "effect_not_computed"} & set(paused.changes)


def test_a_failing_projection_never_blocks_a_decision(
    api, busy, operator, asked, broken_projection, caplog
):
    _running, urgent = busy
    client = api(operator)
    done = client.post(
        f"/api/v1/requests/{asked.number}/transitions/",
        {"action": "approve", "note": ""},
        format="json",
    )
    assert done.status_code == 200, done.content
    record = Transition.objects.get(request=asked, action="approve")
    assert "projection exploded" in record.changes["effect_not_computed"]
    launched = client.post(
        f"/api/v1/campaigns/{urgent.pk}/actions/", {"action": "launch"}, format="json"
    )
    assert launched.status_code == 200, launched.content
    urgent.refresh_from_db()
    assert urgent.state == "active"
    event = CampaignEvent.objects.get(campaign=urgent, kind="launch")
    assert "RuntimeError" in event.changes["effect_not_computed"]
    assert "could not be computed" in caplog.text  # logged, with its traceback


def test_a_failing_decision_page_still_offers_the_go_ahead(
    client, busy, operator, asked, monkeypatch
):
    from monitoring import whatif_views

    def explode(*_args):
        raise RuntimeError("projection exploded")

    monkeypatch.setattr(whatif_views, "run_approval", explode)
    monkeypatch.setattr(whatif_views, "run", explode)
    _running, urgent = busy
    client.force_login(operator)
    page = client.get(reverse("monitoring:request_what_if", args=[asked.number]))
    assert page.status_code == 200
    assert b"The effect could not be computed" in page.content and b"go-heading" in page.content
    fields = _go_ahead(page)
    client.post(reverse("requests:action", args=[asked.number]), {**fields, "note": ""})
    asked.refresh_from_db()
    assert asked.state == RequestState.APPROVED
    record = Transition.objects.get(request=asked, action="approve")
    assert "the decision page could not compute it" in record.changes["effect_not_computed"]
    detail = client.get(reverse("requests:detail", args=[asked.number]))
    assert b"effect on others not computed" in detail.content

    page = client.get(
        reverse("monitoring:campaign_what_if", args=[urgent.pk]), {"change": "launch"}
    )
    assert page.status_code == 200 and b"The effect could not be computed" in page.content
    client.post(reverse("campaigns:action", args=[urgent.pk]), _go_ahead(page))
    urgent.refresh_from_db()
    assert urgent.state == "active"
    event = CampaignEvent.objects.get(campaign=urgent, kind="launch")
    assert "effect_not_computed" in event.changes


def test_an_ineligible_request_gets_no_go_ahead(client, busy, operator, experiment):
    waiting = approved_request(
        experiment, template=workflow(experiment, name="w"), state=RequestState.SUBMITTED
    )
    client.force_login(operator)
    page = client.get(reverse("monitoring:request_what_if", args=[waiting.number]))
    assert page.status_code == 200
    assert b"cannot be approved yet" in page.content and b"go-heading" not in page.content


def _go_ahead(page) -> dict:
    """The go-ahead form's hidden fields, as the browser would post them."""
    import re

    html = page.content.decode()
    form = html[html.index('id="go-heading"') :]
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))
