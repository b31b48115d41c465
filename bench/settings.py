"""Settings of the benchmark server: the project's, plus one trivial view as the floor.

The page benchmark compares every page with a view that does nothing on the same
server (same gunicorn, middleware and session cookie), so the ratio measures our
pages, not the machine. The project has no such view, and it has no place in the
product, so it lives here only.
"""

from opos.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
