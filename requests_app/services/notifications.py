"""Email to the requester and watchers on every transition and comment, "needs your
answer" to them when the operators ask for information, and to the operators when a
request is submitted.

Sent after the transaction commits, and a failing mail server is logged,
never raised: a notification must not undo or block a decision.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from experiments.choices import GlobalRoleName

from ..choices import RequestState
from ..models import Comment, ProductionRequest, Transition

log = logging.getLogger(__name__)


def recipients(request: ProductionRequest, exclude_user_id: int | None = None) -> list[str]:
    people = [request.requester, *request.watchers.all()]
    if request.assignee_id:
        people.append(request.assignee)
    return sorted({p.email for p in people if p.email and p.is_active and p.id != exclude_user_id})


def _send(request: ProductionRequest, subject: str, template: str, context: dict, actor_id):
    try:
        to = recipients(request, exclude_user_id=actor_id)
        if not to:
            return
        context = {
            **context,
            "request": request,
            "url": f"{settings.SITE_URL}{request.get_absolute_url()}",
        }
        send_mail(
            f"[{request.number}] {subject}",
            render_to_string(template, context),
            settings.DEFAULT_FROM_EMAIL,
            to,
        )
    except Exception:  # SMTP down, refused, timed out, a template bug: log and carry on
        log.exception("could not send notification for %s", request.number)


def notify_transition(transition_id: int) -> None:
    record = (
        Transition.objects.select_related(
            "request__requester",
            "request__assignee",
            "request__experiment",
            "request__physics_group",
            "actor",
        )
        .filter(pk=transition_id)
        .first()
    )
    if record is None:
        return
    request = record.request
    if record.to_state == RequestState.NEEDS_INFO:
        # The liaison's next step, said in the subject line they see first.
        subject = f"needs your answer: {record.actor or 'the operators'} asked for information"
        _send(request, subject, "emails/needs_answer.txt", {"t": record}, record.actor_id)
    else:
        subject = f"{record.action.replace('_', ' ')}: now {record.get_to_state_display().lower()}"
        _send(request, subject, "emails/transition.txt", {"t": record}, record.actor_id)
    if record.action == "submit":
        notify_submitted(record)


def notify_submitted(record: Transition) -> None:
    """Tell the operators a request awaits their decision (and where to decide)."""
    request = record.request
    body = render_to_string(
        "emails/submitted.txt",
        {
            "t": record,
            "request": request,
            "url": f"{settings.SITE_URL}{request.get_absolute_url()}",
            "triage": f"{settings.SITE_URL}{reverse('requests:triage')}",
        },
    )
    notify_operators(f"{request.number} submitted: {request.title}", body)


def operator_emails() -> list[str]:
    """Addresses of the active operators and admins (one query)."""
    User = get_user_model()
    return sorted(
        set(
            User.objects.filter(
                is_active=True,
                global_roles__role__in=[GlobalRoleName.OPERATOR, GlobalRoleName.ADMIN],
            )
            .exclude(email="")
            .values_list("email", flat=True)
        )
    )


def notify_operators(subject: str, body: str) -> None:
    """One email to every operator; a failing mail server is logged, never raised."""
    try:
        to = operator_emails()
        if to:
            send_mail(f"[OPOS] {subject}", body, settings.DEFAULT_FROM_EMAIL, to)
    except Exception:  # as _send: a notification never undoes what it reports
        log.exception("could not email the operators: %s", subject)


def notify_comment(comment_id: int) -> None:
    comment = (
        Comment.objects.select_related("request__requester", "request__assignee", "author")
        .filter(pk=comment_id)
        .first()
    )
    if comment is None:
        return
    _send(
        comment.request,
        f"comment from {comment.author_name}",
        "emails/comment.txt",
        {"comment": comment},
        comment.author_id,
    )
