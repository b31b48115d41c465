"""Pull: tickets assigned to the production group become drafts linked to them, once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from requests_app.choices import Priority, RequestState
from requests_app.models import ProductionRequest
from servicedesk import services
from servicedesk.models import SyncError, SyncState, TicketLink
from servicedesk.services import pull as pull_module
from servicedesk.services import sync_state
from tests.factories import ProductionRequestFactory, UserFactory

from .conftest import add_ticket

pytestmark = pytest.mark.django_db


def test_assigned_ticket_becomes_a_prefilled_draft(connector_settings, snow, world):
    due = timezone.localdate() + dt.timedelta(days=400)
    ticket = add_ticket(snow, "RITM0010001", due_date=f"{due} 12:00:00")

    result = services.pull_tickets()

    assert result.created and not result.skipped
    link = TicketLink.objects.get(ticket="RITM0010001")
    request = link.request
    assert link.sys_id == ticket["sys_id"] and link.table == "sc_req_item" and not link.adopted
    assert request.state == RequestState.DRAFT
    assert request.ticket == "RITM0010001"
    assert request.title == "MCC5.0 production for RITM0010001"
    assert "Oscillation samples" in request.description
    assert "RITM0010001" in request.description
    assert request.experiment == world.experiment
    assert request.requester == world.liaison  # matched by email
    assert request.priority == Priority.HIGH  # ServiceNow priority 2
    assert request.deadline == due  # the ticket's due date
    assert request.samples.count() == 0
    assert request.transitions.filter(action="create").count() == 1


def test_the_liaison_is_asked_by_email_to_complete_the_draft(
    connector_settings, snow, world, django_capture_on_commit_callbacks
):
    add_ticket(snow, "RITM0010002")
    with django_capture_on_commit_callbacks(execute=True):
        services.pull_tickets()

    request = TicketLink.objects.get(ticket="RITM0010002").request
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["liaison@example.org"]
    assert request.number in message.subject and "RITM0010002" in message.subject
    assert f"https://opos.example.org/requests/{request.number}/" in message.body
    assert "add the samples" in message.body


def test_pulling_twice_makes_one_draft(connector_settings, snow, world):
    add_ticket(snow, "RITM0010003")
    first = services.pull_tickets()
    second = services.pull_tickets()
    third = services.pull_tickets(full=True)

    assert len(first.created) == 1
    assert second.created == [] and third.created == []
    assert ProductionRequest.objects.filter(ticket="RITM0010003").count() == 1
    assert TicketLink.objects.filter(ticket="RITM0010003").count() == 1


def test_only_active_tickets_of_the_production_group(connector_settings, snow, world):
    add_ticket(snow, "RITM0010004", assignment_group=snow.other_group_id)
    add_ticket(snow, "RITM0010005", active="false")
    add_ticket(snow, "RITM0010006")

    result = services.pull_tickets()

    assert result.seen == 1
    assert list(TicketLink.objects.values_list("ticket", flat=True)) == ["RITM0010006"]


def test_the_query_asks_the_table_api_for_the_group_and_the_fields(connector_settings, snow, world):
    add_ticket(snow, "RITM0010007")
    services.pull_tickets()
    services.pull_tickets()

    gets = [c for c in snow.calls if c["method"] == "GET"]
    first, second = gets[0], gets[-1]
    assert first["path"] == "/api/now/table/sc_req_item"
    assert first["params"]["sysparm_query"] == (
        "assignment_group.name=OPOS Production^active=true^ORDERBYsys_updated_on"
    )
    fields = first["params"]["sysparm_fields"].split(",")
    assert {"sys_id", "number", "short_description", "requested_for.email", "u_experiment"} <= set(
        fields
    )
    assert first["params"]["sysparm_display_value"] == "all"
    assert first["params"]["sysparm_limit"] == "100"
    assert first["headers"]["Authorization"].startswith("Basic ")
    # The second pull starts from the watermark (minus the overlap).
    assert "^sys_updated_on>=javascript:gs.dateGenerate('" in second["params"]["sysparm_query"]


def test_ticket_updated_before_the_watermark_is_not_read_again(connector_settings, snow, world):
    add_ticket(snow, "RITM0010008", sys_updated_on="2020-01-01 00:00:00")
    services.pull_tickets()  # first pull: everything assigned
    add_ticket(snow, "RITM0010009", sys_updated_on="2019-01-01 00:00:00")

    again = services.pull_tickets()  # re-reads the overlap only
    assert again.seen == 1 and not TicketLink.objects.filter(ticket="RITM0010009").exists()
    assert services.pull_tickets(full=True).seen == 2  # the operator's "pull all"
    assert TicketLink.objects.count() == 2


def test_pages_through_many_tickets(connector_settings, snow, world):
    connector_settings.SERVICENOW_PAGE_SIZE = 2
    for n in range(5):
        add_ticket(snow, f"RITM002000{n}", email="")

    result = services.pull_tickets()

    assert result.seen == 5 and len(result.created) == 5
    offsets = [c["params"]["sysparm_offset"] for c in snow.calls if c["method"] == "GET"]
    assert offsets == ["0", "2", "4"]


def test_unknown_email_falls_back_to_the_experiments_liaison(connector_settings, snow, world):
    add_ticket(snow, "RITM0010010", email="stranger@elsewhere.org")
    services.pull_tickets()
    request = TicketLink.objects.get(ticket="RITM0010010").request
    assert request.requester == world.liaison
    assert "stranger@elsewhere.org" in request.description


def test_a_physicist_cannot_file_so_the_configured_liaison_owns_the_draft(
    connector_settings, snow, world
):
    from tests.factories import grant

    other = grant(
        UserFactory(username="liaison2", email="l2@example.org"), "liaison", world.experiment
    )
    connector_settings.SERVICEDESK_DEFAULT_LIAISONS = "dune=liaison2"
    add_ticket(snow, "RITM0010011", email="phys@example.org")

    services.pull_tickets()

    assert TicketLink.objects.get(ticket="RITM0010011").request.requester == other


def test_working_group_from_the_configured_default(connector_settings, snow, world):
    connector_settings.SERVICEDESK_DEFAULT_GROUPS = "dune=supernova"
    add_ticket(snow, "RITM0010012")
    services.pull_tickets()
    assert TicketLink.objects.get(ticket="RITM0010012").request.physics_group.slug == "supernova"


def test_working_group_from_a_mapped_ticket_field(connector_settings, snow, world):
    connector_settings.SERVICENOW_GROUP_FIELD = "u_working_group"
    add_ticket(snow, "RITM0010013", u_working_group="Supernova")
    services.pull_tickets()
    assert TicketLink.objects.get(ticket="RITM0010013").request.physics_group.slug == "supernova"


def test_a_past_due_date_gives_the_default_deadline(connector_settings, snow, world):
    add_ticket(snow, "RITM0010014", due_date="2001-01-01 00:00:00")
    services.pull_tickets()
    request = TicketLink.objects.get(ticket="RITM0010014").request
    assert request.deadline == timezone.localdate() + dt.timedelta(days=30)


def test_unmapped_experiment_is_skipped_and_shown(connector_settings, snow, world):
    add_ticket(snow, "RITM0010015", u_experiment="icarus")
    add_ticket(snow, "RITM0010016")

    result = services.pull_tickets()

    assert result.skipped == ["RITM0010015"] and len(result.created) == 1
    error = SyncError.objects.get(ticket="RITM0010015")
    assert "SERVICENOW_EXPERIMENT_MAP" in error.message
    assert not ProductionRequest.objects.filter(ticket="RITM0010015").exists()
    # After the mapping is fixed, "pull all" picks it up.
    from tests.factories import ExperimentFactory, PhysicsGroupFactory, grant

    icarus = ExperimentFactory(slug="icarus")
    PhysicsGroupFactory(experiment=icarus, slug="general")
    grant(UserFactory(username="icarus-liaison"), "liaison", icarus)
    assert services.pull_tickets(full=True).created


def test_ticket_already_filed_in_opos_is_linked_not_drafted_again(connector_settings, snow, world):
    filed = ProductionRequestFactory(
        experiment=world.experiment, physics_group=world.group, ticket="RITM0010017"
    )
    add_ticket(snow, "RITM0010017")

    result = services.pull_tickets()

    assert result.adopted == [filed.number] and result.created == []
    link = TicketLink.objects.get(ticket="RITM0010017")
    assert link.request == filed and link.adopted
    assert ProductionRequest.objects.filter(ticket="RITM0010017").count() == 1


def test_a_refused_draft_is_reported_with_intakes_reasons(connector_settings, snow, world):
    add_ticket(snow, "badticket")  # not a service-desk reference by OPOS_TICKET_PATTERN
    result = services.pull_tickets()
    assert result.skipped == ["badticket"]
    assert "ticket" in SyncError.objects.get(ticket="badticket").message
    assert not TicketLink.objects.exists()


def test_the_ticket_number_is_unique_in_the_database(world):
    first = ProductionRequestFactory(experiment=world.experiment, physics_group=world.group)
    second = ProductionRequestFactory(experiment=world.experiment, physics_group=world.group)
    TicketLink.objects.create(ticket="RITM0010018", sys_id="a" * 32, table="x", request=first)
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketLink.objects.create(ticket="RITM0010018", sys_id="b" * 32, table="x", request=second)


def test_losing_a_race_rolls_back_the_second_draft(connector_settings, snow, world, monkeypatch):
    """Another worker linked the ticket after our check: our insert fails, our draft rolls back."""
    add_ticket(snow, "RITM0010019")
    winner = ProductionRequestFactory(
        experiment=world.experiment, physics_group=world.group, ticket="OTHER0000001"
    )
    TicketLink.objects.create(ticket="RITM0010019", sys_id="c" * 32, table="x", request=winner)
    real = pull_module.existing_link
    checks = []

    def not_yet_committed(number):
        # The first check runs before the other worker commits: it sees nothing.
        checks.append(number)
        return None if len(checks) == 1 else real(number)

    monkeypatch.setattr(pull_module, "existing_link", not_yet_committed)
    before = ProductionRequest.objects.count()

    result = services.pull_tickets()

    assert result.created == [] and len(checks) == 2
    assert ProductionRequest.objects.count() == before  # our draft rolled back
    assert TicketLink.objects.get(ticket="RITM0010019").request == winner


def test_disabled_connector_does_nothing(settings, world):
    settings.SERVICENOW_INSTANCE_URL = ""
    result = services.pull_tickets()
    assert result.disabled
    assert result.summary() == "connector disabled"
    assert not SyncState.objects.exists()


def test_last_successful_pull_is_recorded(connector_settings, snow, world):
    services.pull_tickets()
    state = sync_state()
    assert state.last_pull_ok is not None
