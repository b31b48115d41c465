"""What a job printed and where it ran is for operators: members see state, exit code and
failure class through the API, never the folder, the stderr tail or text quoting them."""

import pytest

from campaigns.batch.base import STDERR_FILE
from campaigns.choices import FailureClass, JobState
from campaigns.execution import submission
from campaigns.models import Job, Submission
from tests.campaigns.exec_support import DEMO_STAGES, demo_template, launch
from tests.factories import grant

pytestmark = pytest.mark.django_db

LEAK = "token-prefix-1234abcd"


@pytest.fixture
def failed_job(exec_env, fake_backend, experiment, operator):
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    launch(experiment, operator, events=20, per_job=10, template=template)
    submission.submit_ready()
    job = Job.objects.order_by("index").first()
    folder = exec_env / "failed-job"
    folder.mkdir(parents=True)
    (folder / STDERR_FILE).write_text(f"reading the tracker's secrets... {LEAK}\n")
    Job.objects.filter(pk=job.pk).update(
        workdir=str(folder),
        state=JobState.FAILED,
        exit_code=3,
        failure_class=FailureClass.OTHER,
        failure_reason=f"it failed; exit code 3; OPOS: {LEAK}",
    )
    Submission.objects.update(error=f"sbatch: error in {folder}")
    return Job.objects.get(pk=job.pk)


@pytest.fixture
def members(experiment, liaison, physicist):
    return {"liaison": liaison, "physicist": physicist}


@pytest.mark.parametrize("role", ["liaison", "physicist"])
def test_members_see_state_exit_code_and_class_only(api, failed_job, members, role):
    client = api(members[role])
    detail = client.get(f"/api/v1/jobs/{failed_job.pk}/")
    assert detail.status_code == 200
    body = detail.json()
    assert (body["state"], body["exit_code"], body["failure_class"]) == ("failed", 3, "other")
    assert (body["workdir"], body["stderr_tail"], body["failure_reason"]) == (None, None, None)
    listing = client.get("/api/v1/jobs/", {"state": "failed"})
    assert listing.json()["results"][0]["failure_reason"] is None
    submissions = client.get("/api/v1/submissions/").json()["results"]
    assert submissions and all(s["error"] is None for s in submissions)
    for response in (detail, listing, client.get("/api/v1/submissions/")):
        assert LEAK.encode() not in response.content
        assert str(failed_job.workdir).encode() not in response.content


def test_operators_read_the_folder_and_the_tail(api, failed_job, operator):
    body = api(operator).get(f"/api/v1/jobs/{failed_job.pk}/").json()
    assert body["workdir"] == failed_job.workdir
    assert LEAK in body["stderr_tail"] and LEAK in body["failure_reason"]
    subs = api(operator).get("/api/v1/submissions/").json()["results"]
    assert any(failed_job.workdir in (s["error"] or "") for s in subs)


def test_an_operator_who_is_also_a_member_reads_them(api, failed_job, experiment, operator):
    grant(operator, "liaison", experiment)
    assert LEAK in api(operator).get(f"/api/v1/jobs/{failed_job.pk}/").json()["stderr_tail"]
