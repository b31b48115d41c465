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
    assert f'{url}?change=launch"'.encode() in detail.content
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
