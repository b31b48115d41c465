"""Django admin for experiments, their people, SLA records and templates; every change
of access or eligibility records joins the audit trail."""

from django import forms
from django.contrib import admin

from common.admin import RecordAdmin

from . import endpoints, events
from .models import (
    AuditEvent,
    Experiment,
    GlobalRole,
    Membership,
    PhysicsGroup,
    ProductionCode,
    StageTemplate,
    TrainingRecord,
    WorkflowTemplate,
)
from .services.audit import record


def _experiment_of(obj):
    if isinstance(obj, Experiment):
        return obj
    experiment_id = getattr(obj, "experiment_id", None)
    return Experiment.objects.filter(pk=experiment_id).first() if experiment_id else None


def _value(obj, name: str):
    value = getattr(obj, name, None)
    return value if isinstance(value, bool | int | float | type(None)) else str(value)


def _audit(request, verb: str, obj, fields=()) -> None:
    """Changes made in the admin join the audit trail like those made by the services."""
    record(
        f"admin_{verb}_{obj._meta.model_name}",
        f"{obj._meta.verbose_name} {obj}",
        actor=request.user,
        experiment=_experiment_of(obj)
        if verb != "delete" or not isinstance(obj, Experiment)
        else None,
        changed={
            name: _value(obj, name) for name in fields if name in {f.name for f in obj._meta.fields}
        },
    )


class AuditedAdmin(admin.ModelAdmin):
    """Every add, change and delete of access or eligibility records is audited."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            _audit(request, "change", obj, form.changed_data)
        elif not change:
            _audit(request, "add", obj, [f.name for f in obj._meta.concrete_fields])

    def delete_model(self, request, obj):
        _audit(request, "delete", obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            _audit(request, "delete", obj)
        super().delete_queryset(request, queryset)

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects:
            _audit(request, "add", obj)
        for obj, fields in formset.changed_objects:
            _audit(request, "change", obj, fields)
        for obj in formset.deleted_objects:
            _audit(request, "delete", obj)


class PhysicsGroupInline(admin.TabularInline):
    model = PhysicsGroup
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Experiment)
class ExperimentAdmin(AuditedAdmin):
    list_display = [
        "slug",
        "name",
        "sla_accepted_on",
        "default_backend",
        "job_quota",
        "batch_partition",
    ]
    search_fields = ["slug", "name"]
    inlines = [PhysicsGroupInline, MembershipInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "slug",
                    "name",
                    "description",
                    "sla_accepted_on",
                    "sla_reference",
                    "default_backend",
                    "job_quota",
                ]
            },
        ),
        (
            "Where the work runs",
            {
                "description": "Empty: the site's default. Campaigns may override the "
                "partition, account, QOS and requirements. A change moves the queued jobs "
                "of open campaigns that have not started.",
                "fields": list(events.PLACEMENT_FIELDS),
            },
        ),
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "default_backend":
            # The configured endpoints, read when the form is made (no fixed choices).
            return forms.ChoiceField(
                choices=endpoints.choices,
                label="Default backend",
                help_text=db_field.help_text,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        moved = [f for f in form.changed_data if f in events.PLACEMENT_FIELDS]
        if change and moved:
            # In the admin's transaction, with the audit record AuditedAdmin just wrote.
            events.experiment_placement_changed.send(
                sender=Experiment,
                experiment=obj,
                actor=request.user,
                changes={f: [form.initial.get(f, ""), getattr(obj, f)] for f in moved},
            )


@admin.register(PhysicsGroup)
class PhysicsGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "experiment"]
    list_filter = ["experiment"]
    search_fields = ["name", "slug"]


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "experiment", "role", "created"]
    list_filter = ["experiment", "role"]
    search_fields = ["user__username", "user__email"]
    autocomplete_fields = ["user"]


@admin.register(GlobalRole)
class GlobalRoleAdmin(AuditedAdmin):
    list_display = ["user", "role", "created"]
    list_filter = ["role"]
    autocomplete_fields = ["user"]


@admin.register(TrainingRecord)
class TrainingRecordAdmin(AuditedAdmin):
    list_display = ["experiment", "held_on", "topics", "recorded_by"]
    list_filter = ["experiment"]
    filter_horizontal = ["attendees"]


@admin.register(ProductionCode)
class ProductionCodeAdmin(AuditedAdmin):
    list_display = ["name", "version", "experiment", "kind", "approved", "sha256"]
    list_filter = ["experiment", "kind", "approved"]
    search_fields = ["name", "location", "sha256"]
    filter_horizontal = ["owners"]


class StageTemplateInline(admin.StackedInline):
    model = StageTemplate
    extra = 0
    fk_name = "template"


@admin.register(WorkflowTemplate)
class WorkflowTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "experiment", "updated"]
    list_filter = ["experiment"]
    search_fields = ["name"]
    inlines = [StageTemplateInline]


@admin.register(AuditEvent)
class AuditEventAdmin(RecordAdmin):
    """Read-only: the audit trail is never edited."""

    list_display = ["created", "actor", "action", "experiment", "target"]
    list_filter = ["action", "experiment"]
    search_fields = ["target"]
