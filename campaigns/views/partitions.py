"""The operators' partitions page: each partition's capacity, the experiments' quotas on it,
and what is in flight there; declaring, changing and removing them (through
``services.partitions``, which checks and audits)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from experiments.access import operator_required
from experiments.models import Experiment

from ..forms import PartitionForm, PartitionQuotaForm
from ..models import Partition
from ..services import CampaignError
from ..services import partitions as service
from .access import form_errors, refused


@operator_required
@require_http_methods(["GET", "POST"])
def partition_list(request):
    """Every declared partition with its quotas and load; the form declares or changes one."""
    form = PartitionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            partition = service.set_partition(
                request.user,
                data["name"],
                data["capacity"],
                backend=data["backend"],
                description=data["description"],
                reason=data["reason"],
            )
        except CampaignError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, f"{partition}: capacity {partition.capacity} jobs.")
            return redirect("campaigns:partitions")
    usage = service.partition_usage()
    experiments = _experiments()
    for u in usage:
        u.quota_form = PartitionQuotaForm(experiments=experiments, auto_id=f"q{u.partition.pk}_%s")
    return render(request, "campaigns/partitions.html", {"usage": usage, "form": form})


def _experiments() -> list[tuple[str, str]]:
    return list(Experiment.objects.order_by("name").values_list("slug", "name"))


@require_POST
@operator_required
def partition_quota(request, pk: int):
    partition = get_object_or_404(Partition, pk=pk)
    form = PartitionQuotaForm(request.POST, experiments=_experiments())
    if not form.is_valid():
        for field, errors in form.errors.items():
            for error in errors:
                messages.error(request, f"{field}: {error}" if field != "__all__" else error)
        return redirect("campaigns:partitions")
    data = form.cleaned_data
    try:
        quota = service.set_quota(
            request.user,
            partition,
            Experiment.objects.get(slug=data["experiment"]),
            max_jobs=data["max_jobs"],
            share_pct=data["share_pct"],
            reason=data["reason"],
        )
    except CampaignError as exc:
        refused(request, exc)
    else:
        who = f"{data['experiment']} on {partition}"
        messages.success(
            request,
            f"{who}: at most {quota.limit} jobs." if quota else f"{who}: quota removed.",
        )
    return redirect("campaigns:partitions")


@require_POST
@operator_required
def partition_remove(request, pk: int):
    partition = get_object_or_404(Partition, pk=pk)
    try:
        service.remove_partition(request.user, partition, request.POST.get("reason", "")[:2000])
    except CampaignError as exc:
        refused(request, exc)
    else:
        messages.success(request, f"{partition} removed: its work has no limit of its own.")
    return redirect("campaigns:partitions")
