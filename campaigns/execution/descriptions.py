"""What a job is told: the description of an array (``array.json``) and of each of its
elements (a line of ``jobs.jsonl``), which the wrapper puts together as the job's
``job.json`` (``execution/wrapper.py``). Data only, built from the stage and job rows."""

from __future__ import annotations

import json
from typing import Any

from ..models import Stage


def common_description(
    stage: Stage,
    memory_mb: int | None,
    walltime_s: int | None,
    parameters: dict[str, Any] | None = None,
) -> dict:
    """What every element of an array shares (``array.json``): the code, the parameters (the
    stage's, with a recovery's overrides on top), the stage, and the resources (one resource
    request and one set of overrides per array, see ``claim``)."""
    return {
        "campaign": stage.campaign_id,
        "stage": stage.name,
        "stage_id": stage.pk,
        "parameters": {**(stage.parameters or {}), **(parameters or {})},
        "output_dataset": stage.output_dataset.name if stage.output_dataset_id else "",
        "code": {"path": stage.code_location, "sha256": stage.code_sha256},
        "resources": {
            "cores": stage.cores,
            "memory_mb": memory_mb or stage.memory_mb,
            "walltime_s": walltime_s or stage.walltime_s,
        },
    }


def element_description(job: dict[str, Any], inputs: list[str]) -> dict[str, Any]:
    """One element's own fields (its line of ``jobs.jsonl``)."""
    return {
        "job": job["id"],
        "index": job["index"],
        "attempt": job["attempt"],
        "events": job["events"],
        "first_event": job["events_first"],
        "inputs": inputs,
        "input_files": job["input_files"] or [],
    }


_LINE = (
    '{{"job":{:d},"index":{:d},"attempt":{:d},"events":{:d},"first_event":{:d},'
    '"inputs":{},"input_files":{}}}\n'
)


def element_line(job: dict[str, Any], inputs: list[str]) -> str:
    """``element_description`` as one line of JSON, formatted by hand: ``json.dumps`` of
    10,000 small objects took 60-240 ms, most of submitting an array once the folders were
    gone. The numbers are integer columns (``%d`` refuses anything else); lists go through
    ``json.dumps``. Tests check that every line decodes to ``element_description``."""
    return _LINE.format(
        job["id"],
        job["index"],
        job["attempt"],
        job["events"],
        job["events_first"],
        json.dumps(inputs) if inputs else "[]",
        json.dumps(job["input_files"]) if job["input_files"] else "[]",
    )


def job_description(stage: Stage, job: dict[str, Any], inputs: list[str]) -> dict[str, Any]:
    """The whole description of one job, as the wrapper puts it together: data only. The
    wrapper checks the code against ``code.sha256`` and hands the rest to the code as
    ``job.json``."""
    return {
        **common_description(stage, job["memory_mb"], job["walltime_s"], job.get("parameters")),
        **element_description(job, inputs),
    }
