"""``manage.py seed_demo``: idempotent demo data (DUNE's MCC5.0 round and more)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from campaigns import demo as execution_demo
from monitoring import demo as promises_demo
from requests_app import demo as intake_demo
from requests_app.demo import SeedReport


class Command(BaseCommand):
    help = "Create or refresh the demo data and print the demo users' passwords."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true", help="allow seeding when OPOS_ENV=production"
        )

    def handle(self, force=False, **options):
        if settings.PRODUCTION and not force:
            raise CommandError("refusing to seed demo users with known passwords in production")
        report = SeedReport()
        # The roof seeds each app's part in the order of the layers: intake's experiments,
        # people and requests, then execution's campaigns built on them, then the promises
        # made on a round of them.
        with transaction.atomic():
            intake_demo.seed(report)
            execution_demo.seed(report)
            promises_demo.seed(report)
        for line in report.lines:
            self.stdout.write(line)
        self.stdout.write("")
        self.stdout.write("Demo users (username / password / role):")
        for username, role, experiment, password in report.users:
            where = f" of {experiment}" if experiment else ""
            self.stdout.write(f"  {username:8} {password:22} {role}{where}")
