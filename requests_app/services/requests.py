"""Filing and editing production requests, their samples and comments."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from common import limits
from common.errors import FieldConflict, PermissionDenied
from experiments.choices import ExperimentRole
from experiments.models import Experiment, PhysicsGroup, WorkflowTemplate
from experiments.models.visibility import experiment_roles, is_operator
from experiments.namespaces import in_namespace, namespace_refusal
from experiments.parameters import validate_parameters

from ..choices import EDITABLE_STATES, TERMINAL_STATES, Priority, RequestState
from ..events import request_priority_changed
from ..models import Comment, ProductionRequest, Sample, Transition
from .eligibility import ticket_is_valid
from .notifications import notify_comment
from .numbering import next_request_number

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,254}$")
MAX_SAMPLES = 100
REQUEST_FIELDS = ("ticket", "physics_group", "title", "description", "deadline", "priority")
# After approval only operators change these, and each change is recorded.
OPERATOR_FIELDS = ("priority", "deadline", "assignee")


class EditConflict(FieldConflict):
    """Fields the user may change in other states, but not in the current one (HTTP 409).

    A ``ValidationError`` keyed by field name, so a form shows each message
    next to its field; the API answers 409 instead of 400.
    """

    detail = "These fields cannot be changed in the request's current state."


def _text(value: Any) -> str:
    """A text field's value, stripped; anything but text (a number, a list) reads as empty,
    so the field's own rule refuses it by name instead of an exception escaping."""
    return value.strip() if isinstance(value, str) else ""


def samples_error(errors: dict[str, Any]) -> ValidationError:
    """``ValidationError(errors)`` that keeps one entry per sample line.

    Django's constructor flattens nested errors, which would lose which line
    a message belongs to; so ``error_dict["samples"]`` is set afterwards: a
    list holding, per line, a ``ValidationError`` keyed by field (empty for a
    good line), or plain messages about the list as a whole.
    """
    exc = ValidationError({k: v for k, v in errors.items() if k != "samples"})
    if "samples" in errors:
        exc.error_dict["samples"] = list(errors["samples"])
    return exc


def can_file(user: AbstractBaseUser, experiment: Experiment) -> bool:
    """Liaisons file for their own experiment; operators on anyone's behalf."""
    return is_operator(user) or experiment_roles(user).get(experiment.id) == ExperimentRole.LIAISON


def can_comment(user: AbstractBaseUser, request: ProductionRequest) -> bool:
    return can_file(user, request.experiment)


def ever_editable_fields(user: AbstractBaseUser, request: ProductionRequest) -> set[str]:
    """Which fields ``user`` may change on ``request`` in some state (the rest: 403)."""
    fields: set[str] = set()
    if can_file(user, request.experiment):
        fields |= {*REQUEST_FIELDS, "samples"}
    if is_operator(user):
        fields |= set(OPERATOR_FIELDS)
    return fields


def editable_fields(user: AbstractBaseUser, request: ProductionRequest) -> set[str]:
    """Which fields ``user`` may change on ``request`` in its current state."""
    if request.state in TERMINAL_STATES:
        return set()
    fields: set[str] = set()
    if request.state in EDITABLE_STATES and can_file(user, request.experiment):
        fields |= {*REQUEST_FIELDS, "samples"}
    if is_operator(user):
        fields |= set(OPERATOR_FIELDS)
    return fields


# What a draft may leave blank (submitting checks them: services.transitions).
DRAFT_OPTIONAL = ("ticket", "physics_group", "title", "deadline")


def _validate_request_fields(
    experiment: Experiment, data: dict[str, Any], partial: bool, draft: bool = False
) -> dict[str, Any]:
    """Clean the request fields. ``draft``: the fields of ``DRAFT_OPTIONAL`` may be left
    blank (absent, "" or None), and those given are checked as usual."""
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    if draft:
        blank = [
            k for k in DRAFT_OPTIONAL if (k in data or not partial) and data.get(k) in (None, "")
        ]
        cleaned.update({k: None if k in ("physics_group", "deadline") else "" for k in blank})
        data = {k: v for k, v in data.items() if k not in blank}
        partial = True
    if "ticket" in data or not partial:
        ticket = _text(data.get("ticket"))
        if not ticket_is_valid(ticket):
            errors["ticket"] = [
                f"{ticket!r} is not a service-desk reference"
                " (letters then digits, e.g. RITM0012345)"
            ]
        cleaned["ticket"] = ticket
    if "physics_group" in data or not partial:
        group = data.get("physics_group")
        if isinstance(group, PhysicsGroup):
            group_ok = group.experiment_id == experiment.id
        else:
            group = PhysicsGroup.objects.filter(
                Q(slug=str(group)) | Q(pk=group if str(group).isdigit() else None),
                experiment=experiment,
            ).first()
            group_ok = group is not None
        if not group_ok:
            errors["physics_group"] = [f"not a working group of {experiment.name}"]
        cleaned["physics_group"] = group
    if "title" in data or not partial:
        title = _text(data.get("title"))
        if not title:
            errors["title"] = ["required"]
        elif len(title) > 200:
            errors["title"] = ["at most 200 characters"]
        elif "\x00" in title:  # PostgreSQL cannot store it (a ticket's text may carry one)
            errors["title"] = ["NUL characters are not allowed"]
        cleaned["title"] = title
    if "description" in data:
        description = data.get("description") or ""
        if not isinstance(description, str):
            errors["description"] = ["must be text"]
        elif len(description) > 20000:
            errors["description"] = ["at most 20000 characters"]
        elif "\x00" in description:
            errors["description"] = ["NUL characters are not allowed"]
        cleaned["description"] = description
    if "deadline" in data or not partial:
        deadline = data.get("deadline")
        if isinstance(deadline, str):
            try:
                deadline = dt.date.fromisoformat(deadline)
            except ValueError:
                errors["deadline"] = [f"{deadline!r} is not a date (YYYY-MM-DD)"]
        if deadline is None:
            errors.setdefault("deadline", ["required"])
        elif not isinstance(deadline, dt.date):
            errors.setdefault("deadline", [f"{deadline!r} is not a date (YYYY-MM-DD)"])
        elif problem := limits.deadline_problem(deadline):
            errors["deadline"] = [problem]
        cleaned["deadline"] = deadline
    if "priority" in data or not partial:
        priority = data.get("priority") or Priority.NORMAL
        if not isinstance(priority, str) or priority not in Priority.values:
            errors["priority"] = [f"choose one of {', '.join(Priority.values)}"]
        cleaned["priority"] = priority
    if errors:
        raise ValidationError(errors)
    return cleaned


def validate_sample(experiment: Experiment, data: dict[str, Any]) -> dict[str, Any]:
    """Check one sample line; errors are keyed by field name.

    The cleaned line carries ``jobs``, what its stages would make (for the
    request's total in ``validate_samples``, which drops it).
    """
    errors: dict[str, list[str]] = {}
    name = _text(data.get("name"))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,119}", name):
        errors["name"] = ["letters, digits, _ . - (at most 120), starting with a letter or digit"]
    template = data.get("template")
    if not isinstance(template, WorkflowTemplate):
        reference = str(template)
        if "\x00" in reference or len(reference) > 120:
            # PostgreSQL cannot compare a text holding NUL, and no name is this long.
            template = None
        else:
            by_id = reference.isascii() and reference.isdigit()
            by_id = by_id and int(reference) <= limits.INT64_MAX
            template = (
                WorkflowTemplate.objects.filter(Q(pk=reference) if by_id else Q(name=reference))
                .filter(Q(experiment=experiment) | Q(experiment__isnull=True))
                .order_by("-version")
                .first()
            )
    elif template.experiment_id not in (None, experiment.id):
        template = None
    if template is None:
        errors["template"] = [f"unknown workflow template for {experiment.name}"]

    def number(key: str, limit: int, setting: str) -> int | None:
        value = data.get(key)
        if isinstance(value, str) and len(value.strip()) > 30:
            # Longer than any limit: refused by name before ``int`` spends time on it.
            text = value.strip()
            if not text.lstrip("+-").isdigit():
                errors[key] = ["a whole number is required"]
            elif text.startswith("-"):
                errors[key] = ["must be greater than zero"]
            else:
                errors[key] = [f"at most {limit} ({setting})"]
            return None
        try:
            value = int(value)
        except (TypeError, ValueError, OverflowError):
            errors[key] = ["a whole number is required"]
            return None
        if value <= 0:
            errors[key] = ["must be greater than zero"]
        elif value > limit:
            errors[key] = [f"at most {limit} ({setting})"]
        return value

    events = number("events", limits.max_events_per_sample(), "OPOS_MAX_EVENTS_PER_SAMPLE")
    per_job = number("events_per_job", limits.max_events_per_job(), "OPOS_MAX_EVENTS_PER_JOB")
    if not errors.keys() & {"events", "events_per_job"} and per_job > events:
        errors["events_per_job"] = [f"larger than the number of events ({events})"]
    # The stages are read once, for the parameters and the job count alike.
    stages = list(template.stages.all()) if template is not None else []
    jobs = 0
    if not errors.keys() & {"events", "events_per_job", "template"}:
        # Counted, not built: a line asking for 10**12 one-event jobs is refused here.
        jobs = sum(limits.stage_job_counts(events, per_job, stages).values())
        limit = limits.max_jobs_per_sample()
        if jobs > limit:
            errors["events_per_job"] = [
                f"{events} events at {per_job} per job make {jobs} jobs over "
                f"{len(stages)} stages, more than the limit of {limit} jobs per sample "
                "(OPOS_MAX_JOBS_PER_SAMPLE); raise events_per_job"
            ]
    parameters = {}
    if template is not None:
        try:
            specs: dict[str, dict] = {}
            for stage in stages:  # as WorkflowTemplate.parameter_specs, without a query
                specs.update(stage.parameters or {})
            parameters = validate_parameters(specs, data.get("parameters"))
        except ValidationError as exc:
            errors["parameters"] = exc.messages
    output = _text(data.get("output_dataset"))
    if not DATASET_NAME.fullmatch(output):
        errors["output_dataset"] = ["required: letters, digits and _ . : / - (at most 255)"]
    elif not in_namespace(experiment.slug, output):
        errors["output_dataset"] = [namespace_refusal(experiment.slug)]
    input_dataset = data.get("input_dataset") or ""
    input_dataset = _text(input_dataset) if isinstance(input_dataset, str) else None
    if input_dataset is None or (input_dataset and not DATASET_NAME.fullmatch(input_dataset)):
        errors["input_dataset"] = ["letters, digits and _ . : / - (at most 255)"]
    if errors:
        raise ValidationError(errors)
    return {
        "name": name,
        "template": template,
        "events": events,
        "events_per_job": per_job,
        "parameters": parameters,
        "input_dataset": input_dataset,
        "output_dataset": output,
        "jobs": jobs,
    }


def validate_samples(experiment: Experiment, samples: list[dict[str, Any]]) -> list[dict]:
    """Validate every line; errors come back as ``{"samples": [{field: [..]}, ...]}``."""
    if len(samples) > MAX_SAMPLES:
        raise ValidationError({"samples": [f"at most {MAX_SAMPLES} samples"]})
    cleaned, errors, names = [], [], set()
    for data in samples:
        try:
            line = validate_sample(experiment, data)
        except ValidationError as exc:
            errors.append(exc.message_dict)
            continue
        if line["name"] in names:
            errors.append({"name": [f"{line['name']!r} is used twice"]})
            continue
        names.add(line["name"])
        errors.append({})
        cleaned.append(line)
    if any(errors):
        raise samples_error({"samples": [ValidationError(e) for e in errors]})
    jobs = sum(line.pop("jobs") for line in cleaned)
    limit = limits.max_jobs_per_request()
    if jobs > limit:
        raise ValidationError(
            {
                "samples": [
                    f"the samples make {jobs} jobs together, more than the limit of {limit} "
                    "jobs per request (OPOS_MAX_JOBS_PER_REQUEST); split the request"
                ]
            }
        )
    return cleaned


def _active_user(username: str) -> AbstractBaseUser | None:
    User = get_user_model()
    return User.objects.filter(is_active=True, **{User.USERNAME_FIELD: username}).first()


@transaction.atomic
def create_request(
    user: AbstractBaseUser,
    experiment: Experiment,
    data: dict[str, Any],
    samples: list[dict[str, Any]],
    *,
    incomplete: bool = False,
) -> ProductionRequest:
    """File a draft request with its samples (submit it with ``transition``).

    Everything is validated first; the request, its number and its samples
    are written in one transaction, so a refusal leaves nothing behind. With
    ``incomplete`` the draft may lack ticket, group, title or deadline (the browser's
    *Save draft*); submitting it asks for them.
    """
    if not can_file(user, experiment):
        raise PermissionDenied(f"You are not a liaison of {experiment.name}.")
    errors: dict = {}
    try:
        fields = _validate_request_fields(experiment, data, partial=False, draft=incomplete)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        fields = {}
    try:
        lines = validate_samples(experiment, samples)
    except ValidationError as exc:
        errors["samples"] = exc.error_dict["samples"]
        lines = []
    if errors:
        raise samples_error(errors)
    request = ProductionRequest.objects.create(
        number=next_request_number(experiment), experiment=experiment, requester=user, **fields
    )
    Sample.objects.bulk_create([Sample(request=request, **line) for line in lines])
    Transition.objects.create(
        request=request,
        action="create",
        from_state=request.state,
        to_state=request.state,
        actor=user,
    )
    return request


@transaction.atomic
def update_request(
    request: ProductionRequest,
    user: AbstractBaseUser,
    data: dict[str, Any],
    samples: list[dict[str, Any]] | None = None,
    note: str = "",
) -> ProductionRequest:
    """Change fields (and, in editable states, the sample lines), recording each change."""
    request = ProductionRequest.objects.select_for_update().get(pk=request.pk)
    asked = set(data) | ({"samples"} if samples is not None else set())
    unknown = sorted(asked - {*REQUEST_FIELDS, *OPERATOR_FIELDS, "samples"})
    if unknown:
        raise ValidationError({name: ["not a field that can be edited"] for name in unknown})
    # Never allowed for this user (403) is told apart from not allowed in
    # this state (409): the second changes when the request moves on.
    never = sorted(asked - ever_editable_fields(user, request))
    if never:
        if not ever_editable_fields(user, request):
            raise PermissionDenied(
                f"Only liaisons of {request.experiment.name} and operators edit its requests."
            )
        raise PermissionDenied(f"Only operators change {', '.join(never)}.")
    refused = sorted(asked - editable_fields(user, request))
    if refused:
        state = request.get_state_display().lower()
        raise EditConflict(
            {name: [f"cannot be changed while the request is {state}"] for name in refused}
        )
    changes: dict[str, list] = {}
    errors: dict = {}
    request_data = {k: v for k, v in data.items() if k != "assignee"}
    try:
        cleaned = _validate_request_fields(
            request.experiment,
            request_data,
            partial=True,
            draft=request.state == RequestState.DRAFT,
        )
    except ValidationError as exc:
        errors.update(exc.message_dict)
        cleaned = {}
    if "assignee" in data:
        assignee = data["assignee"]
        if isinstance(assignee, str):
            assignee = _active_user(assignee)
            if assignee is None:
                # An unknown username answers like a known one who is not an operator.
                errors["assignee"] = [f"{data['assignee']} is not an operator"]
        if assignee is not None and not is_operator(assignee):
            errors["assignee"] = [f"{assignee} is not an operator"]
        cleaned["assignee"] = assignee
    lines = None
    if samples is not None:
        try:
            lines = validate_samples(request.experiment, samples)
        except ValidationError as exc:
            errors["samples"] = exc.error_dict["samples"]
    if errors:
        raise samples_error(errors)
    for name, value in cleaned.items():
        old = getattr(request, name)
        if old != value:
            changes[name] = [_plain(old), _plain(value)]
            setattr(request, name, value)
    if lines is not None:
        before = sorted(request.samples.values_list("name", flat=True))
        request.samples.all().delete()
        Sample.objects.bulk_create([Sample(request=request, **line) for line in lines])
        after = sorted(line["name"] for line in lines)
        changes["samples"] = [before, after]
    if not changes:
        return request
    request.version += 1
    request.save()
    Transition.objects.create(
        request=request,
        action="edit",
        from_state=request.state,
        to_state=request.state,
        actor=user,
        note=note,
        changes=changes,
    )
    if "priority" in changes:
        # Its jobs already queued at the batch system follow (in this transaction).
        request_priority_changed.send(sender=ProductionRequest, request_id=request.pk)
    return request


def _plain(value):
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "pk"):
        return str(value)
    return value


@transaction.atomic
def add_comment(request: ProductionRequest, user: AbstractBaseUser, body: str) -> Comment:
    """A comment from a liaison of the experiment or an operator; watchers are emailed."""
    if not can_comment(user, request):
        raise PermissionDenied("Only the experiment's liaisons and operators comment here.")
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": ["a comment cannot be empty"]})
    if len(body) > 10000:
        raise ValidationError({"body": ["at most 10000 characters"]})
    comment = Comment.objects.create(request=request, author=user, body=body)
    transaction.on_commit(lambda: notify_comment(comment.pk))
    return comment


def post_system_notes(notes: dict[int, str]) -> list[Comment]:
    """The tracker's own notes on requests (``{request id: text}``), e.g. "blocked".

    Each is a comment without an author: it appears in the request's history, reaches
    the requester, watchers and assignee by email, and the service-desk ticket as a work
    note, like an operator's comment. The caller decides when (once per change).
    """
    comments = [
        Comment.objects.create(request_id=request_id, author=None, body=text[:10000])
        for request_id, text in sorted(notes.items())
        if text.strip()
    ]
    if comments:
        for comment in comments:
            transaction.on_commit(lambda pk=comment.pk: notify_comment(pk))
    return comments


def assign(
    request: ProductionRequest, user: AbstractBaseUser, assignee: AbstractBaseUser | None
) -> ProductionRequest:
    """An operator assigns a request (to an operator, or to nobody)."""
    if not is_operator(user):
        raise PermissionDenied("Only operators assign requests.")
    if assignee is not None and not is_operator(assignee):
        raise ValidationError({"assignee": [f"{assignee} is not an operator"]})
    return update_request(request, user, {"assignee": assignee})
