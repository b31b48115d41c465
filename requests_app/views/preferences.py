"""A person's preferences: the time zone the pages and exports show times in."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from ..forms import attach_errors
from ..services.preferences import SESSION_KEY, set_time_zone, time_zone_names, user_time_zone


class PreferencesForm(forms.Form):
    time_zone = forms.ChoiceField(
        label="Time zone",
        required=False,
        help_text="Pages and CSV exports show times in this zone. Deadlines are dates and "
        "end at midnight in the site's zone whatever you choose.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        site = settings.TIME_ZONE
        self.fields["time_zone"].choices = [("", f"The site's ({site})")] + [
            (name, name.replace("_", " ")) for name in time_zone_names()
        ]


@login_required
def preferences(request):
    """Choose a time zone; it is active from the next page on (POST/redirect/GET)."""
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            try:
                name = set_time_zone(request.user, form.cleaned_data["time_zone"])
            except ValidationError as exc:
                attach_errors(form, exc)
            else:
                request.session[SESSION_KEY] = name
                messages.success(
                    request, f"Times are now shown in {name or settings.TIME_ZONE + ' (site)'}."
                )
                return redirect("requests:preferences")
        status = 400
    else:
        form = PreferencesForm(initial={"time_zone": user_time_zone(request.user)})
        status = 200
    return render(request, "requests_app/preferences.html", {"form": form}, status=status)
