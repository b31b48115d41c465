"""Publish the job wrapper where the batch nodes import it from (``OPOS_JOB_CODE_DIR``).

Every job runs ``python -m campaigns.execution.wrapper`` with that folder on its
``PYTHONPATH``. When the worker runs from the project folder on storage the batch nodes
mount too, nothing needs publishing (the setting is left empty). When it runs in a
container image, the nodes cannot see the image: the worker's entrypoint
(``scripts/deploy/batch-client.sh``) runs this command to copy the wrapper (standard
library only, no settings) to a folder on the shared file system, so that the nodes run
the same wrapper as the worker that submits to them.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# What ``-m campaigns.execution.wrapper`` imports: the two packages and the wrapper.
WRAPPER_FILES = (
    "campaigns/__init__.py",
    "campaigns/execution/__init__.py",
    "campaigns/execution/wrapper.py",
)


def publish(target: Path) -> list[Path]:
    """Copy the wrapper's files under ``target``; each lands whole (written aside, then
    renamed), so a job starting meanwhile imports the old file or the new one."""
    written = []
    source = Path(settings.BASE_DIR)
    for name in WRAPPER_FILES:
        destination = target / name
        destination.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        part = destination.with_name(destination.name + ".part")
        part.write_bytes((source / name).read_bytes())
        part.chmod(0o644)  # read by the batch account, which is not the service's
        os.replace(part, destination)
        written.append(destination)
    return written


class Command(BaseCommand):
    help = "Copy the job wrapper to OPOS_JOB_CODE_DIR (or --to), where batch nodes import it."

    def add_arguments(self, parser):
        parser.add_argument("--to", type=Path, help="the folder (default: OPOS_JOB_CODE_DIR)")

    def handle(self, *args, **options):
        target = options["to"] or (
            Path(settings.OPOS_JOB_CODE_DIR) if settings.OPOS_JOB_CODE_DIR else None
        )
        if target is None:
            raise CommandError(
                "nowhere to publish: set OPOS_JOB_CODE_DIR (a folder the batch nodes mount) "
                "or pass --to"
            )
        if not target.is_absolute():
            raise CommandError(f"{target}: the folder must be an absolute path")
        try:
            written = publish(target)
        except OSError as exc:
            raise CommandError(f"cannot publish the job wrapper to {target}: {exc}") from exc
        self.stdout.write(f"job wrapper published to {target} ({len(written)} files)")
