"""Deciding on requests: actions, comments, assignment, operators' changes, the queues' filters."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from common.forms import DATE_INPUT, attach_errors
from experiments.models import Experiment
from experiments.services import operator_accounts

from ..choices import Priority
from ..services import check_request_fields
from ..workflow import ACTIONS


def operator_choices(blank: str, people: list | None = None) -> tuple[list, dict[int, Any]]:
    """Choices of operators (value: user id) and the users by id."""
    people = list(operator_accounts()) if people is None else people
    return [("", blank)] + [(u.pk, u.get_username()) for u in people], {u.pk: u for u in people}


class OperatorChangeForm(forms.Form):
    """After approval only operators change priority, deadline and assignee, with a reason."""

    priority = forms.ChoiceField(choices=Priority.choices)
    deadline = forms.DateField(widget=forms.DateInput(attrs=DATE_INPUT, format="%Y-%m-%d"))
    assignee = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    reason = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded with the change and sent to the requester and watchers.",
    )

    def __init__(self, *args, experiment: Experiment, **kwargs):
        super().__init__(*args, **kwargs)
        self.experiment = experiment
        self.fields["assignee"].choices, self.operators = operator_choices("Nobody")

    def clean(self):
        cleaned = super().clean()
        changed = [n for n in ("priority", "deadline", "assignee") if n in self.changed_data]
        if not changed and not self.errors:
            raise ValidationError("Nothing changed.")
        data = {n: cleaned[n] for n in ("priority", "deadline") if n in changed and n in cleaned}
        try:
            check_request_fields(self.experiment, data, partial=True)
        except ValidationError as exc:
            attach_errors(self, exc)
        return cleaned

    def changes(self) -> dict[str, Any]:
        data = {n: self.cleaned_data[n] for n in ("priority", "deadline") if n in self.changed_data}
        if "assignee" in self.changed_data:
            data["assignee"] = self.operators.get(self.cleaned_data["assignee"])
        return data


class ActionForm(forms.Form):
    action = forms.CharField(max_length=32)
    note = forms.CharField(required=False, max_length=5000)


class CommentForm(forms.Form):
    body = forms.CharField(
        label="Comment", max_length=10000, widget=forms.Textarea(attrs={"rows": 3})
    )


class AssignForm(forms.Form):
    assignee = forms.TypedChoiceField(
        label="Assignee", coerce=int, required=False, empty_value=None
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices, self.operators = operator_choices("Nobody")


TRIAGE_ACTIONS = [
    ("approve", "Approve"),
    ("request_info", "Ask for information"),
    ("reject", "Reject"),
    ("assign", "Assign"),
]


class BulkForm(forms.Form):
    """One action for the requests ticked in the queue (their ids come as ``ids``).

    No action is chosen in advance: a default would be applied to whatever is ticked
    when the operator only meant to fill in the note (a refused Reject came back as
    "Approve" once, and approved on the second click).
    """

    action = forms.ChoiceField(
        choices=[("", "Choose an action…"), *TRIAGE_ACTIONS],
        error_messages={"required": "Choose an action."},
    )
    assignee = forms.TypedChoiceField(
        coerce=int, required=False, empty_value=None, help_text="For “Assign”."
    )
    note = forms.CharField(
        required=False,
        max_length=5000,
        help_text="Required to reject or ask for information; sent to each requester.",
    )

    def __init__(self, *args, operators: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices, self.operators = operator_choices("Nobody", operators)

    def clean(self):
        cleaned = super().clean()
        spec = ACTIONS.get(cleaned.get("action", ""))
        if spec is not None and spec.note_required and not cleaned.get("note", "").strip():
            self.add_error("note", f"A note is required to {spec.label.lower()}.")
        return cleaned
