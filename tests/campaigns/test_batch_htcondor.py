"""HTCondor backend: what can be checked without a pool, checked with HTCondor's own code.

The submit description is parsed and macro-expanded by ``htcondor2.Submit``; arguments and
environment are split by HTCondor's ClassAd function ``argsToList`` (the V2 argument parser);
states come from real ``classad2.ClassAd`` job ads. The schedd calls are not exercised here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import classad2
import htcondor2
import pytest

from campaigns.batch import ArraySpec, BackendError, BackendUnavailable, BatchState, JobRef
from campaigns.batch.htcondor import (
    JOB_SHIM,
    JOBPRIO_BY_LEVEL,
    HTCondorBackend,
    build_submit_description,
    make_submit,
    map_job_ad,
    order_by_index,
)

HOSTILE = [
    "; rm -rf / $(touch /tmp/pwned) `touch /tmp/pwned`",
    "&& echo hi | cat > /tmp/pwned",
    'it\'s "quoted" \\ $HOME *',
    "a  b\tc",
    "",
    "$(Process) $(DOLLAR",
]


def split_v2(quoted: str) -> list[str]:
    """Split a submit-language ``"..."`` value the way HTCondor does.

    The outer double quotes and the doubled double quotes are the submit file's own layer
    (what condor_submit strips when it writes the job ad); the rest is HTCondor's parser.
    """
    assert quoted.startswith('"') and quoted.endswith('"')
    ad = classad2.ClassAd()
    ad["Raw"] = quoted[1:-1].replace('""', '"')
    ad["Split"] = classad2.ExprTree("argsToList(Raw)")
    result = ad.eval("Split")
    assert isinstance(result, list), result
    return result


@pytest.fixture
def spec(tmp_path: Path) -> ArraySpec:
    return ArraySpec(
        token="tok-condor_1",
        array_dir=tmp_path / "array $x",
        size=10,
        argv=[sys.executable, "-c", "print(1)", *HOSTILE],
        cores=4,
        memory_mb=2048,
        walltime_s=7200,
        account="group_dune.prod",
        environment={"OPOS_TEST_VAR": "spaces and 'quotes' and \"double\" and $(x)"},
    )


def test_submit_description_as_htcondor_reads_it(spec):
    submit = make_submit(spec)

    assert isinstance(submit, htcondor2.Submit)
    assert submit.expand("universe") == "vanilla"
    # The shared job shim makes the element folder when the element starts: the job starts
    # in the array folder, and its logs are named by batch id in logs/, made at submission.
    assert submit.expand("executable") == str(JOB_SHIM)
    assert submit.expand("transfer_executable") == "false"
    assert submit.expand("initialdir") == str(spec.array_dir)
    description = build_submit_description(spec)
    assert description["output"] == "logs/$(Cluster).$(Process).out"
    assert description["error"] == "logs/$(Cluster).$(Process).err"
    assert submit.expand("log") == "condor.log"
    assert submit.expand("request_cpus") == "4"
    assert submit.expand("request_memory") == "2048MB"
    assert submit.expand("allowed_job_duration") == "7200"
    assert submit.expand("accounting_group") == "group_dune.prod"
    assert submit.expand("should_transfer_files") == "NO"
    assert submit.expand("MY.OposToken") == '"tok-condor_1"'
    assert submit.expand("MY.OposIndex") == "0"
    assert "queue" not in submit.expand("arguments")


def test_placement_and_priority_reach_the_submit_description(spec):
    import dataclasses

    spec = dataclasses.replace(
        spec, requirements='(OpSysAndVer == "AlmaLinux9")', priority=3, partition="ignored"
    )
    submit = make_submit(spec)
    assert submit.expand("requirements") == '(OpSysAndVer == "AlmaLinux9")'
    assert submit.expand("priority") == str(JOBPRIO_BY_LEVEL[3])
    assert JOBPRIO_BY_LEVEL[3] > JOBPRIO_BY_LEVEL[1] > JOBPRIO_BY_LEVEL[0]
    assert "partition" not in build_submit_description(spec)
    with pytest.raises(ValueError, match="one line"):
        dataclasses.replace(spec, requirements="true\nqueue 1000")


def test_resumed_submission_starts_at_its_element(spec):
    submit = make_submit(spec, start=7)

    assert submit.expand("initialdir") == str(spec.array_dir)
    assert submit.expand("MY.OposIndex") == "7"
    env = dict(e.split("=", 1) for e in split_v2(submit.expand("environment")))
    assert env["OPOS_ARRAY_INDEX"] == "7"  # the shim runs element 7 in array_dir/7
    assert env["OPOS_ARRAY_DIR"] == str(spec.array_dir)


def test_arguments_with_shell_metacharacters_stay_literal(spec):
    submit = make_submit(spec)

    assert split_v2(submit.expand("arguments")) == [sys.executable, "-c", "print(1)", *HOSTILE]


def test_environment_is_literal(spec):
    submit = make_submit(spec)

    env = dict(e.split("=", 1) for e in split_v2(submit.expand("environment")))

    log_name = env.pop("OPOS_LOG_NAME")  # $(Cluster).$(Process), known once queued
    assert env == {
        "OPOS_TEST_VAR": "spaces and 'quotes' and \"double\" and $(x)",
        "OPOS_ARRAY_DIR": str(spec.array_dir),
        "OPOS_ARRAY_INDEX": "0",
    }
    assert log_name.endswith(".0")


@pytest.mark.parametrize("bad", ["$$(Memory)", "a$(DOLLAR)b", "two\nlines"])
def test_values_htcondor_cannot_pass_literally_are_refused(tmp_path, bad):
    spec = ArraySpec("tok-bad", tmp_path, 1, [sys.executable, bad])
    with pytest.raises(BackendError):
        make_submit(spec)


def test_relative_executable_is_resolved_on_the_submit_host(tmp_path):
    description = build_submit_description(ArraySpec("tok-rel", tmp_path, 1, ["sh", "-c", "x"]))
    assert Path(split_v2(description["arguments"])[0]).is_absolute()
    with pytest.raises(BackendError, match="not found"):
        build_submit_description(ArraySpec("tok-rel", tmp_path, 1, ["no-such-opos-tool"]))


def ad(**attrs) -> classad2.ClassAd:
    return classad2.ClassAd({"ClusterId": 12, "ProcId": 3, **attrs})


@pytest.mark.parametrize(
    ("attrs", "state", "exit_code"),
    [
        ({"JobStatus": 1}, BatchState.QUEUED, None),
        ({"JobStatus": 2}, BatchState.RUNNING, None),
        ({"JobStatus": 3, "RemoveReason": "via condor_rm"}, BatchState.CANCELLED, None),
        ({"JobStatus": 4, "ExitCode": 0, "ExitBySignal": False}, BatchState.SUCCEEDED, 0),
        ({"JobStatus": 4, "ExitCode": 3, "ExitBySignal": False}, BatchState.FAILED, 3),
        ({"JobStatus": 4, "ExitBySignal": True, "ExitSignal": 9}, BatchState.FAILED, 137),
        ({"JobStatus": 5, "HoldReason": "Error from slot1: disk quota"}, BatchState.HELD, None),
        ({"JobStatus": 6}, BatchState.RUNNING, None),
        ({"JobStatus": 7}, BatchState.HELD, None),
    ],
)
def test_state_mapping_from_real_classads(attrs, state, exit_code):
    status = map_job_ad(ad(**attrs))
    assert status.state is state
    assert status.exit_code == exit_code


def test_mapping_evaluates_expressions_and_keeps_reasons():
    job = classad2.ClassAd("[ JobStatus = 2 + 2; ExitCode = 1 + 1; ExitBySignal = false ]")
    assert map_job_ad(job).state is BatchState.FAILED
    assert map_job_ad(job).exit_code == 2
    held = map_job_ad(ad(JobStatus=5, HoldReason="Error from slot1: disk quota"))
    assert held.reason == "Error from slot1: disk quota"
    assert map_job_ad(ad(JobStatus=htcondor2.JobStatus.HELD.value)).state is BatchState.HELD


def test_order_by_index_rebuilds_element_order():
    ads = [
        ad(ClusterId=7, ProcId=2, OposIndex=2),
        ad(ClusterId=7, ProcId=0, OposIndex=0),
        ad(ClusterId=7, ProcId=1, OposIndex=1),
        ad(ClusterId=7, ProcId=1, OposIndex=1),  # in the queue and in the history
    ]
    assert order_by_index(ads, "t") == ["7.0", "7.1", "7.2"]
    with pytest.raises(BackendError):
        order_by_index([ad(ClusterId=7, ProcId=1, OposIndex=1)], "t")
    with pytest.raises(BackendError, match="twice"):
        order_by_index(
            [ad(ClusterId=7, ProcId=0, OposIndex=0), ad(ClusterId=8, ProcId=0, OposIndex=0)], "t"
        )


def test_no_schedd_is_unavailable(tmp_path, monkeypatch):
    # No HTCondor here: every schedd call must say "try later", never invent a job state.
    monkeypatch.setenv("_CONDOR_SCHEDD_HOST", "localhost:9")
    backend = HTCondorBackend(pool="localhost:9")
    with pytest.raises(BackendUnavailable):
        backend.status([JobRef("12.3", tmp_path)])
    with pytest.raises(BackendError):
        backend.status([JobRef("not-an-id", tmp_path)])
