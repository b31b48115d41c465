"""Toy detector simulation (demo workflow, stage 2).

Reads the events listed in ``job.json`` ``inputs`` (files of the previous
stage), smears each energy by the detector resolution (parameter
``resolution``, default 0.1) and writes ``output/hits.jsonl``.
"""

import json
import random
from pathlib import Path


def main() -> int:
    job = json.loads(Path("job.json").read_text())
    resolution = float(job.get("parameters", {}).get("resolution", 0.1))
    rng = random.Random(job.get("index", 0))
    out = Path("output")
    out.mkdir(exist_ok=True)
    with (out / "hits.jsonl").open("w") as dest:
        for name in job.get("inputs", []):
            for line in Path(name).read_text().splitlines():
                event = json.loads(line)
                event["deposit"] = max(
                    0.0, rng.gauss(event["energy"], resolution * event["energy"])
                )
                dest.write(json.dumps(event) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
