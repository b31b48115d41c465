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
