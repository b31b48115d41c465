"""The worker's part of the pages in the page benchmark: ``monitoring.refresh_projection``
every half ``OPOS_PROJECTION_S``, as beat sends it, without a broker.

    python -m bench.refresher      (with the benchmark server's environment)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import close_old_connections

    from monitoring.tasks import refresh_projection_task

    every = max(settings.OPOS_PROJECTION_S / 2, 1)
    if settings.OPOS_PROJECTION_S <= 0:
        return
    while True:
        close_old_connections()
        print("refresh_projection:", refresh_projection_task(), file=sys.stderr, flush=True)
        time.sleep(every)


if __name__ == "__main__":
    main()
