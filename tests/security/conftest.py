"""One world (``tests/security/world.py``) per module and worker, instead of one per test.

Building it (two experiments, their requests, launched campaigns, jobs, catalogue and
records) costs far more than most of the tests that use it. It is built once, in a
transaction of its own that stays open while the module's tests run: each test's own
transaction is a savepoint inside it, rolled back at the test's end as before, so every
test starts from the same world, and the world is rolled back when the module is done.
Each test gets the world's objects read again from the database (``World.reloaded``), so
what one test changes in memory no other test sees.
"""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.security.world import ROLES, World, build_world


@pytest.fixture(scope="module")
def built_world(django_db_setup, django_db_blocker, module_settings) -> World:
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            world = build_world()
            # Issued now: a token issued inside a test would be rolled back with it.
            for role in ROLES:
                world.token(role)
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    try:
        yield world
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def shared_world(built_world, db) -> World:
    """The module's world for one test (which runs in a savepoint inside its transaction)."""
    return built_world.reloaded()
