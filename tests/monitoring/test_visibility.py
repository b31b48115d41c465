"""Who sees what: members of an experiment see its progress, nobody else (404), and the
operator pages are for operators."""

import pytest
from django.urls import reverse

from campaigns.models import Job

from .builders import launch, planned_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(experiment, operator):
    return launch(planned_campaign(experiment, operator), operator)


def member_urls(campaign):
    request = campaign.links.first().request
    slug = campaign.experiment.slug
    return [
        reverse("monitoring:experiment", args=[slug]),
        reverse("monitoring:report", args=[slug]),
        reverse("monitoring:csv", args=[slug]),
        reverse("monitoring:campaign", args=[campaign.pk]),
        reverse("monitoring:request", args=[request.number]),
    ]


def api_urls(campaign):
    request = campaign.links.first().request
    return [
        f"/api/v1/campaigns/{campaign.pk}/progress/",
        f"/api/v1/requests/{request.pk}/progress/",
        f"/api/v1/requests/{request.number}/progress/",
    ]


@pytest.mark.parametrize("who", ["operator", "liaison", "physicist"])
def test_members_and_operators_see_the_experiments_pages(client, campaign, who, request):
    client.force_login(request.getfixturevalue(who))
    for url in member_urls(campaign):
        assert client.get(url).status_code == 200, url


def test_a_member_of_another_experiment_sees_nothing(client, campaign, other_liaison):
    client.force_login(other_liaison)
    for url in member_urls(campaign):
        assert client.get(url).status_code == 404, url


def test_the_api_answers_404_to_another_experiment_and_401_to_nobody(
    api, campaign, physicist, other_liaison
):
    for url in api_urls(campaign):
        assert api(physicist).get(url).status_code == 200, url
        assert api(other_liaison).get(url).status_code == 404, url
        assert api().get(url).status_code == 401, url


def test_anonymous_visitors_are_sent_to_sign_in(client, campaign):
    for url in [*member_urls(campaign), reverse("monitoring:operations")]:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_operator_pages_refuse_members(client, campaign, liaison):
    job = Job.objects.filter(stage__campaign=campaign).first()
    client.force_login(liaison)
    assert client.get(reverse("monitoring:operations")).status_code == 403
    assert client.get(reverse("monitoring:job_log", args=[job.pk])).status_code == 403


def test_members_do_not_see_stuck_work_or_log_links(client, campaign, physicist, operator):
    from campaigns.models import StuckFlag, StuckKind

    job = Job.objects.filter(stage__campaign=campaign).first()
    StuckFlag.objects.create(
        campaign=campaign, stage=job.stage, job=job, kind=StuckKind.HELD, reason="held for 2 h"
    )
    url = reverse("monitoring:campaign", args=[campaign.pk])
    client.force_login(physicist)
    assert "held for 2 h" not in client.get(url).content.decode()
    client.force_login(operator)
    assert "held for 2 h" in client.get(url).content.decode()


def test_the_index_leads_each_role_to_its_page(client, campaign, operator, physicist):
    client.force_login(operator)
    assert client.get(reverse("monitoring:index"))["Location"] == reverse("monitoring:operations")
    client.force_login(physicist)
    assert client.get(reverse("monitoring:index"))["Location"] == reverse(
        "monitoring:experiment", args=[campaign.experiment.slug]
    )


def test_only_operators_issue_reports(client, campaign, liaison):
    client.force_login(liaison)
    url = reverse("monitoring:report", args=[campaign.experiment.slug])
    assert client.post(url, {"since": ""}).status_code == 403
