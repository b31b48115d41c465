"""Saved filters: a person's named query strings of the request lists."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from experiments.services.audit import record

from ..models import SavedFilter

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

MAX_PER_PAGE = 50
# What a saved filter keeps of the query string: filters and sort, never the page number
# (a saved filter opens on the first page) or an export switch.
DROPPED = {"page", "format", "csrfmiddlewaretoken", "name"}


def clean_query(query: str) -> str:
    """The query string without the parameters a saved filter does not keep."""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=False) if k not in DROPPED]
    return urlencode(pairs)


def save_filter(user: AbstractBaseUser, page: str, name: str, query: str) -> SavedFilter:
    """Save (or replace) the user's filter ``name`` of ``page``; refused with a reason."""
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": "Give the filter a name."})
    if len(name) > 80:
        raise ValidationError({"name": "A filter's name has at most 80 characters."})
    if page not in SavedFilter.Page.values:
        raise ValidationError({"page": f"Unknown list {page!r}."})
    query = clean_query(query)
    if len(query) > 2000:
        raise ValidationError({"query": "These filters are too long to save (2000 characters)."})
    with transaction.atomic():
        existing = SavedFilter.objects.select_for_update().filter(user=user, page=page)
        if existing.count() >= MAX_PER_PAGE and not existing.filter(name=name).exists():
            raise ValidationError({"name": f"At most {MAX_PER_PAGE} saved filters per list."})
        try:
            saved, created = SavedFilter.objects.update_or_create(
                user=user, page=page, name=name, defaults={"query": query}
            )
        except IntegrityError as exc:  # the same name saved at the same instant
            raise ValidationError({"name": "A filter of that name was just saved."}) from exc
        record(
            "saved_filter.save" if created else "saved_filter.replace",
            f"{page}:{name}",
            user,
            query=query,
        )
    return saved


def delete_filter(user: AbstractBaseUser, pk: int) -> None:
    """Delete one of the user's saved filters (someone else's is not found)."""
    with transaction.atomic():
        saved = SavedFilter.objects.select_for_update().filter(user=user, pk=pk).first()
        if saved is None:
            raise SavedFilter.DoesNotExist("No such saved filter.")
        record("saved_filter.delete", f"{saved.page}:{saved.name}", user, query=saved.query)
        saved.delete()
