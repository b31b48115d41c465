"""Empty the work folders whose outputs are verified in storage (see execution/retention.py).

The beat task ``campaigns.purge_workdirs`` does the same on its own; this command lets an
operator look first (``--dry-run``) or run it now.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from campaigns.execution import retention


class Command(BaseCommand):
    help = (
        "Remove the files of work folders whose outputs are verified in storage and whose "
        "job finished more than OPOS_WORKDIR_RETENTION_DAYS ago (logs are kept)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be removed; remove nothing."
        )
        parser.add_argument(
            "--limit", type=int, default=5000, help="At most this many folders (default 5000)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            self.stderr.write("--limit must be at least 1")
            raise SystemExit(2)
        report = retention.purge(dry_run=options["dry_run"], limit=options["limit"])
        verb = "would remove" if report.dry_run else "removed"
        for folder in report.folders:
            self.stdout.write(folder)
        self.stdout.write(
            f"{verb} {report.files} files ({report.bytes} bytes) in {report.jobs} work folders "
            f"(retention {settings.OPOS_WORKDIR_RETENTION_DAYS} days; logs kept)"
        )
