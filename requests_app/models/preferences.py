"""What each person keeps for themselves: saved filters of the request lists."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SavedFilter(models.Model):
    """A named query string of one list page (filters and sort), kept per user: a
    bookmark that opens the list as it was when saved."""

    class Page(models.TextChoices):
        REQUESTS = "requests", "Requests"
        TRIAGE = "triage", "Triage"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_filters"
    )
    page = models.CharField(max_length=16, choices=Page.choices)
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=2000, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "page", "name"], name="saved_filter_unique_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.page} · {self.name}"


class UserPreference(models.Model):
    """A person's display preferences: the time zone the pages and exports show times in
    (empty: the site's, ``TIME_ZONE``)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    time_zone = models.CharField(max_length=64, blank=True, default="", db_default="")

    def __str__(self) -> str:
        return f"{self.user} · {self.time_zone or 'site zone'}"
