"""API tokens move from Django REST framework's plain ``authtoken_token`` rows to knox's
hashed, expiring ones.

A plain row holds the token itself, so it can be hashed into knox's form: each existing token
keeps working (``opos login`` need not be run again) until it expires like a new one, and its
plain row is deleted. The ``authtoken_token`` table itself stays (empty) when it exists, since
the ``rest_framework.authtoken`` app's migration records do; nothing reads it any more.
"""

import datetime

from django.conf import settings
from django.db import migrations
from django.utils import timezone

PLAIN_TABLE = "authtoken_token"


def hash_plain_tokens(apps, schema_editor):
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS

    connection = schema_editor.connection
    if PLAIN_TABLE not in connection.introspection.table_names():
        return
    AuthToken = apps.get_model("knox", "AuthToken")
    ttl = settings.REST_KNOX.get("TOKEN_TTL") or datetime.timedelta(days=30)
    expiry = timezone.now() + ttl
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id FROM {PLAIN_TABLE}")  # noqa: S608 - fixed name
        rows = cursor.fetchall()
        AuthToken.objects.bulk_create(
            [
                AuthToken(
                    digest=hash_token(key),
                    token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH],
                    user_id=user_id,
                    expiry=expiry,
                )
                for key, user_id in rows
            ],
            ignore_conflicts=True,
        )
        cursor.execute(f"DELETE FROM {PLAIN_TABLE}")  # noqa: S608 - fixed name


class Migration(migrations.Migration):
    dependencies = [
        ("requests_app", "0005_request_numbers_per_experiment"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [migrations.RunPython(hash_plain_tokens, migrations.RunPython.noop)]
