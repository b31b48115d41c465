"""JSON shapes of production requests, their samples, history, comments and checklist.

Read serializers render; write serializers only parse types (dates, numbers,
lists). The rules (deadlines, events, templates, parameters, tickets, who may
change what) are the services', so the browser and the API refuse the same
things with the same messages.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.fields import SlugReference
from experiments.models import Experiment

from ..choices import Priority, RequestState
from ..models import Comment, ProductionRequest, Sample
from ..services import allowed_actions
from ..workflow import USER_ACTIONS

# --- Reading ----------------------------------------------------------------


class SampleSerializer(serializers.ModelSerializer):
    template = serializers.CharField(source="template.name", read_only=True)
    template_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Sample
        fields = [
            "name",
            "template",
            "template_id",
            "events",
            "events_per_job",
            "parameters",
            "input_dataset",
            "output_dataset",
        ]
        read_only_fields = fields

    def to_representation(self, instance: Sample) -> dict:
        # What the declared fields write (see ProductionRequestSerializer's).
        return {
            "name": str(instance.name),
            "template": str(instance.template.name),
            "template_id": int(instance.template_id),
            "events": int(instance.events),
            "events_per_job": int(instance.events_per_job),
            "parameters": instance.parameters,
            "input_dataset": str(instance.input_dataset),
            "output_dataset": str(instance.output_dataset),
        }


def _when(value: dt.datetime | None, tz: dt.tzinfo) -> str | None:
    """A moment as DRF's ``DateTimeField`` writes it (ISO 8601, ``Z`` for UTC)."""
    if not value or isinstance(value, str):
        return value or None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, tz)
    text = value.astimezone(tz).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _day(value: dt.date | str | None) -> str | None:
    """A date as DRF's ``DateField`` writes it (ISO 8601)."""
    if not value or isinstance(value, str):
        return value or None
    return value.isoformat()


class ProductionRequestSerializer(serializers.ModelSerializer):
    """A request as the caller sees it, with what the caller may do next."""

    experiment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    physics_group = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    requester = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="Username of who filed it."
    )
    assignee = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Username of the operator in charge, if any.",
    )
    held_from = serializers.ChoiceField(
        RequestState.choices,
        allow_blank=True,
        read_only=True,
        help_text="While on hold: the state that resume returns to.",
    )
    samples = SampleSerializer(many=True, read_only=True)
    hold_seconds = serializers.SerializerMethodField(
        help_text="Time spent on hold so far, the current hold included."
    )
    allowed_actions = serializers.SerializerMethodField(
        help_text="The actions the caller may take in the current state."
    )

    class Meta:
        model = ProductionRequest
        fields = [
            "id",
            "number",
            "experiment",
            "physics_group",
            "ticket",
            "title",
            "description",
            "deadline",
            "priority",
            "state",
            "samples",
            "requester",
            "assignee",
            "held_from",
            "hold_reason",
            "hold_seconds",
            "submitted",
            "allowed_actions",
            "created",
            "updated",
        ]
        read_only_fields = fields

    def to_representation(self, instance: ProductionRequest) -> dict:
        # The declared fields, written directly: the request list renders 50 requests
        # and their samples per call, and DRF's field-by-field machinery was most of its
        # time. Same output (tests/requests_app/test_api_fast_serializer.py compares it
        # with ModelSerializer's over every state and role); the fields above still
        # describe the schema.
        tz = timezone.get_current_timezone()
        sample = SampleSerializer(context=self.context)
        return {
            "id": int(instance.id),
            "number": str(instance.number),
            "experiment": instance.experiment.slug,
            "physics_group": instance.physics_group.slug if instance.physics_group else None,
            "ticket": str(instance.ticket),
            "title": str(instance.title),
            "description": str(instance.description),
            "deadline": _day(instance.deadline),
            "priority": str(instance.priority),
            "state": str(instance.state),
            "samples": [sample.to_representation(s) for s in instance.samples.all()],
            "requester": instance.requester.username if instance.requester else None,
            "assignee": instance.assignee.username if instance.assignee else None,
            "held_from": str(instance.held_from),
            "hold_reason": str(instance.hold_reason),
            "hold_seconds": self.get_hold_seconds(instance),
            "submitted": _when(instance.submitted, tz),
            "allowed_actions": self.get_allowed_actions(instance),
            "created": _when(instance.created, tz),
            "updated": _when(instance.updated, tz),
        }

    def get_hold_seconds(self, obj: ProductionRequest) -> int:
        if obj.hold_started is None:
            return obj.hold_seconds
        ongoing = int((timezone.now() - obj.hold_started).total_seconds())
        return obj.hold_seconds + max(ongoing, 0)

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(USER_ACTIONS)))
    def get_allowed_actions(self, obj: ProductionRequest) -> list[str]:
        request = self.context.get("request")
        if request is None:
            return []
        return [action.name for action in allowed_actions(request.user, obj)]


# --- Writing ----------------------------------------------------------------


@extend_schema_field(
    {
        "oneOf": [{"type": "string"}, {"type": "integer"}],
        "description": "The workflow template's name (its latest version) or its id.",
    }
)
class TemplateReference(serializers.Field):
    """A workflow template named by its name or its id; the service resolves it."""

    default_error_messages = {"invalid": "Give the template's name or its id."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, str | int):
            self.fail("invalid")
        if isinstance(data, str):
            data = data.strip()
            if not data or "\x00" in data:
                self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class SampleLinesSerializer(serializers.ListSerializer):
    """Sample lines whose errors come back one entry per line, as the services give them.

    DRF keys a list's errors by index (``{"1": {...}}``); the API answers
    ``{"samples": [{}, {"events": [...]}]}`` whichever layer refused the line.
    """

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            detail = exc.detail
            if isinstance(detail, dict) and detail and all(isinstance(k, int) for k in detail):
                raise serializers.ValidationError(
                    [detail.get(index, {}) for index in range(len(data))]
                ) from exc
            raise


class SampleInputSerializer(serializers.Serializer):
    name = serializers.CharField()
    template = TemplateReference()
    events = serializers.IntegerField()
    events_per_job = serializers.IntegerField()
    parameters = serializers.DictField(required=False, default=dict)
    input_dataset = serializers.CharField(required=False, allow_blank=True, default="")
    output_dataset = serializers.CharField()

    class Meta:
        list_serializer_class = SampleLinesSerializer


class ProductionRequestUpdateSerializer(serializers.Serializer):
    """Fields a PATCH may carry; which of them the caller may change depends on the state."""

    physics_group = serializers.CharField(help_text="The working group's slug.")
    ticket = serializers.CharField(help_text="Service-desk reference, e.g. RITM0012345.")
    title = serializers.CharField()
    description = serializers.CharField(required=False, allow_blank=True)
    deadline = serializers.DateField()
    priority = serializers.ChoiceField(Priority.choices, required=False)
    samples = SampleInputSerializer(
        many=True, required=False, help_text="Replaces every sample line."
    )
    # A username, resolved by the service only after it has checked that the caller may
    # change the assignee at all: whether a username exists is not a member's business.
    assignee = serializers.CharField(
        allow_null=True,
        required=False,
        max_length=150,
        help_text="An operator's username (operators only), or null.",
    )
    # Read-only on a request: named here so that a PATCH trying them is
    # refused with a reason instead of being silently ignored. The experiment is compared
    # as text, never looked up: any other value, existing slug or not, gets one answer.
    state = serializers.ChoiceField(RequestState.choices, required=False, write_only=True)
    experiment = serializers.CharField(required=False, write_only=True, max_length=49)

    def validate(self, attrs):
        current: ProductionRequest = self.instance
        errors = {}
        if "state" in attrs and attrs["state"] != current.state:
            errors["state"] = ["changes only through POST .../transitions/ with an action"]
        if "experiment" in attrs and attrs["experiment"] != current.experiment.slug:
            errors["experiment"] = ["a request cannot move to another experiment"]
        if errors:
            raise serializers.ValidationError(errors)
        attrs.pop("state", None)
        attrs.pop("experiment", None)
        return attrs

    def changed(self) -> tuple[dict, list | None]:
        """The fields whose values differ from the request's, and the samples if given.

        Sending back an unchanged value is not an edit, so it is not refused
        in a state where that field is frozen.
        """
        current: ProductionRequest = self.instance
        data = dict(self.validated_data)
        samples = data.pop("samples", None)
        now = {
            "physics_group": current.physics_group.slug,
            "assignee": current.assignee.get_username() if current.assignee else None,
        }
        return {
            name: value
            for name, value in data.items()
            if now.get(name, getattr(current, name, None)) != value
        }, samples


class ProductionRequestCreateSerializer(serializers.Serializer):
    """A new request: a draft, or submitted at once with ``"submit": true``."""

    experiment = SlugReference(slug_field="slug", queryset=Experiment.objects.all())
    physics_group = serializers.CharField(help_text="The working group's slug.")
    ticket = serializers.CharField(help_text="Service-desk reference, e.g. RITM0012345.")
    title = serializers.CharField()
    description = serializers.CharField(required=False, allow_blank=True, default="")
    deadline = serializers.DateField()
    priority = serializers.ChoiceField(Priority.choices, required=False, default=Priority.NORMAL)
    samples = SampleInputSerializer(many=True, required=False, default=list)
    submit = serializers.BooleanField(
        required=False, default=False, help_text="Submit right away instead of keeping a draft."
    )


# --- Actions, history, comments, checklist ------------------------------------


class TransitionInputSerializer(serializers.Serializer):
    action = serializers.ChoiceField(USER_ACTIONS)
    note = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=5000,
        help_text="Required to ask for information, reject and put on hold.",
    )


class TransitionResultSerializer(serializers.Serializer):
    state = serializers.ChoiceField(RequestState.choices)
    request = ProductionRequestSerializer()


class TimelineEntrySerializer(serializers.Serializer):
    """One event of a request's life: a transition, an edit, or a comment."""

    kind = serializers.ChoiceField(["transition", "edit", "comment"])
    id = serializers.IntegerField()
    created = serializers.DateTimeField()
    actor = serializers.CharField(allow_null=True, help_text="Username; null for the system.")
    text = serializers.CharField(allow_blank=True, help_text="The note, or the comment's body.")
    action = serializers.CharField(allow_null=True)
    from_state = serializers.ChoiceField(RequestState.choices, allow_null=True)
    to_state = serializers.ChoiceField(RequestState.choices, allow_null=True)
    changes = serializers.DictField(
        child=serializers.ListField(), allow_null=True, help_text="Field: [old, new] for edits."
    )


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Comment
        fields = ["id", "author", "body", "created"]
        read_only_fields = ["id", "author", "created"]
        extra_kwargs = {"body": {"trim_whitespace": False}}


class CheckSerializer(serializers.Serializer):
    key = serializers.ChoiceField(["sla", "code", "training", "ticket"])
    label = serializers.CharField()
    ok = serializers.BooleanField()
    missing = serializers.ListField(child=serializers.CharField())
    fixer = serializers.CharField(help_text="Who can fix what is missing.")


class EligibilitySerializer(serializers.Serializer):
    eligible = serializers.BooleanField()
    checks = CheckSerializer(many=True)


def timeline(transitions, comments) -> list[dict]:
    """Transitions (with edits) and comments of one request, oldest first."""
    entries = [
        {
            "kind": "edit" if t.action == "edit" else "transition",
            "id": t.id,
            "created": t.created,
            "actor": t.actor.username if t.actor else None,
            "text": t.note,
            "action": t.action,
            "from_state": t.from_state,
            "to_state": t.to_state,
            "changes": t.changes or {},
        }
        for t in transitions
    ] + [
        {
            "kind": "comment",
            "id": c.id,
            "created": c.created,
            "actor": c.author_name,
            "text": c.body,
            "action": None,
            "from_state": None,
            "to_state": None,
            "changes": None,
        }
        for c in comments
    ]
    entries.sort(key=lambda e: (e["created"], e["kind"] == "comment", e["id"]))
    return entries


__all__ = [
    "CommentSerializer",
    "EligibilitySerializer",
    "ProductionRequestCreateSerializer",
    "ProductionRequestSerializer",
    "ProductionRequestUpdateSerializer",
    "SampleSerializer",
    "TimelineEntrySerializer",
    "TransitionInputSerializer",
    "TransitionResultSerializer",
    "timeline",
]
