"""Campaign use cases: create, launch/pause/resume/cancel, edits with reasons, removing requests."""

import datetime as dt
import threading

import pytest
from django.db import connection, connections
from django.db.models import Count
from django.utils import timezone

from campaigns.choices import CampaignEventKind, CampaignState, JobState
from campaigns.models import Campaign, CampaignEvent, CampaignRequest, Dataset, Job, Stage
from campaigns.services import (
    CampaignError,
    campaign_action,
    complete_campaign_if_done,
    create_campaign,
    remove_request,
    schedule_requests,
    update_campaign,
)
from campaigns.services import campaigns as campaign_services
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from tests.campaigns.factories import CampaignFactory, approved_request
from tests.factories import ExperimentFactory, UserFactory, grant

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: SQLite serialises writers, so threads cannot race there "
    "(its guard, the compare-and-set on state, is tested on every database)",
)


def in_days(n):
    return timezone.localdate() + dt.timedelta(days=n)


@pytest.fixture
def planned(experiment, operator):
    """A planned campaign with one scheduled request (10 + 10 + 5 jobs)."""
    campaign = CampaignFactory(experiment=experiment, name="MCC5.0")
    request = approved_request(experiment, events=1000, per_job=100)
    schedule_requests(campaign, [request.pk], operator)
    return campaign


def refused(call, *args, **kwargs):
    with pytest.raises(CampaignError) as info:
        call(*args, **kwargs)
    return info.value


# --- create --------------------------------------------------------------------------------


def test_operator_creates_a_campaign_and_it_is_recorded(operator, experiment):
    campaign = create_campaign(
        operator, experiment, name=" MCC5.0 ", deadline=in_days(20), priority="high", throttle=50
    )
    assert (campaign.name, campaign.state, campaign.backend) == (
        "MCC5.0",
        CampaignState.PLANNED,
        experiment.default_backend,
    )
    event = CampaignEvent.objects.get(campaign=campaign)
    assert (event.kind, event.actor) == (CampaignEventKind.CREATED, operator)
    assert event.changes["priority"] == [None, "high"]


def test_create_refusals_name_the_field(operator, experiment, liaison):
    error = refused(
        create_campaign,
        operator,
        experiment,
        name="",
        deadline=in_days(-1),
        priority="urgent",
        throttle=0,
        backend="pbs",
    )
    assert error.kind == "invalid"
    fields = sorted(r.split(":")[0] for r in error.reasons)
    assert fields == ["backend", "deadline", "name", "priority", "throttle"]
    create_campaign(operator, experiment, name="MCC5.0", deadline=in_days(5))
    error = refused(create_campaign, operator, experiment, name="MCC5.0", deadline=in_days(5))
    assert error.reasons == ["name: dune already has a campaign named 'MCC5.0'"]
    error = refused(create_campaign, liaison, experiment, name="Mine", deadline=in_days(5))
    assert error.kind == "forbidden"


# --- launch, pause, resume ---------------------------------------------------------------------


def test_launch_pause_resume(planned, operator):
    campaign = campaign_action(planned, "launch", operator, "go")
    assert campaign.state == CampaignState.ACTIVE and campaign.launched_at is not None
    first_launch = campaign.launched_at
    campaign = campaign_action(campaign, "pause", operator, "account permission problem")
    assert campaign.state == CampaignState.PAUSED
    campaign = campaign_action(campaign, "resume", operator)
    assert campaign.state == CampaignState.ACTIVE and campaign.launched_at == first_launch
    kinds = list(
        CampaignEvent.objects.filter(campaign=planned)
        .order_by("id")
        .values_list("kind", "reason", "actor__username")
    )
    assert kinds[-3:] == [
        ("launch", "go", "op"),
        ("pause", "account permission problem", "op"),
        ("resume", "", "op"),
    ]


def test_the_state_decides_what_is_allowed(planned, operator):
    error = refused(campaign_action, planned, "pause", operator)
    assert error.kind == "conflict"
    assert error.detail == "Cannot pause: the campaign is planned."
    assert error.reasons == ["pause needs the state: active"]
    assert refused(campaign_action, planned, "resume", operator).kind == "conflict"
    assert refused(campaign_action, planned, "complete", operator).kind == "invalid"
    assert refused(campaign_action, planned, "explode", operator).kind == "invalid"


def test_an_empty_campaign_cannot_be_launched(experiment, operator):
    campaign = CampaignFactory(experiment=experiment)
    error = refused(campaign_action, campaign, "launch", operator)
    assert error.kind == "conflict"
    assert error.reasons == ["requests: schedule at least one approved request first"]


def test_only_operators_act(planned, liaison, physicist, other_liaison):
    for user in (liaison, physicist, other_liaison):
        assert refused(campaign_action, planned, "launch", user).kind == "forbidden"
    planned.refresh_from_db()
    assert planned.state == CampaignState.PLANNED


def test_a_stale_state_loses_the_compare_and_set(planned, operator, monkeypatch):
    real = campaign_services._lock

    def lock_then_someone_else_acts(campaign_id):
        row = real(campaign_id)
        Campaign.objects.filter(pk=campaign_id).update(state=CampaignState.CANCELLED)
        return row

    monkeypatch.setattr(campaign_services, "_lock", lock_then_someone_else_acts)
    error = refused(campaign_action, planned, "launch", operator)
    assert error.kind == "conflict" and "at the same time" in error.detail
    assert not CampaignEvent.objects.filter(campaign=planned, kind="launch").exists()


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_operators_launch_at_once(experiment, operator):
    campaign = CampaignFactory(experiment=experiment)
    schedule_requests(campaign, [approved_request(experiment).pk], operator)
    second = grant(UserFactory(username="op2"), "operator")
    barrier = threading.Barrier(2)
    outcomes = [None, None]

    def act(i, user):
        try:
            barrier.wait(timeout=10)
            outcomes[i] = campaign_action(campaign.pk, "launch", user)
        except Exception as exc:
            outcomes[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=act, args=(i, u)) for i, u in enumerate((operator, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    wins = [o for o in outcomes if isinstance(o, Campaign)]
    losses = [o for o in outcomes if isinstance(o, CampaignError)]
    assert len(wins) == 1 and len(losses) == 1
    assert losses[0].kind == "conflict"
    assert CampaignEvent.objects.filter(campaign=campaign, kind="launch").count() == 1


# --- cancel --------------------------------------------------------------------------------


def test_cancel_releases_requests_that_never_started(planned, operator):
    request = planned.links.get().request
    campaign = campaign_action(planned, "cancel", operator, "round called off")
    assert campaign.state == CampaignState.CANCELLED and campaign.cancelled_at
    assert campaign.cancel_pending is False  # nothing was at a batch system
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED
    assert not CampaignRequest.objects.filter(campaign=planned).exists()
    assert not Stage.objects.filter(campaign=planned).exists()
    assert not Dataset.objects.filter(campaign=planned).exists()
    removed = CampaignEvent.objects.get(campaign=planned, kind=CampaignEventKind.REQUEST_REMOVED)
    assert removed.reason == "round called off"


def test_cancel_cancels_unsubmitted_jobs_and_flags_running_ones(planned, operator):
    campaign_action(planned, "launch", operator)
    gen = Stage.objects.get(campaign=planned, position=0)
    # Two generation jobs reached the batch system; the request is in production.
    Job.objects.filter(stage=gen, index__in=[0, 1]).update(
        state=JobState.RUNNING, backend="local", batch_id="x"
    )
    request = planned.links.get().request
    ProductionRequest.objects.filter(pk=request.pk).update(state=RequestState.IN_PRODUCTION)

    campaign = campaign_action(planned, "cancel", operator, "wrong generator tune")

    assert campaign.cancel_pending is True
    states = dict(
        Job.objects.filter(stage__campaign=planned).values_list("state").annotate(n=Count("id"))
    )
    assert states == {JobState.RUNNING: 2, JobState.CANCELLED: 23}
    gen.refresh_from_db()
    assert (gen.n_running, gen.n_cancelled, gen.n_ready, gen.n_planned) == (2, 8, 0, 0)
    # The started request keeps its record in the cancelled campaign.
    assert CampaignRequest.objects.filter(campaign=planned, request=request).exists()
    assert refused(campaign_action, planned, "cancel", operator).kind == "conflict"


# --- edits ---------------------------------------------------------------------------------


def test_priority_and_deadline_changes_need_a_reason_and_are_recorded(planned, operator):
    error = refused(update_campaign, planned, operator, {"priority": "critical"})
    assert error.reasons == ["reason: required to change the priority or the deadline"]
    new_deadline = in_days(40)
    campaign = update_campaign(
        planned,
        operator,
        {"priority": "critical", "deadline": new_deadline, "throttle": 20},
        reason="collaboration meeting moved",
    )
    assert (campaign.priority, campaign.deadline, campaign.throttle) == (
        "critical",
        new_deadline,
        20,
    )
    event = CampaignEvent.objects.get(campaign=planned, kind=CampaignEventKind.EDITED)
    assert event.reason == "collaboration meeting moved" and event.actor == operator
    # The priority change records its effect on everyone else, computed at the decision
    # (no decision page showed it here).
    assert event.changes.pop("effect_computed")
    assert event.changes == {
        "priority": ["normal", "critical"],
        "deadline": [planned.deadline.isoformat(), new_deadline.isoformat()],
        "throttle": [None, 20],
    }


def test_edit_refusals(planned, operator, liaison):
    assert refused(update_campaign, planned, liaison, {"throttle": 3}).kind == "forbidden"
    error = refused(update_campaign, planned, operator, {"deadline": in_days(-2)}, "late")
    assert error.reasons == [f"deadline: {in_days(-2)} is in the past"]
    error = refused(update_campaign, planned, operator, {"state": "active"})
    assert error.reasons[0].startswith("state: cannot be changed")
    CampaignFactory(experiment=planned.experiment, name="Other")
    error = refused(update_campaign, planned, operator, {"name": "Other"})
    assert error.reasons == ["name: another campaign is named 'Other'"]
    # Nothing changed: nothing recorded.
    update_campaign(planned, operator, {"priority": planned.priority})
    assert not CampaignEvent.objects.filter(campaign=planned, kind="edited").exists()


def test_closed_campaigns_are_not_edited(planned, operator):
    campaign_action(planned, "cancel", operator, "round called off")
    error = refused(update_campaign, planned, operator, {"throttle": 4})
    assert error.kind == "conflict"


def test_an_unchanged_past_deadline_does_not_block_other_edits(planned, operator):
    Campaign.objects.filter(pk=planned.pk).update(deadline=in_days(-3))
    campaign = update_campaign(planned, operator, {"deadline": in_days(-3), "throttle": 9})
    assert campaign.throttle == 9


# --- adding and removing requests ---------------------------------------------------------------


def test_requests_join_and_leave_a_campaign(planned, operator, experiment):
    second = approved_request(experiment)
    schedule_requests(planned, [second.pk], operator)
    assert planned.links.count() == 2

    request = remove_request(planned, second, operator, "belongs to MCC6")

    assert request.state == RequestState.APPROVED
    assert not Stage.objects.filter(campaign=planned, request=second).exists()
    assert not Job.objects.filter(stage__request=second).exists()
    event = CampaignEvent.objects.filter(campaign=planned, kind="request_removed").get()
    assert (event.reason, event.changes) == ("belongs to MCC6", {"request": [second.number, None]})
    # It can be scheduled elsewhere now.
    other = CampaignFactory(experiment=experiment)
    schedule_requests(other, [second.pk], operator)


def test_started_requests_are_not_removed(planned, operator):
    request = planned.links.get().request
    Job.objects.filter(stage__campaign=planned, stage__position=0, index=0).update(
        state=JobState.QUEUED, batch_id="1"
    )
    error = refused(remove_request, planned, request, operator)
    assert error.kind == "conflict" and "has started" in error.detail


def test_remove_refusals(planned, operator, liaison, experiment):
    outsider = approved_request(experiment)
    assert refused(remove_request, planned, outsider, operator).kind == "invalid"
    request = planned.links.get().request
    assert refused(remove_request, planned, request, liaison).kind == "forbidden"
    for blank in ("", "  "):
        error = refused(remove_request, planned, request, operator, blank)
        assert error.kind == "invalid"
        assert error.reasons == ["reason: say why the request leaves the campaign; it is recorded"]
    assert planned.links.filter(request=request).exists()
    assert not CampaignEvent.objects.filter(campaign=planned, kind="request_removed").exists()


def test_cancel_needs_a_reason(planned, operator):
    for blank in ("", "   "):
        error = refused(campaign_action, planned, "cancel", operator, blank)
        assert error.kind == "invalid"
        assert error.detail == "A reason is required to cancel a campaign."
        assert error.reasons == ["note: say why the campaign is cancelled; it is recorded"]
    planned.refresh_from_db()
    assert planned.state == CampaignState.PLANNED and planned.cancelled_at is None
    assert not CampaignEvent.objects.filter(campaign=planned, kind="cancel").exists()
    assert Stage.objects.filter(campaign=planned).exists()  # nothing of it was cancelled


# --- completion ----------------------------------------------------------------------------


def test_complete_when_every_job_succeeded(planned, operator):
    assert complete_campaign_if_done(planned) is False  # not active
    campaign_action(planned, "launch", operator)
    assert complete_campaign_if_done(planned) is False  # work left
    jobs = Job.objects.filter(stage__campaign=planned)
    jobs.update(state=JobState.FAILED)
    assert complete_campaign_if_done(planned) is False  # failed jobs are not done
    jobs.update(state=JobState.SUCCEEDED)
    assert complete_campaign_if_done(planned) is True
    planned.refresh_from_db()
    assert planned.state == CampaignState.COMPLETED and planned.completed_at
    assert complete_campaign_if_done(planned) is False  # harmless when repeated


def test_campaigns_of_other_experiments_are_separate(operator):
    sbnd = ExperimentFactory(slug="sbnd")
    campaign = create_campaign(operator, sbnd, name="MCC5.0", deadline=in_days(3))
    assert campaign.experiment == sbnd
