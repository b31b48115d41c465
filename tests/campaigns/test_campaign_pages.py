"""Campaign and template pages: who sees and does what, with bounded queries."""

import datetime as dt

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import CampaignEventKind, CampaignState
from campaigns.models import Campaign, CampaignEvent, Stage
from campaigns.services import schedule_requests
from common.decisions import sign_effect
from experiments.models import WorkflowTemplate
from requests_app.choices import RequestState
from tests.campaigns.factories import CampaignFactory, approved_request, workflow
from tests.decision_pages import decide

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(experiment, operator):
    campaign = CampaignFactory(experiment=experiment, name="MCC5.0", created_by=operator)
    request = approved_request(experiment, events=1000, per_job=100)
    schedule_requests(campaign, [request.pk], operator)
    return campaign


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def login(client, user):
    client.force_login(user)
    return client


def what_if(campaign) -> str:
    """The campaign's decision page (launch, schedule, priority)."""
    return reverse("monitoring:campaign_what_if", args=[campaign.pk])


def detail(campaign):
    return reverse("campaigns:detail", args=[campaign.pk])


def test_list_shows_the_campaigns_a_user_may_see(client, campaign, liaison, other_liaison):
    CampaignFactory(experiment=other_liaison.memberships.get().experiment, name="SBND round")
    page = login(client, liaison).get(reverse("campaigns:list"))
    assert page.status_code == 200
    assert "MCC5.0" in page.content.decode() and "SBND round" not in page.content.decode()
    page = login(client, other_liaison).get(reverse("campaigns:list"))
    assert "MCC5.0" not in page.content.decode()


def test_list_queries_are_bounded(client, operator, experiment, django_assert_max_num_queries):
    template = workflow(experiment)
    for _ in range(6):
        c = CampaignFactory(experiment=experiment)
        schedule_requests(c, [approved_request(experiment, template).pk], operator)
    login(client, operator)
    with django_assert_max_num_queries(12):
        page = client.get(reverse("campaigns:list"))
    assert page.status_code == 200
    assert page.content.decode().count("/campaigns/") >= 6


def test_plan_page_for_operators(client, campaign, operator):
    page = login(client, operator).get(detail(campaign))
    text = page.content.decode()
    assert page.status_code == 200
    assert "generation" in text and "reconstruction" in text
    # Not launched yet: every stage says why it waits.
    assert "Campaign not launched" in text
    assert 'name="csrfmiddlewaretoken"' in text
    assert 'value="launch"' in text and 'value="cancel"' in text
    assert "Schedule approved requests" in text
    assert "If launched now, it would finish around" in text


def test_plan_page_shows_the_forecast_of_approved_requests(client, campaign, operator, experiment):
    approved_request(experiment, days=40)
    text = login(client, operator).get(detail(campaign)).content.decode()
    assert "With the current load this would finish around" in text


def test_members_of_the_experiment_may_look_but_not_act(client, campaign, liaison, physicist):
    for user in (liaison, physicist):
        page = login(client, user).get(detail(campaign))
        assert page.status_code == 200
        assert 'value="launch"' not in page.content.decode()
        post = client.post(reverse("campaigns:action", args=[campaign.pk]), {"action": "launch"})
        assert post.status_code == 403
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.PLANNED


def test_others_get_404(client, campaign, other_liaison):
    login(client, other_liaison)
    assert client.get(detail(campaign)).status_code == 404
    post = client.post(reverse("campaigns:action", args=[campaign.pk]), {"action": "launch"})
    assert post.status_code == 404


def test_plan_page_queries_do_not_grow_with_jobs(
    client, operator, experiment, django_assert_max_num_queries
):
    template = workflow(experiment)
    small = CampaignFactory(experiment=experiment)
    schedule_requests(small, [approved_request(experiment, template, events=100).pk], operator)
    big = CampaignFactory(experiment=experiment)
    schedule_requests(
        big,
        [approved_request(experiment, template, events=100_000, samples=3).pk],
        operator,
    )
    login(client, operator)
    client.get(detail(small))  # warm the per-user role caches out of the count
    with django_assert_max_num_queries(18) as small_queries:
        assert client.get(detail(small)).status_code == 200
    with django_assert_max_num_queries(18) as big_queries:
        assert client.get(detail(big)).status_code == 200
    assert len(big_queries.captured_queries) == len(small_queries.captured_queries)


def test_operator_creates_a_campaign(client, operator, experiment):
    login(client, operator)
    page = client.get(reverse("campaigns:new"))
    assert page.status_code == 200
    deadline = timezone.localdate() + dt.timedelta(days=10)
    response = client.post(
        reverse("campaigns:new"),
        {"experiment": experiment.pk, "name": "MCC6", "deadline": deadline, "priority": "high"},
    )
    campaign = Campaign.objects.get(name="MCC6")
    assert response.status_code == 302 and response["Location"] == detail(campaign)
    assert campaign.backend == experiment.default_backend


def test_create_form_shows_the_services_refusal_next_to_the_field(client, operator, experiment):
    login(client, operator)
    past = timezone.localdate() - dt.timedelta(days=1)
    page = client.post(
        reverse("campaigns:new"),
        {"experiment": experiment.pk, "name": "Late", "deadline": past, "priority": "normal"},
    )
    assert page.status_code == 200
    assert f"{past} is in the past" in page.content.decode()
    assert not Campaign.objects.filter(name="Late").exists()


def test_liaisons_cannot_create(client, liaison):
    assert login(client, liaison).get(reverse("campaigns:new")).status_code == 403


def test_actions_from_the_page(client, campaign, operator):
    login(client, operator)
    url = reverse("campaigns:action", args=[campaign.pk])
    # A launch is taken on its decision page (its effect on others shown first).
    assert decide(client, what_if(campaign), {"change": "launch"}).status_code == 302
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.ACTIVE
    page = client.post(url, {"action": "launch"}, follow=True)
    assert "Cannot launch: the campaign is active." in page.content.decode()
    client.post(url, {"action": "pause", "note": "account permission problem"})
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.PAUSED
    event = CampaignEvent.objects.filter(campaign=campaign).latest("id")
    assert (event.kind, event.reason) == (CampaignEventKind.PAUSED, "account permission problem")


def test_schedule_from_the_page(client, campaign, operator, experiment):
    request = approved_request(experiment)
    login(client, operator)
    query = {"change": "schedule", "requests": [request.pk]}
    page = decide(client, what_if(campaign), query, follow=True)
    assert f"Scheduled {request.number}" in page.content.decode()
    request.refresh_from_db()
    assert request.state == RequestState.SCHEDULED


def test_schedule_refusal_lists_the_reasons(client, campaign, operator, experiment):
    request = approved_request(experiment, state=RequestState.SUBMITTED)
    login(client, operator)
    # The decision page says it cannot be projected (not approved) and offers no go-ahead.
    page = client.get(what_if(campaign), {"change": "schedule", "requests": [request.pk]})
    assert page.status_code == 400 and b"go-heading" not in page.content
    # One posted anyway (signed for this very scheduling) is refused, with every reason.
    decision = {"change": "schedule", "campaign": campaign.pk, "requests": [request.pk]}
    effect = sign_effect(decision, [])
    page = client.post(
        reverse("campaigns:schedule", args=[campaign.pk]),
        {"requests": [request.pk], "effect": effect},
        follow=True,
    )
    text = page.content.decode()
    assert "nothing was planned" in text and "only approved requests can be scheduled" in text


def test_change_priority_needs_a_reason(client, campaign, operator):
    login(client, operator)
    query = {"change": "priority", "priority": "critical"}
    page = decide(client, what_if(campaign), query, follow=True)
    assert "A reason is required to change the priority." in page.content.decode()
    decide(client, what_if(campaign), query, reason="the collaboration meeting moved")
    campaign.refresh_from_db()
    assert campaign.priority == "critical"
    event = CampaignEvent.objects.get(campaign=campaign, kind=CampaignEventKind.EDITED)
    assert event.changes["priority"] == ["normal", "critical"]
    assert "effect_shown" in event.changes
    assert "the collaboration meeting moved" in client.get(detail(campaign)).content.decode()


def test_cancel_from_the_page_needs_a_reason(client, campaign, operator):
    login(client, operator)
    html = client.get(detail(campaign)).content.decode()
    assert (
        '<input id="note-cancel" name="note" placeholder="Reason to cancel (required)" '
        'class="note" required maxlength="5000">'
    ) in html
    url = reverse("campaigns:action", args=[campaign.pk])
    for blank in ("", "   "):
        response = client.post(url, {"action": "cancel", "note": blank})
        assert response.status_code == 302 and response["Location"] == detail(campaign)
        assert "A reason is required to cancel the campaign." in texts(response)
        campaign.refresh_from_db()
        assert campaign.state == CampaignState.PLANNED
    assert not CampaignEvent.objects.filter(campaign=campaign, kind="cancel").exists()

    response = client.post(url, {"action": "cancel", "note": "round called off"})
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.CANCELLED
    event = CampaignEvent.objects.get(campaign=campaign, kind=CampaignEventKind.CANCELLED)
    assert event.reason == "round called off"


def test_remove_needs_a_reason(client, campaign, operator):
    link = campaign.links.get()
    login(client, operator)
    html = client.get(detail(campaign)).content.decode()
    assert (
        'name="reason" placeholder="Reason (required)" class="note" '
        f'form="remove-{link.request_id}" required' in html
    )
    response = client.post(
        reverse("campaigns:remove", args=[campaign.pk]), {"request": link.request_id, "reason": " "}
    )
    assert response.status_code == 302
    assert "A reason is required to remove a request from the campaign." in texts(response)
    assert campaign.links.filter(request_id=link.request_id).exists()
    assert Stage.objects.filter(campaign=campaign).exists()


def test_remove_a_request_from_the_page(client, campaign, operator):
    link = campaign.links.get()
    login(client, operator)
    client.post(
        reverse("campaigns:remove", args=[campaign.pk]),
        {"request": link.request_id, "reason": "wrong round"},
    )
    assert not Stage.objects.filter(campaign=campaign).exists()
    link.request.refresh_from_db()
    assert link.request.state == RequestState.APPROVED


# --- templates ---------------------------------------------------------------------------


def test_template_pages(client, experiment, operator, liaison, other_liaison):
    own = workflow(experiment, name="dune-chain")
    shared = workflow(experiment, name="shared-chain")
    shared.experiment = None
    shared.save()
    login(client, liaison)
    text = client.get(reverse("campaigns:template_list")).content.decode()
    assert "dune-chain" in text and "shared-chain" in text
    assert client.get(reverse("campaigns:template_detail", args=[own.pk])).status_code == 200
    login(client, other_liaison)
    text = client.get(reverse("campaigns:template_list")).content.decode()
    assert "dune-chain" not in text and "shared-chain" in text
    assert client.get(reverse("campaigns:template_detail", args=[own.pk])).status_code == 404
    assert client.get(reverse("campaigns:template_import")).status_code == 403


def test_export_clone_and_import_from_the_pages(client, experiment, operator, other_experiment):
    template = workflow(experiment, name="dune-chain")
    login(client, operator)
    export = client.get(reverse("campaigns:template_export", args=[template.pk]))
    assert export["Content-Type"] == "application/yaml"
    assert 'filename="dune-chain-v1.yaml"' in export["Content-Disposition"]
    text = export.content.decode()

    page = client.post(
        reverse("campaigns:template_clone", args=[template.pk]),
        {"experiment": other_experiment.pk, "name": ""},
        follow=True,
    )
    clone = WorkflowTemplate.objects.get(experiment=other_experiment, name="dune-chain")
    assert "Cloned into SBND" in page.content.decode()
    assert "is not registered for sbnd" in page.content.decode()  # the warning
    assert clone.cloned_from == template

    bumped = text.replace("version: 1", "version: 2")
    response = client.post(
        reverse("campaigns:template_import"), {"experiment": experiment.pk, "text": bumped}
    )
    imported = WorkflowTemplate.objects.get(experiment=experiment, name="dune-chain", version=2)
    assert response.status_code == 302
    assert response["Location"] == reverse("campaigns:template_detail", args=[imported.pk])

    page = client.post(
        reverse("campaigns:template_import"), {"experiment": experiment.pk, "text": text}
    )
    assert "already exists" in page.content.decode()


def test_admin_pages_open(client, campaign, admin_user):
    login(client, admin_user)
    for name in ("campaign", "campaignevent", "stage", "job", "dataset", "outputfile"):
        assert client.get(reverse(f"admin:campaigns_{name}_changelist")).status_code == 200
    assert (
        client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).status_code
        == 200
    )
