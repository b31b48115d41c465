"""``GET /api/v1/campaigns/{id}/progress/`` and ``GET /api/v1/requests/{id}/progress/``.

Progress against the deadline, in one answer: events done of the target, jobs by
state (stage counters), throughput, the ETA with its band, the status, milestones
and the (thinned) snapshot series. A bounded number of queries whatever the
number of jobs. Work the caller may not see is a 404, never a 403.
"""

from __future__ import annotations

import datetime as dt

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.choices import JobState
from campaigns.models import Campaign
from common import pagecache
from common.api_errors import ProblemSerializer
from requests_app.models import ProductionRequest

from .choices import CommitmentStatus, ForecastBasis, MilestoneKind, ProgressStatus
from .services.dashboards import Detail, campaign_detail, request_detail

JobCountsSerializer = type(
    "JobCountsSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "Jobs by the state of their latest attempt (every stage), from the stage "
        "counters: a job retried is counted once.",
        **{state: serializers.IntegerField(min_value=0) for state in JobState.values},
    },
)
MilestonesSerializer = type(
    "MilestonesSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "When each milestone was first reached (null: not yet). "
        "``full_speed`` is a campaign's only.",
        **{kind: serializers.DateTimeField(allow_null=True) for kind in MilestoneKind.values},
    },
)


class SnapshotPointSerializer(serializers.Serializer):
    """One point of the progress history."""

    taken_at = serializers.DateTimeField()
    events_done = serializers.IntegerField(min_value=0)
    succeeded = serializers.IntegerField(min_value=0, help_text="Jobs succeeded, every stage.")


class ThroughputSerializer(serializers.Serializer):
    window_hours = serializers.FloatField()
    events_per_hour = serializers.FloatField(allow_null=True)
    jobs_per_hour = serializers.FloatField(allow_null=True)


class CommitmentSerializer(serializers.Serializer):
    """A promised milestone against its actual or forecast moment."""

    kind = serializers.ChoiceField(choices=MilestoneKind.choices)
    label = serializers.CharField(help_text='As said: "start", "full speed", "50 %", "100 %".')
    promised_at = serializers.DateTimeField()
    actual_at = serializers.DateTimeField(allow_null=True, help_text="When it was reached.")
    forecast_at = serializers.DateTimeField(
        allow_null=True, help_text="When it is expected (not reached yet; null: no forecast)."
    )
    status = serializers.ChoiceField(choices=CommitmentStatus.choices)
    text = serializers.CharField(
        help_text='In words: "50 %: promised Dec 2 12:00, forecast Dec 3 04:00, at risk".'
    )
    confirmed_by = serializers.CharField(allow_null=True)
    confirmed_at = serializers.DateTimeField()


class ProgressSerializer(serializers.Serializer):
    """Progress of a campaign or a request against its deadline."""

    id = serializers.IntegerField()
    events_done = serializers.IntegerField(min_value=0)
    events_target = serializers.IntegerField(min_value=0)
    percent = serializers.FloatField()
    jobs = JobCountsSerializer()
    jobs_total = serializers.IntegerField(min_value=0, help_text="Jobs planned (indexes).")
    attempts_retried = serializers.IntegerField(
        min_value=0,
        help_text="Attempts that failed (were lost or cancelled) and were tried again: not "
        "in ``jobs``, which counts each job once, in the state of its latest attempt.",
    )
    throughput_per_hour = serializers.FloatField(
        allow_null=True, help_text="Events per hour over the shortest window with data."
    )
    throughput = ThroughputSerializer(many=True)
    eta = serializers.DateTimeField(allow_null=True)
    eta_low = serializers.DateTimeField(allow_null=True, help_text="The fast end of the band.")
    eta_high = serializers.DateTimeField(allow_null=True, help_text="The slow end of the band.")
    deadline = serializers.DateTimeField(help_text="The end of the deadline day.")
    status = serializers.ChoiceField(choices=ProgressStatus.choices)
    blocked_reason = serializers.CharField(
        allow_blank=True,
        help_text='With status `blocked`: why, and what is needed (e.g. "10 jobs of '
        'simulation gave up: recover"); the ETA is then null.',
    )
    basis = serializers.ChoiceField(
        choices=ForecastBasis.choices,
        help_text="`measured`: from throughput; `estimate`: the scheduler's projection, "
        "before any event is done.",
    )
    hold_seconds = serializers.IntegerField(min_value=0)
    milestones = MilestonesSerializer()
    commitments = CommitmentSerializer(
        many=True, help_text="What was promised (empty: nothing yet), judged now."
    )
    snapshots = SnapshotPointSerializer(many=True)


def parse_since(value: str | None) -> dt.datetime | None:
    """``?since=`` as an aware moment (ISO date or date-time), or a 400."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError({"since": ["an ISO 8601 date or date-time"]}) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def payload(pk: int, detail: Detail) -> dict:
    """The progress answer of a campaign or request page's data, but its snapshots."""
    p, f = detail.progress, detail.forecast
    return {
        "id": pk,
        "events_done": p.events_done,
        "events_target": p.events_target,
        "percent": p.percent,
        "jobs": p.jobs,
        "jobs_total": p.jobs_total,
        "attempts_retried": p.attempts_retried,
        "throughput_per_hour": f.throughput_per_hour,
        "throughput": [
            {
                "window_hours": t.window_s / 3600,
                "events_per_hour": t.events_per_hour,
                "jobs_per_hour": t.jobs_per_hour,
            }
            for t in detail.throughput
        ],
        "eta": f.eta,
        "eta_low": f.eta_low,
        "eta_high": f.eta_high,
        "deadline": f.deadline,
        "status": f.status,
        "blocked_reason": f.reason,
        "basis": f.basis,
        "hold_seconds": detail.hold_s,
        "milestones": {kind: detail.milestone_times.get(kind) for kind in MilestoneKind.values},
        "commitments": [row.as_dict() for row in detail.commitments],
        "snapshots": [],
    }


def answer(pk: int, detail: Detail, since: dt.datetime | None) -> Response:
    """The serialized answer. The snapshot series (hundreds of points, most of the
    answer) comes already rendered from the history cache, exactly as
    ``SnapshotPointSerializer`` writes it, instead of field by field."""
    data = ProgressSerializer(payload(pk, detail)).data
    data["snapshots"] = detail.snapshots.api(since) if detail.snapshots else []
    return Response(data)


SINCE = OpenApiParameter(
    "since",
    OpenApiTypes.DATETIME,
    description="Only snapshots taken at or after this moment.",
    required=False,
)


class CampaignProgressView(APIView):
    """Progress of a campaign against its deadline."""

    @extend_schema(
        operation_id="campaigns_progress_retrieve",
        summary="A campaign's progress, forecast, milestones and history",
        tags=["campaigns"],
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH), SINCE],
        responses={200: ProgressSerializer, 404: ProblemSerializer},
    )
    def get(self, request: Request, id: int) -> Response:
        campaign = get_object_or_404(
            Campaign.objects.visible_to(request.user).select_related("experiment"), pk=id
        )
        since = parse_since(request.query_params.get("since"))

        # The same answer for everyone who may see the campaign (checked above): shared
        # through the page cache, keyed by the query string.
        def build() -> dict:
            detail = campaign_detail(campaign, triage=False, full=False)
            return answer(campaign.pk, detail, since).data

        return pagecache.api_answer(self, request, "campaign-progress", [campaign.pk], "all", build)


class RequestProgressView(APIView):
    """Progress of a production request against its deadline."""

    @extend_schema(
        operation_id="requests_progress_retrieve",
        summary="A request's progress, forecast, milestones and history",
        description="`id` is the request's id or its number (`DUNE-2026-0042`).",
        tags=["requests"],
        parameters=[OpenApiParameter("id", str, OpenApiParameter.PATH), SINCE],
        responses={200: ProgressSerializer, 404: ProblemSerializer},
    )
    def get(self, request: Request, id: str) -> Response:
        key = "pk" if id.isdigit() else "number"
        production_request = get_object_or_404(
            ProductionRequest.objects.visible_to(request.user).select_related("experiment"),
            **{key: id},
        )
        since = parse_since(request.query_params.get("since"))
        detail = request_detail(production_request, timeline=False, full=False)
        return answer(production_request.pk, detail, since)
