"""Campaign pages: list, create, the plan page, and the operators' actions on it.

Every page runs a bounded number of queries whatever the number of jobs:
counts come from stage counters, "why waiting" and forecasts from one
``load_inputs``. Operators act; members of the experiment may look; anyone
else gets a 404 (a campaign's existence is not their business).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from common import pagecache
from common.decisions import Effect, EffectError, decision_url, effect_shown
from experiments.access import operator_required
from experiments.models.visibility import is_operator
from requests_app.choices import Priority, RequestState
from requests_app.models import ProductionRequest

from ..choices import ACTIVE_JOB_STATES, OPEN_CAMPAIGN_STATES, CampaignState
from ..forms import (
    ActionForm,
    CampaignDeadlineForm,
    CampaignEditForm,
    CampaignForm,
    PriorityChangeForm,
    RemoveRequestForm,
    ScheduleForm,
)
from ..models import Campaign
from ..services import (
    CampaignError,
    campaign_action,
    create_campaign,
    projection,
    remove_request,
    schedule_requests,
    update_campaign,
)
from ..services.controls import PLACEMENT_FIELDS, placement_of
from ..services.controls import summary as controls_summary
from ..services.overview import campaign_plan, with_counts
from ..services.planning import load_inputs
from ..templatetags.steering import completion_figures
from ..workflow import available_actions
from .access import form_errors, operator_on, refused, visible_campaign

MAX_CANDIDATES = 50  # approved requests offered for scheduling on the plan page
STATE_FILTERS = {
    "open": sorted(OPEN_CAMPAIGN_STATES),
    "closed": [CampaignState.COMPLETED, CampaignState.CANCELLED],
    "all": None,
}


@login_required
def campaign_list(request):
    """Campaigns the user may see, with progress and the forecast against the deadline."""
    show = request.GET.get("show", "open")
    states = STATE_FILTERS.get(show, STATE_FILTERS["open"])
    campaigns = with_counts(Campaign.objects.visible_to(request.user)).select_related("experiment")
    if states is not None:
        campaigns = campaigns.filter(state__in=states)
    page = Paginator(campaigns.order_by("deadline", "id"), 50).get_page(request.GET.get("page"))
    forecasts = (
        projection.campaign_forecasts()
        if any(c.state in OPEN_CAMPAIGN_STATES for c in page)
        else {}
    )
    rows = [
        {
            "campaign": c,
            "forecast": forecasts.get(c.pk),
            "progress": round(100 * (c.jobs_succeeded or 0) / c.jobs_total) if c.jobs_total else 0,
            "in_flight": sum(getattr(c, f"jobs_{s}") or 0 for s in ACTIVE_JOB_STATES),
        }
        for c in page
    ]
    return render(
        request,
        "campaigns/campaign_list.html",
        {"rows": rows, "page": page, "show": show, "operator": is_operator(request.user)},
    )


@operator_required
def campaign_new(request):
    """Create a campaign (operators)."""
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            campaign = create_campaign(
                request.user,
                data["experiment"],
                name=data["name"],
                deadline=data["deadline"],
                priority=data["priority"],
                throttle=data["throttle"],
                backend=data["backend"],
                description=data["description"],
                **{name: data[name] for name in PLACEMENT_FIELDS},
            )
        except CampaignError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, f"Campaign {campaign.name} created: now schedule requests.")
            return redirect(campaign)
    return render(request, "campaigns/campaign_form.html", {"form": form})


@login_required
def campaign_detail(request, pk: int):
    """The plan page: requests, stages, jobs by state, why waiting, projected finish.

    Visibility first (404), then the expensive parts (the scheduler's projection for the
    forecasts, the tables) from the page cache, shared by every viewer of the same role;
    the forms, with this viewer's CSRF token, are rendered around them on every request.
    """
    campaign = visible_campaign(request.user, pk)
    operator = is_operator(request.user)
    fragments = pagecache.fragment(
        "campaign-plan",
        [campaign.pk],
        "operator" if operator else "member",
        lambda: plan_fragments(campaign, operator),
        request,
    )
    open_ = campaign.state in OPEN_CAMPAIGN_STATES
    return render(
        request,
        "campaigns/campaign_detail.html",
        {
            "campaign": campaign,
            "fragments": {
                name: mark_safe(value) if isinstance(value, str) else value  # noqa: S308
                for name, value in fragments.items()
            },
            "operator": operator,
            "actions": available_actions(campaign.state) if operator else [],
            "open": open_,
            "placement": placement_of(campaign),
            "controls": fragments.get("controls"),
            # Launch, schedule and priority lead to the decision page (the effect on
            # everyone else, then the go-ahead); without one they act at once.
            "decide_at": decision_url("campaign", campaign.pk) if operator and open_ else None,
            "priorities": Priority.choices,
        },
    )


def plan_fragments(campaign: Campaign, operator: bool) -> dict:
    """The plan page's expensive parts, rendered without the request (so without any
    token, name or message of the viewer); what differs by role is ``operator``."""
    plan = campaign_plan(campaign)
    open_ = campaign.state in OPEN_CAMPAIGN_STATES
    candidates, forecasts = [], {}
    if operator and open_:
        candidates = list(
            ProductionRequest.objects.filter(
                experiment=campaign.experiment,
                state=RequestState.APPROVED,
                campaign_link__isnull=True,
            )
            .select_related("experiment", "physics_group")
            .order_by("deadline", "id")[:MAX_CANDIDATES]
        )
        forecasts = projection.unscheduled_forecasts(
            candidates, plan.shared, lambda: plan.inputs or load_inputs(campaign_ids=())
        )
    events = list(
        campaign.events.select_related("actor", "request").order_by("-created", "-id")[:30]
    )
    context = {
        "campaign": campaign,
        "plan": plan,
        "events": events,
        "operator": operator,
        "open": open_,
        "candidates": [(r, forecasts.get(r.pk)) for r in candidates],
    }

    def part(name: str) -> str:
        return str(render_to_string(f"campaigns/_detail_{name}.html", context)).strip()

    return {
        # The batch system's answers to the operators' controls are written to the
        # database (BatchControl), so a new answer is a new data version like any edit.
        "controls": controls_summary([campaign.pk]).get(campaign.pk),
        "badges": part("badges"),
        "main": part("main"),
        "candidates": part("candidates") if candidates else "",
        "facts": part("facts"),
        "history": part("history"),
        "removable": (
            [row.request.pk for row in plan.requests if row.removable] if operator and open_ else []
        ),
        # The edit form's fields show the campaign's values, data like the rest: only the
        # form around them (the viewer's CSRF token) is rendered on every request.
        "edit_fields": edit_fields(campaign, open_) if operator else "",
        "as_of": pagecache.as_of(),
        # The force-complete figures (operators): cached with the rest of the plan.
        "completion": completion_figures(campaign) if operator else None,
    }


def edit_fields(campaign: Campaign, open_: bool) -> str:
    """The operators' edit form of the campaign, its fields only: all of them while the
    campaign is open, the deadline alone after (to repair it)."""
    if open_:
        forms = {
            "edit_form": CampaignEditForm(
                initial={
                    "priority": campaign.priority,
                    "deadline": campaign.deadline,
                    "throttle": campaign.throttle,
                    **{name: getattr(campaign, name) for name in PLACEMENT_FIELDS},
                }
            )
        }
    else:
        forms = {"deadline_form": CampaignDeadlineForm(initial={"deadline": campaign.deadline})}
    # With decision pages on (a setting, the same for every operator), the priority is
    # changed on its own decision page, not in this form.
    forms["priority_here"] = not decision_url("campaign", campaign.pk)
    return str(render_to_string("campaigns/_detail_edit_fields.html", forms)).strip()


def _effect(request, decision: dict) -> Effect | None:
    """What the decision page showed before this decision (its go-ahead form sends it,
    signed), to record with the decision; None when the decision came without one."""
    token = request.POST.get("effect", "")
    return effect_shown(token, decision) if token else None


def _look_first(request, campaign: Campaign, **query) -> str | None:
    """Where a launch, a scheduling or a priority change posted from the browser without
    the effect shown goes: its decision page, nothing changed (None: none configured).

    These decisions move everyone else's promises and a browser can show what they would
    do, so one posted blind (an old tab, a form of before) is led to look rather than
    recorded as taken unseen; the API and the CLI, which cannot show a page, get the
    effect computed at the decision instead.
    """
    if request.POST.get("effect"):
        return None
    url = decision_url("campaign", campaign.pk, **query)
    if url:
        messages.info(request, "See what the decision does to everyone else first.")
    return url


@require_POST
@operator_on
def campaign_do(request, campaign: Campaign):
    """Pause, resume or cancel at once; launch from its decision page, which records the
    effect it showed."""
    form = ActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(form.errors.get("note", ["Unknown action."])))
        return redirect(campaign)
    action = form.cleaned_data["action"]
    note = form.cleaned_data["note"]
    if action == "launch" and campaign.state == CampaignState.PLANNED:
        look = _look_first(request, campaign, change="launch", note=note)
        if look:
            return redirect(look)
    try:
        shown = _effect(request, {"change": action, "campaign": campaign.pk})
        campaign_action(campaign, action, request.user, note, shown)
    except EffectError as exc:
        messages.error(request, str(exc))
    except CampaignError as exc:
        refused(request, exc)
    else:
        messages.success(request, f"Campaign {campaign.name}: {action} done.")
        follow_up = getattr(settings, "OPOS_COMMITMENTS_URLS", {}).get("campaign")
        if action == "launch" and follow_up:
            # Right after the launch, the operator confirms what is promised.
            messages.info(request, "Confirm or edit the commitments the tracker proposes.")
            return redirect(follow_up, pk=campaign.pk)
    return redirect(campaign)


@require_POST
@operator_on
def campaign_schedule(request, campaign: Campaign):
    """Schedule the ticked approved requests into the campaign, from the decision page
    (which records the effect it showed)."""
    ids = [int(v) for v in request.POST.getlist("requests") if v.isdigit()]
    form = ScheduleForm(
        request.POST,
        candidates=ProductionRequest.objects.filter(pk__in=ids).only("number", "title"),
    )
    if not form.is_valid():
        messages.error(request, "Tick at least one approved request to schedule.")
        return redirect(campaign)
    chosen = sorted(set(form.cleaned_data["requests"]))
    look = _look_first(
        request, campaign, change="schedule", requests=chosen, note=form.cleaned_data["note"]
    )
    if look:
        return redirect(look)
    try:
        shown = _effect(
            request, {"change": "schedule", "campaign": campaign.pk, "requests": chosen}
        )
        result = schedule_requests(
            campaign, chosen, request.user, form.cleaned_data["note"], effect=shown
        )
    except EffectError as exc:
        messages.error(request, str(exc))
    except CampaignError as exc:
        refused(request, exc)
    else:
        numbers = ", ".join(r.number for r in result.requests)
        messages.success(
            request, f"Scheduled {numbers}: {result.stages} stages, {result.jobs} jobs planned."
        )
    return redirect(campaign)


@require_POST
@operator_on
def campaign_edit(request, campaign: Campaign):
    """Change the deadline, throttle or placement, with a reason (of a closed campaign:
    the deadline only). The priority changes on its decision page, which posts it here
    alone with the effect it showed."""
    if request.POST.get("effect"):
        return _change_priority(request, campaign)
    open_ = campaign.state in OPEN_CAMPAIGN_STATES
    form = (CampaignEditForm if open_ else CampaignDeadlineForm)(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect(campaign)
    data = dict(form.cleaned_data)
    reason = data.pop("reason")
    priority = data.pop("priority", "") or campaign.priority
    if priority != campaign.priority:
        # A priority change from a form of before (the page no longer has it here):
        # nothing is changed, the decision page shows its effect first.
        look = _look_first(request, campaign, change="priority", priority=priority, reason=reason)
        if look:
            return redirect(look)
        data["priority"] = priority
    try:
        update_campaign(campaign, request.user, data, reason)
    except CampaignError as exc:
        refused(request, exc)
    else:
        messages.success(request, "Campaign changed; the change is recorded.")
    return redirect(campaign)


def _change_priority(request, campaign: Campaign):
    """The decision page's go-ahead for a priority change, recorded with the effect shown."""
    form = PriorityChangeForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect(campaign)
    priority = form.cleaned_data["priority"]
    try:
        shown = _effect(
            request, {"change": "priority", "campaign": campaign.pk, "priority": priority}
        )
        update_campaign(
            campaign, request.user, {"priority": priority}, form.cleaned_data["reason"], shown
        )
    except EffectError as exc:
        messages.error(request, str(exc))
    except CampaignError as exc:
        refused(request, exc)
    else:
        messages.success(request, f"Priority {priority}; the change and its effect are recorded.")
    return redirect(campaign)


@require_POST
@operator_on
def campaign_remove(request, campaign: Campaign):
    """Take a request that has not started out of the campaign."""
    form = RemoveRequestForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(form.errors.get("reason", ["Which request?"])))
        return redirect(campaign)
    try:
        removed = remove_request(
            campaign, form.cleaned_data["request"], request.user, form.cleaned_data["reason"]
        )
    except CampaignError as exc:
        refused(request, exc)
    else:
        messages.success(request, f"{removed.number} removed; it is approved again.")
    return redirect(campaign)
