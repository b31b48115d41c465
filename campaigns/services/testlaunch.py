"""Test launches: a few jobs of each stage first, the full launch once they succeeded.

A campaign with ``test_jobs`` = N > 0 is launched in the ``testing`` phase: the scheduler
sees at most N ready jobs of each stage that reads no other (``ready_caps``, applied in
``planning.load_inputs``) and, for a stage that reads another, only the jobs fed by that
stage's test jobs (its other jobs never become ready before their inputs succeed). Each
submit cycle ``check_test_launches`` looks at the counters:

* a test job failed or was lost: the phase becomes ``failed``, the campaign is paused and
  the reason (stage, job, failure class) is kept in ``test_result`` and on the event;
* every stage has its test jobs succeeded: ``passed``; the full launch then waits for an
  operator's ``launch_full`` or, with ``test_auto_continue``, goes on by itself (``full``).

Every step is a campaign event; operators are emailed when a test passes or fails.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from requests_app.services.notifications import notify_operators

from ..choices import (
    TEST_GATED_PHASES,
    CampaignEventKind,
    CampaignState,
    JobState,
    LaunchPhase,
)
from ..models import Campaign, CampaignEvent, Job, Stage
from .errors import CampaignError, require_operator

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

MAX_TEST_JOBS = 1000

STAGE_FIELDS = (
    "id",
    "campaign_id",
    "name",
    "input_stage_id",
    "jobs_total",
    "n_queued",
    "n_running",
    "n_held",
    "n_succeeded",
    "n_failed",
    "n_lost",
    "n_cancelled",
    "retried_succeeded",
)


def _needed(campaign_tests: dict[int, int], stages: list[dict[str, Any]]) -> dict[int, int]:
    """How many jobs of each stage the test runs: N of a stage that reads no other (or all
    of it, if smaller); of a stage that reads another, its jobs whose inputs are all among
    that stage's test jobs (one query for those stages)."""
    needed: dict[int, int] = {}
    by_id = {s["id"]: s for s in stages}
    pending = []
    for s in stages:
        if s["input_stage_id"] is None:
            needed[s["id"]] = min(campaign_tests[s["campaign_id"]], s["jobs_total"])
        else:
            pending.append(s)
    # Downstream stages in the order of their inputs: each needs its input's number.
    while pending:
        progressed = False
        for s in list(pending):
            upstream = needed.get(s["input_stage_id"])
            if upstream is None and s["input_stage_id"] in by_id:
                continue
            fed = upstream or 0
            needed[s["id"]] = (
                Job.objects.filter(
                    stage_id=s["id"],
                    attempt=1,
                    input_first__isnull=False,
                    input_first__lt=fed - F("input_count") + 1,
                ).count()
                if fed
                else 0
            )
            pending.remove(s)
            progressed = True
        if not progressed:  # an input stage outside the campaign: nothing feeds it here
            for s in pending:
                needed[s["id"]] = 0
            break
    return needed


def _started(s: dict[str, Any]) -> int:
    """Attempts of the stage that reached a batch system (or ended after it)."""
    return (
        s["n_queued"]
        + s["n_running"]
        + s["n_held"]
        + s["n_succeeded"]
        + s["n_failed"]
        + s["n_lost"]
    )


def ready_caps(campaigns: list[dict[str, Any]]) -> dict[int, int]:
    """``{stage id: most ready jobs the scheduler may see}`` for campaigns in a gated test
    phase (``campaigns`` are rows with ``id``, ``test_phase``, ``test_jobs``). One query
    when there are any, none otherwise."""
    tests = {
        c["id"]: c["test_jobs"]
        for c in campaigns
        if c.get("test_phase") in TEST_GATED_PHASES and c.get("test_jobs")
    }
    if not tests:
        return {}
    stages = list(Stage.objects.filter(campaign_id__in=list(tests)).values(*STAGE_FIELDS))
    needed = _needed(tests, stages)
    return {s["id"]: max(needed[s["id"]] - _started(s), 0) for s in stages}


def check_test_launches() -> dict[str, list[int]]:
    """Decide the campaigns whose test jobs finished: passed or failed (see the module)."""
    testing = {
        c["id"]: c
        for c in Campaign.objects.filter(
            state=CampaignState.ACTIVE, test_phase=LaunchPhase.TESTING
        ).values("id", "name", "test_jobs", "test_auto_continue", "experiment__slug")
    }
    outcome: dict[str, list[int]] = {"passed": [], "failed": [], "continued": []}
    if not testing:
        return outcome
    stages = list(Stage.objects.filter(campaign_id__in=list(testing)).values(*STAGE_FIELDS))
    needed = _needed({cid: c["test_jobs"] for cid, c in testing.items()}, stages)
    by_campaign: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for s in stages:
        by_campaign[s["campaign_id"]].append(s)
    for campaign_id, rows in by_campaign.items():
        broken = [s for s in rows if s["n_failed"] + s["n_lost"] > 0]
        if broken:
            _fail(testing[campaign_id], broken[0])
            outcome["failed"].append(campaign_id)
            continue
        if all(s["n_succeeded"] - s["retried_succeeded"] >= needed[s["id"]] for s in rows):
            continued = _pass(testing[campaign_id], {s["name"]: needed[s["id"]] for s in rows})
            outcome["passed"].append(campaign_id)
            if continued:
                outcome["continued"].append(campaign_id)
    return outcome


def _fail(campaign: dict[str, Any], stage: dict[str, Any]) -> None:
    job = (
        Job.objects.filter(stage_id=stage["id"], state__in=[JobState.FAILED, JobState.LOST])
        .order_by("finished", "id")
        .values("id", "index", "failure_class", "failure_reason", "exit_code")
        .first()
    )
    detail = f"stage {stage['name']}: test job {job['index'] if job else '?'} "
    if job:
        detail += f"(job {job['id']}) failed: {job['failure_class'] or 'failed'}"
        if job["exit_code"] is not None:
            detail += f", exit code {job['exit_code']}"
        if job["failure_reason"]:
            detail += f": {job['failure_reason']}"
    detail = detail[:500]
    with transaction.atomic():
        now = timezone.now()
        won = Campaign.objects.filter(
            pk=campaign["id"], state=CampaignState.ACTIVE, test_phase=LaunchPhase.TESTING
        ).update(
            state=CampaignState.PAUSED,
            test_phase=LaunchPhase.FAILED,
            test_result=detail,
            updated=now,
        )
        if not won:
            return
        CampaignEvent.objects.create(
            campaign_id=campaign["id"],
            kind=CampaignEventKind.TEST_FAILED,
            reason=detail,
            changes={
                "state": [CampaignState.ACTIVE, CampaignState.PAUSED],
                "test_phase": [LaunchPhase.TESTING, LaunchPhase.FAILED],
            },
        )
    transaction.on_commit(
        lambda: notify_operators(
            f"test launch of {campaign['experiment__slug']}/{campaign['name']} failed",
            f"The test jobs of campaign {campaign['name']} failed; the campaign is paused.\n"
            f"{detail}\n",
        )
    )


def _pass(campaign: dict[str, Any], needed: dict[str, int]) -> bool:
    auto = campaign["test_auto_continue"]
    target = LaunchPhase.FULL if auto else LaunchPhase.PASSED
    summary = ", ".join(f"{name}: {n}" for name, n in sorted(needed.items()))
    with transaction.atomic():
        won = Campaign.objects.filter(
            pk=campaign["id"], state=CampaignState.ACTIVE, test_phase=LaunchPhase.TESTING
        ).update(test_phase=target, test_result="", updated=timezone.now())
        if not won:
            return False
        CampaignEvent.objects.create(
            campaign_id=campaign["id"],
            kind=CampaignEventKind.TEST_PASSED,
            reason=f"test jobs succeeded ({summary})",
            changes={"test_phase": [LaunchPhase.TESTING, LaunchPhase.PASSED]},
        )
        if auto:
            CampaignEvent.objects.create(
                campaign_id=campaign["id"],
                kind=CampaignEventKind.FULL_LAUNCH,
                reason="automatically, as the campaign's setting says",
                changes={"test_phase": [LaunchPhase.PASSED, LaunchPhase.FULL]},
            )
    if not auto:
        transaction.on_commit(
            lambda: notify_operators(
                f"test launch of {campaign['experiment__slug']}/{campaign['name']} passed",
                f"The test jobs of campaign {campaign['name']} succeeded ({summary}).\n"
                "The full launch waits for an operator (Launch fully on its page).\n",
            )
        )
    return auto


def launch_full(campaign: Campaign | int, user: AbstractBaseUser, note: str = "") -> Campaign:
    """Go on from a test launch to the full launch (operators).

    After a passed test, at once. After a failed one only with a note saying why (the
    failure was understood and repaired, e.g. by a recovery with overrides); the paused
    campaign becomes active again.
    """
    require_operator(user, "launch campaigns fully")
    campaign_id = campaign if isinstance(campaign, int) else campaign.pk
    with transaction.atomic():
        current = Campaign.objects.select_for_update().get(pk=campaign_id)
        phase = current.test_phase
        if phase not in (LaunchPhase.PASSED, LaunchPhase.FAILED, LaunchPhase.TESTING):
            raise CampaignError(
                "The campaign has no test launch waiting.",
                [f"test phase: {LaunchPhase(phase).label.lower()}"],
                kind="conflict",
            )
        if current.state not in (CampaignState.ACTIVE, CampaignState.PAUSED):
            raise CampaignError(
                f"Cannot launch fully: the campaign is {current.state}.",
                ["launch-full needs the state: active or paused"],
                kind="conflict",
            )
        if phase != LaunchPhase.PASSED and not note.strip():
            raise CampaignError(
                "A reason is required to launch fully without a passed test.",
                [f"note: the test is {LaunchPhase(phase).label.lower()}; say why to go on"],
                kind="invalid",
            )
        now = timezone.now()
        fields: dict[str, Any] = {"test_phase": LaunchPhase.FULL, "updated": now}
        changes: dict[str, Any] = {"test_phase": [phase, LaunchPhase.FULL]}
        if current.state == CampaignState.PAUSED and phase == LaunchPhase.FAILED:
            fields["state"] = CampaignState.ACTIVE
            changes["state"] = [CampaignState.PAUSED, CampaignState.ACTIVE]
        won = Campaign.objects.filter(pk=current.pk, test_phase=phase).update(**fields)
        if not won:
            raise CampaignError(
                "Someone changed the campaign at the same time; reload.", kind="conflict"
            )
        CampaignEvent.objects.create(
            campaign=current,
            kind=CampaignEventKind.FULL_LAUNCH,
            actor=user,
            reason=note.strip(),
            changes=changes,
        )
        current.refresh_from_db()
    return current


def update_test_settings(
    campaign: Campaign | int,
    user: AbstractBaseUser,
    *,
    test_jobs: Any = None,
    test_auto_continue: Any = None,
    completion_pct: Any = "unset",
) -> Campaign:
    """Set the test launch and force-complete settings of a campaign (operators; recorded).

    ``test_jobs`` may change until the campaign is launched; the others any time it is open.
    """
    require_operator(user, "change campaigns")
    problems: list[str] = []
    values: dict[str, Any] = {}
    if test_jobs is not None:
        try:
            n = int(test_jobs)
            if isinstance(test_jobs, bool) or not 0 <= n <= MAX_TEST_JOBS:
                raise ValueError
            values["test_jobs"] = n
        except (TypeError, ValueError, OverflowError):
            problems.append(f"test_jobs: a whole number from 0 to {MAX_TEST_JOBS}")
    if test_auto_continue is not None:
        if not isinstance(test_auto_continue, bool):
            problems.append("test_auto_continue: true or false")
        else:
            values["test_auto_continue"] = test_auto_continue
    if completion_pct != "unset":
        if completion_pct in (None, ""):
            values["completion_pct"] = None
        else:
            try:
                pct = int(completion_pct)
                if isinstance(completion_pct, bool) or not 1 <= pct <= 100:
                    raise ValueError
                values["completion_pct"] = pct
            except (TypeError, ValueError, OverflowError):
                problems.append("completion_pct: a whole number from 1 to 100, or empty")
    if problems:
        raise CampaignError("Cannot change the campaign's settings.", problems)
    campaign_id = campaign if isinstance(campaign, int) else campaign.pk
    with transaction.atomic():
        current = Campaign.objects.select_for_update().get(pk=campaign_id)
        diff = {k: v for k, v in values.items() if getattr(current, k) != v}
        if "test_jobs" in diff and current.state != CampaignState.PLANNED:
            raise CampaignError(
                f"The campaign is {current.state}; test jobs are set before the launch.",
                ["test_jobs: can only change while the campaign is planned"],
                kind="conflict",
            )
        if diff and current.state in (CampaignState.COMPLETED, CampaignState.CANCELLED):
            raise CampaignError(
                f"The campaign is {current.state}; its settings no longer change.",
                [f"state: {current.state}"],
                kind="conflict",
            )
        if not diff:
            return current
        Campaign.objects.filter(pk=current.pk).update(updated=timezone.now(), **diff)
        CampaignEvent.objects.create(
            campaign=current,
            kind=CampaignEventKind.EDITED,
            actor=user,
            changes={k: [getattr(current, k), v] for k, v in diff.items()},
        )
        current.refresh_from_db()
    return current
