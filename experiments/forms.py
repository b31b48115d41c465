"""Operators' SLA records: training sessions and registered production code."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from common.forms import DATE_INPUT

from .choices import CodeKind, ExperimentRole, TrainingTopic
from .models import Experiment, Membership
from .models.experiments import sha256_validator
from .services import operator_accounts


class TrainingForm(forms.Form):
    experiment = forms.ModelChoiceField(queryset=Experiment.objects.order_by("name"))
    held_on = forms.DateField(
        label="Held on", widget=forms.DateInput(attrs=DATE_INPUT, format="%Y-%m-%d")
    )
    topics = forms.MultipleChoiceField(
        choices=TrainingTopic.choices, widget=forms.CheckboxSelectMultiple
    )
    attendees = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.none(),  # operators, set per form
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Operators who attended.",
    )
    notes = forms.CharField(
        required=False, max_length=10000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["attendees"].queryset = operator_accounts()
        self.fields["held_on"].widget.attrs["max"] = timezone.localdate().isoformat()
        self.fields["held_on"].initial = timezone.localdate()


class Sha256Field(forms.CharField):
    """A sha256 as pasted: surrounding blanks and upper-case hex are fine."""

    def to_python(self, value):
        return super().to_python(value).lower()


class CodeForm(forms.Form):
    experiment = forms.ModelChoiceField(queryset=Experiment.objects.order_by("name"))
    name = forms.CharField(max_length=120)
    version = forms.CharField(max_length=60)
    kind = forms.ChoiceField(choices=CodeKind.choices, initial=CodeKind.SCRIPT)
    location = forms.CharField(max_length=500, help_text="Path or URL of the file.")
    sha256 = Sha256Field(
        label="sha256",
        required=False,
        max_length=64,
        validators=[sha256_validator],
        widget=forms.TextInput(attrs={"class": "mono", "spellcheck": "false"}),
        help_text="64 hex digits; leave empty to compute it from an uploaded file.",
    )
    upload = forms.FileField(
        label="File (optional)",
        required=False,
        help_text="Uploaded only to compute the checksum; not stored.",
    )
    owners = forms.TypedMultipleChoiceField(
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Liaisons of the experiment who control the file.",
    )
    approve = forms.BooleanField(label="Approve this version now", required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.liaisons: dict[int, Any] = {}
        labels: dict[int, list[str]] = {}
        for m in Membership.objects.filter(role=ExperimentRole.LIAISON).select_related(
            "user", "experiment"
        ):
            self.liaisons[m.user_id] = m.user
            labels.setdefault(m.user_id, []).append(m.experiment.name)
        self.fields["owners"].choices = [
            (pk, f"{self.liaisons[pk].get_username()} ({', '.join(names)})")
            for pk, names in sorted(labels.items(), key=lambda i: self.liaisons[i[0]].username)
        ]

    def owner_users(self) -> list:
        return [self.liaisons[pk] for pk in self.cleaned_data.get("owners", [])]
