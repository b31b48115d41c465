"""Retention: work folders whose outputs are safe in storage are emptied, their logs kept.

A succeeded job's folder holds its outputs, its inputs' links, its description and its
logs. Once every output has a verified replica in storage and the job finished more than
``OPOS_WORKDIR_RETENTION_DAYS`` ago, the folder's files go, except the logs and the small
records pages and diagnosis read (``KEEP``). A job is left alone while a stage that reads
its outputs (the next stage, or a stage reading its dataset) still has jobs to run: those
read the files from the folder.

Run by the beat task ``campaigns.purge_workdirs`` and by ``manage.py purge_workdirs``
(``--dry-run`` lists what would go). Each folder is emptied, then the job marked
(``workdir_purged_at``) in one bulk update with one audit event for the run; a crash in
between empties a folder twice, which removes nothing more.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from experiments.services import audit

from ..batch.base import EXIT_CODE_FILE, STDERR_FILE, STDOUT_FILE
from ..choices import OPEN_JOB_STATES, JobState
from ..models import Job, OutputFile, Stage
from .wrapper import HOST_FILE, MANIFEST_FILE

log = logging.getLogger(__name__)

KEEP = frozenset({STDOUT_FILE, STDERR_FILE, HOST_FILE, MANIFEST_FILE, EXIT_CODE_FILE})
BATCH = 500
USAGE_FILE = ".opos-usage.json"
OPEN_WORK = Q()
for _state in sorted(OPEN_JOB_STATES):
    OPEN_WORK |= Q(**{f"n_{_state}__gt": 0})


@dataclass
class PurgeReport:
    jobs: int = 0
    files: int = 0
    bytes: int = 0
    dry_run: bool = False
    folders: list[str] = field(default_factory=list)


def candidates(now: dt.datetime, limit: int) -> list[dict]:
    """Succeeded jobs past retention, outputs all verified in storage, no reader waiting."""
    cutoff = now - dt.timedelta(days=settings.OPOS_WORKDIR_RETENTION_DAYS)
    unstored = OutputFile.objects.filter(job_id=OuterRef("pk"), replicas__isnull=True)
    readers = Stage.objects.filter(
        Q(input_stage_id=OuterRef("stage_id"))
        | Q(input_dataset_id=OuterRef("stage__output_dataset_id"))
    ).filter(OPEN_WORK)
    return list(
        Job.objects.filter(
            state=JobState.SUCCEEDED, workdir_purged_at__isnull=True, finished__lt=cutoff
        )
        .exclude(workdir="")
        .exclude(Exists(unstored))
        .exclude(Exists(readers))
        .order_by("finished", "id")
        .values("id", "workdir")[:limit]
    )


def _inside_work_area(folder: Path) -> bool:
    root = Path(settings.OPOS_WORK_DIR).resolve()
    try:
        return folder.resolve().is_relative_to(root) and folder.resolve() != root
    except OSError:
        return False


def _size(path: str) -> int:
    """A file's size, not following links; 0 when it went meanwhile."""
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def empty_folder(folder: Path, dry_run: bool) -> tuple[int, int]:
    """Remove what ``folder`` holds except ``KEEP``; return (files, bytes) removed."""
    files = size = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0, 0
    for entry in entries:
        if entry.name in KEEP:
            continue
        if entry.is_dir(follow_symlinks=False):
            for base, _dirs, names in os.walk(entry.path):
                for name in names:
                    files += 1
                    size += _size(os.path.join(base, name))
            if not dry_run:
                shutil.rmtree(entry.path, ignore_errors=True)
        else:
            files += 1
            size += _size(entry.path)
            if not dry_run:
                Path(entry.path).unlink(missing_ok=True)
    return files, size


def purge(now: dt.datetime | None = None, dry_run: bool = False, limit: int = 5000) -> PurgeReport:
    """Empty the folders retention allows (see the module docstring)."""
    now = now or timezone.now()
    report = PurgeReport(dry_run=dry_run)
    done: list[int] = []
    for job in candidates(now, limit):
        folder = Path(job["workdir"])
        if not _inside_work_area(folder):
            # Never remove anything outside the work area, whatever the row says.
            log.warning("job %s: %s is outside the work area; left alone", job["id"], folder)
            continue
        files, size = empty_folder(folder, dry_run)
        report.jobs += 1
        report.files += files
        report.bytes += size
        report.folders.append(str(folder))
        done.append(job["id"])
    if done and not dry_run:
        with transaction.atomic():
            for start in range(0, len(done), BATCH):
                Job.objects.filter(
                    pk__in=done[start : start + BATCH], workdir_purged_at__isnull=True
                ).update(workdir_purged_at=now)
            audit.record(
                "workdirs.purged",
                "work area",
                jobs=report.jobs,
                files=report.files,
                bytes=report.bytes,
                retention_days=settings.OPOS_WORKDIR_RETENTION_DAYS,
            )
    if not dry_run:
        measure_work_area()
    return report


# --- disk use of the work area ---------------------------------------------------------------


def _usage_file() -> Path:
    return Path(settings.OPOS_WORK_DIR) / USAGE_FILE


def measure_work_area() -> dict:
    """Walk the work area once and remember its size for the operations page.

    The walk costs as much as the area is big, so pages never do it: they read what the
    last retention run measured (a small file in the work area, which the web processes
    see as the workers do) and the file system's free space, which is cheap."""
    root = Path(settings.OPOS_WORK_DIR)
    total = count = 0
    for base, _dirs, names in os.walk(root):
        for name in names:
            total += _size(os.path.join(base, name))
            count += 1
    usage = {"bytes": total, "files": count, "measured": timezone.now().isoformat()}
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=f"{USAGE_FILE}.")
        with os.fdopen(fd, "w") as out:
            json.dump(usage, out)
        os.replace(tmp, _usage_file())
    except OSError as exc:
        log.warning("cannot record the work area's size: %s", exc)
    return usage


def work_area_usage() -> dict:
    """What the operations page shows: the last measured size and the disk's free space."""
    root = Path(settings.OPOS_WORK_DIR)
    try:
        usage = json.loads(_usage_file().read_text())
        if not isinstance(usage, dict):
            usage = {}
    except (OSError, ValueError):
        usage = {}
    measured = parse_datetime(str(usage.get("measured", "")))
    usage["measured"] = measured
    try:
        disk = shutil.disk_usage(root)
        usage.update(disk_total=disk.total, disk_used=disk.used, disk_free=disk.free)
    except OSError:
        pass
    usage["path"] = str(root)
    usage["retention_days"] = settings.OPOS_WORKDIR_RETENTION_DAYS
    return usage
