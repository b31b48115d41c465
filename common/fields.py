"""Serializer fields with no domain."""

from rest_framework import serializers


class SlugReference(serializers.SlugRelatedField):
    """A lookup by slug (or username); a value with a NUL character is refused like an
    unknown one, before the database sees it (PostgreSQL cannot even compare it)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data.replace("\x00", ""))
        return super().to_internal_value(data)
