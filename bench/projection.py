"""What the worker's projection refresh costs, part by part, on a generated database.

    .venv/bin/python -m bench.projection --db bench8 [--repeat 3]

The parts of ``campaigns.services.projection.compute``: the scheduler's input (five
queries), every open campaign's forecast, the decision on every stage, and the "if
scheduled now" forecast of every unscheduled request; and the size of what is stored.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import setup_django


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="bench8")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    setup_django(args.db)
    from campaigns import conf
    from campaigns.scheduler import decide
    from campaigns.services.feasibility import forecast_campaigns, forecast_unscheduled
    from campaigns.services.planning import load_inputs
    from requests_app.choices import UNSCHEDULED_STATES
    from requests_app.models import ProductionRequest

    times: dict[str, list[float]] = {}

    def timed(name, fn, *args):
        start = time.perf_counter()
        value = fn(*args)
        times.setdefault(name, []).append((time.perf_counter() - start) * 1000)
        return value

    margin = conf.priority_margin_s()
    requests = list(
        ProductionRequest.objects.filter(state__in=sorted(UNSCHEDULED_STATES)).select_related(
            "experiment"
        )
    )
    label = f"{len(requests)} requests' forecasts"
    for _ in range(args.repeat):
        inputs = timed("scheduler's input", load_inputs, None, ())
        campaigns = timed("campaigns' forecasts", forecast_campaigns, inputs)
        decision = timed("decisions", decide, inputs.input, "slack", margin)
        forecasts = timed(label, forecast_unscheduled, requests, inputs)
    for name, runs in times.items():
        print(
            f"{name:28} {statistics.median(runs):8.1f} ms  ({', '.join(f'{r:.1f}' for r in runs)})"
        )
    sizes = {
        "campaigns' forecasts": campaigns,
        "decisions": decision,
        "requests' forecasts": forecasts,
    }
    for name, value in sizes.items():
        print(f"stored, {name:21} {len(pickle.dumps(value)):10,} bytes")
    print(f"{len(campaigns)} open campaigns, {len(requests)} unscheduled requests")


if __name__ == "__main__":
    main()
