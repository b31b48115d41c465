"""Signals about experiments that the apps above act on (execution connects them in
``campaigns.apps``; this app imports none of them)."""

from django.dispatch import Signal

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
