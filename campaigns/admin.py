"""Admin views of the plan: for looking, not for changing state.

States change only through ``campaigns.services``; here every state and
counter is read-only, and the audit log cannot be edited at all.
"""

from django.contrib import admin

from common.admin import RecordAdmin

from .models import Campaign, CampaignEvent, CampaignRequest, Dataset, Job, OutputFile, Stage


class CampaignRequestInline(admin.TabularInline):
    model = CampaignRequest
    extra = 0
    can_delete = False
    readonly_fields = ["request", "added_by", "added"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "experiment", "state", "priority", "deadline", "backend", "throttle"]
    list_filter = ["state", "experiment", "backend"]
    search_fields = ["name"]
    readonly_fields = [
        "state",
        "cancel_pending",
        "created_by",
        "launched_at",
        "completed_at",
        "cancelled_at",
    ]
    inlines = [CampaignRequestInline]


@admin.register(CampaignEvent)
class CampaignEventAdmin(RecordAdmin):
    list_display = ["campaign", "kind", "actor", "request", "created"]
    list_filter = ["kind"]


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin):
    list_display = ["name", "position", "campaign", "request", "jobs_total", "n_succeeded"]
    list_select_related = ["campaign", "request"]
    raw_id_fields = ["campaign", "request", "sample", "template_stage", "input_stage"]
    readonly_fields = ["code", "code_sha256", "code_location", "input_dataset", "output_dataset"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "stage", "index", "attempt", "state", "backend", "batch_id"]
    list_filter = ["state", "backend"]
    raw_id_fields = ["stage", "parent", "submission"]
    readonly_fields = ["state", "state_since", "batch_id", "exit_code", "failure_class"]
    show_full_result_count = False  # no COUNT(*) over every job on each page


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "experiment", "campaign", "state", "file_count", "events"]
    list_filter = ["state"]
    search_fields = ["name"]
    raw_id_fields = ["campaign"]
    # The lifecycle moves only through its service (atomic, audited): shown, not edited.
    readonly_fields = ["state", "state_reason", "state_since", "state_by"]


@admin.register(OutputFile)
class OutputFileAdmin(admin.ModelAdmin):
    list_display = ["name", "dataset", "size", "events", "invalidated", "from_invalid_input"]
    search_fields = ["name"]
    raw_id_fields = ["dataset", "job"]
    readonly_fields = ["invalidated", "invalid_reason", "invalidated_by", "from_invalid_input"]
    show_full_result_count = False
