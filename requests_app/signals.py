"""Signal handlers of intake: a password change revokes the user's API tokens."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import pre_save
from django.dispatch import receiver

from .services import tokens


@receiver(pre_save, sender=get_user_model())
def revoke_tokens_on_password_change(sender: type, instance: Any, update_fields=None, **_: Any):
    """Whoever changes a password (the user, an admin, ``grant_role --password``), the tokens
    issued under the old one stop working: a token must not outlive the credentials that
    obtained it. Saves that do not touch the password cost nothing."""
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    old = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if old is not None and old != instance.password:
        tokens.revoke_all(instance, reason="password changed")
