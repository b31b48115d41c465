"""Forms of the monitoring pages."""

from django import forms

from .models import Allocation


class DigestForm(forms.Form):
    """Opt in to (or out of) the daily progress digest."""

    daily = forms.BooleanField(
        required=False,
        label="Email me a daily digest of production progress",
        help_text="Once a day: progress of every campaign and open request of the "
        "experiments you can see, each against its deadline.",
    )
    weekly = forms.BooleanField(
        required=False,
        label="Email me the weekly status report of my experiments",
        help_text="Once a week: each experiment's report of the last seven days (commitments "
        "against actuals, the service-desk clock, CPU hours, failures by class, what is "
        "blocked). Liaisons get their experiments' report unless they untick this.",
    )


class ReportPeriodForm(forms.Form):
    """The start of a status report's period (its end is now)."""

    since = forms.DateTimeField(
        required=False,
        label="Progress since",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Empty: since the last report issued (or a week back).",
    )


class LedgerFilterForm(forms.Form):
    """The accounting page's period and experiment (defaults: this month, every experiment
    the viewer may see)."""

    experiment = forms.ChoiceField(required=False, label="Experiment")
    start = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        required=False, label="To (included)", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, experiments=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["experiment"].choices = [("", "All you may see")] + [
            (e.slug, e.name) for e in experiments
        ]

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", "The period must end on or after its first day.")
        return data


class AllocationForm(forms.ModelForm):
    """Operators: the core hours an experiment is granted for a period."""

    class Meta:
        model = Allocation
        fields = ["experiment", "start", "end", "cpu_hours", "note"]
        labels = {"cpu_hours": "Core hours"}
        widgets = {
            "start": forms.DateInput(attrs={"type": "date"}),
            "end": forms.DateInput(attrs={"type": "date"}),
        }


class CommitmentForm(forms.Form):
    """The promised moment of each milestone, and the reason when changing them.

    Built for the kinds of a request (start, 50%, 100%) or a campaign (and full speed);
    ``changing``: commitments exist, so a reason is required for any moved date.
    """

    reason = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Why change them?",
        help_text="Required to change a promise; kept in its history.",
    )

    def __init__(
        self, *args, kinds: tuple[str, ...], labels: dict[str, str], changing: bool, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.kinds = kinds
        self.changing = changing
        for kind in kinds:
            self.fields[kind] = forms.DateTimeField(
                label=f"{labels[kind]} by",
                widget=forms.DateTimeInput(
                    attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
                ),
            )
        self.order_fields([*kinds, "reason"])
        if not changing:
            del self.fields["reason"]

    def moments(self) -> dict:
        return {kind: self.cleaned_data[kind] for kind in self.kinds}
