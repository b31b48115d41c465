"""Signals intake sends when something execution acts on changes (execution connects them in
``campaigns.apps``; intake does not import execution)."""

from django.dispatch import Signal

# A request's priority changed: its jobs queued at the batch system follow. Sent inside the
# transaction that records the change. Keyword arguments: ``request_id``.
request_priority_changed = Signal()
