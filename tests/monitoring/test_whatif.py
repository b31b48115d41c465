"""What-if admission: the live state projected with and without a launch, a priority change
or a scheduling, listing what moves for everyone else; the API answers it, documented."""

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.services.whatif import WhatIfError, what_if
from monitoring.choices import MilestoneKind
from monitoring.services import commitments as promises
from tests.campaigns.factories import approved_request, workflow

from .builders import launch, planned_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy(experiment, operator):
    """A running round on the 20 local slots, and a planned urgent one that would share them."""
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


def test_launching_slows_the_running_round_and_says_by_how_much(busy):
    running, urgent = busy
    result = what_if("launch", urgent.pk)
    assert result.subject is not None and result.subject.before_status == "not_running"
    (effect,) = [e for e in result.effects if e.campaign_id == running.pk and e.request_id is None]
    assert effect.delta_s > 3600  # it now shares its slots: later by hours
    assert effect.after_finish > effect.before_finish


def test_a_priority_change_and_a_scheduling_are_projected_too(busy, experiment):
    running, urgent = busy
    launch(urgent, urgent.created_by)
    lowered = what_if("priority", urgent.pk, priority="low")
    assert any(e.campaign_id == running.pk and e.delta_s < 0 for e in lowered.effects)
    more = approved_request(experiment, template=workflow(experiment, name="more"), events=20_000)
    added = what_if("schedule", running.pk, requests=[more])
    assert added.subject.after_finish > added.subject.before_finish
    with pytest.raises(WhatIfError, match="priority"):
        what_if("priority", urgent.pk, priority="urgent!")


def test_the_api_names_what_moves_and_the_commitments_it_breaks(api, busy, operator, liaison):
    running, urgent = busy
    finish = what_if("launch", urgent.pk).effects[0].before_finish
    # The running round promised 100 % just after its current projected finish.
    promised = {
        k: timezone.now() + dt.timedelta(hours=i + 1) for i, k in enumerate(promises.CAMPAIGN_KINDS)
    }
    promised[MilestoneKind.ALL_EVENTS] = finish + dt.timedelta(minutes=30)
    promises.confirm(running, operator, promised)
    answer = api(operator).get(f"/api/v1/campaigns/{urgent.pk}/what-if/?change=launch")
    assert answer.status_code == 200, answer.content
    data = answer.json()
    texts = [e["text"] for e in data["effects"]]
    assert any(t.startswith("SBND reprocessing") and " h" in t for t in texts)
    assert data["commitments"] == [
        {
            "campaign": running.pk,
            "request": None,
            "promised_at": data["commitments"][0]["promised_at"],
            "before": "on_track",
            "after": "at_risk",
        }
    ]
    bad = api(operator).get(f"/api/v1/campaigns/{urgent.pk}/what-if/?change=explode")
    assert bad.status_code == 400 and "change" in bad.json()
    wrong = api(operator).get(f"/api/v1/campaigns/{urgent.pk}/what-if/?change=schedule&requests=x")
    assert wrong.status_code == 400 and "requests" in wrong.json()
    assert (
        api(liaison).get(f"/api/v1/campaigns/{urgent.pk}/what-if/?change=launch").status_code == 403
    )


def test_the_schema_documents_it(tmp_path):
    from tests.opos.test_schema import generate

    schema = generate(tmp_path / "schema.yaml", "--fail-on-warn")
    op = schema["paths"]["/api/v1/campaigns/{id}/what-if/"]["get"]
    assert op["operationId"] == "campaigns_what_if_retrieve"
    op = schema["paths"]["/api/v1/requests/{id}/what-if/"]["get"]
    assert op["operationId"] == "requests_what_if_retrieve"


def test_the_decision_page_shows_the_effect_before_the_launch(client, busy, operator):
    from django.urls import reverse

    _running, urgent = busy
    client.force_login(operator)
    detail = client.get(reverse("campaigns:detail", args=[urgent.pk]))
    url = reverse("monitoring:campaign_what_if", args=[urgent.pk])
    # The campaign page's Launch leads here (a form that asks, not one that acts).
    assert f'<form method="get" action="{url}"'.encode() in detail.content
    assert b'name="change" value="launch"' in detail.content
    page = client.get(url, {"change": "launch"})
    assert page.status_code == 200
    assert b"SBND reprocessing" in page.content and b"Effect, projected" in page.content
    bad = client.get(url, {"change": "priority", "priority": "nope"})
    assert bad.status_code == 400 and b"priority" in bad.content


def test_before_an_approval_the_request_page_leads_to_its_effect(
    client, busy, operator, experiment
):
    from django.urls import reverse

    from requests_app.choices import RequestState

    _busy = busy
    waiting = approved_request(
        experiment,
        template=workflow(experiment, name="asked"),
        events=40_000,
        priority="critical",
        state=RequestState.SUBMITTED,
    )
    client.force_login(operator)
    detail = client.get(reverse("requests:detail", args=[waiting.number]))
    url = reverse("monitoring:request_what_if", args=[waiting.number])
    assert url.encode() in detail.content
    page = client.get(url)
    assert page.status_code == 200
    texts = [e["text"] for e in page.context["answer"]["effects"]]
    assert any(t.startswith("SBND reprocessing") for t in texts), texts


def test_the_api_answers_before_an_approval(api, busy, operator, liaison, experiment):
    from requests_app.choices import RequestState

    _busy = busy
    waiting = approved_request(
        experiment,
        template=workflow(experiment, name="asked"),
        events=40_000,
        priority="critical",
        state=RequestState.SUBMITTED,
    )
    answer = api(operator).get(f"/api/v1/requests/{waiting.number}/what-if/")
    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert data["change"] == "approve" and data["request"] == waiting.number
    assert data["campaign"] is None
    assert any(e["text"].startswith("SBND reprocessing") for e in data["effects"])
    assert api(operator).get(f"/api/v1/requests/{waiting.pk}/what-if/").status_code == 200
    assert api(liaison).get(f"/api/v1/requests/{waiting.number}/what-if/").status_code == 403
    waiting.state = RequestState.APPROVED
    waiting.save(update_fields=["state"])
    refused = api(operator).get(f"/api/v1/requests/{waiting.number}/what-if/")
    assert refused.status_code == 400 and "not submitted" in str(refused.json())


def _go_ahead(page) -> dict:
    """The go-ahead form's hidden fields, as the browser would post them."""
    import re

    html = page.content.decode()
    form = html[html.index('id="go-heading"') :]
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))


def test_launching_from_the_decision_page_records_the_effect_shown(
    client, busy, operator, django_assert_max_num_queries
):
    from django.urls import reverse

    from campaigns.models import CampaignEvent

    _running, urgent = busy
    client.force_login(operator)
    url = reverse("monitoring:campaign_what_if", args=[urgent.pk])
    with django_assert_max_num_queries(20):
        page = client.get(url, {"change": "launch"})
    shown = [e["text"] for e in page.context["answer"]["effects"]]
    assert shown and b"Launch urgent" in page.content
    fields = _go_ahead(page)
    assert fields["action"] == "launch"
    done = client.post(
        reverse("campaigns:action", args=[urgent.pk]), {**fields, "note": "physics first"}
    )
    assert done.status_code == 302
    urgent.refresh_from_db()
    assert urgent.state == "active"
    event = CampaignEvent.objects.filter(campaign=urgent, kind="launch").get()
    assert event.reason == "physics first"
    recorded = event.changes["effect_shown"]
    assert recorded[0].startswith("itself: urgent")
    assert recorded[1 : 1 + len(shown)] == shown
    history = client.get(reverse("campaigns:detail", args=[urgent.pk]))
    assert b"Effect on others shown before the decision" in history.content


def test_an_effect_shown_for_another_decision_or_forged_is_refused(client, busy, operator):
    from django.urls import reverse

    from campaigns.models import CampaignEvent

    running, urgent = busy
    client.force_login(operator)
    page = client.get(
        reverse("monitoring:campaign_what_if", args=[urgent.pk]), {"change": "launch"}
    )
    fields = _go_ahead(page)
    # The same signed effect sent with a pause of the running round: another decision.
    other = client.post(
        reverse("campaigns:action", args=[running.pk]),
        {"action": "pause", "effect": fields["effect"]},
        follow=True,
    )
    assert b"shown for another decision" in other.content
    forged = client.post(
        reverse("campaigns:action", args=[urgent.pk]),
        {"action": "launch", "effect": fields["effect"][:-3] + "abc"},
        follow=True,
    )
    assert b"not an effect this tracker showed" in forged.content
    running.refresh_from_db()
    urgent.refresh_from_db()
    assert running.state == "active" and urgent.state == "planned"
    assert not CampaignEvent.objects.filter(kind__in=["pause", "launch"], campaign=urgent)


def test_a_priority_change_and_a_scheduling_go_ahead_with_their_effect(
    client, busy, operator, experiment
):
    from django.urls import reverse

    from campaigns.models import CampaignEvent

    running, urgent = busy
    launch(urgent, operator)
    client.force_login(operator)
    url = reverse("monitoring:campaign_what_if", args=[urgent.pk])
    page = client.get(url, {"change": "priority", "priority": "low"})
    fields = _go_ahead(page)
    assert fields["priority"] == "low"
    # The reason is required, as for any priority change.
    client.post(reverse("campaigns:edit", args=[urgent.pk]), fields)
    urgent.refresh_from_db()
    assert urgent.priority == "critical"
    client.post(reverse("campaigns:edit", args=[urgent.pk]), {**fields, "reason": "can wait"})
    urgent.refresh_from_db()
    assert urgent.priority == "low"
    edited = CampaignEvent.objects.filter(campaign=urgent, kind="edited").get()
    assert edited.changes["priority"] == ["critical", "low"]
    assert edited.changes["effect_shown"] == _lines(page)

    more = approved_request(experiment, template=workflow(experiment, name="more"), events=20_000)
    url = reverse("monitoring:campaign_what_if", args=[running.pk])
    page = client.get(url, {"change": "schedule", "requests": [str(more.pk)]})
    fields = _go_ahead(page)
    assert fields["requests"] == str(more.pk)
    client.post(reverse("campaigns:schedule", args=[running.pk]), fields)
    added = CampaignEvent.objects.filter(campaign=running, kind="request_added", request=more).get()
    assert added.changes["effect_shown"] == _lines(page)


def _lines(page) -> list[str]:
    from monitoring.whatif_api import effect_lines

    return effect_lines(page.context["answer"])


def test_approving_from_the_decision_page_records_the_effect_shown(
    client, busy, operator, experiment, django_assert_max_num_queries
):
    from django.urls import reverse

    from experiments.choices import TrainingTopic
    from experiments.models import TrainingRecord
    from requests_app.choices import RequestState
    from requests_app.models import Transition

    # The experiment is eligible under its agreement (its people trained).
    TrainingRecord.objects.create(
        experiment=experiment, held_on=dt.date(2026, 1, 15), topics=list(TrainingTopic.values)
    )
    waiting = approved_request(
        experiment,
        template=workflow(experiment, name="asked"),
        events=40_000,
        priority="critical",
        state=RequestState.SUBMITTED,
    )
    client.force_login(operator)
    url = reverse("monitoring:request_what_if", args=[waiting.number])
    # The projection, and the eligibility checklist (no go-ahead bound to be refused).
    with django_assert_max_num_queries(24):
        page = client.get(url)
    fields = _go_ahead(page)
    assert fields["action"] == "approve"
    done = client.post(
        reverse("requests:action", args=[waiting.number]), {**fields, "note": "go"}, follow=True
    )
    waiting.refresh_from_db()
    assert waiting.state == RequestState.APPROVED, [str(m) for m in done.context["messages"]]
    assert waiting.state == RequestState.APPROVED
    record = Transition.objects.get(request=waiting, action="approve")
    assert record.changes["effect_shown"] == _lines(page)
    assert any(line.startswith("SBND reprocessing") for line in record.changes["effect_shown"])
    detail = client.get(reverse("requests:detail", args=[waiting.number]))
    assert b"effect on others shown before the decision" in detail.content
    # Approved now: the page says there is nothing to approve, and offers no go-ahead.
    again = client.get(url)
    assert b"not submitted" in again.content and b"go-heading" not in again.content
