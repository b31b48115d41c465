"""Operators' SLA records in the browser: training sessions and registered production code."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from common.errors import PermissionDenied as NotAllowed
from common.forms import attach_errors

from .access import operator_required
from .forms import CodeForm, TrainingForm
from .models import ProductionCode, TrainingRecord
from .services import approve_code, record_training, register_code

PAGE_SIZE = 50


@operator_required
def training_list(request):
    records = (
        TrainingRecord.objects.visible_to(request.user)
        .select_related("experiment", "recorded_by")
        .prefetch_related("attendees")
        .order_by("-held_on", "-id")
    )
    page = Paginator(records, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "experiments/training_list.html", {"page": page})


@operator_required
def training_new(request):
    # The request page's "Record a training session" link names the experiment.
    wanted = request.GET.get("experiment", "")
    initial = {"experiment": int(wanted)} if wanted.isdigit() else {}
    form = TrainingForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            record = record_training(
                request.user,
                data["experiment"],
                data["held_on"],
                data["topics"],
                list(data["attendees"]),
                data["notes"],
            )
        except NotAllowed as exc:
            raise PermissionDenied(str(exc)) from exc
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, f"Recorded: {record}.")
            return redirect("experiments:training_list")
    return render(request, "experiments/training_form.html", {"form": form})


@operator_required
def code_list(request):
    codes = (
        ProductionCode.objects.visible_to(request.user)
        .select_related("experiment", "approved_by")
        .prefetch_related("owners")
        .order_by("experiment__name", "name", "-created")
    )
    page = Paginator(codes, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "experiments/code_list.html", {"page": page})


@operator_required
def code_new(request):
    form = CodeForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            code = register_code(
                request.user,
                data["experiment"],
                name=data["name"],
                version=data["version"],
                kind=data["kind"],
                location=data["location"],
                sha256=data["sha256"],
                owners=form.owner_users(),
                upload=data["upload"],
                approve=data["approve"],
            )
        except NotAllowed as exc:
            raise PermissionDenied(str(exc)) from exc
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            state = "registered and approved" if code.approved else "registered"
            messages.success(request, f"{code} {state} for {code.experiment.name}.")
            return redirect("experiments:code_list")
    return render(request, "experiments/code_form.html", {"form": form})


@operator_required
@require_POST
def code_approve(request, pk: int):
    code = get_object_or_404(ProductionCode.objects.visible_to(request.user), pk=pk)
    try:
        code = approve_code(request.user, code)
    except NotAllowed as exc:
        raise PermissionDenied(str(exc)) from exc
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{code} approved.")
    return redirect("experiments:code_list")
