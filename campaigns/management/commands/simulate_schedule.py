"""``manage.py simulate_schedule SCENARIO``: our scheduling policy against two baselines."""

import datetime as dt
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from campaigns import conf
from campaigns.scheduler import POLICIES
from campaigns.simulator import ScenarioError, load_scenario, simulate

SCENARIO_DIR = Path(settings.BASE_DIR) / "campaigns" / "scenarios"
LABELS = {
    "slack": "least slack (ours)",
    "slack-only": "least slack, no priority",
    "fcfs": "first come first served",
    "priority": "priority only",
}


def _hours(seconds: float | None) -> str:
    if seconds is None or seconds == float("inf"):
        return "never"
    return f"{seconds / 3600:.1f} h"


class Command(BaseCommand):
    help = (
        "Run the scheduling policy against simulated time on a scenario file and print, for our "
        "policy and the baselines (least slack without priority, FCFS, priority only), the "
        "deadlines met and the total lateness."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "scenario", help="a scenario YAML file, or the name of one in campaigns/scenarios/"
        )
        parser.add_argument(
            "--policy", action="append", choices=POLICIES, help="run only these policies"
        )
        parser.add_argument(
            "--detail", action="store_true", help="also print every campaign's finish"
        )

    def handle(self, scenario, policy=None, detail=False, **options):
        path = Path(scenario)
        if not path.exists():
            named = SCENARIO_DIR / (scenario if scenario.endswith(".yaml") else f"{scenario}.yaml")
            if not named.exists():
                known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
                raise CommandError(f"no scenario file {scenario!r} (shipped scenarios: {known})")
            path = named
        try:
            loaded = load_scenario(path)
        except ScenarioError as exc:
            raise CommandError(
                f"{path}: the scenario is not valid:\n  " + "\n  ".join(exc.problems)
            ) from None
        results = [simulate(loaded, p, conf.priority_margin_s()) for p in (policy or POLICIES)]

        capacity = ", ".join(f"{b}={n}" for b, n in loaded.capacity.items())
        out = self.stdout
        out.write(
            f"Scenario: {loaded.name} ({len(loaded.campaigns)} campaigns; capacity {capacity})"
        )
        if loaded.description:
            out.write(loaded.description)
        out.write("")
        out.write(
            f"{'policy':26} {'deadlines met':>14} {'total lateness':>15} {'all done after':>15}"
        )
        for r in results:
            out.write(
                f"{LABELS[r.policy]:26} {f'{r.met}/{len(r.outcomes)}':>14} "
                f"{_hours(r.total_lateness_s):>15} {_hours(r.makespan_s):>15}"
            )
        if detail:
            out.write("")
            out.write("Finish of each campaign (late ones marked !):")
            header = f"{'campaign':24} {'deadline':>16}" + "".join(
                f" {r.policy:>18}" for r in results
            )
            out.write(header)
            for i, campaign in enumerate(loaded.campaigns):
                row = f"{campaign.name:24} {self._when(loaded, campaign.deadline_s):>16}"
                for r in results:
                    outcome = r.outcomes[i]
                    mark = "" if outcome.met else " !"
                    row += f" {self._when(loaded, outcome.finish_s) + mark:>18}"
                out.write(row)

    @staticmethod
    def _when(scenario, seconds: float | None) -> str:
        if seconds is None:
            return "never"
        if scenario.start is None:
            return _hours(seconds)
        return (scenario.start + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M")
