"""Monitoring pages: experiment overview, campaign dashboard, request progress, operations,
status reports, the progress CSV, a job's log, and the digest setting.

Each page runs a fixed number of queries whatever the number of jobs (the services
read stage counters and snapshots). Visibility goes through ``visible_to``: work of an
experiment the user does not belong to is a 404. A page asked with ``?partial=1``
answers only its live region, which ``static/js/monitoring.js`` swaps in place.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from campaigns import conf as campaigns_conf
from campaigns.execution import failures, logs
from campaigns.models import Campaign, Job
from common import pagecache
from experiments.access import operator_required
from experiments.models import Experiment
from experiments.models.visibility import is_operator
from requests_app.models import ProductionRequest

from . import charts, conf
from .forms import DigestForm, ReportPeriodForm
from .models import Allocation
from .services import accounting, dashboards, reports, sla, weekly

LOG_TAIL_BYTES = 64 * 1024


def _page(
    request, template: str, partial: str, context: dict, live: str | None = None
) -> HttpResponse:
    """The whole page, or only its live region when the refresher asks for it.

    ``live``: the live region already rendered (from the page cache); otherwise the
    ``partial`` template is rendered here.
    """
    context.setdefault("refresh_s", conf.dashboard_refresh_s())
    context.setdefault("operator", is_operator(request.user))
    context.setdefault("full_speed_percent", round(100 * conf.full_speed_fraction()))
    window = conf.forecast_windows_s()[0]
    context.setdefault("window_label", f"last {window / 3600:g} h")
    if live is not None:
        if request.GET.get("partial") == "1":
            return HttpResponse(live)
        context["live"] = mark_safe(live)  # noqa: S308 (rendered by render_to_string)
        return render(request, template, context)
    if request.GET.get("partial") == "1":
        return render(request, partial, context)
    return render(request, template, context)


def _live(name: str, ids: list, scope: str, partial: str, build, request) -> str:
    """The live region of a page from the page cache: ``build()`` gives its context,
    rendered without the request (no token, name or message of the viewer), headed by
    when it was computed."""

    def render_live() -> str:
        context = build()
        context.setdefault("refresh_s", conf.dashboard_refresh_s())
        context.setdefault("full_speed_percent", round(100 * conf.full_speed_fraction()))
        window = conf.forecast_windows_s()[0]
        context.setdefault("window_label", f"last {window / 3600:g} h")
        context["as_of"] = pagecache.as_of()
        return str(render_to_string(partial, context))

    return pagecache.fragment(name, ids, scope, render_live, request)


@login_required
def index(request):
    """Operators land on the operations overview; members on their experiment."""
    if is_operator(request.user):
        return redirect("monitoring:operations")
    experiments = list(Experiment.objects.visible_to(request.user).order_by("name"))
    if len(experiments) == 1:
        return redirect("monitoring:experiment", slug=experiments[0].slug)
    return render(request, "monitoring/index.html", {"experiments": experiments})


@login_required
def experiment_page(request, slug: str):
    """Every campaign and open request of an experiment against its deadline.

    The live region is the same for everyone who may see the experiment (checked first,
    404 otherwise), so it is shared through the page cache whatever the viewer's role.
    """
    experiment = get_object_or_404(Experiment.objects.visible_to(request.user), slug=slug)
    partial = "monitoring/_experiment_live.html"
    live = _live(
        "experiment-overview",
        [experiment.pk],
        "all",
        partial,
        lambda: {"experiment": experiment, "overview": dashboards.experiment_overview(experiment)},
        request,
    )
    context = {"experiment": experiment}
    if request.GET.get("partial") != "1":  # outside the live region: not on refreshes
        context["allocations"] = current_allocations(experiment)
    return _page(request, "monitoring/experiment.html", partial, context, live)


def current_allocations(experiment: Experiment | None = None) -> list:
    """Allocations covering today with their use (two queries): the dashboards' panel."""
    allocations = Allocation.objects.all()
    jobs = Job.objects.all()
    if experiment is not None:
        allocations = allocations.filter(experiment=experiment)
        jobs = jobs.filter(stage__campaign__experiment=experiment)
    today = timezone.localdate()
    return accounting.allocation_statuses(accounting.current_allocations(allocations, today), jobs)


def chart_span(request) -> str | None:
    """The burn-up's span asked with ``?chart=`` (active by default); None: not a span."""
    value = request.GET.get("chart", charts.ACTIVE)
    return value if value in charts.SPANS else None


def bad_span() -> HttpResponse:
    return HttpResponseBadRequest(
        f"chart: must be one of {', '.join(charts.SPANS)}", content_type="text/plain"
    )


@login_required
def campaign_page(request, pk: int):
    """A campaign's dashboard: burn-up, milestones, throughput, per-request progress.

    Operators see stuck flags and links to job logs, members do not: the live region is
    cached once per role and chart span, after the visibility check (404).
    """
    campaign = get_object_or_404(
        Campaign.objects.visible_to(request.user).select_related("experiment"), pk=pk
    )
    operator = is_operator(request.user)
    span = chart_span(request)
    if span is None:
        return bad_span()

    def build() -> dict:
        detail = dashboards.campaign_detail(campaign, triage=True, chart_span=span)
        if not operator:  # stuck flags and job logs are for operators
            detail.stuck, detail.stuck_count = [], 0
        return {"campaign": campaign, "detail": detail, "operator": operator}

    partial = "monitoring/_campaign_live.html"
    live = _live(
        "campaign-dashboard",
        [campaign.pk],
        ("operator" if operator else "member") + ("" if span == charts.ACTIVE else f"-{span}"),
        partial,
        build,
        request,
    )
    return _page(
        request,
        "monitoring/campaign.html",
        partial,
        {"campaign": campaign, "operator": operator, "chart_span": span},
        live,
    )


@login_required
def request_page(request, number: str):
    """One request's progress and timeline: the page a liaison links from the ticket."""
    production_request = get_object_or_404(
        ProductionRequest.objects.visible_to(request.user).select_related(
            "experiment", "physics_group", "requester"
        ),
        number=number,
    )
    span = chart_span(request)
    if span is None:
        return bad_span()
    detail = dashboards.request_detail(production_request, chart_span=span)
    return _page(
        request,
        "monitoring/request.html",
        "monitoring/_request_live.html",
        {
            "object": production_request,
            "detail": detail,
            "chart_span": span,
            "clock": sla.request_clock(production_request),
        },
    )


@operator_required
def operations_page(request):
    """Operators: open campaigns by risk, failures by class, stuck work, backend load."""
    overview = dashboards.operator_overview()
    return _page(
        request,
        "monitoring/operations.html",
        "monitoring/_operations_live.html",
        {
            "overview": overview,
            # Outside the live region: not on its refreshes.
            "allocations": current_allocations() if request.GET.get("partial") != "1" else [],
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def report_page(request, slug: str):
    """The experiment's status report (prints cleanly); operators issue it (POST)."""
    experiment = get_object_or_404(Experiment.objects.visible_to(request.user), slug=slug)
    now = timezone.now()
    if request.method == "POST":
        if not is_operator(request.user):
            raise PermissionDenied("Only OPOS operators issue status reports.")
        form = ReportPeriodForm(request.POST)
        if form.is_valid():
            since = form.cleaned_data["since"] or reports.default_since(experiment, now)
            if since >= now:
                messages.error(request, "The period must start before now.")
            else:
                reports.issue_report(experiment, since, now, request.user)
                messages.success(
                    request, "Report issued: the next one shows the progress from now on."
                )
            return redirect("monitoring:report", slug=slug)
    form = ReportPeriodForm(request.GET or None)
    since = None
    if form.is_bound and form.is_valid():
        since = form.cleaned_data["since"]
        if since and since >= now:
            since = None
            form.add_error("since", "Choose a moment in the past.")
    data = reports.status_report(experiment, since=since, now=now)
    return render(
        request,
        "monitoring/report.html",
        {
            "experiment": experiment,
            "report": data,
            "sla_measures": [(k, label) for k, (label, _t) in sla.MEASURES.items()],
            "form": form,
            "operator": is_operator(request.user),
        },
    )


@login_required
def progress_csv(request, slug: str):
    """Progress of every campaign, request, sample and stage of an experiment, as CSV."""
    experiment = get_object_or_404(Experiment.objects.visible_to(request.user), slug=slug)
    body = reports.progress_csv(dashboards.experiment_overview(experiment))
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = (
        f'attachment; filename="{experiment.slug}-progress-{stamp}.csv"'
    )
    return response


@operator_required
def job_log(request, pk: int):
    """One attempt of a job for diagnosis (operators): what ended it (the exit status named),
    where it ran (host, batch id linked to the batch system's view where configured), the
    tails of its stdout and stderr, and the other attempts of the same job."""
    job = get_object_or_404(
        Job.objects.visible_to(request.user).select_related(
            "stage__campaign__experiment", "stage__request", "stage__sample"
        ),
        pk=pk,
    )
    attempts = list(
        Job.objects.filter(stage_id=job.stage_id, index=job.index)
        .order_by("attempt")
        .values("id", "attempt", "state", "failure_class", "exit_code")
    )
    return render(
        request,
        "monitoring/job_log.html",
        {
            "job": job,
            "logs": logs.job_logs(job.workdir, job.batch_id, LOG_TAIL_BYTES),
            "tail": LOG_TAIL_BYTES,
            "host": job.host or logs.job_host(job.workdir),
            "batch_url": campaigns_conf.batch_job_url(job.backend, job.batch_id),
            "exit": failures.describe_exit(job.exit_code),
            "attempts": attempts,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def digest_settings(request):
    """Opt in or out of the daily digest and the weekly status report."""
    if request.method == "POST":
        form = DigestForm(request.POST)
        if form.is_valid():
            reports.set_digest(request.user, form.cleaned_data["daily"])
            weekly.set_weekly(request.user, form.cleaned_data["weekly"])
            wants = form.cleaned_data["daily"] or form.cleaned_data["weekly"]
            if wants and not request.user.email:
                messages.warning(request, "Saved, but your account has no email address.")
            else:
                messages.success(request, "Saved.")
            return redirect("monitoring:digest")
    else:
        form = DigestForm(
            initial={
                "daily": reports.digest_enabled(request.user),
                "weekly": weekly.weekly_enabled(request.user),
            }
        )
    return render(request, "monitoring/digest.html", {"form": form})
