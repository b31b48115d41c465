"""Django admin for CPU-hour allocations: changes join the audit trail (AuditedAdmin), and
overlapping periods are refused (the model's ``clean``, which the admin form runs)."""

from django.contrib import admin

from experiments.admin import AuditedAdmin

from .models import Allocation


@admin.register(Allocation)
class AllocationAdmin(AuditedAdmin):
    list_display = ["experiment", "start", "end", "cpu_hours", "note", "created_by"]
    list_filter = ["experiment"]
    date_hierarchy = "start"
    readonly_fields = ["created_by", "created", "updated"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
