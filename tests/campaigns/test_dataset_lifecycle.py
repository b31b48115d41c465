"""The dataset lifecycle on real jobs (local backend): invalidating a file takes it out of
the counts and of the inputs of jobs not yet run, marks what was made from it, and a
remake re-runs the job that made it; datasets close, reopen and retire."""

from __future__ import annotations

import pytest

from campaigns.choices import CampaignEventKind, JobState
from campaigns.execution import lifecycle, submission
from campaigns.execution.catalogue import define_dataset
from campaigns.execution.recovery import recover_campaign
from campaigns.models import CampaignEvent, Dataset, Job, OutputFile, Stage
from campaigns.services import CampaignError
from campaigns.services.expansion import _input_files
from experiments.models import AuditEvent
from tests.campaigns.exec_support import DEMO_STAGES, demo_template, launch, run_until

GENERATE = """\
import json, pathlib, sys
job = json.loads(pathlib.Path("job.json").read_text())
if job["index"] == 2 and pathlib.Path({broken!r}).exists():
    print("cannot open calibration database", file=sys.stderr)
    sys.exit(1)
out = pathlib.Path("output")
out.mkdir(exist_ok=True)
first = job["first_event"]
lines = [json.dumps({{"event": first + i, "energy": 1.0 + i}}) for i in range(job["events"])]
(out / "events.jsonl").write_text("\\n".join(lines) + "\\n")
"""

pytestmark = pytest.mark.django_db(transaction=True)


def succeeded(**filters) -> int:
    return Job.objects.filter(state=JobState.SUCCEEDED, **filters).count()


@pytest.fixture
def produced(exec_env, experiment, operator, settings, tmp_path):
    """generation -> simulation, 3 jobs each; generation 2 failed for good, so the
    campaign stays active (a completed campaign is not recovered) and simulation 2
    waits, planned, for an input that never came."""
    settings.OPOS_MAX_ATTEMPTS = 1
    shared = tmp_path / "conditions"
    shared.mkdir(mode=0o755)
    local = settings.OPOS_BACKEND_OPTIONS["local"]
    settings.OPOS_BACKEND_OPTIONS = {
        **settings.OPOS_BACKEND_OPTIONS,
        "local": {**local, "tool_paths": [str(shared)]},
    }
    (shared / "broken").write_text("")
    script = tmp_path / "generate.py"
    script.write_text(GENERATE.format(broken=str(shared / "broken")))
    template = demo_template(experiment, stages=DEMO_STAGES[:2], scripts={"generation": script})
    campaign, _request = launch(experiment, operator, events=30, per_job=10, template=template)
    gen = Stage.objects.get(campaign=campaign, name="generation")
    sim = Stage.objects.get(campaign=campaign, name="simulation")
    run_until(
        lambda: (
            succeeded(stage=sim) == 2
            and Job.objects.filter(stage=gen, index=2, state=JobState.FAILED).exists()
        )
    )
    return campaign, gen, sim


def test_invalidating_a_file_takes_it_out_of_counts_and_inputs_and_marks_descendants(
    produced, liaison
):
    _campaign, gen, sim = produced
    dataset = gen.output_dataset
    before = Dataset.objects.get(pk=dataset.pk)
    bad = OutputFile.objects.get(dataset=dataset, job__index=1)
    events_done = Stage.objects.get(pk=gen.pk).events_done

    result = lifecycle.invalidate_files(dataset, [bad.name], liaison, "  wrong calibration  ")

    bad.refresh_from_db()
    assert bad.invalidated is not None
    assert (bad.invalid_reason, bad.invalidated_by) == ("wrong calibration", liaison)
    after = Dataset.objects.get(pk=dataset.pk)
    assert (after.file_count, after.size_bytes, after.events) == (
        before.file_count - 1,
        before.size_bytes - bad.size,
        before.events - bad.events,
    )
    assert Stage.objects.get(pk=gen.pk).events_done == events_done - bad.job.events
    # The simulation job that read it made a file "from invalid input"; the other did not.
    flagged = dict(
        OutputFile.objects.filter(dataset=sim.output_dataset).values_list(
            "job__index", "from_invalid_input"
        )
    )
    assert flagged == {0: False, 1: True}
    assert (result.files, result.descendants) == (1, 1)
    # A job not yet run no longer reads it.
    jobs = list(Job.objects.filter(stage=sim, index__in=[0, 1]).values(*submission.PREPARE_FIELDS))
    paths = submission._inputs(sim, jobs)
    by_index = {j["index"]: paths[j["id"]] for j in jobs}
    assert by_index[1] == []
    assert len(by_index[0]) == 1
    event = AuditEvent.objects.get(action="dataset.invalidate_files")
    assert (event.actor, event.target, event.data["reason"]) == (
        liaison,
        dataset.name,
        "wrong calibration",
    )


def test_remake_reruns_the_job_that_made_an_invalid_file(produced, operator):
    campaign, gen, sim = produced
    dataset = gen.output_dataset
    before = Dataset.objects.get(pk=dataset.pk)
    lifecycle.invalidate_dataset(dataset, operator, "generator bug")
    assert Dataset.objects.get(pk=dataset.pk).state == "invalid"
    assert Dataset.objects.get(pk=dataset.pk).file_count == 0

    jobs = lifecycle.remake(dataset, operator, "generator fixed")

    remade = Job.objects.filter(pk__in=jobs)
    assert sorted(remade.values_list("index", "attempt", "state")) == [
        (0, 2, JobState.READY),
        (1, 2, JobState.READY),
    ]
    assert Dataset.objects.get(pk=dataset.pk).state == "open"
    event = CampaignEvent.objects.get(campaign=campaign, kind=CampaignEventKind.RECOVERED)
    assert event.changes["invalid_outputs"] == [None, 2]
    with pytest.raises(CampaignError, match="Nothing to remake"):
        lifecycle.remake(dataset, operator, "twice")  # the remakes are pending already

    run_until(lambda: succeeded(stage=gen, attempt=2) == 2)
    after = Dataset.objects.get(pk=dataset.pk)
    assert (after.file_count, after.size_bytes, after.events) == (
        before.file_count,
        before.size_bytes,
        before.events,
    )
    names = list(OutputFile.objects.filter(dataset=dataset).values_list("name", "invalidated"))
    assert len(names) == 4  # two invalid, kept; two remade, valid, with the same names
    assert sorted(n for n, when in names if when is None) == sorted(
        n for n, when in names if when is not None
    )
    # The simulation job of index 1 would now read the remade file.
    job = Job.objects.filter(stage=sim, index=1).values(*submission.PREPARE_FIELDS).get()
    (path,) = submission._inputs(sim, [job])[job["id"]]
    assert OutputFile.objects.get(path=path).job.attempt == 2


def test_close_is_refused_while_jobs_would_write_then_recovery_leaves_it_alone(
    produced, operator, liaison
):
    campaign, gen, sim = produced
    with pytest.raises(CampaignError, match="1 jobs would still write") as refused:
        lifecycle.change_state(sim.output_dataset, "close", liaison, "complete")
    assert refused.value.kind == "conflict"

    closed = lifecycle.change_state(gen.output_dataset, "close", liaison, "the sample is done")
    assert (closed.state, closed.state_reason, closed.state_by) == (
        "closed",
        "the sample is done",
        liaison,
    )
    with pytest.raises(CampaignError, match="takes no more files"):
        recover_campaign(campaign, operator, stage=gen)
    result = recover_campaign(campaign, operator)  # the failed generation job is left out
    assert (result.jobs, result.closed) == ([], [gen.output_dataset.name])

    reopened = lifecycle.change_state(gen.output_dataset, "reopen", operator, "one job missing")
    assert reopened.state == "open"
    assert recover_campaign(campaign, operator, stage=gen).failed == 1
    actions = list(
        AuditEvent.objects.filter(target=gen.output_dataset.name)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["dataset.close", "dataset.reopen"]


def test_input_dataset_files_invalidated_are_not_planned_and_mark_descendants(
    experiment, liaison, operator
):
    files = [
        {"name": f"raw_{i}.root", "size": 10 + i, "checksum": f"{i:064x}", "events": 100}
        for i in range(3)
    ]
    dataset = define_dataset(liaison, experiment, "dune:raw-2026", files=files)

    lifecycle.invalidate_files(dataset, ["raw_1.root"], operator, "detector noise")

    planned = _input_files(experiment, {"dune:raw-2026"})
    assert planned == {"dune:raw-2026": [("raw_0.root", 100), ("raw_2.root", 100)]}
    dataset.refresh_from_db()
    assert (dataset.file_count, dataset.size_bytes, dataset.events) == (2, 22, 200)


@pytest.mark.parametrize(
    ("names", "reason", "message"),
    [
        (["raw_0.root"], "   ", "A reason is required"),
        (["raw_0.root"], "x" * 2001, "The reason is too long"),
        ([], "why", "Say which files"),
        ("raw_0.root", "why", "Say which files"),
        (["raw\x000.root"], "why", "Say which files"),
        (["x" * 256], "why", "Say which files"),
        (["raw_0.root", "nope.root"], "why", "Nothing was invalidated"),
    ],
)
def test_bad_input_is_refused_and_nothing_changes(experiment, liaison, names, reason, message):
    files = [{"name": "raw_0.root", "size": 1, "checksum": "0" * 64, "events": 1}]
    dataset = define_dataset(liaison, experiment, "dune:raw-bad", files=files)
    with pytest.raises(CampaignError, match=message) as refused:
        lifecycle.invalidate_files(dataset, names, liaison, reason)
    assert refused.value.kind == "invalid"
    assert not OutputFile.objects.filter(invalidated__isnull=False).exists()
    assert Dataset.objects.get(pk=dataset.pk).file_count == 1
    assert not AuditEvent.objects.filter(action__startswith="dataset.").exists()


def test_who_may_steer_a_dataset(experiment, liaison, physicist, other_liaison, operator):
    dataset = define_dataset(liaison, experiment, "dune:raw-roles")
    for user in (physicist, other_liaison):
        with pytest.raises(CampaignError) as refused:
            lifecycle.change_state(dataset, "close", user, "done")
        assert refused.value.kind == "forbidden"
    with pytest.raises(CampaignError, match="Only OPOS operators") as refused:
        lifecycle.remake(dataset, liaison, "again")
    assert refused.value.kind == "forbidden"
    assert lifecycle.change_state(dataset, "retire", liaison, "superseded").state == "retired"
    with pytest.raises(CampaignError, match="it is retired") as refused:
        lifecycle.change_state(dataset, "close", operator, "done")
    assert refused.value.kind == "conflict"
    by_hand = define_dataset(liaison, experiment, "dune:raw-by-hand")
    with pytest.raises(CampaignError, match="defined by hand"):
        lifecycle.remake(by_hand, operator, "again")
