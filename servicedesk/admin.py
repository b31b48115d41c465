"""Django admin for the connector's records: links and sync state are read-mostly."""

from django.contrib import admin

from .models import Push, SyncError, SyncState, TicketLink


@admin.register(TicketLink)
class TicketLinkAdmin(admin.ModelAdmin):
    list_display = ["ticket", "request", "adopted", "last_seen", "created"]
    search_fields = ["ticket", "sys_id", "request__number"]
    raw_id_fields = ["request"]
    readonly_fields = ["created"]


@admin.register(Push)
class PushAdmin(admin.ModelAdmin):
    list_display = ["id", "link", "kind", "state", "attempts", "next_attempt_at", "sent_at"]
    list_filter = ["state", "kind"]
    search_fields = ["link__ticket", "work_note"]
    raw_id_fields = ["link"]
    readonly_fields = ["created", "sent_at"]


@admin.register(SyncState)
class SyncStateAdmin(admin.ModelAdmin):
    list_display = ["key", "last_pull_ok", "last_push_ok", "last_error_at"]


@admin.register(SyncError)
class SyncErrorAdmin(admin.ModelAdmin):
    list_display = ["created", "operation", "ticket", "message"]
    list_filter = ["operation"]
    search_fields = ["ticket", "message"]

    def has_add_permission(self, request) -> bool:
        return False
