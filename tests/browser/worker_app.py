"""The project's Celery app, for the journeys' real worker: on a queue of its own.

Other test sessions run workers on the same Redis at the same time; with its own default
queue (``OPOS_TEST_QUEUE``) this worker takes only the journeys' tasks, and the tasks it
enqueues itself (``_kick``) come back to it, never to another session's worker.
Run as ``celery -A tests.browser.worker_app worker``.
"""

import os

from opos.celery import app

if os.environ.get("OPOS_TEST_QUEUE"):
    app.conf.task_default_queue = os.environ["OPOS_TEST_QUEUE"]

__all__ = ["app"]
