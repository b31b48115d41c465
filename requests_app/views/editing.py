"""Filing and editing a request: the form with its sample lines, and operators' changes."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import redirect, render

from common.errors import PermissionDenied as NotAllowed
from experiments.choices import ExperimentRole
from experiments.models.visibility import experiment_roles

from ..choices import RequestState
from ..forms import (
    FilingOptions,
    OperatorChangeForm,
    RequestForm,
    attach_errors,
    form_values,
    sample_formset,
    sample_initial,
)
from ..models import ProductionRequest
from ..services import (
    TransitionError,
    allowed_actions,
    create_request,
    editable_fields,
    transition,
    update_request,
)
from .access import edit_mode, visible_request


@login_required
def request_new(request):
    """File a request for an experiment the user may file for."""
    options = FilingOptions.load(request.user)
    if not options.experiments:
        raise PermissionDenied("Only an experiment's liaisons and operators file requests.")
    initial = {}
    if request.GET.get("experiment") in options.experiments:
        initial["experiment"] = request.GET["experiment"]
    roles = experiment_roles(request.user)
    can_submit = any(
        roles.get(e.id) == ExperimentRole.LIAISON for e in options.experiments.values()
    )
    return _request_form_page(request, options, None, initial, [], can_submit)


@login_required
def request_edit(request, number):
    """Edit a draft (or a request sent back for information); operators' changes later on."""
    obj = visible_request(request.user, number)
    mode = edit_mode(editable_fields(request.user, obj))
    if mode is None:
        raise PermissionDenied(
            f"{obj.number} cannot be edited by you while it is {obj.get_state_display().lower()}."
        )
    if mode == "operator":
        return _operator_change_page(request, obj)
    initial = {
        "ticket": obj.ticket,
        "physics_group": obj.physics_group_id,
        "title": obj.title,
        "description": obj.description,
        "deadline": obj.deadline,
        "priority": obj.priority,
    }
    lines = [sample_initial(s) for s in obj.samples.order_by("id")]
    can_submit = any(a.name == "submit" for a in allowed_actions(request.user, obj))
    options = FilingOptions.load(request.user, obj.experiment)
    return _request_form_page(request, options, obj, initial, lines, can_submit)


def _request_form_page(request, options, obj, initial, lines, can_submit):
    """Show, re-show with every value kept and each error by its field, or save."""
    fixed = obj.experiment if obj is not None else None
    intent = request.POST.get("intent", "save")
    draft = obj is None or obj.state == RequestState.DRAFT
    sample_errors: list[str] = []
    if request.method != "POST":
        form = RequestForm(initial=initial, options=options, experiment=fixed, draft=draft)
        formset = _formset(options, fixed or form.selected_experiment(), initial=lines)
    else:
        form = RequestForm(
            request.POST, initial=initial, options=options, experiment=fixed, draft=draft
        )
        formset = _formset(options, form.selected_experiment(), data=request.POST)
        if intent == "add_line":
            # No script in the browser: add a line by re-showing what was typed, unsaved.
            form = RequestForm(
                initial=form_values(form), options=options, experiment=fixed, draft=draft
            )
            kept = [form_values(f) for f in formset.kept_forms()]
            formset = _formset(options, form.selected_experiment(), initial=kept, extra=1)
        elif all([form.is_valid(), formset.is_valid()]):
            try:
                saved = _save(request.user, obj, form, formset, submit=intent == "submit")
            except NotAllowed as exc:
                raise PermissionDenied(str(exc)) from exc
            except ValidationError as exc:
                sample_errors = _attach_service_errors(form, formset, exc)
            except TransitionError as exc:
                sample_errors = _attach_refusal(form, exc)
            else:
                done = "submitted" if intent == "submit" else "saved"
                messages.success(request, f"{saved.number} {done}.")
                return redirect(saved)
    templates = options.template_reference()
    return render(
        request,
        "requests_app/request_form.html",
        {
            "object": obj,
            "form": form,
            "formset": formset,
            "sample_errors": sample_errors,
            "can_submit": can_submit,
            "templates": templates,
            "template_specs": {str(t["id"]): t["parameters"] for t in templates},
        },
    )


def _formset(options, experiment, data=None, initial=None, extra=None):
    if extra is None:
        extra = 0 if initial else 1
    return sample_formset(
        data,
        initial=initial,
        extra=extra,
        form_kwargs={"options": options, "experiment": experiment},
    )


def _save(user, obj, form, formset, submit: bool) -> ProductionRequest:
    """Create or update, then submit if asked: all or nothing, so a refused submit saves nothing."""
    lines = formset.lines()
    with transaction.atomic():
        if obj is None:
            experiment = form.cleaned_data["experiment"]
            saved = create_request(user, experiment, form.request_data(), lines, incomplete=True)
        else:
            data = form.request_data(only_changed=True)
            samples = lines if _lines_changed(obj, lines) else None
            saved = obj
            if data or samples is not None:
                saved = update_request(obj, user, data, samples)
        if submit:
            saved = transition(saved, "submit", user)
    return saved


def _line_key(line) -> tuple:
    return (
        line["name"],
        line["template"].pk,
        line["events"],
        line["events_per_job"],
        line["parameters"],
        line["input_dataset"],
        line["output_dataset"],
    )


def _lines_changed(obj: ProductionRequest, lines: list[dict]) -> bool:
    """Only rewrite the sample lines (and record it) when they really changed."""
    current = [
        {**sample_initial(s), "template": s.template, "parameters": s.parameters}
        for s in obj.samples.select_related("template").order_by("id")
    ]
    return [_line_key(c) for c in current] != [_line_key(line) for line in lines]


def _attach_service_errors(form, formset, exc: ValidationError) -> list[str]:
    """Request-field errors go by their fields; sample errors by their lines."""
    sample_errors: list[str] = []
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return sample_errors
    kept = formset.kept_forms()
    for index, error in enumerate(exc.error_dict.pop("samples", [])):
        if hasattr(error, "error_dict") and index < len(kept):
            attach_errors(kept[index], error)
        else:
            sample_errors.extend(error.messages)
    if exc.error_dict:
        attach_errors(form, exc)
    return sample_errors


def _attach_refusal(form, exc: TransitionError) -> list[str]:
    """A refused submit: its reasons read ``field: message``; put each by its field."""
    form.add_error(None, exc.detail)
    sample_errors: list[str] = []
    for reason in exc.reasons:
        field, _, message = reason.partition(": ")
        if field == "samples":
            sample_errors.append(message)
        elif message and field in form.fields:
            form.add_error(field, message)
        else:
            form.add_error(None, reason)
    return sample_errors


def _operator_change_page(request, obj: ProductionRequest):
    """Priority, deadline and assignee once the request is under way, with a reason."""
    initial = {"priority": obj.priority, "deadline": obj.deadline, "assignee": obj.assignee_id}
    form = OperatorChangeForm(
        request.POST if request.method == "POST" else None,
        initial=initial,
        experiment=obj.experiment,
    )
    if request.method == "POST" and form.is_valid():
        try:
            update_request(obj, request.user, form.changes(), note=form.cleaned_data["reason"])
        except NotAllowed as exc:
            raise PermissionDenied(str(exc)) from exc
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, f"{obj.number} updated.")
            return redirect(obj)
    return render(request, "requests_app/request_change.html", {"object": obj, "form": form})
