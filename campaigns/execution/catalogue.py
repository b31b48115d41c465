"""Defining datasets by hand (input datasets that production reads but did not make), and
the catalogue's totals as files leave it.

Production declares its own outputs (``finalize``); an experiment's liaison or an operator
defines the datasets a sample reads (``Sample.input_dataset``), with their files, so that
planning can split them by files and jobs can find them.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest

from common.limits import INT64_MAX
from experiments.models import Experiment
from experiments.models.visibility import experiment_roles, is_operator
from experiments.namespaces import in_namespace, namespace_refusal

from ..models import Dataset, OutputFile
from ..services.errors import CampaignError

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,254}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,254}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_FILES = 10_000


def _file_problems(n: int, entry: Any, seen: set[str]) -> tuple[dict[str, Any] | None, list[str]]:
    if not isinstance(entry, dict):
        return None, [f"files[{n}]: an object with name, size, checksum, events"]
    problems = []
    name = entry.get("name")
    if not isinstance(name, str) or not FILE_NAME.fullmatch(name):
        problems.append(f"files[{n}].name: letters, digits and _ . : + - (at most 255)")
    elif name in seen:
        problems.append(f"files[{n}].name: {name} appears twice")
    checksum = str(entry.get("checksum", "")).lower()
    if not SHA256.fullmatch(checksum):
        problems.append(f"files[{n}].checksum: a sha256 (64 hexadecimal digits)")
    values = {}
    for key in ("size", "events"):
        value = entry.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
            problems.append(f"files[{n}].{key}: a whole number from 0 to {INT64_MAX}")
        values[key] = value
    path = entry.get("path", "")
    if not isinstance(path, str) or len(path) > 1000 or "\0" in path:
        problems.append(f"files[{n}].path: text of at most 1000 characters")
    if problems:
        return None, problems
    seen.add(name)
    return {"name": name, "checksum": checksum, "path": path, **values}, []


def define_dataset(
    user: AbstractBaseUser,
    experiment: Experiment,
    name: str,
    description: str = "",
    files: Sequence[dict[str, Any]] = (),
) -> Dataset:
    """Create a dataset of ``experiment`` with its files (operators, the experiment's liaisons).

    Every problem is reported at once; nothing is stored unless all of it is valid.
    """
    if not (is_operator(user) or experiment_roles(user).get(experiment.pk) == "liaison"):
        raise CampaignError(
            "Only operators and the experiment's liaisons define datasets.", kind="forbidden"
        )
    problems = []
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
        problems.append("name: letters, digits and _ . : + - (at most 255), starting with one")
    elif not in_namespace(experiment.slug, name):
        problems.append(f"name: {namespace_refusal(experiment.slug)}")
    elif Dataset.objects.filter(name=name).exists():
        problems.append(f"name: a dataset named {name} already exists")
    if not isinstance(description, str) or len(description) > 5000:
        problems.append("description: text of at most 5000 characters")
    if not isinstance(files, list | tuple) or len(files) > MAX_FILES:
        problems.append(f"files: a list of at most {MAX_FILES} files")
        files = []
    clean: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, entry in enumerate(files):
        row, issues = _file_problems(n, entry, seen)
        problems += issues
        if row:
            clean.append(row)
    # Each file fits its column; their sums must fit the dataset's (a bigint as well).
    for key, total in (("size", "size_bytes"), ("events", "events")):
        if sum(f[key] for f in clean) > INT64_MAX:
            problems.append(
                f"files: the {key}s add up to more than {INT64_MAX}, "
                f"what the dataset's {total} can hold"
            )
    if problems:
        raise CampaignError("The dataset cannot be defined.", problems[:50])
    with transaction.atomic():
        dataset = Dataset.objects.create(
            experiment=experiment,
            name=name,
            description=description,
            file_count=len(clean),
            size_bytes=sum(f["size"] for f in clean),
            events=sum(f["events"] for f in clean),
        )
        OutputFile.objects.bulk_create(
            (OutputFile(dataset=dataset, **f) for f in clean), batch_size=1000
        )
    return dataset


def take_out_of_counts(rows: Iterable[dict[str, Any]]) -> None:
    """Subtract files (``dataset_id``, ``size``, ``events``) from their datasets' totals."""
    totals: dict[int, Counter[str]] = defaultdict(Counter)
    for r in rows:
        totals[r["dataset_id"]]["file_count"] += 1
        totals[r["dataset_id"]]["size_bytes"] += r["size"]
        totals[r["dataset_id"]]["events"] += r["events"]
    for dataset_id, t in totals.items():
        # Floored at zero: a counter that drifted (a manual fix) must not fail the move.
        Dataset.objects.filter(pk=dataset_id).update(
            **{k: Greatest(F(k) - n, Value(0)) for k, n in t.items()}
        )
