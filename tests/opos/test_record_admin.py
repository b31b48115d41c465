"""The records of what happened are read-only in the admin, for every app that keeps one."""

from django.contrib import admin
from django.test import RequestFactory

from campaigns.models import CampaignEvent
from common.admin import RecordAdmin
from experiments.models import AuditEvent
from requests_app.models import Transition
from tests.factories import UserFactory


def test_no_one_adds_edits_or_deletes_a_record_in_the_admin(db):
    request = RequestFactory().get("/admin/")
    request.user = UserFactory(is_staff=True, is_superuser=True)
    for model in (Transition, AuditEvent, CampaignEvent):
        model_admin = admin.site._registry[model]
        assert isinstance(model_admin, RecordAdmin), model
        assert not model_admin.has_add_permission(request), model
        assert not model_admin.has_change_permission(request), model
        assert not model_admin.has_delete_permission(request), model
        # ... while the superuser may still look.
        assert model_admin.has_view_permission(request), model
