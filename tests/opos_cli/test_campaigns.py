"""``opos campaigns ...``: list against the live server; progress and watch mode.

Watch mode is also run against a small local server that implements the progress
contract (``GET /api/v1/campaigns/{id}/progress/``), so its output is tested on figures
the test chooses.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from campaigns.models import Campaign

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = dt.date.today() + dt.timedelta(days=20)


@pytest.fixture
def mcc(dune):
    return Campaign.objects.create(
        experiment=dune.experiment, name="MCC5.0", deadline=DEADLINE, backend="local"
    )


def test_list_campaigns(cli, live_server, mcc):
    cli.login(live_server.url)
    result = cli("campaigns", "list")
    assert result.code == 0, result.err
    header, row = result.out.splitlines()
    assert header.split() == ["ID", "NAME", "EXPERIMENT", "STATE", "DEADLINE", "PRIORITY"]
    assert row.split()[:5] == [str(mcc.id), "MCC5.0", "dune", "planned", DEADLINE.isoformat()]
    data = cli("campaigns", "list", "--json").json()
    assert [c["name"] for c in data] == ["MCC5.0"]


def test_progress_against_the_live_server(cli, live_server, mcc):
    cli.login(live_server.url)
    result = cli("campaigns", "progress", "MCC5.0")
    assert result.code == 0, result.err
    assert result.out.startswith("MCC5.0 (dune) · planned")
    assert " events" in result.out
    assert f"deadline  {DEADLINE.isoformat()}" in result.out
    watched = cli("campaigns", "progress", "MCC5.0", "--watch", "--interval", "0.2", "--count", "3")
    assert watched.code == 0, watched.err
    assert watched.out.count("MCC5.0 (dune) · planned") == 3
    as_json = cli("campaigns", "progress", str(mcc.id), "--json")
    assert as_json.code == 0 and as_json.json()["id"] == mcc.id


def test_unknown_campaign_is_refused(cli, live_server, mcc):
    cli.login(live_server.url)
    result = cli("campaigns", "progress", "MCC9.9")
    assert result.code == 1 and "no campaign named 'MCC9.9'" in result.err


# --- Against a local server implementing the progress contract ------------------------


class ProgressApi:
    """``/api/v1/campaigns/`` and ``.../progress/``; each progress call advances by 25%."""

    def __init__(self):
        self.calls = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body, kind="application/json"):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.headers.get("Authorization") != "Token t0ken":
                    return self._send(401, {"detail": "Invalid token."})
                path = self.path.split("?")[0]
                if path == "/api/v1/campaigns/":
                    return self._send(200, {"count": 2, "next": None, "results": api.campaigns})
                if path == "/api/v1/campaigns/7/":
                    return self._send(200, api.campaigns[0])
                if path == "/api/v1/campaigns/7/progress/":
                    return self._send(200, api.progress())
                return self._send(404, "<h1>Not Found</h1>", "text/html")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.campaigns = [
            {"id": 7, "name": "MCC5.0", "experiment": "dune", "state": "active",
             "deadline": "2026-12-20", "priority": "high"},
            {"id": 8, "name": "MCC5.0", "experiment": "sbnd", "state": "planned",
             "deadline": "2027-01-10", "priority": "normal"},
        ]  # fmt: skip
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def progress(self) -> dict:
        self.calls += 1
        done = min(self.calls * 2_500_000, 10_000_000)
        return {
            "events_done": done,
            "events_target": 10_000_000,
            "jobs": {"running": 120, "queued": 40, "succeeded": self.calls * 2500, "failed": 3},
            "throughput_per_hour": 52_000.0,
            "eta": "2026-12-04T14:00:00Z",
            "eta_low": "2026-12-03T09:00:00Z",
            "eta_high": "2026-12-05T20:00:00Z",
            "deadline": "2026-12-20",
            "status": "done" if done >= 10_000_000 else "on_track",
            "milestones": {},
            "snapshots": [],
        }

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def progress_api():
    api = ProgressApi()
    yield api
    api.stop()


def logged_in(cli, url):
    cli.config_file.parent.mkdir(parents=True, exist_ok=True)
    cli.config_file.write_text(json.dumps({"url": url, "token": "t0ken"}))


def test_watch_prints_a_bounded_series_of_progress_bars(cli, progress_api):
    logged_in(cli, progress_api.url)

    result = cli(
        "campaigns", "progress", "MCC5.0", "--experiment", "dune",
        "--watch", "--interval", "0.2", "--count", "3",
    )  # fmt: skip

    assert result.code == 0, result.err
    blocks = [b for b in result.out.strip().split("\n\n") if b]
    assert len(blocks) == 3 and progress_api.calls == 3
    first, _, third = blocks
    assert first.splitlines()[0] == "MCC5.0 (dune) · active"
    assert " 25.0%  2,500,000 / 10,000,000 events" in first
    assert " 75.0%  7,500,000 / 10,000,000 events" in third
    assert "█" in first and "░" in first
    assert "rate      52,000 events/h" in first
    assert "ETA       2026-12-04 14:00" in first and "between 2026-12-03 09:00" in first
    assert "deadline  2026-12-20 · on track, 16d " in first and "to spare" in first
    assert "jobs      running 120 · queued 40 · succeeded 2,500 · failed 3" in first
    assert "updated " in third and "Ctrl-C stops" in third


def test_watch_stops_when_the_campaign_is_done(cli, progress_api):
    logged_in(cli, progress_api.url)
    result = cli("campaigns", "progress", "7", "--watch", "--interval", "0.1")
    assert result.code == 0, result.err
    assert progress_api.calls == 4  # 25, 50, 75, 100%: then it stops by itself
    assert "100.0%" in result.out and "· done" in result.out


def test_watch_json_is_one_object_per_line(cli, progress_api):
    logged_in(cli, progress_api.url)
    result = cli(
        "campaigns", "progress", "MCC5.0", "--experiment", "dune",
        "--watch", "--interval", "0.2", "--count", "2", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [line["events_done"] for line in lines] == [2_500_000, 5_000_000]
    assert all(line["campaign"] == "MCC5.0" and line["status"] == "on_track" for line in lines)


def test_single_progress_snapshot_as_json(cli, progress_api):
    logged_in(cli, progress_api.url)
    result = cli("campaigns", "progress", "MCC5.0", "--experiment", "dune", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["events_target"] == 10_000_000 and data["campaign"]["id"] == 7


def test_ambiguous_name_and_bad_watch_options_are_usage_errors(cli, progress_api):
    logged_in(cli, progress_api.url)
    ambiguous = cli("campaigns", "progress", "MCC5.0")
    assert (
        ambiguous.code == 2
        and "several experiments (dune, sbnd): add --experiment" in ambiguous.err
    )
    assert cli("campaigns", "progress", "7", "--watch", "--interval", "0").code == 2
    assert cli("campaigns", "progress", "7", "--count", "zero").code == 2
    assert progress_api.calls == 0
