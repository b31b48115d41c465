"""Each signed-in person's time zone, active for the whole request: pages, forms and
exports show times in it (``django.utils.timezone.activate``)."""

from __future__ import annotations

import zoneinfo

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.utils import timezone

from .services.preferences import SESSION_KEY, user_time_zone


def _activate(name: str) -> None:
    try:
        timezone.activate(zoneinfo.ZoneInfo(name)) if name else timezone.deactivate()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # a zone this machine lost
        timezone.deactivate()


class UserTimeZoneMiddleware:
    """Activate the user's zone. It is read once per session (at sign-in, or on the first
    request of a session that predates the preference) and kept in the session."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            name = request.session.get(SESSION_KEY)
            if name is None:
                name = user_time_zone(user)
                request.session[SESSION_KEY] = name
            _activate(name)
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


@receiver(user_logged_in)
def remember_time_zone(sender, request, user, **kwargs):
    """At sign-in: the user's zone into the session, so requests need no query for it."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = user_time_zone(user)
