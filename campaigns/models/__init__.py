"""Execution models, split by topic; import from ``campaigns.models``."""

from .campaigns import FAR_FUTURE, Campaign, CampaignEvent, CampaignRequest, deadline_moment
from .catalogue import Dataset, DatasetState, OutputFile
from .controls import BatchControl, ControlAction, ControlState
from .execution import FailureRule, RetryAction, StuckFlag, StuckKind
from .partitions import Partition, PartitionQuota, partition_key, quota_limit
from .plan import COUNTER_FOR_STATE, RETRIED_COUNTER_FOR_STATE, Job, Stage, Submission
from .steering import Extension
from .storage import Replica, StorageArea, Transfer
from .workers import ProcessRole, WorkerHeartbeat

__all__ = [
    "COUNTER_FOR_STATE",
    "FAR_FUTURE",
    "RETRIED_COUNTER_FOR_STATE",
    "BatchControl",
    "Campaign",
    "CampaignEvent",
    "CampaignRequest",
    "ControlAction",
    "ControlState",
    "Dataset",
    "DatasetState",
    "Extension",
    "FailureRule",
    "Job",
    "OutputFile",
    "Partition",
    "PartitionQuota",
    "ProcessRole",
    "Replica",
    "RetryAction",
    "Stage",
    "StorageArea",
    "StuckFlag",
    "StuckKind",
    "Submission",
    "Transfer",
    "WorkerHeartbeat",
    "deadline_moment",
    "partition_key",
    "quota_limit",
]
