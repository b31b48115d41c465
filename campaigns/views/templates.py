"""Workflow template pages: list, detail, clone into an experiment, import and export YAML."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from experiments.access import operator_required
from experiments.models import WorkflowTemplate
from experiments.models.visibility import is_operator

from ..forms import CloneForm, ImportForm
from ..services import CampaignError, clone_template, export_template, import_template


def _visible_template(user, pk: int) -> WorkflowTemplate:
    return get_object_or_404(
        WorkflowTemplate.objects.visible_to(user).select_related("experiment", "cloned_from"),
        pk=pk,
    )


@login_required
def template_list(request):
    """Shared templates and those of the user's experiments."""
    templates = (
        WorkflowTemplate.objects.visible_to(request.user)
        .select_related("experiment")
        .annotate(stage_count=Count("stages"))
        .order_by("experiment__name", "name", "version")
    )
    return render(
        request,
        "campaigns/template_list.html",
        {"templates": templates, "operator": is_operator(request.user)},
    )


@login_required
def template_detail(request, pk: int):
    template = _visible_template(request.user, pk)
    stages = template.stages.select_related("code__experiment", "input_stage").order_by("position")
    return render(
        request,
        "campaigns/template_detail.html",
        {
            "template": template,
            "stages": stages,
            "operator": is_operator(request.user),
            "clone_form": CloneForm(initial={"name": template.name}),
        },
    )


@require_POST
@operator_required
def template_clone(request, pk: int):
    """Copy a template into an experiment, to adopt and adapt it."""
    template = _visible_template(request.user, pk)
    form = CloneForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose the experiment to clone into.")
        return redirect("campaigns:template_detail", pk=pk)
    try:
        clone, warnings = clone_template(
            template, form.cleaned_data["experiment"], request.user, form.cleaned_data["name"]
        )
    except CampaignError as exc:
        messages.error(request, str(exc))
        return redirect("campaigns:template_detail", pk=pk)
    messages.success(
        request, f"Cloned into {clone.experiment.name} as {clone.name} v{clone.version}."
    )
    for warning in warnings:
        messages.warning(request, warning)
    return redirect("campaigns:template_detail", pk=clone.pk)


@operator_required
def template_import(request):
    """Import a template from YAML; every problem is listed with its line and field."""
    form = ImportForm(request.POST or None, request.FILES or None)
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        text = upload.read() if upload else form.cleaned_data["text"]
        try:
            template = import_template(text, form.cleaned_data["experiment"], request.user)
        except CampaignError as exc:
            problems = [exc.detail, *exc.reasons]
        else:
            messages.success(request, f"Imported {template.name} v{template.version}.")
            return redirect(reverse("campaigns:template_detail", args=[template.pk]))
    return render(request, "campaigns/template_import.html", {"form": form, "problems": problems})


@login_required
def template_export(request, pk: int):
    """The template as a YAML file to import elsewhere."""
    template = _visible_template(request.user, pk)
    response = HttpResponse(export_template(template), content_type="application/yaml")
    filename = f"{slugify(template.name) or 'template'}-v{template.version}.yaml"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
