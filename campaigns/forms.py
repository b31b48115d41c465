"""Browser forms of the execution side; the services do the real checking."""

from __future__ import annotations

from django import forms

from common import limits
from experiments import endpoints
from experiments.models import Experiment
from requests_app.choices import Priority

from .workflow import CAMPAIGN_ACTIONS, OPERATOR_ACTIONS

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def _campaign_backends() -> list[tuple[str, str]]:
    """The configured endpoints (read when the form is made), after the experiment's default."""
    return [("", "The experiment's default"), *endpoints.choices()]


class DeadlineBounds:
    """The date picker offers no day past the horizon (the service refuses those anyway)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["deadline"].widget.attrs["max"] = limits.latest_deadline().isoformat()


class PlacementFields(forms.Form):
    """Where the campaign's work runs at the batch system; empty: the experiment's."""

    batch_partition = forms.CharField(
        label="Slurm partition",
        max_length=200,
        required=False,
        help_text="Empty: the experiment's. Queued jobs that have not started move with it.",
    )
    batch_account = forms.CharField(
        label="Batch account",
        max_length=200,
        required=False,
        help_text="Slurm account, HTCondor accounting group; empty: the experiment's.",
    )
    batch_qos = forms.CharField(
        label="Slurm QOS", max_length=200, required=False, help_text="Empty: the experiment's."
    )
    batch_requirements = forms.CharField(
        label="HTCondor requirements",
        max_length=1000,
        required=False,
        help_text="A ClassAd expression; empty: the experiment's.",
    )


class CampaignForm(DeadlineBounds, PlacementFields, forms.Form):
    """Create a campaign."""

    experiment = forms.ModelChoiceField(queryset=Experiment.objects.order_by("name"))
    name = forms.CharField(max_length=120, help_text='The production round, e.g. "MCC5.0".')
    deadline = forms.DateField(widget=DATE)
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.NORMAL)
    throttle = forms.IntegerField(
        min_value=1,
        required=False,
        help_text="Maximum jobs of this campaign in flight; empty for no limit beyond the "
        "experiment's quota.",
    )
    backend = forms.ChoiceField(choices=_campaign_backends, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class CampaignEditForm(DeadlineBounds, PlacementFields, forms.Form):
    """Change deadline, throttle or where the work runs, with the reason on record. The
    priority is changed on its decision page; a form of before may still send it."""

    priority = forms.ChoiceField(choices=Priority.choices, required=False)
    deadline = forms.DateField(widget=DATE)
    throttle = forms.IntegerField(min_value=1, required=False, help_text="Empty: no limit.")
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="Required when the priority or the deadline changes; it is recorded.",
    )


class PriorityChangeForm(forms.Form):
    """A priority change taken from the what-if page, after its effect was shown."""

    priority = forms.ChoiceField(choices=Priority.choices)
    reason = forms.CharField(
        max_length=5000,
        error_messages={"required": "A reason is required to change the priority."},
    )


class CampaignDeadlineForm(DeadlineBounds, forms.Form):
    """A closed campaign's deadline, the one thing still changeable (to repair a bad one)."""

    deadline = forms.DateField(widget=DATE)
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why the deadline changes; it is recorded in the campaign's history.",
    )


class ActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, CAMPAIGN_ACTIONS[a].label) for a in OPERATOR_ACTIONS])
    note = forms.CharField(max_length=5000, required=False)

    def clean(self):
        cleaned = super().clean()
        # Cancelling cannot be undone: its reason is required (the service checks it too).
        if cleaned.get("action") == "cancel" and not cleaned.get("note", "").strip():
            self.add_error("note", "A reason is required to cancel the campaign.")
        return cleaned


class ScheduleForm(forms.Form):
    """Pick approved requests to schedule into the campaign."""

    requests = forms.TypedMultipleChoiceField(coerce=int, widget=forms.CheckboxSelectMultiple)
    note = forms.CharField(max_length=5000, required=False)

    def __init__(self, *args, candidates=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["requests"].choices = [(r.pk, f"{r.number} {r.title}") for r in candidates]


class RemoveRequestForm(forms.Form):
    request = forms.IntegerField(widget=forms.HiddenInput)
    reason = forms.CharField(
        max_length=5000,
        error_messages={"required": "A reason is required to remove a request from the campaign."},
    )


class CloneForm(forms.Form):
    """Adopt a template into an experiment."""

    experiment = forms.ModelChoiceField(queryset=Experiment.objects.order_by("name"))
    name = forms.CharField(max_length=120, required=False, help_text="Empty: keep the name.")


class ImportForm(forms.Form):
    """A template file (YAML) to import into an experiment, or as a shared template."""

    experiment = forms.ModelChoiceField(
        queryset=Experiment.objects.order_by("name"),
        required=False,
        empty_label="Shared (all experiments)",
    )
    file = forms.FileField(required=False, help_text="A YAML file exported from a tracker.")
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "class": "mono", "spellcheck": "false"}),
        required=False,
        help_text="Or paste the YAML here.",
    )

    def clean(self):
        data = super().clean()
        if not data.get("file") and not (data.get("text") or "").strip():
            raise forms.ValidationError("Choose a file or paste the template.")
        return data


class PartitionForm(forms.Form):
    """Declare a batch partition with its capacity, or change it."""

    # The configured endpoints, read when the form is made (experiments/endpoints.py).
    backend = forms.ChoiceField(choices=endpoints.choices, initial="slurm")
    name = forms.CharField(max_length=200, help_text="As the batch system names it.")
    capacity = forms.IntegerField(min_value=0, help_text="Jobs in flight there at most.")
    description = forms.CharField(max_length=500, required=False)
    reason = forms.CharField(max_length=2000, required=False, help_text="Why (recorded).")


class PartitionQuotaForm(forms.Form):
    """An experiment's quota on a partition: a number of jobs, a share, or both."""

    experiment = forms.ChoiceField(choices=())

    def __init__(self, *args, experiments: list[tuple[str, str]], **kwargs):
        # The experiments (slug, name) read once for every partition's form on the page.
        super().__init__(*args, **kwargs)
        self.fields["experiment"].choices = experiments

    max_jobs = forms.IntegerField(min_value=0, required=False, label="At most (jobs)")
    share_pct = forms.IntegerField(
        min_value=1, max_value=100, required=False, label="Share of the capacity (%)"
    )
    reason = forms.CharField(max_length=2000, required=False, help_text="Why (recorded).")
