"""Admin plumbing shared by the apps."""

from django.contrib import admin


class RecordAdmin(admin.ModelAdmin):
    """A record of what happened (a transition, an audit event, a campaign event): the
    admin shows it and never adds, edits or deletes one, so the history stays what the
    services wrote."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
