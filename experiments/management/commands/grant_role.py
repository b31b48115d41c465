"""``manage.py grant_role USERNAME ROLE [--experiment SLUG] [--password PW]``."""

from django.core.management.base import BaseCommand, CommandError

from ...choices import ALL_ROLES
from ...services import RoleError, grant_role


class Command(BaseCommand):
    help = "Give a user a role (creating the user when missing)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("role", help=f"one of: {', '.join(ALL_ROLES)}")
        parser.add_argument("--experiment", help="experiment slug (liaison and physicist)")
        parser.add_argument("--password", help="set this password")
        parser.add_argument("--email", default="", help="set this email address")

    def handle(self, username, role, experiment=None, password=None, email="", **options):
        try:
            result = grant_role(username, role, experiment, password=password, email=email)
        except RoleError as exc:
            raise CommandError(str(exc)) from None
        where = f" of {experiment}" if experiment else ""
        created = " (new user)" if result.user_created else ""
        self.stdout.write(f"{result.user.get_username()} is {role}{where}{created}")
