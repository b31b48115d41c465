"""Django admin for the intake records; the transition log is read-only."""

from django.contrib import admin

from common.admin import RecordAdmin

from .models import Comment, ProductionRequest, Sample, Transition


class SampleInline(admin.TabularInline):
    model = Sample
    extra = 0


class TransitionInline(admin.TabularInline):
    model = Transition
    extra = 0
    can_delete = False
    readonly_fields = ["action", "from_state", "to_state", "actor", "note", "changes", "created"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ProductionRequest)
class ProductionRequestAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "title",
        "experiment",
        "physics_group",
        "state",
        "priority",
        "deadline",
    ]
    list_filter = ["state", "priority", "experiment"]
    search_fields = ["number", "ticket", "title"]
    # State changes go through the services (checked and recorded), never the admin form.
    readonly_fields = ["number", "state", "held_from", "hold_started", "hold_seconds", "version"]
    inlines = [SampleInline, TransitionInline]


@admin.register(Transition)
class TransitionAdmin(RecordAdmin):
    list_display = ["request", "action", "from_state", "to_state", "actor", "created"]
    list_filter = ["action", "to_state"]


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["request", "author", "created"]
