"""/metrics: the Prometheus text format, what it reports, and who may read it."""

import re

import pytest

from campaigns.choices import JobState
from monitoring.instrumentation import record
from monitoring.services.metrics import Family, escape

from .builders import launch, planned_campaign, set_progress

pytestmark = pytest.mark.django_db

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE = re.compile(rf"^({NAME})(\{{{LABEL}(?:,{LABEL})*\}})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$")
HELP = re.compile(rf"^# HELP ({NAME}) .*$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|summary|histogram|untyped)$")


def parse(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """A strict reader of the text format: every line must be HELP, TYPE or a sample of
    the family declared last, each family once."""
    assert text.endswith("\n")
    families: dict[str, list] = {}
    kinds: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if m := HELP.match(line):
            assert m.group(1) not in families, f"family {m.group(1)} twice"
            current = m.group(1)
            families[current] = []
            continue
        if m := TYPE.match(line):
            assert m.group(1) == current
            kinds[current] = m.group(2)
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample: {line!r}"
        name = m.group(1)
        allowed = {current}
        if kinds.get(current) in ("summary", "histogram"):
            allowed |= {f"{current}_sum", f"{current}_count", f"{current}_bucket"}
        assert name in allowed, f"{name} outside its family {current}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        families[current].append((name, labels, float(m.group(3))))
    for name, kind in kinds.items():
        if kind == "counter":
            assert name.endswith("_total"), name
    return families


@pytest.fixture
def busy(experiment, operator):
    campaign = launch(planned_campaign(experiment, operator), operator)
    set_progress(campaign, 0.4, running=3)
    record("campaigns.poll", 1.25, "SUCCESS", {"polled": 10, "moved": 3, "unavailable": []})
    record("campaigns.poll", 0.75, "FAILURE")
    return campaign


def test_the_exposition_parses_and_reports_jobs_by_state_backend_and_experiment(
    client, operator, busy
):
    client.force_login(operator)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = parse(response.content.decode())
    jobs = {
        (s[1]["backend"], s[1]["experiment"], s[1]["state"]): s[2] for s in families["opos_jobs"]
    }
    assert jobs[("local", "dune", JobState.RUNNING)] == 3
    assert jobs[("local", "dune", JobState.SUCCEEDED)] == 10  # 40% of 25 jobs
    assert {s[1]["task"] for s in families["opos_task_runs_total"]} == {"campaigns.poll"}
    runs = families["opos_task_runs_total"][0][2]
    failures = families["opos_task_failures_total"][0][2]
    assert (runs, failures) == (2, 1)
    duration = {s[0]: s[2] for s in families["opos_task_duration_seconds"]}
    assert duration == {
        "opos_task_duration_seconds_sum": 2.0,
        "opos_task_duration_seconds_count": 2,
    }
    assert families["opos_poll_cycle_duration_seconds"][0][2] == 0.75
    results = {s[1]["field"]: s[2] for s in families["opos_task_results_total"]}
    assert results == {"polled": 10, "moved": 3, "unavailable": 0}
    for name in (
        "opos_submissions_total",
        "opos_scheduler_submittable_jobs",
        "opos_scheduler_waiting_stages",
        "opos_campaign_events_done",
        "opos_backend_capacity",
        "opos_stuck_flags",
        "opos_job_failures",
    ):
        assert name in families
    done = families["opos_campaign_events_done"][0]
    assert done[1] == {"experiment": "dune", "campaign": busy.name, "campaign_id": str(busy.pk)}
    assert done[2] == 400


def test_label_values_are_escaped():
    family = Family("opos_x", "gauge", "A test.")
    family.add(1, campaign='say "hi"\\\nbye')
    lines = list(family.render())
    assert lines[-1] == 'opos_x{campaign="say \\"hi\\"\\\\\\nbye"} 1'
    assert escape("plain") == "plain"
    parse("\n".join(lines) + "\n")


def test_anonymous_callers_and_members_get_nothing(client, busy, liaison):
    response = client.get("/metrics")
    assert response.status_code == 403
    assert b"opos_" not in response.content
    client.force_login(liaison)
    response = client.get("/metrics")
    assert response.status_code == 403
    assert b"dune" not in response.content


def test_a_bearer_token_opens_it(client, settings, busy):
    settings.OPOS_METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics")["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401 and b"dune" not in wrong.content
    good = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert good.status_code == 200 and b'experiment="dune"' in good.content


def test_allowed_networks_open_it_by_connection_address(client, settings, busy):
    settings.OPOS_METRICS_ALLOWED_NETWORKS = ["10.1.0.0/16"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403
    # A forwarded header names no one: only the connection's address counts.
    forged = client.get("/metrics", REMOTE_ADDR="10.2.0.1", HTTP_X_FORWARDED_FOR="10.1.2.3")
    assert forged.status_code == 403


def test_only_get(client, operator):
    client.force_login(operator)
    assert client.post("/metrics").status_code == 405


def test_the_grafana_dashboard_uses_the_metrics_we_expose(client, operator, busy):
    import json
    from pathlib import Path

    from django.conf import settings

    dashboard = json.loads(
        (Path(settings.BASE_DIR) / "grafana" / "opos-dashboard.json").read_text()
    )
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])] + [
        v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")
    ]
    used = set(re.findall(r"\b(opos_[a-z_]+)", " ".join(exprs)))
    client.force_login(operator)
    families = parse(client.get("/metrics").content.decode())
    exposed = set(families)
    exposed |= {f"{n}_sum" for n in families} | {f"{n}_count" for n in families}
    assert used and used <= exposed, used - exposed
