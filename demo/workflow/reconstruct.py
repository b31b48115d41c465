"""Toy reconstruction (demo workflow, stage 3).

Reads simulated hits from ``job.json`` ``inputs`` and writes one summary
per event to ``output/reco.jsonl`` (energy estimate and a quality flag).
"""

import json
from pathlib import Path


def main() -> int:
    job = json.loads(Path("job.json").read_text())
    threshold = float(job.get("parameters", {}).get("threshold_gev", 0.05))
    out = Path("output")
    out.mkdir(exist_ok=True)
    with (out / "reco.jsonl").open("w") as dest:
        for name in job.get("inputs", []):
            for line in Path(name).read_text().splitlines():
                hit = json.loads(line)
                reco = {
                    "event": hit["event"],
                    "e_reco": hit["deposit"],
                    "good": hit["deposit"] > threshold,
                }
                dest.write(json.dumps(reco) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
