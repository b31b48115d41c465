"""The plan and its execution: stages, jobs and batch submissions."""

from __future__ import annotations

from django.db import models

from experiments.endpoints import NAME_MAX_LENGTH
from experiments.models import ProductionCode, SplitRule, StageTemplate
from experiments.models.visibility import VisibleQuerySet
from requests_app.models import ProductionRequest, Sample

from ..choices import ACTIVE_JOB_STATES, FailureClass, JobState, SubmissionState
from .campaigns import Campaign
from .catalogue import Dataset

# Stage counter column for each job state; whoever moves jobs keeps them in step.
COUNTER_FOR_STATE: dict[str, str] = {state: f"n_{state}" for state in JobState.values}
# Stage counter of the attempts in each final state that another attempt replaced (a retry,
# a cancel-and-retry, a recovery): whoever makes a new attempt of a job adds one here.
# (A succeeded attempt is replaced when recovery finds its outputs gone.)
RETRIED_COUNTER_FOR_STATE: dict[str, str] = {
    state: f"retried_{state}"
    for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.LOST, JobState.CANCELLED)
}


class StageQuerySet(VisibleQuerySet):
    experiment_path = "campaign__experiment"


class Stage(models.Model):
    """One template stage of one sample, as planned: a snapshot plus live counters.

    Everything a job needs to run (code and its sha256, resolved parameters,
    resources, split rule) is copied from the template when the sample is
    planned, so editing the template later never changes planned work.

    The ``n_<state>`` counters are job rows (attempts) of this stage by state, kept by
    the services that move jobs (expansion, release, cancel, and execution's poller) so
    dashboards never count jobs; ``recount_stages`` rebuilds them. ``retried_<state>``
    counts those of the ``n_<state>`` attempts that a later attempt replaced, so the jobs
    by the state of their latest attempt are ``n_<state> - retried_<state>``: a job that
    succeeded on its third attempt is one succeeded job and two retried failed attempts.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="stages")
    request = models.ForeignKey(ProductionRequest, on_delete=models.PROTECT, related_name="+")
    sample = models.ForeignKey(Sample, on_delete=models.PROTECT, related_name="+")
    template_stage = models.ForeignKey(
        StageTemplate,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Where the snapshot came from (for reference only).",
    )
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=60)
    # Snapshot of the template stage.
    code = models.ForeignKey(ProductionCode, on_delete=models.PROTECT, related_name="+")
    code_sha256 = models.CharField(max_length=64)
    code_location = models.CharField(max_length=500)
    parameters = models.JSONField(default=dict, blank=True, help_text="Resolved values.")
    cores = models.PositiveSmallIntegerField(default=1)
    memory_mb = models.PositiveIntegerField(default=2000)
    walltime_s = models.PositiveIntegerField(default=3600, help_text="Template estimate per job.")
    walltime_median_s = models.PositiveIntegerField(
        null=True, blank=True, help_text="Observed median of succeeded jobs; replaces the estimate."
    )
    split = models.CharField(max_length=8, choices=SplitRule.choices)
    events_per_job = models.PositiveIntegerField(null=True, blank=True)
    files_per_job = models.PositiveIntegerField(null=True, blank=True)
    input_stage = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="dependents"
    )
    input_dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="consumers"
    )
    output_dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="producers"
    )
    jobs_total = models.PositiveIntegerField(default=0, help_text="Jobs planned (indexes).")
    # Counters by job state. Plain integers: a counter that drifted must never
    # make the poller's write fail on a CHECK constraint; recount fixes it.
    n_planned = models.IntegerField(default=0)
    n_ready = models.IntegerField(default=0)
    n_queued = models.IntegerField(default=0)
    n_running = models.IntegerField(default=0)
    n_held = models.IntegerField(default=0)
    n_succeeded = models.IntegerField(default=0)
    n_failed = models.IntegerField(default=0)
    n_cancelled = models.IntegerField(default=0)
    n_lost = models.IntegerField(default=0)
    # Attempts of those final states replaced by a later attempt (see the docstring). Database
    # defaults too: workers of the previous version, and raw bulk inserts, leave them out.
    retried_succeeded = models.IntegerField(default=0, db_default=0)
    retried_failed = models.IntegerField(default=0, db_default=0)
    retried_lost = models.IntegerField(default=0, db_default=0)
    retried_cancelled = models.IntegerField(default=0, db_default=0)
    # Kept by finalize in the transaction that declares the outputs.
    events_done = models.PositiveBigIntegerField(
        default=0, help_text="Events of the jobs that succeeded (outputs declared)."
    )
    progress_at = models.DateTimeField(
        null=True, blank=True, help_text="When a job of the stage last finished."
    )
    created = models.DateTimeField(auto_now_add=True)

    objects = StageQuerySet.as_manager()

    class Meta:
        ordering = ["campaign", "request", "sample", "position"]
        constraints = [
            models.UniqueConstraint(fields=["sample", "position"], name="stage_per_sample_once"),
        ]
        indexes = [models.Index(fields=["campaign", "position"], name="stage_campaign_position")]

    def __str__(self) -> str:
        return f"{self.sample_id}:{self.position}:{self.name}"

    @property
    def walltime_estimate_s(self) -> int:
        """Per-job walltime the scheduler assumes: observed median once known."""
        return self.walltime_median_s or self.walltime_s

    @property
    def in_flight(self) -> int:
        return self.n_queued + self.n_running + self.n_held

    @property
    def remaining(self) -> int:
        return max(self.jobs_total - self.n_succeeded, 0)

    def counts(self) -> dict[str, int]:
        """Jobs by the state of their latest attempt, from the counters."""
        return {
            state: getattr(self, field) - getattr(self, RETRIED_COUNTER_FOR_STATE.get(state, ""), 0)
            for state, field in COUNTER_FOR_STATE.items()
        }

    @property
    def retried(self) -> int:
        """Attempts that failed, were lost or cancelled, and were tried again."""
        return self.retried_failed + self.retried_lost + self.retried_cancelled


class SubmissionQuerySet(VisibleQuerySet):
    experiment_path = "stage__campaign__experiment"


class Submission(models.Model):
    """One batch array (Slurm ``--array``, HTCondor ``queue N``) of one stage's jobs.

    Recorded with its unique ``token`` in state ``submitting`` and committed
    before the backend is called, so a crash in between is resolved by asking
    the backend for the token (docs/architecture.md, "Execution rules").

        submitting -> submitted | failed
    """

    token = models.CharField(max_length=64, unique=True)
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="submissions")
    # The endpoint it went to, kept as written: an endpoint since removed from the settings
    # still names where its jobs ran.
    backend = models.CharField(max_length=NAME_MAX_LENGTH)
    state = models.CharField(
        max_length=16, choices=SubmissionState.choices, default=SubmissionState.SUBMITTING
    )
    size = models.PositiveIntegerField(help_text="Jobs in the array.")
    # The claim: while `submitting`, the claimed jobs' ids in element order. Writing them here,
    # one row, instead of linking 10,000 job rows at claim time (and writing the rows again
    # at record time) halved the database's share of a submission (docs/performance.md).
    # Emptied when recorded: from then on the jobs' `submission` link says it.
    # The database default too: workers of the previous version, still running while the
    # column is added, insert submissions without it.
    job_ids = models.JSONField(
        default=list,
        db_default=models.Value([], output_field=models.JSONField()),
        blank=True,
        help_text="While submitting: the claimed jobs, element order.",
    )
    # Which process claimed it: while `submitting`, recovery resolves it at once when that
    # process is known to be gone instead of waiting out the grace period. Database defaults:
    # workers of the previous version, still running while the columns are added, insert
    # submissions without them.
    claimed_by = models.CharField(
        max_length=200,
        blank=True,
        db_default="",
        help_text="Celery node name of the claiming worker.",
    )
    claimed_host = models.CharField(
        max_length=200, blank=True, db_default="", help_text="Host and pid namespace."
    )
    claimed_pid = models.PositiveIntegerField(null=True, blank=True)
    batch_id = models.CharField(max_length=64, blank=True, help_text="Array or cluster id.")
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    objects = SubmissionQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["state", "created"], name="submission_state_created")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=SubmissionState.values),
                name="submission_state_valid",
            )
        ]

    def __str__(self) -> str:
        return f"submission {self.token} ({self.state})"


class JobQuerySet(VisibleQuerySet):
    experiment_path = "stage__campaign__experiment"


class Job(models.Model):
    """One element of a stage's work: a range of events or a group of input files.

    Inputs: a job of a stage that reads a previous stage (``stage.input_stage``)
    consumes the outputs of that stage's jobs with indexes ``input_first`` ..
    ``input_first + input_count - 1`` (one output file per job); it becomes
    ``ready`` as soon as those have succeeded, so work streams through the
    stages. A job reading an input dataset gets its file names in
    ``input_files`` when planned (a snapshot of the dataset at that time).

    A retry is a new row with the same ``index``, ``attempt + 1`` and
    ``parent`` pointing at the failed attempt; ``memory_mb``/``walltime_s``
    override the stage's request when a retry asks for more, and ``parameters`` the
    stage's parameter values (an operator's recovery with overrides).
    """

    stage = models.ForeignKey(
        Stage,
        on_delete=models.CASCADE,
        related_name="jobs",
        # The unique (stage, index, attempt) index already serves lookups by stage.
        db_index=False,
    )
    index = models.PositiveIntegerField()
    attempt = models.PositiveSmallIntegerField(default=1)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.PLANNED)
    state_since = models.DateTimeField(null=True, blank=True)
    events_first = models.BigIntegerField(default=0)
    events = models.PositiveIntegerField(default=0)
    input_first = models.PositiveIntegerField(null=True, blank=True)
    input_count = models.PositiveIntegerField(default=0)
    input_files = models.JSONField(default=list, blank=True)
    memory_mb = models.PositiveIntegerField(null=True, blank=True)
    walltime_s = models.PositiveIntegerField(null=True, blank=True)
    # Parameter values that replace the stage's for this attempt (a recovery with
    # overrides); later retries of it keep them. Database default: older workers and raw
    # inserts leave it out.
    parameters = models.JSONField(
        default=dict,
        db_default=models.Value({}, output_field=models.JSONField()),
        blank=True,
        help_text="Overrides of the stage's parameter values for this attempt.",
    )
    backend = models.CharField(max_length=NAME_MAX_LENGTH, blank=True)
    batch_id = models.CharField(max_length=64, blank=True)
    submission = models.ForeignKey(
        Submission, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    exit_code = models.IntegerField(null=True, blank=True)
    failure_class = models.CharField(max_length=32, choices=FailureClass.choices, blank=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    walltime_observed_s = models.PositiveIntegerField(null=True, blank=True)
    host = models.CharField(
        max_length=255,
        blank=True,
        default="",
        db_default="",  # as the retried_* counters: older workers' and raw inserts leave it out
        help_text="Where it ran, as the job wrapper saw it.",
    )
    # Execution: the job's folder, the end the poller saw, a retry's backoff.
    workdir = models.CharField(
        max_length=500, blank=True, help_text="The job's element folder (job.json, logs, outputs)."
    )
    outcome = models.CharField(
        max_length=16,
        blank=True,
        help_text="Final batch state seen by the poller, for finalize to act on; the job "
        "keeps its active state until its outputs are declared or its failure handled.",
    )
    not_before = models.DateTimeField(
        null=True, blank=True, help_text="A retry waits (planned) until then: the backoff."
    )
    # Usage of this attempt as its batch system measured it (sacct on Slurm, ClassAd on
    # HTCondor, the runner's wait4 on local), recorded after it ended (execution/usage.py);
    # the accounting ledger adds them up. Nullable: unknown until recorded, and older rows
    # and older workers' inserts have none. The text columns have database defaults (older
    # workers insert rows without them).
    cpu_time_s = models.FloatField(
        null=True, blank=True, help_text="CPU time consumed (user + system), seconds."
    )
    core_time_s = models.FloatField(
        null=True, blank=True, help_text="Cores reserved x wall time, seconds (what is charged)."
    )
    wall_time_s = models.FloatField(
        null=True, blank=True, help_text="Wall time as the batch system measured it, seconds."
    )
    max_rss_kb = models.BigIntegerField(
        null=True, blank=True, help_text="Peak resident memory, KiB (None: never sampled)."
    )
    batch_state = models.CharField(
        max_length=32,
        blank=True,
        default="",
        db_default="",
        help_text="The batch system's final state word (COMPLETED, FAILED, OUT_OF_MEMORY...).",
    )
    batch_exit_code = models.CharField(
        max_length=32,
        blank=True,
        default="",
        db_default="",
        help_text="As the batch system printed it.",
    )
    usage_source = models.CharField(
        max_length=16,
        blank=True,
        default="",
        db_default="",
        help_text="sacct, classad, rusage; none when the batch system never had figures.",
    )
    usage_at = models.DateTimeField(
        null=True, blank=True, help_text="When the usage was recorded (or given up on)."
    )
    workdir_purged_at = models.DateTimeField(
        null=True,
        blank=True,
        default=None,
        db_default=None,  # as host: older workers' and raw inserts leave it out
        help_text="When retention removed the folder's files (its logs kept), once its "
        "outputs were verified in storage.",
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["stage", "index", "attempt"], name="job_attempt_once"),
            models.CheckConstraint(
                condition=models.Q(state__in=JobState.values), name="job_state_valid"
            ),
        ]
        indexes = [
            # Counts by stage and state (plan_cycle, recount, release).
            models.Index(fields=["stage", "state"], name="job_stage_state"),
            # The poller's hot query: only jobs a batch system still owns.
            models.Index(
                fields=["backend", "batch_id"],
                condition=models.Q(state__in=sorted(ACTIVE_JOB_STATES)),
                name="job_in_flight",
            ),
            # The poller's view of the jobs in flight is kept up to date from the jobs
            # whose state changed lately (execution/inflight.py).
            models.Index(
                fields=["state_since"],
                condition=models.Q(state__in=sorted(ACTIVE_JOB_STATES)),
                name="job_in_flight_since",
            ),
            # submit_ready claims the ready jobs of a stage in index order.
            models.Index(
                fields=["stage", "index"],
                condition=models.Q(state=JobState.READY),
                name="job_ready",
            ),
            # Finished attempts whose usage is still to be asked for (execution/usage.py).
            models.Index(
                fields=["finished"],
                condition=models.Q(usage_at__isnull=True, finished__isnull=False),
                name="job_usage_pending",
            ),
            # Retries waiting out their backoff (execution releases them when due).
            models.Index(
                fields=["not_before"],
                condition=models.Q(state=JobState.PLANNED, not_before__isnull=False),
                name="job_backoff",
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.stage_id}/{self.index}#{self.attempt} ({self.state})"
