"""The execution API: jobs, submissions, datasets and files, stuck flags, failure rules,
cancel-and-retry and the campaign's `recover` action; visibility and bounded queries."""

import hashlib
import json

import pytest

from campaigns.batch import BatchState
from campaigns.choices import FailureClass, JobState
from campaigns.execution import finalize, polling, submission
from campaigns.models import Dataset, FailureRule, Job, OutputFile, Stage
from tests.campaigns.exec_support import DEMO_STAGES, demo_template, launch

pytestmark = pytest.mark.django_db

API_JOB_FIELDS = {
    "id",
    "stage",
    "index",
    "attempt",
    "state",
    "backend",
    "batch_id",
    "exit_code",
    "failure_class",
    "events",
    "started",
    "finished",
}


@pytest.fixture
def running(exec_env, fake_backend, experiment, operator):
    """Six jobs submitted: two succeeded (outputs declared), one failed, three queued."""
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _ = launch(experiment, operator, events=60, per_job=10, template=template)
    submission.submit_ready()
    jobs = list(Job.objects.order_by("index"))
    for job in jobs[:2]:
        folder = exec_env / f"out{job.index}"
        (folder / "output").mkdir(parents=True)
        (folder / "output" / "e.txt").write_text("x")
        (folder / "manifest.json").write_text(
            json.dumps(
                {
                    "exit_code": 0,
                    "files": [
                        {
                            "name": f"e_{job.index}.txt",
                            "path": "output/e.txt",
                            "size": 1,
                            "sha256": hashlib.sha256(b"x").hexdigest(),
                            "events": 10,
                        }
                    ],
                }
            )
        )
        Job.objects.filter(pk=job.pk).update(workdir=str(folder))
    fake_backend.set(jobs[:2], BatchState.SUCCEEDED, exit_code=0)
    fake_backend.set(jobs[2:3], BatchState.FAILED, exit_code=3)
    polling.poll()
    finalize.finalize_outcomes()
    return campaign


def test_jobs_list_filters_and_json(running, api, operator, django_assert_max_num_queries):
    client = api(operator)
    with django_assert_max_num_queries(6):
        body = client.get("/api/v1/jobs/", {"campaign": running.pk}).json()
    assert body["count"] == 7  # six jobs and one retry
    assert set(body["results"][0]) >= API_JOB_FIELDS
    failed = client.get(
        "/api/v1/jobs/", {"campaign": running.pk, "failure_class": FailureClass.OTHER}
    ).json()["results"]
    assert [(j["index"], j["state"], j["exit_code"]) for j in failed] == [(2, JobState.FAILED, 3)]
    stage = Stage.objects.get(campaign=running)
    states = client.get("/api/v1/jobs/", {"stage": stage.pk, "state": "succeeded,planned"}).json()
    assert sorted(j["state"] for j in states["results"]) == ["planned", "succeeded", "succeeded"]
    detail = client.get(f"/api/v1/jobs/{failed[0]['id']}/").json()
    assert "stderr_tail" in detail and detail["workdir"]


def test_queries_stay_bounded_with_more_rows(running, api, operator, django_assert_max_num_queries):
    client = api(operator)
    for path in ("/api/v1/jobs/", "/api/v1/submissions/", "/api/v1/datasets/", "/api/v1/stuck/"):
        with django_assert_max_num_queries(6):
            assert client.get(path, {"page_size": 500}).status_code == 200


def test_submissions_and_datasets(running, api, operator):
    client = api(operator)
    subs = client.get("/api/v1/submissions/", {"campaign": running.pk}).json()["results"]
    assert [(s["state"], s["size"], s["campaign"]) for s in subs] == [("submitted", 6, running.pk)]
    datasets = client.get("/api/v1/datasets/", {"campaign": running.pk}).json()["results"]
    [dataset] = datasets
    assert (dataset["file_count"], dataset["events"]) == (2, 20)
    files = client.get(f"/api/v1/datasets/{dataset['id']}/files/").json()
    assert [f["name"] for f in files["results"]] == ["e_0.txt", "e_1.txt"]
    assert {"size", "checksum", "events", "job"} <= set(files["results"][0])


def test_other_experiments_see_nothing(running, api, other_liaison, physicist):
    outsider = api(other_liaison)
    for path in ("/api/v1/jobs/", "/api/v1/submissions/", "/api/v1/datasets/"):
        assert outsider.get(path).json()["count"] == 0
    dataset = Dataset.objects.get(campaign=running)
    assert outsider.get(f"/api/v1/datasets/{dataset.pk}/files/").status_code == 404
    job = Job.objects.first()
    assert outsider.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    assert api(physicist).get("/api/v1/jobs/").json()["count"] == 7
    assert api().get("/api/v1/jobs/").status_code in (401, 403)


def test_cancel_retry_endpoint(running, api, operator, physicist, fake_backend):
    queued = Job.objects.filter(state=JobState.QUEUED).first()
    url = f"/api/v1/jobs/{queued.pk}/cancel-retry/"
    assert api(physicist).post(url, {}, format="json").status_code == 403

    answer = api(operator).post(url, {"note": "stuck"}, format="json")

    assert answer.status_code == 200
    assert answer.json()["cancelled"] == [queued.pk]
    assert fake_backend.cancelled == [queued.batch_id]
    done = Job.objects.get(state=JobState.SUCCEEDED, index=0)
    again = api(operator).post(f"/api/v1/jobs/{done.pk}/cancel-retry/", {}, format="json")
    assert again.status_code == 409


def test_define_dataset(api, experiment, liaison, other_liaison):
    body = {
        "experiment": experiment.slug,
        "name": "dune:external:flux-v2",
        "files": [
            {"name": "flux_001.root", "size": 10, "checksum": "a" * 64, "events": 100},
            {"name": "flux_002.root", "size": 20, "checksum": "b" * 64, "events": 50},
        ],
    }
    answer = api(liaison).post("/api/v1/datasets/", body, format="json")
    assert answer.status_code == 201, answer.json()
    assert (answer.json()["file_count"], answer.json()["events"]) == (2, 150)
    assert OutputFile.objects.filter(dataset__name="dune:external:flux-v2").count() == 2

    again = api(liaison).post("/api/v1/datasets/", body, format="json")
    assert again.status_code == 400 and "already exists" in str(again.json())
    bad = {**body, "name": "x2", "files": [{"name": "a/b", "size": 1, "checksum": "zz"}]}
    refused = api(liaison).post("/api/v1/datasets/", bad, format="json").json()
    assert any("checksum" in r for r in refused["reasons"])
    assert any("name" in r for r in refused["reasons"])
    # Another experiment's liaison cannot even see the experiment.
    assert api(other_liaison).post("/api/v1/datasets/", body, format="json").status_code == 404


def test_failure_rules_operators_write_everyone_reads(api, operator, liaison, experiment):
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    rule = {
        "template": template.pk,
        "exit_codes": [17],
        "failure_class": "other",
        "action": "more_walltime",
        "factor": 2.0,
    }
    assert api(liaison).post("/api/v1/failure-rules/", rule, format="json").status_code == 403
    created = api(operator).post("/api/v1/failure-rules/", rule, format="json")
    assert created.status_code == 201, created.json()
    empty = api(operator).post("/api/v1/failure-rules/", {**rule, "exit_codes": []}, format="json")
    assert empty.status_code == 400
    assert api(liaison).get("/api/v1/failure-rules/").json()["count"] == 1
    assert FailureRule.objects.get().factor == 2.0
