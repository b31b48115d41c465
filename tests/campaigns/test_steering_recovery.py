"""Recovery with overrides: memory, walltime and parameter values for the new attempts only,
checked against the template, recorded, and what the job really runs with (local backend)."""

import json
from pathlib import Path

import pytest

from campaigns.choices import CampaignEventKind, JobState
from campaigns.execution import recovery
from campaigns.models import CampaignEvent, Job, OutputFile, Stage
from campaigns.services import CampaignError
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from tests.campaigns.exec_support import DEMO_STAGES, all_final, demo_template, launch, run_until

# Fails unless the energy was raised above 10 GeV; writes what it ran with.
SCRIPT = """\
import json, pathlib, sys
job = json.loads(pathlib.Path("job.json").read_text())
if float(job["parameters"]["energy_gev"]) < 10:
    print("beam energy too low for this geometry", file=sys.stderr)
    sys.exit(3)
out = pathlib.Path("output")
out.mkdir(exist_ok=True)
(out / "ran.json").write_text(json.dumps({"parameters": job["parameters"],
                                          "resources": job["resources"]}))
"""

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def all_failed(exec_env, experiment, operator, settings, tmp_path):
    """A 3-job campaign whose jobs all failed for good (the energy parameter was wrong)."""
    settings.OPOS_MAX_ATTEMPTS = 1
    script = tmp_path / "picky.py"
    script.write_text(SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, request = launch(experiment, operator, events=30, per_job=10, template=template)
    run_until(lambda: all_final(stage__campaign=campaign))
    assert set(Job.objects.values_list("state", flat=True)) == {JobState.FAILED}
    return campaign, request


def test_overrides_reach_the_new_attempts_and_the_job(all_failed, operator):
    campaign, request = all_failed
    first = Job.objects.get(index=0)

    result = recovery.recover_campaign(
        campaign,
        operator,
        note="wrong beam energy in the template default",
        overrides={"memory_mb": "900", "walltime_s": 120, "parameters": {"energy_gev": "12.5"}},
    )

    assert result.failed == 3
    new = Job.objects.get(index=0, attempt=2)
    assert (new.parent_id, new.memory_mb, new.walltime_s) == (first.pk, 900, 120)
    assert new.parameters == {"energy_gev": 12.5}  # coerced to the declared float
    event = CampaignEvent.objects.get(campaign=campaign, kind=CampaignEventKind.RECOVERED)
    assert event.changes["overrides"] == [
        None,
        {"memory_mb": 900, "walltime_s": 120, "parameters": {"energy_gev": 12.5}},
    ]
    assert event.reason == "wrong beam energy in the template default"

    run_until(lambda: ProductionRequest.objects.get(pk=request.pk).state == RequestState.COMPLETED)
    ran = [
        json.loads(Path(f.path).read_text())
        for f in OutputFile.objects.filter(job__stage__campaign=campaign)
    ]
    assert len(ran) == 3
    for seen in ran:
        # The stage's other values stay; the override replaces one.
        assert seen["parameters"] == {"seed": 1, "energy_gev": 12.5}
        assert (seen["resources"]["memory_mb"], seen["resources"]["walltime_s"]) == (900, 120)
    # The stage itself (and so the rest of the plan) is unchanged.
    assert Stage.objects.get(campaign=campaign).parameters == {"seed": 1, "energy_gev": 2.5}


def test_bad_overrides_are_refused_naming_each_problem_and_write_nothing(all_failed, operator):
    campaign, _request = all_failed
    cases = [
        (
            {"parameters": {"energy_gev": 500}},
            "parameters: stage generation: energy_gev: must be at most 100.0",
        ),
        ({"parameters": {"beam": "x"}}, "parameters: beam: no stage recovered declares it"),
        ({"memory_mb": 10**9}, "memory_mb: at most 64000 (OPOS_MAX_MEMORY_MB)"),
        ({"walltime_s": "soon"}, "walltime_s: a whole number is required, not 'soon'"),
        ({"memory_mb": 0}, "memory_mb: must be greater than zero"),
    ]
    for overrides, reason in cases:
        with pytest.raises(CampaignError) as refused:
            recovery.recover_campaign(campaign, operator, overrides=overrides)
        assert refused.value.kind == "invalid"
        assert any(r.startswith(reason) for r in refused.value.reasons), refused.value.reasons
    assert Job.objects.count() == 3
    assert not CampaignEvent.objects.filter(kind=CampaignEventKind.RECOVERED).exists()


def test_a_selection_of_jobs_is_recovered_alone_and_checked(all_failed, operator):
    campaign, _request = all_failed
    chosen = Job.objects.get(index=1)
    other = Job.objects.get(index=2)

    result = recovery.recover_campaign(
        campaign, operator, jobs=[chosen.pk], overrides={"parameters": {"energy_gev": 20}}
    )

    assert [Job.objects.get(pk=pk).index for pk in result.jobs] == [1]
    assert Job.objects.filter(attempt=2).count() == 1
    # The replaced attempt is no longer the latest: choosing it again is refused, as is a
    # job of another campaign.
    with pytest.raises(CampaignError) as refused:
        recovery.recover_campaign(campaign, operator, jobs=[chosen.pk, other.pk + 10_000])
    assert refused.value.reasons == [
        f"job {chosen.pk}: attempt 1 of index 1 was already tried again; choose the latest attempt",
        f"job {other.pk + 10_000}: not a job of this campaign (or stage)",
    ]
    event = CampaignEvent.objects.get(kind=CampaignEventKind.RECOVERED)
    assert event.changes["jobs"] == [None, [chosen.pk]]


def test_recover_endpoint_with_overrides(all_failed, api, operator, liaison):
    campaign, _request = all_failed
    url = f"/api/v1/campaigns/{campaign.pk}/recover/"
    body = {"memory_mb": 800, "parameters": {"energy_gev": 11}, "note": "energy"}
    assert api(liaison).post(url, body, format="json").status_code == 403

    bad = api(operator).post(url, {"parameters": {"energy_gev": -1}}, format="json")
    assert bad.status_code == 400
    assert bad.json()["reasons"] == [
        "parameters: stage generation: energy_gev: must be at least 0.1"
    ]

    answer = api(operator).post(url, body, format="json")

    assert answer.status_code == 200, answer.json()
    data = answer.json()
    assert (data["failed"], data["missing_outputs"], len(data["jobs"])) == (3, 0, 3)
    assert data["overrides"] == {"memory_mb": 800, "parameters": {"energy_gev": 11.0}}
    assert set(Job.objects.filter(attempt=2).values_list("memory_mb", flat=True)) == {800}


@pytest.mark.slurm
def test_overrides_reach_slurm(slurm_cluster, exec_env, experiment, operator, settings, tmp_path):
    """The recovered attempts are submitted with the memory and walltime asked for: Slurm's
    own record of the job (``scontrol show job``) says so."""
    import subprocess

    from campaigns.execution import submission

    settings.OPOS_MAX_ATTEMPTS = 1
    script = tmp_path / "picky.py"
    script.write_text(SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _request = launch(
        experiment, operator, events=10, per_job=10, template=template, backend="slurm"
    )
    run_until(lambda: all_final(stage__campaign=campaign), timeout=240, pause=1.0)

    recovery.recover_campaign(
        campaign,
        operator,
        overrides={"memory_mb": 700, "walltime_s": 300, "parameters": {"energy_gev": 15}},
    )
    submission.submit_ready()

    job = Job.objects.get(attempt=2)
    assert job.batch_id
    shown = subprocess.run(
        ["scontrol", "show", "job", job.batch_id],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "MinMemoryNode=700M" in shown, shown
    assert "TimeLimit=00:05:00" in shown, shown
    run_until(lambda: all_final(stage__campaign=campaign), timeout=240, pause=1.0)
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED
