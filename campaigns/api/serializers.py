"""JSON shapes of campaigns, their plans and workflow templates."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.fields import SlugReference
from experiments.api.fields import EndpointField
from experiments.api.placement import placement_field
from experiments.models import Experiment, StageTemplate, WorkflowTemplate
from requests_app.choices import Priority

from ..choices import CampaignState, Feasibility, JobState, WaitReason
from ..models import BatchControl, Campaign
from ..services.controls import summary as controls_summary
from ..services.overview import CampaignPlan
from ..workflow import OPERATOR_ACTIONS


class CampaignRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    title = serializers.CharField()
    state = serializers.CharField()
    deadline = serializers.DateField()


class JobsByStateSerializer(serializers.Serializer):
    """Jobs by state (from the stage counters) and the number planned."""

    total = serializers.IntegerField()
    planned = serializers.IntegerField()
    ready = serializers.IntegerField()
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    held = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    lost = serializers.IntegerField()


class BatchControlsSerializer(serializers.Serializer):
    """Controls (hold, release, priority, move) for jobs queued at the batch system: still
    to be sent, and refused for good (each job's answer: ``/batch-controls/``)."""

    pending = serializers.IntegerField()
    failed = serializers.IntegerField()


class BatchControlSerializer(serializers.ModelSerializer):
    batch_id = serializers.CharField(source="job.batch_id", read_only=True)

    class Meta:
        model = BatchControl
        fields = [
            "id",
            "job",
            "batch_id",
            "action",
            "value",
            "state",
            "attempts",
            "detail",
            "event",
            "created",
            "answered_at",
        ]
        read_only_fields = fields


PLACEMENT_HELP = {
    "batch_partition": "Slurm partition; empty: the experiment's. Queued jobs move with it.",
    "batch_account": "Slurm account, HTCondor accounting group; empty: the experiment's.",
    "batch_qos": "Slurm QOS; empty: the experiment's.",
    "batch_requirements": "HTCondor requirements (a ClassAd expression); empty: the experiment's.",
}


class PlacementInputSerializer(serializers.Serializer):
    """Where a campaign's work runs; the service checks the names and that the partition is
    not one the experiment must avoid."""

    batch_partition = placement_field("batch_partition", PLACEMENT_HELP)
    batch_account = placement_field("batch_account", PLACEMENT_HELP)
    batch_qos = placement_field("batch_qos", PLACEMENT_HELP)
    batch_requirements = placement_field("batch_requirements", PLACEMENT_HELP)


class CampaignSerializer(serializers.ModelSerializer):
    experiment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    batch_controls = serializers.SerializerMethodField()
    batch_partition = serializers.CharField(read_only=True)
    batch_account = serializers.CharField(read_only=True)
    batch_qos = serializers.CharField(read_only=True)
    batch_requirements = serializers.CharField(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    requests = serializers.SerializerMethodField()
    jobs = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "id",
            "experiment",
            "name",
            "description",
            "deadline",
            "priority",
            "state",
            "throttle",
            "backend",
            "batch_partition",
            "batch_account",
            "batch_qos",
            "batch_requirements",
            "batch_controls",
            "cancel_pending",
            "created_by",
            "created",
            "launched_at",
            "completed_at",
            "cancelled_at",
            "test_jobs",
            "test_auto_continue",
            "test_phase",
            "test_result",
            "completion_pct",
            "requests",
            "jobs",
        ]
        read_only_fields = fields

    @extend_schema_field(BatchControlsSerializer)
    def get_batch_controls(self, obj: Campaign) -> dict:
        if hasattr(obj, "controls_pending"):  # annotated by the list (no query per row)
            return {"pending": obj.controls_pending, "failed": obj.controls_failed}
        counts = controls_summary([obj.pk]).get(obj.pk, {})
        return {"pending": counts.get("pending", 0), "failed": counts.get("failed", 0)}

    @extend_schema_field(CampaignRequestSerializer(many=True))
    def get_requests(self, obj: Campaign) -> list[dict]:
        return CampaignRequestSerializer([link.request for link in obj.links.all()], many=True).data

    @extend_schema_field(JobsByStateSerializer)
    def get_jobs(self, obj: Campaign) -> dict:
        counts = {state: getattr(obj, f"jobs_{state}", 0) or 0 for state in JobState.values}
        return JobsByStateSerializer({"total": getattr(obj, "jobs_total", 0) or 0, **counts}).data


class CampaignCreateSerializer(PlacementInputSerializer):
    experiment = SlugReference(slug_field="slug", queryset=Experiment.objects.all())
    name = serializers.CharField(max_length=120)
    deadline = serializers.DateField()
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.NORMAL)
    throttle = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    backend = EndpointField(
        required=False,
        allow_blank=True,
        help_text="A configured batch endpoint; empty: the experiment's default.",
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class CampaignUpdateSerializer(PlacementInputSerializer):
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    deadline = serializers.DateField(required=False)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    throttle = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    backend = EndpointField(required=False)
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=5000,
        help_text="Why: required when the priority or the deadline changes (recorded).",
    )


class ScheduleSerializer(serializers.Serializer):
    requests = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        allow_empty=False,
        max_length=200,
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class ScheduleResultSerializer(serializers.Serializer):
    campaign = serializers.IntegerField()
    scheduled = serializers.ListField(child=serializers.CharField())
    stages = serializers.IntegerField()
    jobs = serializers.IntegerField()


class RemoveRequestSerializer(serializers.Serializer):
    request = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, help_text="The request's id."
    )
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=5000,
        help_text="Why the request leaves the campaign: required (a blank one is refused, 400).",
    )


class ActionSerializer(serializers.Serializer):
    # "recover" is no state change: it resubmits failed jobs and missing outputs.
    action = serializers.ChoiceField(choices=[*OPERATOR_ACTIONS, "recover"])
    stage = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="recover: only this stage."
    )
    note = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=5000,
        help_text="Recorded with the action; cancel requires it (a blank one is refused, 400).",
    )


class ForecastSerializer(serializers.Serializer):
    deadline = serializers.DateTimeField()
    projected_finish = serializers.DateTimeField(source="finish", allow_null=True)
    status = serializers.ChoiceField(choices=Feasibility.choices)
    remaining_jobs = serializers.IntegerField()
    message = serializers.CharField()


class PlanStageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    request = serializers.IntegerField()
    sample = serializers.CharField()
    position = serializers.IntegerField()
    name = serializers.CharField()
    jobs_total = serializers.IntegerField()
    jobs = JobsByStateSerializer()
    in_flight = serializers.IntegerField()
    walltime_estimate_s = serializers.IntegerField()
    submit_now = serializers.IntegerField(help_text="Jobs the scheduler lets it submit this cycle.")
    waiting_reason = serializers.ChoiceField(choices=WaitReason.choices, allow_null=True)
    waiting_detail = serializers.CharField(allow_blank=True)


class PlanRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    title = serializers.CharField()
    state = serializers.CharField()
    forecast = ForecastSerializer(allow_null=True)


class PlanSerializer(serializers.Serializer):
    campaign = serializers.IntegerField()
    state = serializers.ChoiceField(choices=CampaignState.choices)
    jobs = JobsByStateSerializer()
    forecast = ForecastSerializer(allow_null=True)
    rank = serializers.IntegerField(
        allow_null=True, help_text="Place in the scheduler's order (0: served first)."
    )
    slack_s = serializers.FloatField(allow_null=True)
    requests = PlanRequestSerializer(many=True)
    stages = PlanStageSerializer(many=True)


def _forecast(forecast) -> dict | None:
    if forecast is None:
        return None
    return {
        "deadline": forecast.deadline,
        "finish": forecast.finish,
        "status": forecast.status,
        "remaining_jobs": forecast.remaining_jobs,
        "message": forecast.message,
    }


def plan_payload(plan: CampaignPlan) -> dict:
    """The plan as plain data for ``PlanSerializer``."""
    decision = plan.decision
    slack = decision.slack_s if decision else None
    return {
        "campaign": plan.campaign.pk,
        "state": plan.campaign.state,
        "jobs": {"total": plan.jobs_total, **plan.counts},
        "forecast": _forecast(plan.forecast),
        "rank": decision.rank if decision else None,
        "slack_s": slack if slack is None or abs(slack) != float("inf") else None,
        "requests": [
            {
                "id": row.request.pk,
                "number": row.request.number,
                "title": row.request.title,
                "state": row.request.state,
                "forecast": _forecast(row.forecast),
            }
            for row in plan.requests
        ],
        "stages": [
            {
                "id": row.stage.pk,
                "request": row.stage.request_id,
                "sample": row.stage.sample.name,
                "position": row.stage.position,
                "name": row.stage.name,
                "jobs_total": row.stage.jobs_total,
                "jobs": {"total": row.stage.jobs_total, **row.counts},
                "in_flight": row.stage.in_flight,
                "walltime_estimate_s": row.stage.walltime_estimate_s,
                "submit_now": row.submit_now,
                "waiting_reason": row.reason,
                "waiting_detail": row.detail,
            }
            for row in plan.stages
        ],
    }


class CodeRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.CharField()
    sha256 = serializers.CharField()


class StageTemplateSerializer(serializers.ModelSerializer):
    code = CodeRefSerializer()
    input_stage = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = StageTemplate
        fields = [
            "position",
            "name",
            "code",
            "parameters",
            "cores",
            "memory_mb",
            "walltime_s",
            "split",
            "files_per_job",
            "input_stage",
        ]


class WorkflowTemplateSerializer(serializers.ModelSerializer):
    experiment = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    stages = StageTemplateSerializer(many=True, read_only=True)

    class Meta:
        model = WorkflowTemplate
        fields = [
            "id",
            "experiment",
            "name",
            "version",
            "description",
            "cloned_from",
            "created",
            "updated",
            "stages",
        ]
