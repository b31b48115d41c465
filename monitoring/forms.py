"""Forms of the monitoring pages."""

from django import forms


class DigestForm(forms.Form):
    """Opt in to (or out of) the daily progress digest."""

    daily = forms.BooleanField(
        required=False,
        label="Email me a daily digest of production progress",
        help_text="Once a day: progress of every campaign and open request of the "
        "experiments you can see, each against its deadline.",
    )


class ReportPeriodForm(forms.Form):
    """The start of a status report's period (its end is now)."""

    since = forms.DateTimeField(
        required=False,
        label="Progress since",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Empty: since the last report issued (or a week back).",
    )


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
