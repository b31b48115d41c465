"""Catalogue pages: datasets, their files, and the dataset lifecycle.

Counts come from the dataset counters and lists are paginated, so a page costs a fixed
number of queries whatever the catalogue's size. Each lifecycle action has a page of its
own (GET: what it does and a required reason; POST: the action, then back to the dataset:
POST-redirect-GET), so nothing needs a script and the CSP stays strict.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render

from experiments.models.visibility import is_operator

from ..execution import lifecycle
from ..models import Dataset, DatasetState, OutputFile, Stage
from ..services import CampaignError
from .access import refused

PAGE = 50
REMAKE_FROM = frozenset({DatasetState.OPEN, DatasetState.INVALID})


@dataclass(frozen=True)
class Move:
    name: str
    label: str
    consequence: str
    operators_only: bool = False


MOVES = {
    m.name: m
    for m in [
        Move(
            "close",
            "Close",
            "The dataset becomes closed (complete): no more files may be added to it, and "
            "recoveries leave its stage alone until it is reopened.",
        ),
        Move("reopen", "Reopen", "The dataset is open again: recoveries may add files to it."),
        Move(
            "retire",
            "Retire",
            "The dataset is hidden from the default listings. Its files, counts and history "
            "are kept; it can still be opened by its address and listed with “Show retired”.",
        ),
        Move(
            "invalidate",
            "Invalidate",
            "Every file of the dataset becomes invalid: out of its counts and of the inputs of "
            "jobs not yet submitted. Files made from them are marked “made from invalid "
            "input”. The files stay listed, with your reason.",
        ),
        Move(
            "remake",
            "Remake",
            "The jobs that made the invalidated files run again, as new attempts (a "
            "recovery of the producing stage; its campaign must still be open).",
            operators_only=True,
        ),
    ]
}
INVALIDATE_FILES = Move(
    "files",
    "Invalidate files",
    "These files become invalid: out of the dataset's counts and of the inputs of jobs not "
    "yet submitted. Files made from them are marked “made from invalid input”.",
)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=lifecycle.MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded in the audit trail and shown on the dataset.",
        error_messages={"required": "A reason is required."},
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


def _page(request, queryset):
    return Paginator(queryset, PAGE).get_page(request.GET.get("page"))


def _visible(user, pk: int) -> Dataset:
    return get_object_or_404(
        Dataset.objects.visible_to(user).select_related("experiment", "campaign", "state_by"),
        pk=pk,
    )


@login_required
def dataset_list(request):
    """Datasets the user may see, with file counts, size and events (from the counters);
    retired ones only when asked for."""
    datasets = Dataset.objects.visible_to(request.user).select_related("experiment", "campaign")
    query = request.GET.get("q", "").strip()[:100]
    if query:
        datasets = datasets.filter(name__icontains=query)
    retired = request.GET.get("retired") == "1"
    if not retired:
        datasets = datasets.exclude(state=DatasetState.RETIRED)
    page = _page(request, datasets.order_by("name", "id"))
    keep = {k: v for k, v in {"q": query, "retired": "1" if retired else ""}.items() if v}
    return render(
        request,
        "campaigns/execution/dataset_list.html",
        {
            "page": page,
            "q": query,
            "retired": retired,
            "keep": urlencode(keep) + "&" if keep else "",
        },
    )


@login_required
def dataset_detail(request, pk: int):
    """One dataset and its files (valid or not), with the job that made each, and the
    lifecycle actions the user may take."""
    dataset = _visible(request.user, pk)
    # The page's replicas in one more query (where each file is kept, verified when).
    files = (
        OutputFile.objects.filter(dataset=dataset)
        .prefetch_related("replicas")
        .order_by("name", "id")
    )
    steer = lifecycle.may_steer(request.user, dataset)
    operator = is_operator(request.user)
    moves = [
        m
        for name, m in MOVES.items()
        if (operator or (steer and not m.operators_only))
        and dataset.state in (REMAKE_FROM if name == "remake" else lifecycle.MOVES[name][0])
    ]
    if any(m.name == "remake" for m in moves) and not (
        OutputFile.objects.filter(dataset=dataset, invalidated__isnull=False).exists()
    ):
        moves = [m for m in moves if m.name != "remake"]
    # A dataset of a request completed in part (force-complete) says what it lacks.
    partial = [
        {
            **row,
            "missing": max(row["jobs_total"] - row["n_succeeded"] + row["retried_succeeded"], 0),
        }
        for row in Stage.objects.filter(
            output_dataset=dataset, request__campaign_link__abandoned_at__isnull=False
        ).values(
            "name",
            "jobs_total",
            "n_succeeded",
            "retried_succeeded",
            "request__number",
            "request__campaign_link__abandon_reason",
        )
    ]
    return render(
        request,
        "campaigns/execution/dataset_detail.html",
        {
            "dataset": dataset,
            "page": _page(request, files),
            "moves": moves,
            "steer": steer and dataset.state != DatasetState.RETIRED,
            "partial": partial,
        },
    )


@login_required
def dataset_move(request, pk: int, action: str):
    """Confirm a lifecycle action (GET) and take it (POST), then back to the dataset."""
    move = MOVES.get(action)
    if move is None:
        raise Http404("No such action.")
    dataset = _visible(request.user, pk)
    if not lifecycle.may_steer(request.user, dataset) or (
        move.operators_only and not is_operator(request.user)
    ):
        raise PermissionDenied("You may not change this dataset.")
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        reason = form.cleaned_data["reason"]
        try:
            if action == "invalidate":
                result = lifecycle.invalidate_dataset(dataset, request.user, reason)
                done = (
                    f"{dataset.name} invalidated: {result.files} files, "
                    f"{result.descendants} files marked as made from them."
                )
            elif action == "remake":
                jobs = lifecycle.remake(dataset, request.user, reason)
                done = f"Remake launched: {len(jobs)} jobs run again."
            else:
                changed = lifecycle.change_state(dataset, action, request.user, reason)
                done = f"{dataset.name} is {changed.get_state_display()}."
        except CampaignError as exc:
            refused(request, exc)
        else:
            messages.success(request, done)
        return redirect("campaigns:dataset_detail", pk=dataset.pk)
    return render(
        request,
        "campaigns/execution/dataset_confirm.html",
        {"dataset": dataset, "move": move, "form": form, "names": []},
    )


@login_required
def dataset_invalidate_files(request, pk: int):
    """Confirm (GET, with the files ticked on the dataset page) and invalidate (POST)."""
    dataset = _visible(request.user, pk)
    if not lifecycle.may_steer(request.user, dataset):
        raise PermissionDenied("You may not change this dataset.")
    source = request.POST if request.method == "POST" else request.GET
    names = sorted({n for n in source.getlist("file") if n})[: lifecycle.MAX_NAMES]
    if not names:
        messages.error(request, "Tick the files to invalidate first.")
        return redirect("campaigns:dataset_detail", pk=dataset.pk)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            result = lifecycle.invalidate_files(
                dataset, names, request.user, form.cleaned_data["reason"]
            )
        except CampaignError as exc:
            refused(request, exc)
        else:
            messages.success(
                request,
                f"{result.files} files invalidated; {result.descendants} files marked as "
                "made from them.",
            )
        return redirect("campaigns:dataset_detail", pk=dataset.pk)
    return render(
        request,
        "campaigns/execution/dataset_confirm.html",
        {"dataset": dataset, "move": INVALIDATE_FILES, "form": form, "names": names},
    )
