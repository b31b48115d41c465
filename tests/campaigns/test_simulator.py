"""The simulator runs the real policy on scenarios; ours meets the most deadlines."""

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from campaigns.simulator import ScenarioError, compare, load_scenario, simulate

MCC5 = Path(settings.BASE_DIR) / "campaigns" / "scenarios" / "mcc5.yaml"


def test_on_the_mcc5_round_our_policy_meets_at_least_as_many_deadlines_as_both_baselines():
    ours, slack_only, fcfs, priority = compare(load_scenario(MCC5))
    assert (ours.policy, fcfs.policy, priority.policy) == ("slack", "fcfs", "priority")
    assert slack_only.policy == "slack-only" and slack_only.met == ours.met
    assert ours.met >= fcfs.met and ours.met >= priority.met
    # And here strictly more, with every deadline met.
    assert ours.met == len(ours.outcomes) == 5
    assert ours.met > fcfs.met and ours.met > priority.met
    assert ours.total_lateness_s == 0 < min(fcfs.total_lateness_s, priority.total_lateness_s)


def test_the_simulation_is_deterministic():
    scenario = load_scenario(MCC5)
    first, second = simulate(scenario), simulate(scenario)
    assert [o.finish_s for o in first.outcomes] == [o.finish_s for o in second.outcomes]


def test_work_streams_through_the_stages():
    scenario = load_scenario(
        """
capacity: {slurm: 10}
tick: 1m
campaigns:
  - name: a
    deadline: 1d
    stages:
      - {jobs: 10, walltime: 1h}
      - {walltime: 1h}
      - {walltime: 30m, files_per_job: 5}
"""
    )
    (outcome,) = simulate(scenario).outcomes
    # Ten slots, ten jobs per stage: 1h + 1h + 30m, no waiting for whole stages beyond that.
    assert outcome.finish_s == pytest.approx(2.5 * 3600)


def test_throttles_and_quotas_hold_in_the_simulation():
    scenario = load_scenario(
        """
capacity: {slurm: 100}
quotas: {dune: 100}
tick: 1m
campaigns:
  - {name: a, experiment: dune, throttle: 5, deadline: 10d, stages: [{jobs: 50, walltime: 1h}]}
"""
    )
    (outcome,) = simulate(scenario).outcomes
    assert outcome.finish_s == pytest.approx(10 * 3600)  # 50 jobs, 5 at a time


def test_the_command_prints_both_baselines(tmp_path):
    out = io.StringIO()
    call_command("simulate_schedule", str(MCC5), "--detail", stdout=out)
    text = out.getvalue()
    assert "least slack (ours)" in text and "5/5" in text
    assert "first come first served" in text and "priority only" in text
    assert "total lateness" in text
    assert "dune-cosmogenics" in text
    # Shipped scenarios are found by name too.
    out = io.StringIO()
    call_command("simulate_schedule", "mcc5", "--policy", "fcfs", stdout=out)
    assert "first come first served" in out.getvalue()


def test_bad_scenarios_are_refused_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        """
capacity: {slurm: 0}
campaigns:
  - name: a
    backend: htcondor
    priority: urgent
    deadline: soon
    stages: [{walltime: 1h}]
"""
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    problems = "\n".join(info.value.problems)
    assert "capacity.slurm: a whole number above 0 is required" in problems
    assert "campaigns[0].backend: 'htcondor' has no capacity" in problems
    assert "campaigns[0].priority: choose one of" in problems
    assert "campaigns[0].deadline: a duration" in problems
    assert "campaigns[0].stages[0].jobs: a whole number above 0 is required" in problems
    with pytest.raises(CommandError, match="not valid"):
        call_command("simulate_schedule", str(bad), stdout=io.StringIO())
    with pytest.raises(CommandError, match="no scenario file"):
        call_command("simulate_schedule", "nowhere", stdout=io.StringIO())
