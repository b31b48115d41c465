"""Show or set an experiment's output storage area (see docs/storage.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.services.errors import CampaignError
from campaigns.services.storage import area_url, set_storage_area
from experiments.models import Experiment


class Command(BaseCommand):
    help = (
        "Show an experiment's output storage area, or set it: root://host:port//path for "
        "XRootD, an absolute folder, or --default for the embedded default."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("experiment", help="The experiment's slug.")
        parser.add_argument("url", nargs="?", help="root://host:port//path or /a/folder")
        parser.add_argument(
            "--default", action="store_true", help="Go back to the embedded default area."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        experiment = Experiment.objects.filter(slug=options["experiment"]).first()
        if experiment is None:
            raise CommandError(f"no experiment with the slug {options['experiment']!r}")
        if options["url"] and options["default"]:
            raise CommandError("give a url or --default, not both")
        if options["url"] or options["default"]:
            try:
                set_storage_area(experiment, options["url"] or "", console=True)
            except CampaignError as exc:
                raise CommandError(f"{exc}: {'; '.join(exc.reasons)}") from exc
        self.stdout.write(f"{experiment.slug}: {area_url(experiment)}")
