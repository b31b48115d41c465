"""A person's preferences: the time zone the pages show times in."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction

from experiments.services.audit import record

from ..models import UserPreference

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

SESSION_KEY = "opos_time_zone"


@cache
def time_zone_names() -> tuple[str, ...]:
    """Every IANA zone name this machine knows, sorted (for the choice and its check)."""
    return tuple(sorted(zoneinfo.available_timezones()))


def user_time_zone(user: AbstractBaseUser) -> str:
    """The user's chosen zone name, "" for the site's (one query)."""
    return (
        UserPreference.objects.filter(user=user).values_list("time_zone", flat=True).first() or ""
    )


def set_time_zone(user: AbstractBaseUser, name: str) -> str:
    """Choose the zone pages and exports show ``user`` times in ("" for the site's)."""
    name = name.strip()
    if name and name not in time_zone_names():
        raise ValidationError({"time_zone": f"{name!r} is not a time zone (e.g. Europe/Zurich)."})
    with transaction.atomic():
        pref, _ = UserPreference.objects.select_for_update().get_or_create(user=user)
        if pref.time_zone != name:
            record("preference.time_zone", str(user), user, old=pref.time_zone, new=name)
            pref.time_zone = name
            pref.save(update_fields=["time_zone"])
    return name
