"""Every committed write to a table the pages show moves the data version, whoever writes.

Before, seventeen services each called ``bump_data_version()`` by hand, and a write path
that forgot (the admin, a shell, a new service) left the pages stale until the clock
bucket ran out. Now one database execute wrapper (``common.pagecache.watch_writes``,
installed by ``opos/apps.py``) sees every ``INSERT``, ``UPDATE`` and ``DELETE``.
"""

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import WorkerHeartbeat
from common import pagecache
from experiments.models import Experiment
from opos.apps import NOT_PAGE_DATA, PAGE_DATA_APPS, page_data_tables

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def version():
    start = pagecache.data_version()
    return lambda: pagecache.data_version() - start


def test_orm_writes_outside_a_transaction_bump_at_once(version):
    experiment = Experiment.objects.create(slug="mu2e", name="Mu2e")
    assert version() == 1
    Experiment.objects.filter(pk=experiment.pk).update(description="muon to electron")
    assert version() == 2
    experiment.delete()
    assert version() == 3


def test_raw_sql_writes_bump_too(version):
    # The poller's and the submitter's bulk statements are raw SQL through Django's cursor.
    Experiment.objects.create(slug="mu2e", name="Mu2e")
    start = version()
    with connection.cursor() as cursor:
        cursor.execute('UPDATE "requests_app_experiment" AS t SET job_quota = 7')
    assert version() == start + 1


def test_a_transaction_bumps_once_and_only_when_it_commits(version):
    with transaction.atomic():
        for n in range(5):
            Experiment.objects.create(slug=f"exp-{n}", name=f"Experiment {n}")
        with transaction.atomic():  # a savepoint
            Experiment.objects.filter(slug="exp-0").update(job_quota=1)
        assert version() == 0  # not before the commit
    assert version() == 1


def test_a_rolled_back_write_does_not_bump(version):
    with pytest.raises(RuntimeError), transaction.atomic():
        Experiment.objects.create(slug="mu2e", name="Mu2e")
        raise RuntimeError("the transaction fails")
    assert version() == 0
    # A savepoint rolled back drops its bump; a later write in the same transaction
    # schedules another.
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            Experiment.objects.create(slug="mu2e", name="Mu2e")
            raise RuntimeError("the savepoint fails")
        assert version() == 0
        Experiment.objects.create(slug="sbnd", name="SBND")
    assert version() == 1


def test_reads_and_row_locks_do_not_bump(version):
    Experiment.objects.create(slug="mu2e", name="Mu2e")
    start = version()
    with transaction.atomic():
        list(Experiment.objects.select_for_update(skip_locked=True))
        list(Experiment.objects.select_for_update(of=("self",)))
    assert version() == start


def test_tables_no_cached_page_shows_do_not_bump(version):
    now = timezone.now()
    WorkerHeartbeat.objects.create(
        name="celery@node", role="worker", hostname="node", pid=1, started_at=now, seen_at=now
    )
    assert version() == 0


def test_every_table_of_the_page_apps_is_watched_but_those_left_out_on_purpose():
    left_out = {apps.get_model(label)._meta.db_table for label in NOT_PAGE_DATA}
    every = {
        model._meta.db_table
        for label in PAGE_DATA_APPS
        for model in apps.get_app_config(label).get_models(include_auto_created=True)
    }
    assert page_data_tables() == every - left_out
    assert {"campaigns_job", "campaigns_stage", "requests_app_productionrequest"} <= every
