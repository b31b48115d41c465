"""Recovery: the operator's launch resubmits exactly the jobs that failed for good and those
whose outputs are missing, linked to their parents; the reconciler heals counter drift."""

from pathlib import Path
from urllib.parse import unquote

import pytest

from campaigns.choices import CampaignEventKind, JobState
from campaigns.execution import recovery
from campaigns.models import CampaignEvent, Dataset, Job, OutputFile, Stage
from campaigns.services import CampaignError
from requests_app.choices import RequestState
from tests.campaigns.exec_support import (
    DEMO_STAGES,
    all_final,
    assert_counters_match,
    demo_template,
    launch,
    run_until,
)

SCRIPT = """\
import json, pathlib, sys
job = json.loads(pathlib.Path("job.json").read_text())
if pathlib.Path({broken!r}).exists() and job["index"] == 2:
    print("cannot open calibration database", file=sys.stderr)
    sys.exit(1)
out = pathlib.Path("output")
out.mkdir(exist_ok=True)
(out / "events.txt").write_text(str(job["index"]))
"""


@pytest.fixture
def half_failed(exec_env, experiment, operator, settings, tmp_path):
    """A 4-job campaign where job 2 failed for good (one attempt allowed)."""
    settings.OPOS_MAX_ATTEMPTS = 1
    # A site folder every job reads (a conditions area), shown in the local sandbox.
    shared = tmp_path / "conditions"
    shared.mkdir(mode=0o755)
    local = settings.OPOS_BACKEND_OPTIONS["local"]
    settings.OPOS_BACKEND_OPTIONS = {
        **settings.OPOS_BACKEND_OPTIONS,
        "local": {**local, "tool_paths": [str(shared)]},
    }
    broken = shared / "calibration-broken"
    broken.write_text("")
    script = tmp_path / "calibrated.py"
    script.write_text(SCRIPT.format(broken=str(broken)))
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, request = launch(experiment, operator, events=40, per_job=10, template=template)
    run_until(lambda: all_final(stage__campaign=campaign))
    assert sorted(Job.objects.values_list("index", "state")) == [
        (0, JobState.SUCCEEDED),
        (1, JobState.SUCCEEDED),
        (2, JobState.FAILED),
        (3, JobState.SUCCEEDED),
    ]
    broken.unlink()  # the operator fixed the calibration database
    return campaign, request


@pytest.mark.django_db(transaction=True)
def test_recovery_resubmits_exactly_the_failed_and_missing_output_jobs(half_failed, operator):
    campaign, request = half_failed
    lost_file = OutputFile.objects.get(job__index=1)
    Path(lost_file.path).unlink()  # a disk went away
    replica = lost_file.replicas.get()  # and with it the copy in the (local) storage
    Path(unquote(replica.url.removeprefix("file://"))).unlink()
    failed = Job.objects.get(index=2)
    done = Job.objects.get(index=1)

    result = recovery.recover_campaign(campaign, operator, note="calibration DB fixed")

    assert (result.failed, result.missing_outputs) == (1, 1)
    new = {j.index: j for j in Job.objects.filter(pk__in=result.jobs)}
    assert set(new) == {1, 2}
    assert (new[2].parent_id, new[2].attempt, new[2].state) == (failed.pk, 2, JobState.READY)
    assert (new[1].parent_id, new[1].attempt) == (done.pk, 2)
    assert not OutputFile.objects.filter(pk=lost_file.pk).exists()  # no longer claimed
    event = CampaignEvent.objects.get(campaign=campaign, kind=CampaignEventKind.RECOVERED)
    assert (event.actor, event.reason) == (operator, "calibration DB fixed")
    assert_counters_match(campaign)
    # Nothing else to recover: a second launch right away adds nothing.
    again = recovery.recover_campaign(campaign, operator)
    assert (again.failed, again.missing_outputs) == (0, 0)

    run_until(lambda: request.__class__.objects.get(pk=request.pk).state == RequestState.COMPLETED)
    stage = Stage.objects.get(campaign=campaign)
    dataset = Dataset.objects.get(pk=stage.output_dataset_id)
    assert dataset.file_count == OutputFile.objects.filter(dataset=dataset).count() == 4
    assert stage.events_done == 40
    assert all(Path(f.path).exists() for f in OutputFile.objects.all())


@pytest.mark.django_db(transaction=True)
def test_recovery_of_one_stage_and_permissions(half_failed, operator, liaison):
    campaign, _request = half_failed
    stage = Stage.objects.get(campaign=campaign)
    with pytest.raises(CampaignError) as refused:
        recovery.recover_campaign(campaign, liaison)
    assert refused.value.kind == "forbidden"
    with pytest.raises(CampaignError):
        recovery.recover_campaign(campaign, operator, stage=stage.pk + 1000)

    assert recovery.recover_campaign(campaign, operator, stage=stage).failed == 1


@pytest.mark.django_db
def test_reconciler_heals_counter_drift(exec_env, experiment, operator):
    campaign, _ = launch(experiment, operator, events=40, per_job=10)
    Stage.objects.filter(campaign=campaign).update(n_ready=99, n_running=7)

    report = recovery.recover()

    assert report.recounted == 3
    gen = Stage.objects.get(campaign=campaign, position=0)
    assert (gen.n_ready, gen.n_running) == (4, 0)
    assert_counters_match(campaign)


@pytest.mark.django_db(transaction=True)
def test_recover_action_through_the_api(half_failed, api, operator, liaison):
    campaign, _request = half_failed
    url = f"/api/v1/campaigns/{campaign.pk}/actions/"
    assert api(liaison).post(url, {"action": "recover"}, format="json").status_code == 403

    answer = api(operator).post(url, {"action": "recover", "note": "fixed"}, format="json")

    assert answer.status_code == 200, answer.json()
    retry = Job.objects.get(index=2, attempt=2)
    assert retry.state == JobState.READY and retry.parent.attempt == 1


@pytest.mark.django_db(transaction=True)
def test_a_file_whose_folder_copy_is_gone_but_is_in_storage_is_not_remade(half_failed, operator):
    campaign, _request = half_failed
    kept = OutputFile.objects.get(job__index=1)
    Path(kept.path).unlink()  # retention emptied the job's folder; the replica is safe

    result = recovery.recover_campaign(campaign, operator, note="only the failed one")

    assert (result.failed, result.missing_outputs) == (1, 0)
    assert OutputFile.objects.filter(pk=kept.pk).exists()
