"""Push: transitions and operator comments become work notes; the ticket's state follows."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from requests_app import services as intake
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest, Transition
from servicedesk import services
from servicedesk.choices import PushKind, PushState
from servicedesk.models import Push, SyncState, TicketLink
from servicedesk.services import sync_state
from tests.factories import ProductionRequestFactory, SampleFactory

from .conftest import add_ticket

pytestmark = pytest.mark.django_db


def patches(snow) -> list[dict]:
    return [json.loads(c["body"]) for c in snow.calls if c["method"] == "PATCH"]


def set_state(request: ProductionRequest, state: str) -> None:
    """Test set-up only: put a request in a state that needs eligibility to reach."""
    ProductionRequest.objects.filter(pk=request.pk).update(state=state)


def test_transitions_become_work_notes_and_move_the_ticket(linked, snow, world):
    request, ticket = linked
    intake.transition(request, "submit", world.liaison)
    intake.transition(request, "request_info", world.operator, note="Which generator tune?")
    intake.transition(request, "submit", world.liaison)
    intake.transition(request, "reject", world.operator, note="Duplicate of REQ-2026-0001")

    assert services.collect_pushes() == 4
    result = services.deliver_pushes()

    assert result.sent == 4 and result.retrying == 0
    notes = snow.work_notes(ticket["sys_id"])
    assert len(notes) == 4
    assert notes[0].startswith(f'[OPOS Tracker] {request.number} "MCC5.0 oscillations": submit by')
    assert "draft -> submitted" in notes[0]
    assert "Note: Which generator tune?" in notes[1]
    assert "submitted -> rejected" in notes[3]
    assert f"https://opos.example.org/requests/{request.number}/" in notes[3]
    # Submitted and needs_info leave the ticket's state alone; rejected closes it incomplete.
    bodies = patches(snow)
    assert [b.get("state") for b in bodies] == [None, None, None, "4"]
    assert snow.ticket(ticket["sys_id"])["state"] == "4"
    assert set(Push.objects.values_list("state", flat=True)) == {PushState.SENT}
    assert sync_state().last_push_ok is not None


def test_each_transition_carries_the_service_desk_clock_as_it_stood(linked, snow, world):
    """The ticket keeps the clock at each decision: the first response against the
    experiment's target, and the wait for the liaison once it ended."""
    request, ticket = linked
    world.experiment.sla_response_hours = 24
    world.experiment.save(update_fields=["sla_response_hours"])
    sync_state()  # the connector was on before: its cursor precedes these transitions
    intake.transition(request, "submit", world.liaison)
    intake.transition(request, "request_info", world.operator, note="Which tune?")
    intake.transition(request, "submit", world.liaison)
    # The log's moments, as if the operator answered after 30 h and the liaison in 5 h.
    t0 = timezone.now() - dt.timedelta(hours=40)
    moments = {
        "submit": [t0, t0 + dt.timedelta(hours=35)],
        "request_info": [t0 + dt.timedelta(hours=30)],
    }
    for action, times in moments.items():
        rows = Transition.objects.filter(request=request, action=action).order_by("id")
        for row, at in zip(rows, times, strict=True):
            Transition.objects.filter(pk=row.pk).update(created=at)

    services.sync_outbound()

    notes = snow.work_notes(ticket["sys_id"])
    assert len(notes) == 3
    # At the first submission nothing was reached yet but the response, counting from 0.
    assert "Service-desk clock: first operator response under a minute and counting" in notes[0]
    assert "first operator response 1 d 6 h (target 1 d, over)" in notes[1]
    assert "waiting for the liaison" not in notes[1]
    assert "waiting for the liaison 5 h" in notes[2]
    assert notes[2].index("Service-desk clock") < notes[2].index("https://")


def test_the_ticket_follows_the_request_through_production(linked, snow, world):
    request, ticket = linked
    set_state(request, RequestState.APPROVED)
    sys_id = ticket["sys_id"]
    seen = []
    for step in ("schedule", "start"):
        intake.system_transition(request, step)
        services.sync_outbound()
        seen.append(snow.ticket(sys_id)["state"])
    intake.transition(request, "hold", world.operator, note="Account permission problem")
    services.sync_outbound()
    seen.append(snow.ticket(sys_id)["state"])
    intake.transition(request, "resume", world.operator)
    intake.system_transition(request, "complete")
    services.sync_outbound()
    seen.append(snow.ticket(sys_id)["state"])
    intake.transition(request, "close", world.operator)
    services.sync_outbound()
    seen.append(snow.ticket(sys_id)["state"])

    # Work in progress, pending while on hold, closed complete at the end.
    assert seen == ["2", "2", "-5", "3", "3"]
    assert "Note: Account permission problem" in snow.work_notes(sys_id)[2]


def test_state_mapping_is_configurable(linked, snow, world, connector_settings):
    connector_settings.SERVICENOW_STATE_MAP = "rejected=7, submitted=1"
    request, _ = linked
    intake.transition(request, "submit", world.liaison)
    intake.transition(request, "reject", world.operator, note="Out of scope")
    services.sync_outbound()
    assert [b.get("state") for b in patches(snow)] == ["1", "7"]


def test_operator_comments_are_pushed_liaison_comments_and_edits_are_not(linked, snow, world):
    request, ticket = linked
    intake.add_comment(request, world.operator, "We will start after the holidays.")
    intake.add_comment(request, world.liaison, "Internal: ask the group about tunes.")
    intake.update_request(request, world.liaison, {"title": "MCC5.0 oscillations v2"})

    services.sync_outbound()

    notes = snow.work_notes(ticket["sys_id"])
    assert len(notes) == 1
    assert "comment from op" in notes[0] and "after the holidays" in notes[0]
    assert Push.objects.get().kind == PushKind.COMMENT


def test_the_trackers_own_notes_are_pushed(linked, snow, world):
    """Work that became blocked or stalled is noted on the request by the tracker itself
    (no author); the ticket hears it as a work note."""
    request, ticket = linked
    intake.post_system_notes({request.pk: f"{request.number} is blocked: 3 jobs gave up."})

    services.sync_outbound()

    notes = snow.work_notes(ticket["sys_id"])
    assert len(notes) == 1
    assert "comment from OPOS Tracker" in notes[0] and "3 jobs gave up" in notes[0]


def test_collecting_twice_queues_once_and_each_note_is_sent_once(linked, snow, world):
    request, ticket = linked
    intake.transition(request, "submit", world.liaison)
    assert services.collect_pushes() == 1
    assert services.collect_pushes() == 0
    services.deliver_pushes()
    services.sync_outbound()
    assert len(snow.work_notes(ticket["sys_id"])) == 1
    assert Push.objects.count() == 1


def test_requests_without_a_ticket_link_are_not_pushed(connector_settings, snow, world):
    request = ProductionRequestFactory(
        experiment=world.experiment, physics_group=world.group, requester=world.liaison
    )
    SampleFactory(request=request)
    intake.transition(request, "submit", world.liaison)
    assert services.collect_pushes() == 0
    assert not [c for c in snow.calls if c["method"] == "PATCH"]


def test_turning_the_connector_on_does_not_replay_old_history(linked, snow, world):
    request, _ = linked
    intake.transition(request, "submit", world.liaison)
    Transition.objects.update(created=timezone.now() - dt.timedelta(days=3))
    # The first scan starts at the newest transition that exists.
    assert services.collect_pushes() == 0
    intake.transition(request, "request_info", world.operator, note="More please")
    assert services.collect_pushes() == 1


def test_a_late_commit_below_the_cursor_is_still_caught(linked, snow, world):
    """A transaction that commits after a higher id was scanned: the look-back finds it."""
    request, _ = linked
    intake.transition(request, "submit", world.liaison)
    state = sync_state()
    late = Transition.objects.get()
    SyncState.objects.filter(pk=state.pk).update(transition_cursor=late.id + 100)
    assert services.collect_pushes() == 1


def test_a_draft_pulled_from_the_ticket_tells_the_ticket(connector_settings, snow, world):
    ticket = add_ticket(snow, "RITM0030002")
    services.pull_tickets()
    services.sync_outbound()
    notes = snow.work_notes(ticket["sys_id"])
    request = TicketLink.objects.get(ticket="RITM0030002").request
    assert len(notes) == 1
    assert f"{request.number}" in notes[0] and "filed as a draft by liaison" in notes[0]


def test_bearer_token_authentication(linked, snow, world, connector_settings):
    connector_settings.SERVICENOW_TOKEN = snow.token
    connector_settings.SERVICENOW_USER = ""
    request, ticket = linked
    intake.transition(request, "submit", world.liaison)
    services.sync_outbound()
    patch = next(c for c in snow.calls if c["method"] == "PATCH")
    assert patch["headers"]["Authorization"] == f"Bearer {snow.token}"
    assert patch["path"] == f"/api/now/table/sc_req_item/{ticket['sys_id']}"
    assert len(snow.work_notes(ticket["sys_id"])) == 1


def test_disabled_connector_queues_nothing(settings, world):
    settings.SERVICENOW_INSTANCE_URL = ""
    assert services.collect_pushes() == 0
    assert services.deliver_pushes().sent == 0


def test_the_periodic_task_collects_and_sends(linked, snow, world):
    from servicedesk import tasks

    request, ticket = linked
    intake.transition(request, "submit", world.liaison)
    assert tasks.sync_outbound() == {"sent": 1, "retrying": 0, "failed": 0}
    assert tasks.sync_outbound() == {"sent": 0, "retrying": 0, "failed": 0}
    assert len(snow.work_notes(ticket["sys_id"])) == 1
