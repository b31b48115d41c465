"""Signals intake sends when something execution acts on changes (execution connects them in
``campaigns.apps``; intake does not import execution)."""

from django.dispatch import Signal

# A request's priority changed: its jobs queued at the batch system follow. Sent inside the
# transaction that records the change. Keyword arguments: ``request_id``.
request_priority_changed = Signal()

# An experiment's batch placement (partition, account, QOS, requirements, partitions to
# avoid) changed. Keyword arguments: ``experiment``, ``actor``, ``changes`` ({field: [old,
# new]}).
experiment_placement_changed = Signal()

PLACEMENT_FIELDS = (
    "batch_partition",
    "batch_account",
    "batch_qos",
    "batch_requirements",
    "batch_avoid_partitions",
)
