"""``opos`` shows the server's refusal of an out-of-bounds value cleanly: exit 1, the field,
the limit, no traceback; ``--json`` carries the 400."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest

from requests_app.models import ProductionRequest

pytestmark = pytest.mark.django_db(transaction=True)


def request_file(tmp_path, deadline: str, events: int = 10000, per_job: int = 1000):
    path = tmp_path / "request.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            experiment: dune
            physics_group: oscillations
            ticket: RITM0012345
            title: MCC5.0 oscillation samples
            deadline: {deadline}
            samples:
              - name: numu_fhc
                template: genie
                events: {events}
                events_per_job: {per_job}
                output_dataset: mcc5.0/numu_fhc
            """
        )
    )
    return path


def test_a_far_deadline_is_refused_with_the_servers_reason(cli, live_server, dune, tmp_path):
    cli.login(live_server.url)
    path = request_file(tmp_path, "9999-12-31")

    result = cli("requests", "create", "-f", str(path))
    as_json = cli("requests", "create", "-f", str(path), "--json")

    assert result.code == 1, result.err
    assert "deadline: 9999-12-31 is too far ahead" in result.err
    assert "OPOS_DEADLINE_HORIZON_DAYS" in result.err
    assert "Traceback" not in result.err
    assert as_json.code == 1 and as_json.json()["status"] == 400
    assert not ProductionRequest.objects.exists()


def test_10_12_one_event_jobs_are_refused_with_the_limit(cli, live_server, dune, tmp_path):
    cli.login(live_server.url)
    soon = (dt.date.today() + dt.timedelta(days=60)).isoformat()
    path = request_file(tmp_path, soon, events=10**12, per_job=1)

    result = cli("requests", "create", "-f", str(path))

    assert result.code == 1, result.err
    assert "samples[0].events_per_job:" in result.err
    assert "OPOS_MAX_JOBS_PER_SAMPLE" in result.err
    assert not ProductionRequest.objects.exists()
