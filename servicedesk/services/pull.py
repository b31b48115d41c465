"""Pull: tickets assigned to the production group become draft requests linked to them.

The desk is asked for the tickets of the group updated since the last pull
(with an overlap, since re-reading is harmless); each ticket is linked once.
A ticket whose number a request already carries (filed in OPOS first) is
linked to that request instead of drafting a second one.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from common import limits
from experiments.choices import ExperimentRole
from experiments.models import Experiment, Membership, PhysicsGroup
from requests_app import services as intake
from requests_app.choices import Priority
from requests_app.models import ProductionRequest

from ..choices import SyncOperation
from ..conf import ServiceDeskConfig, load_config
from ..connector import ServiceDeskConnector, ServiceDeskError, Ticket, get_connector
from ..models import SyncState, TicketLink
from .errors import TicketImportError, record_error
from .state import record_sync, sync_state

log = logging.getLogger("servicedesk")

# Re-read this much before the watermark: the desk's sys_updated_on has
# one-second resolution and a ticket can be saved while we page through.
PULL_OVERLAP = dt.timedelta(minutes=5)
# ServiceNow priority (1 critical .. 5 planning) -> request priority.
PRIORITIES = {
    "1": Priority.CRITICAL,
    "2": Priority.HIGH,
    "3": Priority.NORMAL,
    "4": Priority.LOW,
    "5": Priority.LOW,
}


@dataclass(frozen=True)
class ImportOutcome:
    """What pulling one ticket did."""

    ticket: str
    request_number: str
    created: bool = False  # a new draft
    adopted: bool = False  # an existing request got linked


@dataclass
class PullResult:
    """What a pull run did, for the task's return value and the health page's message."""

    disabled: bool = False
    seen: int = 0
    created: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.disabled:
            return "connector disabled"
        return (
            f"{self.seen} tickets read, {len(self.created)} drafts created, "
            f"{len(self.adopted)} requests linked, {len(self.skipped)} skipped"
        )


# --- Mapping a ticket onto the intake domain ----------------------------------


def resolve_experiment(ticket: Ticket, config: ServiceDeskConfig) -> Experiment:
    """The experiment named by the mapped ticket field (stored or display value)."""
    for value in ticket.experiment:
        slug = config.experiment_map.get(value.lower(), value)
        experiment = Experiment.objects.filter(slug__iexact=slug).first()
        if experiment is not None:
            return experiment
    shown = " / ".join(ticket.experiment) or "empty"
    raise TicketImportError(
        f"cannot tell the experiment: field {config.experiment_field!r} is {shown}; "
        "add the value to SERVICENOW_EXPERIMENT_MAP (value=experiment-slug)"
    )


def resolve_group(
    ticket: Ticket, experiment: Experiment, config: ServiceDeskConfig
) -> PhysicsGroup:
    """The working group: from the mapped field, else the configured default, else the first."""
    groups = PhysicsGroup.objects.filter(experiment=experiment)
    for value in ticket.group:
        group = groups.filter(Q(slug__iexact=value) | Q(name__iexact=value)).order_by("id").first()
        if group is not None:
            return group
    default = config.default_groups.get(experiment.slug)
    if default:
        group = groups.filter(slug=default).first()
        if group is None:
            raise TicketImportError(
                f"SERVICEDESK_DEFAULT_GROUPS names {default!r}, not a group of {experiment.slug}"
            )
        return group
    # The liaison completes the draft and can change the group; any is a start.
    group = groups.order_by("name").first()
    if group is None:
        raise TicketImportError(f"{experiment.slug} has no physics working group yet")
    return group


def resolve_requester(ticket: Ticket, experiment: Experiment, config: ServiceDeskConfig):
    """``(user, matched)``: who asked (by email) if they may file, else the default liaison."""
    users = get_user_model().objects.filter(is_active=True)
    if ticket.requester_email:
        user = users.filter(email__iexact=ticket.requester_email).order_by("id").first()
        if user is not None and intake.can_file(user, experiment):
            return user, True
    username = config.default_liaisons.get(experiment.slug)
    if username:
        user = users.filter(username=username).first()
        if user is None or not intake.can_file(user, experiment):
            raise TicketImportError(
                f"SERVICEDESK_DEFAULT_LIAISONS names {username!r}, "
                f"not an active liaison of {experiment.slug}"
            )
        return user, False
    membership = (
        Membership.objects.filter(
            experiment=experiment, role=ExperimentRole.LIAISON, user__is_active=True
        )
        .select_related("user")
        .order_by("created", "id")
        .first()
    )
    if membership is None:
        raise TicketImportError(f"{experiment.slug} has no liaison to own the draft")
    return membership.user, False


def draft_deadline(ticket: Ticket, config: ServiceDeskConfig) -> dt.date:
    """The ticket's due date when it is still ahead, else today plus the default delay.

    A due date beyond ``OPOS_DEADLINE_HORIZON_DAYS`` is kept, for intake to refuse
    with its reason: a typo on the ticket is for the desk to correct, not to guess.
    """
    today = timezone.localdate()
    if ticket.due is not None:
        try:
            due = timezone.localtime(ticket.due).date()
        except (OverflowError, ValueError):
            # 9999-12-31 23:59 UTC is past the last representable day in a zone east of
            # UTC: refused like any due date beyond the horizon (by intake, with the reason).
            raise TicketImportError(
                f"intake refused the draft: deadline: the ticket's due date {ticket.due} "
                f"is too far ahead: at most {limits.deadline_horizon_days()} days from today "
                "(OPOS_DEADLINE_HORIZON_DAYS)"
            ) from None
        if due >= today:
            return due
    return today + dt.timedelta(days=config.default_deadline_days)


# --- Use cases ------------------------------------------------------------------


def create_draft_from_ticket(
    ticket: Ticket,
    *,
    experiment: Experiment,
    requester,
    physics_group: PhysicsGroup,
    deadline: dt.date,
    requested_by: str = "",
) -> ProductionRequest:
    """File a sample-less draft for ``ticket`` through the intake service.

    ``create_request`` accepts a draft without samples (submitting it is
    what requires them), so nothing in intake needs to change: the ticket
    supplies title, description, priority and the ticket number; the
    deadline and working group are starting values the liaison corrects.
    Raises ``TicketImportError`` with intake's reasons when it refuses.
    """
    title = (ticket.short_description or "").strip()[:200] or f"Production request {ticket.number}"
    origin = f"Imported from service-desk ticket {ticket.number}"
    if requested_by:
        origin += f", requested by {requested_by}"
    description = f"{ticket.description.strip()}\n\n-- {origin}.".strip()[:20000]
    data = {
        "ticket": ticket.number,
        "physics_group": physics_group,
        "title": title,
        "description": description,
        "deadline": deadline,
        "priority": PRIORITIES.get(ticket.priority, Priority.NORMAL),
    }
    try:
        return intake.create_request(requester, experiment, data, samples=[])
    except ValidationError as exc:
        reasons = "; ".join(
            f"{name}: {', '.join(map(str, msgs))}" for name, msgs in exc.message_dict.items()
        )
        raise TicketImportError(f"intake refused the draft: {reasons}") from exc
    except intake.PermissionDenied as exc:
        raise TicketImportError(f"intake refused the draft: {exc}") from exc


def notify_draft(request_id: int, ticket_number: str, requested_by: str, matched: bool) -> None:
    """Email the liaison who owns a new draft, asking them to complete it (never raises)."""
    try:
        request = ProductionRequest.objects.select_related("requester", "experiment").get(
            pk=request_id
        )
        if not request.requester.email:
            return
        body = render_to_string(
            "servicedesk/emails/draft_created.txt",
            {
                "request": request,
                "ticket": ticket_number,
                "requested_by": requested_by,
                "matched": matched,
                "url": f"{settings.SITE_URL}{request.get_absolute_url()}",
            },
        )
        send_mail(
            f"[{request.number}] Draft from ticket {ticket_number}: please complete it",
            body,
            settings.DEFAULT_FROM_EMAIL,
            [request.requester.email],
        )
    except Exception:  # a mail server down must not undo or block the import
        log.exception("could not notify the liaison of the draft for %s", ticket_number)


def existing_link(number: str) -> TicketLink | None:
    """The link of ticket ``number``, if any."""
    return TicketLink.objects.select_related("request").filter(ticket=number).first()


def import_ticket(ticket: Ticket, config: ServiceDeskConfig | None = None) -> ImportOutcome:
    """Link ``ticket`` to a request, drafting one if needed; idempotent.

    The draft and its ``TicketLink`` are one transaction. Two workers
    importing the same ticket at once both try to insert the link; the
    unique ticket number lets one win, and the other's draft (and request
    number) roll back with its failed insert.
    """
    config = config or load_config()
    now = timezone.now()
    link = existing_link(ticket.number)
    if link is not None:
        TicketLink.objects.filter(pk=link.pk).update(
            last_seen=now, sys_id=ticket.sys_id or link.sys_id, ticket_updated=ticket.updated
        )
        return ImportOutcome(ticket.number, link.request.number)
    existing = (
        ProductionRequest.objects.filter(ticket=ticket.number, ticket_link__isnull=True)
        .order_by("created", "id")
        .first()
    )
    link_fields = {
        "ticket": ticket.number,
        "sys_id": ticket.sys_id,
        "table": ticket.table,
        "ticket_updated": ticket.updated,
        "last_seen": now,
    }
    try:
        with transaction.atomic():
            if existing is not None:
                TicketLink.objects.create(request=existing, adopted=True, **link_fields)
                outcome = ImportOutcome(ticket.number, existing.number, adopted=True)
            else:
                experiment = resolve_experiment(ticket, config)
                requester, matched = resolve_requester(ticket, experiment, config)
                request = create_draft_from_ticket(
                    ticket,
                    experiment=experiment,
                    requester=requester,
                    physics_group=resolve_group(ticket, experiment, config),
                    deadline=draft_deadline(ticket, config),
                    requested_by=ticket.requester_email,
                )
                TicketLink.objects.create(request=request, **link_fields)
                outcome = ImportOutcome(ticket.number, request.number, created=True)
                transaction.on_commit(
                    lambda: notify_draft(request.pk, ticket.number, ticket.requester_email, matched)
                )
    except IntegrityError:
        link = existing_link(ticket.number)
        if link is None:
            raise
        return ImportOutcome(ticket.number, link.request.number)
    log.info(
        "ticket %s %s %s",
        ticket.number,
        "became draft" if outcome.created else "linked to",
        outcome.request_number,
    )
    return outcome


def assigned_to_group(ticket: Ticket, config: ServiceDeskConfig) -> bool:
    """Is the ticket (still) assigned to the production group, by sys_id or by name?"""
    wanted = config.assignment_group.lower()
    return any(value.lower() == wanted for value in ticket.assignment_group)


def pull_tickets(
    *, full: bool = False, connector: ServiceDeskConnector | None = None
) -> PullResult:
    """Import the tickets assigned to the production group since the last pull.

    ``full`` ignores the watermark (after fixing a mapping, to retry the
    tickets that were skipped). A ticket that cannot be imported is recorded
    on the health page and does not stop the others; an unreachable desk
    raises ``ServiceDeskError`` after keeping the progress made.
    """
    config = load_config()
    own = connector is None
    connector = connector or get_connector(config)
    if connector is None:
        return PullResult(disabled=True)
    state = sync_state()
    since = None if full or state.pull_watermark is None else state.pull_watermark - PULL_OVERLAP
    newest = state.pull_watermark
    result = PullResult()
    try:
        for ticket in connector.assigned_tickets(since):
            result.seen += 1
            try:
                outcome = import_ticket(ticket, config)
            except TicketImportError as exc:
                record_error(SyncOperation.PULL, str(exc), ticket.number)
                result.skipped.append(ticket.number)
            except Exception as exc:
                # A ticket is outside input: one that breaks the import in a way nobody
                # foresaw is recorded as refused, and the others are still imported.
                log.exception("ticket %s could not be imported", ticket.number)
                record_error(
                    SyncOperation.PULL,
                    f"could not import the ticket: {type(exc).__name__}: {exc}"[:1000],
                    ticket.number,
                )
                result.skipped.append(ticket.number)
            else:
                if outcome.created:
                    result.created.append(outcome.request_number)
                elif outcome.adopted:
                    result.adopted.append(outcome.request_number)
            if ticket.updated is not None and (newest is None or ticket.updated > newest):
                newest = ticket.updated
    except ServiceDeskError as exc:
        SyncState.objects.filter(key=state.key).update(pull_watermark=newest)
        record_error(SyncOperation.PULL, str(exc))
        raise
    finally:
        if own:
            connector.close()
    SyncState.objects.filter(key=state.key).update(
        pull_watermark=newest, last_pull_ok=timezone.now()
    )
    return result


def pull_ticket(
    number: str = "", sys_id: str = "", *, connector: ServiceDeskConnector | None = None
) -> ImportOutcome | None:
    """Import one ticket now (the webhook's work); None when it is not ours to import.

    Only an active ticket assigned to the production group becomes a
    draft, exactly as with the periodic pull: a webhook cannot make the
    tracker import anything the pull would not.
    """
    config = load_config()
    own = connector is None
    connector = connector or get_connector(config)
    if connector is None:
        return None
    try:
        ticket = connector.get_ticket(number=number, sys_id=sys_id)
    except ServiceDeskError as exc:
        record_error(SyncOperation.PULL, str(exc), number or sys_id)
        raise
    finally:
        if own:
            connector.close()
    if ticket is None:
        record_error(SyncOperation.WEBHOOK, "no such ticket at the service desk", number or sys_id)
        return None
    if not ticket.active or not assigned_to_group(ticket, config):
        return None
    try:
        outcome = import_ticket(ticket, config)
    except TicketImportError as exc:
        record_error(SyncOperation.PULL, str(exc), ticket.number)
        raise
    record_sync(last_pull_ok=timezone.now())
    return outcome
