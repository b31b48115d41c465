"""Choice sets of the execution domain, with their named groups."""

from django.db import models


class CampaignState(models.TextChoices):
    """Life cycle of a campaign (see ``campaigns.workflow``)."""

    PLANNED = "planned", "Planned"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


# Campaigns whose work may still run or be added to.
OPEN_CAMPAIGN_STATES = frozenset(
    {CampaignState.PLANNED, CampaignState.ACTIVE, CampaignState.PAUSED}
)
# Campaigns that will never run anything again.
CLOSED_CAMPAIGN_STATES = frozenset({CampaignState.COMPLETED, CampaignState.CANCELLED})


class JobState(models.TextChoices):
    """Life cycle of one job (one array element).

    ``planned`` jobs wait for their inputs (the feeding jobs of the previous
    stage); ``ready`` jobs have every input and may be submitted; the batch
    system owns ``queued``, ``running`` and ``held`` jobs; the rest are final.
    A retry is a new job (``attempt + 1``, ``parent`` set), so every attempt
    is kept and a final state never changes.

        planned -> ready                       (release_dependents)
        ready   -> queued                      (submission)
        queued  -> running | held | ...        (poll)
        planned | ready -> cancelled           (campaign cancelled)
    """

    PLANNED = "planned", "Planned"
    READY = "ready", "Ready"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    HELD = "held", "Held"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    LOST = "lost", "Lost"


# Not yet handed to a batch system.
WAITING_JOB_STATES = frozenset({JobState.PLANNED, JobState.READY})
# Owned by a batch system: counted against capacity, quotas and throttles, polled.
ACTIVE_JOB_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.HELD})
# Final: never changes again.
TERMINAL_JOB_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST}
)
# Work still to do (waiting or in flight).
OPEN_JOB_STATES = WAITING_JOB_STATES | ACTIVE_JOB_STATES


class SubmissionState(models.TextChoices):
    """One batch array submission, following the submission protocol
    (``campaigns.execution.submission``; docs/architecture.md, "Execution rules").

    submitting -> submitted   (batch ids recorded)
    submitting -> failed      (the backend refused; nothing was created)
    """

    SUBMITTING = "submitting", "Submitting"
    SUBMITTED = "submitted", "Submitted"
    FAILED = "failed", "Failed"


class FailureClass(models.TextChoices):
    """Why a job failed; decides whether and how it is retried (the default rules are in
    ``campaigns.execution.failures``)."""

    OUT_OF_MEMORY = "out_of_memory", "Out of memory"
    WALLTIME = "walltime", "Walltime exceeded"
    KILLED = "killed", "Killed (SIGKILL: memory or preemption)"
    TERMINATED = "terminated", "Terminated by a signal"
    CRASH = "crash", "Crashed (segmentation fault, abort)"
    PREEMPTED = "preempted", "Preempted by the batch system"
    NODE_FAILURE = "node_failure", "Node failure"
    CODE_MISMATCH = "code_mismatch", "Production code checksum mismatch"
    OUTPUT = "output", "Output refused by the catalogue"
    STORAGE = "storage", "Output area full or not writable"
    TRANSFER = "transfer", "Outputs could not be copied to storage and verified"
    FATAL = "fatal", "Exit code never retried"
    LOST = "lost", "Lost by the batch system"
    CANCELLED = "cancelled", "Cancelled"
    OTHER = "other", "Other"


class WaitReason(models.TextChoices):
    """Why a stage with work left submits nothing (more) this cycle."""

    NOT_LAUNCHED = "not_launched", "Campaign not launched"
    PAUSED = "paused", "Campaign paused"
    CANCELLED = "cancelled", "Campaign cancelled"
    ON_HOLD = "on_hold", "Request on hold"
    DEPENDENCY = "dependency", "Waiting for the previous stage"
    THROTTLE = "throttle", "Campaign throttle reached"
    QUOTA = "quota", "Experiment quota reached"
    PARTITION = "partition", "Partition capacity or quota reached"
    CAPACITY = "capacity", "Batch capacity in use by more urgent work"


class Feasibility(models.TextChoices):
    """Projected finish compared with the deadline."""

    ON_TRACK = "on_track", "On track"
    AT_RISK = "at_risk", "At risk"
    LATE = "late", "Late"
    DONE = "done", "Done"
    BLOCKED = "blocked", "Blocked"
    UNKNOWN = "unknown", "Unknown"


class CampaignEventKind(models.TextChoices):
    """What a recorded campaign event is about."""

    CREATED = "created", "Created"
    LAUNCHED = "launch", "Launched"
    PAUSED = "pause", "Paused"
    RESUMED = "resume", "Resumed"
    CANCELLED = "cancel", "Cancelled"
    COMPLETED = "complete", "Completed"
    EDITED = "edited", "Edited"
    REQUEST_ADDED = "request_added", "Request added"
    REQUEST_REMOVED = "request_removed", "Request removed"
    RECOVERED = "recover", "Recovery launched"
    BLOCKED = "blocked", "Blocked by an error"
    UNBLOCKED = "unblocked", "Error cleared"
    FORCE_COMPLETED = "force_complete", "Force-completed"
    TEST_PASSED = "test_passed", "Test jobs succeeded"
    TEST_FAILED = "test_failed", "Test jobs failed"
    FULL_LAUNCH = "full_launch", "Full launch"
    EXTENDED = "extended", "Request extended"


class LaunchPhase(models.TextChoices):
    """Where a test launch stands (``campaigns.services.testlaunch``); empty: no test."""

    NONE = "", "No test launch"
    TESTING = "testing", "Test jobs running"
    PASSED = "passed", "Test passed: waiting for the full launch"
    FAILED = "failed", "Test failed"
    FULL = "full", "Full launch"


# Test phases during which only the test jobs may be submitted.
TEST_GATED_PHASES = frozenset({LaunchPhase.TESTING, LaunchPhase.PASSED, LaunchPhase.FAILED})


class ExtensionState(models.TextChoices):
    """An extension of a running request: filed, then approved (applied) or rejected."""

    SUBMITTED = "submitted", "Submitted"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
