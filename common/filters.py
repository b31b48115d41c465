"""Query filters with no domain, for django-filter filter sets."""

import django_filters
from django.db.models import QuerySet


class ListWidget(django_filters.widgets.QueryArrayWidget):
    """One or several values: ``?state=a&state=b`` or ``?state=a,b`` (or both)."""

    def value_from_datadict(self, data, files, name):
        raw = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
        values = [part.strip() for item in raw if item for part in str(item).split(",")]
        return sorted({value for value in values if value})


class CharInFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    """Comma-separated values matched exactly (``?experiment=dune,sbnd``)."""


class StableOrderingFilter(django_filters.OrderingFilter):
    """Ordering with the id as the last key, so pages never repeat or skip rows."""

    def filter(self, qs: QuerySet, value) -> QuerySet:
        qs = super().filter(qs, value)
        if value:
            qs = qs.order_by(*qs.query.order_by, "-id")
        return qs
