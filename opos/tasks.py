"""Project-level tasks that belong to no domain app."""

from celery import shared_task


@shared_task(name="opos.ping", acks_late=True, soft_time_limit=20, time_limit=30)
def ping(value: str) -> str:
    """Echo ``value``: a broker/worker round trip used by health checks and tests."""
    return f"pong:{value}"
