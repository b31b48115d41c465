"""Output storage on the embedded default (a local folder), storage areas set by operators,
retention of work folders and the operators' view of both."""

from __future__ import annotations

import datetime as dt
import io
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import JobState
from campaigns.execution import finalize, polling, retention, storage, submission
from campaigns.models import Job, OutputFile, Replica, StorageArea, Transfer
from campaigns.services.errors import CampaignError
from campaigns.services.storage import set_storage_area
from campaigns.tasks import purge_workdirs
from experiments.models import AuditEvent
from tests.campaigns.exec_support import DEMO_STAGES, all_final, demo_template, launch, run_until

SCRIPT = """\
import json, pathlib
job = json.loads(pathlib.Path("job.json").read_text())
out = pathlib.Path("output")
out.mkdir(exist_ok=True)
(out / "events.txt").write_text("event\\n" * job["events"])
"""


def local_path(replica: Replica) -> Path:
    return Path(unquote(replica.url.removeprefix("file://")))


# --- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("root://eos.example.org:1094//eos/dune/prod", "root://eos.example.org:1094//eos/dune/prod"),
        ("root://dcache-door.site.org//pnfs/site.org/data/", "root://dcache-door.site.org//pnfs/site.org/data"),
        ("  /srv/storage/dune/ ", "/srv/storage/dune"),
    ],
)  # fmt: skip
def test_good_addresses_are_kept_normalised(given, kept):
    assert storage.validate_url(given) == kept


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ("", "give root://"),
        ("root://host:1094/relative", "root://host[:port]//absolute/path"),
        ("root://host:99999//data", "port 99999"),
        ("root://host:1094//data/../etc", ". or .."),
        ("root://host:1094//data?authz=token", "no query string"),
        ("root://ho st//data", "root://host[:port]//absolute/path"),
        ("https://host//data", "neither"),
        ("relative/folder", "neither"),
        ("/srv/../etc", ". or .."),
    ],
)
def test_bad_addresses_are_refused_saying_what_is_wrong(given, complaint):
    with pytest.raises(storage.StorageURLError, match=None) as refused:
        storage.validate_url(given)
    assert complaint in str(refused.value)


def test_file_names_outside_the_catalogue_rule_never_name_a_stored_file():
    area = storage.Area("root://h:1094//data")
    assert area.url_for("dune.gen", "f.root") == "root://h:1094//data/dune.gen/f.root"
    for name in ("..", ".hidden", "a/b"):
        with pytest.raises(storage.TransferError):
            area.url_for("dune.gen", name)


# --- storage areas ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_operators_set_an_area_audited_and_others_are_refused(experiment, operator, liaison):
    with pytest.raises(CampaignError) as refused:
        set_storage_area(experiment, "root://eos:1094//eos/x", liaison)
    assert refused.value.kind == "forbidden"
    with pytest.raises(CampaignError) as refused:
        set_storage_area(experiment, "root://eos:1094/eos/x", operator)
    assert refused.value.reasons[0].startswith("url: an XRootD address is")
    assert not StorageArea.objects.exists()

    area = set_storage_area(experiment, "root://eos:1094//eos/x/", operator)

    assert area.url == "root://eos:1094//eos/x"
    event = AuditEvent.objects.get(action="storage.area_set")
    assert event.actor == operator and event.experiment == experiment
    assert event.data["url"] == [
        str(django_settings.OPOS_STORAGE_DIR / experiment.slug),
        "root://eos:1094//eos/x",
    ]
    assert set_storage_area(experiment, "", operator) is None  # back to the default
    assert not StorageArea.objects.exists()


@pytest.mark.django_db
def test_the_storage_area_command_shows_sets_and_refuses(experiment):
    out = io.StringIO()
    call_command("storage_area", experiment.slug, stdout=out)
    assert out.getvalue().strip().endswith(f"/storage/{experiment.slug}")
    call_command("storage_area", experiment.slug, "root://xrd.site:1094//store", stdout=out)
    assert "root://xrd.site:1094//store" in out.getvalue()
    with pytest.raises(CommandError, match="port 0 is not between"):
        call_command("storage_area", experiment.slug, "root://xrd.site:0//store")
    with pytest.raises(CommandError, match="no experiment"):
        call_command("storage_area", "nope")


# --- the embedded default -----------------------------------------------------------------------


@pytest.fixture
def done_job(exec_env, experiment, operator, tmp_path):
    script = tmp_path / "write.py"
    script.write_text(SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _request = launch(experiment, operator, events=10, per_job=10, template=template)
    run_until(lambda: all_final(stage__campaign=campaign))
    return Job.objects.get(stage__campaign=campaign)


@pytest.mark.django_db(transaction=True)
def test_default_area_is_a_folder_per_experiment_with_verified_replicas(done_job, experiment):
    assert done_job.state == JobState.SUCCEEDED
    f = OutputFile.objects.get()
    replica = Replica.objects.get(file=f)
    stored = local_path(replica)
    assert stored == django_settings.OPOS_STORAGE_DIR / experiment.slug / f.dataset.name / f.name
    assert stored.read_bytes() == Path(f.path).read_bytes()
    assert replica.adler32 == storage.adler32_of(stored)
    assert replica.storage is None and replica.verified_at is not None


@pytest.mark.django_db(transaction=True)
def test_an_unwritable_area_keeps_the_job_in_flight_with_the_reason(
    exec_env, experiment, operator, tmp_path
):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the area's folder should be")
    set_storage_area(experiment, str(blocked), operator)
    script = tmp_path / "write.py"
    script.write_text(SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _request = launch(experiment, operator, events=10, per_job=10, template=template)
    submission.submit_ready()
    deadline = time.monotonic() + 60
    while not Job.objects.filter(stage__campaign=campaign).exclude(outcome="").exists():
        assert time.monotonic() < deadline, "job did not finish"
        polling.poll()
        time.sleep(0.2)

    finalize.finalize_outcomes()

    job = Job.objects.get(stage__campaign=campaign)
    assert job.state == JobState.RUNNING
    transfer = Transfer.objects.get(job=job)
    assert transfer.error_kind == "denied" and str(blocked) in transfer.reason
    assert not OutputFile.objects.exists()


# --- retention ----------------------------------------------------------------------------------


def age(job: Job, days: int) -> None:
    Job.objects.filter(pk=job.pk).update(finished=timezone.now() - dt.timedelta(days=days))


@pytest.mark.django_db(transaction=True)
def test_retention_empties_old_folders_with_stored_outputs_and_keeps_logs(done_job, settings):
    settings.OPOS_WORKDIR_RETENTION_DAYS = 7
    folder = Path(done_job.workdir)
    output = Path(OutputFile.objects.get().path)
    assert retention.purge().jobs == 0  # finished just now: within retention
    age(done_job, 8)

    size = output.stat().st_size
    looked = retention.purge(dry_run=True)
    assert looked.jobs == 1 and looked.files >= 1 and looked.bytes >= size
    assert output.exists()  # a dry run removes nothing
    assert Job.objects.get(pk=done_job.pk).workdir_purged_at is None

    report = retention.purge()

    assert (report.jobs, report.files, report.bytes) == (1, looked.files, looked.bytes)
    assert not output.exists()
    kept = {p.name for p in folder.iterdir()}
    assert {"stdout.log", "stderr.log", "manifest.json"} <= kept
    assert Job.objects.get(pk=done_job.pk).workdir_purged_at is not None
    assert AuditEvent.objects.get(action="workdirs.purged").data["jobs"] == 1
    assert retention.purge().jobs == 0  # done once
    assert local_path(Replica.objects.get()).exists()  # the stored copy is untouched


@pytest.mark.django_db(transaction=True)
def test_retention_leaves_folders_whose_outputs_are_not_all_in_storage(done_job):
    age(done_job, 30)
    Replica.objects.all().delete()
    assert retention.purge().jobs == 0
    assert Path(OutputFile.objects.get().path).exists()


@pytest.mark.django_db(transaction=True)
def test_retention_waits_while_the_next_stage_still_reads_the_folder(
    exec_env, experiment, operator, tmp_path
):
    script = tmp_path / "write.py"
    script.write_text(SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:2], scripts={"generation": script})
    campaign, _request = launch(experiment, operator, events=10, per_job=10, template=template)
    first = Job.objects.get(stage__campaign=campaign, stage__position=0)
    submission.submit_ready()
    deadline = time.monotonic() + 60
    while Job.objects.get(pk=first.pk).outcome == "":
        assert time.monotonic() < deadline, "job did not finish"
        polling.poll()
        time.sleep(0.2)
    finalize.finalize_outcomes()  # the simulation job is ready now, not run
    assert Job.objects.get(pk=first.pk).state == JobState.SUCCEEDED
    age(first, 30)

    assert retention.purge().jobs == 0
    assert Path(OutputFile.objects.get(job=first).path).exists()


@pytest.mark.django_db(transaction=True)
def test_the_dry_run_command_and_the_beat_task(done_job, settings):
    age(done_job, 30)
    out = io.StringIO()
    call_command("purge_workdirs", "--dry-run", stdout=out)
    assert done_job.workdir in out.getvalue()
    assert "would remove" in out.getvalue()
    assert Path(OutputFile.objects.get().path).exists()
    assert (
        settings.CELERY_BEAT_SCHEDULE["execution-purge-workdirs"]["task"]
        == purge_workdirs.name
        == "campaigns.purge_workdirs"
    )

    summary = purge_workdirs.apply().get()

    assert summary["jobs"] == 1 and "folders" not in summary
    assert not Path(OutputFile.objects.get().path).exists()


def test_outside_the_work_area_nothing_is_removed(tmp_path, settings):
    settings.OPOS_WORK_DIR = tmp_path / "work"
    (tmp_path / "work").mkdir()
    assert not retention._inside_work_area(tmp_path / "elsewhere")
    assert not retention._inside_work_area(tmp_path / "work")
    assert retention._inside_work_area(tmp_path / "work" / "c1" / "s1" / "j0")


# --- the operations page ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_operations_page_shows_work_area_use_and_waiting_transfers(
    done_job, client, operator, django_assert_max_num_queries
):
    retention.measure_work_area()
    retry = Job.objects.create(
        stage=done_job.stage, index=done_job.index, attempt=2, state=JobState.RUNNING
    )
    Transfer.objects.create(
        job=retry,
        attempts=2,
        next_try=timezone.now(),
        error_kind="unreachable",
        reason="transfer attempt 2/5: copy to root://x failed: connection refused",
    )
    client.force_login(operator)
    with django_assert_max_num_queries(19):  # the page's ceiling (test_query_counts)
        page = client.get(reverse("monitoring:operations")).content.decode()
    assert "Storage and work area" in page
    assert str(django_settings.OPOS_WORK_DIR) in page
    assert "free of" in page and "measured" in page
    assert "connection refused" in page and "unreachable" in page


@pytest.mark.django_db(transaction=True)
def test_the_dataset_page_says_where_each_file_is_stored(
    done_job, client, physicist, django_assert_max_num_queries
):
    replica = Replica.objects.select_related("file").get()
    url = reverse("campaigns:dataset_detail", args=[replica.file.dataset_id])
    client.force_login(physicist)
    # The page, the replicas in one more query, and the parts of force-completed requests.
    with django_assert_max_num_queries(9):
        page = client.get(url).content.decode()
    assert replica.url in page and f"adler32 {replica.adler32}" in page


@pytest.mark.django_db(transaction=True)
def test_the_api_lists_each_files_replicas(done_job, client, physicist):
    replica = Replica.objects.select_related("file").get()
    client.force_login(physicist)
    files = client.get(f"/api/v1/datasets/{replica.file.dataset_id}/files/").json()
    (row,) = files["results"]
    assert row["replicas"] == [
        {
            "url": replica.url,
            "adler32": replica.adler32,
            "verified_at": row["replicas"][0]["verified_at"],
            "adopted": False,
        }
    ]
    assert row["replicas"][0]["verified_at"].startswith(replica.verified_at.strftime("%Y-%m-%d"))
