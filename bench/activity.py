"""The benchmark database's activity: jobs in realistic states, submissions, output files,
snapshots, milestones and stuck flags, over the structure of ``bench/dataset.py``."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

from bench.dataset import (
    ACTIVE_MIX,
    ARRAY,
    FAILURES,
    CampaignPlan,
    StagePlan,
    Structure,
    Table,
    shape,
)


class Generator(Structure):
    """The whole benchmark database: the structure, then the jobs and their history."""

    def _active_quotas(self) -> dict[int, int]:
        """Jobs in flight per stage: exactly ``--active`` over the stages of running
        campaigns, by size (paused campaigns drain, at half weight); largest remainder."""
        weights = {}
        for plan in self.stage_plans:
            campaign = self.campaign_by_id[plan.campaign]
            if campaign.state in ("active", "paused") and plan.jobs:
                weights[plan.id] = plan.jobs * (0.5 if campaign.state == "paused" else 1.0)
        capacity = {p.id: p.jobs for p in self.stage_plans if p.id in weights}
        target = min(self.args.active, sum(capacity.values()))
        if target < self.args.active:
            print(f"  only {target} jobs can be in flight with these sizes", flush=True)
        quotas: dict[int, int] = {}
        total_w = sum(weights.values()) or 1.0
        remainders = []
        for sid, w in weights.items():
            exact = target * w / total_w
            quotas[sid] = min(int(exact), capacity[sid])
            remainders.append((exact - int(exact), sid))
        missing = target - sum(quotas.values())
        for _frac, sid in sorted(remainders, reverse=True) * 2:
            if missing <= 0:
                break
            if quotas[sid] < capacity[sid]:
                quotas[sid] += 1
                missing -= 1
        return quotas

    def jobs(self, cursor: Any) -> None:
        from campaigns.models import Job, Submission

        self.campaign_by_id = {c.id: c for c in self.campaigns}
        quotas = self._active_quotas()
        indexes = sum(p.jobs for p in self.stage_plans)
        retries_wanted = max(self.args.jobs - indexes, 0)
        # Failed attempts (each followed by a retry row) go to stages that ran, by size.
        ran = [
            p
            for p in self.stage_plans
            if self.campaign_by_id[p.campaign].state not in ("planned",) and p.jobs
        ]
        ran_total = sum(p.jobs for p in ran) or 1
        self.retries: dict[int, int] = {}
        given = 0
        for p in ran:
            self.retries[p.id] = min(retries_wanted * p.jobs // ran_total, p.jobs)
            given += self.retries[p.id]
        for p in ran:
            if given >= retries_wanted:
                break
            if self.retries[p.id] < p.jobs:
                self.retries[p.id] += 1
                given += 1
        self.submissions: list[dict[str, Any]] = []
        self.array_id = 5_000_000
        table = Table(Job, self.now)
        n = 0
        with cursor.copy(table.copy_sql) as stream:
            for plan in self.stage_plans:
                for values in self._stage_jobs(plan, quotas.get(plan.id, 0)):
                    stream.write_row(table.row(values))
                    n += 1
        self.counts[table.name] = n
        self._copy(cursor, Submission, self.submissions)

    def _stage_jobs(self, plan: StagePlan, active: int) -> Iterator[dict[str, Any]]:
        """Rows of one stage's jobs, in index order, counting them into ``plan``."""
        campaign = self.campaign_by_id[plan.campaign]
        n = plan.jobs
        if not n:
            return
        progress = campaign.progress * (1.0, 0.85, 0.7)[plan.position]
        if campaign.state == "completed":
            done, active, cancelled = n, 0, 0
        elif campaign.state == "cancelled":
            done, active, cancelled = int(n * 0.4 / (plan.position + 1)), 0, 0
            cancelled = n - done
        elif campaign.state == "planned":
            done, active, cancelled = 0, 0, 0
        else:
            done, cancelled = int((n - active) * progress), 0
        waiting = n - done - active - cancelled
        ready = waiting if plan.position == 0 else min(waiting, waiting // 10 + 1)
        # Which indexes had a failed attempt first: spread over the submitted ones.
        submitted = done + active
        retries = min(self.retries.get(plan.id, 0), submitted)
        step = submitted / retries if retries else 0
        failed_at = {int(k * step) for k in range(retries)}
        start = campaign.launched or self.now
        end = campaign.ended or self.now
        span = max((end - start).total_seconds(), 3600.0)
        backend = campaign.backend
        workroot = f"/scratch/opos/work/c{campaign.id}/s{plan.id}"
        arrays: dict[int, tuple[int, int, str]] = {}
        retry_array = None
        retry_task = 0

        def array_of(index: int) -> tuple[int, int, str]:
            block = index // ARRAY
            if block not in arrays:
                self.array_id += 1
                sub_id = self.ids.next("submission")
                token = f"opos-s{plan.id}-{sub_id:016x}"
                size = min(ARRAY, submitted - block * ARRAY)
                at = start + dt.timedelta(seconds=span * block * ARRAY / max(n, 1) * 0.9)
                self.submissions.append(self._submission(sub_id, token, plan, backend, size, at))
                arrays[block] = (sub_id, self.array_id, token)
            return arrays[block]

        for index in range(n):
            if plan.position == 0:
                events_first, events, input_first, input_count = index * plan.epj, plan.epj, None, 0
            else:
                per = plan.files_per_job or 1
                input_first = index * per
                input_count = per
                events_first, events = 0, plan.epj * per
            base = {
                "stage_id": plan.id,
                "index": index,
                "events_first": events_first,
                "events": events,
                "input_first": input_first,
                "input_count": input_count,
                "input_files": "[]",
                "memory_mb": None,
                "walltime_s": None,
            }
            if index < submitted:
                state = "succeeded" if index < done else ACTIVE_MIX[index % len(ACTIVE_MIX)]
            elif index < submitted + cancelled:
                state = "cancelled"
            elif index < submitted + cancelled + ready:
                state = "ready"
            else:
                state = "planned"
            parent = None
            if index in failed_at:
                # A failed (or lost) first attempt, then the row below as its retry.
                fstate, fclass, code, reason = FAILURES[self.ids.last["job"] % len(FAILURES)]
                sub_id, array, token = array_of(index)
                task = index % ARRAY
                finished = start + dt.timedelta(seconds=span * 0.9 * index / n)
                parent = self.ids.next("job")
                yield {
                    **base,
                    "id": parent,
                    "attempt": 1,
                    "state": fstate,
                    "state_since": finished,
                    "backend": backend,
                    "batch_id": self._batch_id(backend, array, task),
                    "submission_id": sub_id,
                    "exit_code": code,
                    "failure_class": fclass,
                    "failure_reason": reason,
                    "queued_at": finished - dt.timedelta(seconds=plan.walltime + 900),
                    "started": finished - dt.timedelta(seconds=plan.walltime),
                    "finished": finished,
                    "walltime_observed_s": plan.walltime,
                    "workdir": f"{workroot}/{token}/{task}",
                    "outcome": fstate,
                }
                plan.counts[fstate] += 1
                plan.retried[fstate] += 1
                if retry_array is None:
                    self.array_id += 1
                    retry_array = (self.ids.next("submission"), self.array_id)
                    self.submissions.append(
                        self._submission(
                            retry_array[0],
                            f"opos-s{plan.id}-{retry_array[0]:016x}",
                            plan,
                            backend,
                            retries,
                            finished + dt.timedelta(minutes=5),
                        )
                    )
            row = {**base, "id": self.ids.next("job"), "attempt": 2 if parent else 1}
            row["parent_id"] = parent
            row["state"] = state
            plan.counts[state] += 1
            if index < submitted:
                if parent:
                    sub_id, array = retry_array
                    task, token = retry_task, f"opos-s{plan.id}-{sub_id:016x}"
                    retry_task += 1
                else:
                    sub_id, array, token = array_of(index)
                    task = index % ARRAY
                row |= {
                    "backend": backend,
                    "batch_id": self._batch_id(backend, array, task),
                    "submission_id": sub_id,
                    "workdir": f"{workroot}/{token}/{task}",
                }
            if state == "succeeded":
                q = index / max(done, 1)
                finished = start + dt.timedelta(seconds=span * (0.03 + 0.95 * q))
                wall = int(plan.walltime * (0.8 + 0.4 * ((index * 7919) % 100) / 100))
                row |= {
                    "state_since": finished,
                    "queued_at": finished - dt.timedelta(seconds=wall + 600),
                    "started": finished - dt.timedelta(seconds=wall),
                    "finished": finished,
                    "walltime_observed_s": wall,
                    "exit_code": 0,
                    "outcome": "succeeded",
                }
                plan.events_done += events
                if plan.progress_at is None or finished > plan.progress_at:
                    plan.progress_at = finished
            elif state in ("queued", "running", "held"):
                queued = self.now - dt.timedelta(seconds=60 + (index * 37) % 20000)
                row |= {"state_since": queued, "queued_at": queued}
                if state != "queued":
                    row["started"] = queued + dt.timedelta(seconds=30)
                    row["state_since"] = row["started"]
                if state == "held":
                    row["failure_reason"] = "JobHeldAdmin"
            elif state == "cancelled":
                row |= {
                    "state_since": end,
                    "failure_class": "cancelled",
                    "failure_reason": "cancelled",
                }
            else:
                row["state_since"] = start
            yield row

    @staticmethod
    def _batch_id(backend: str, array: int, task: int) -> str:
        return f"{array}.{task}" if backend == "htcondor" else f"{array}_{task}"

    def _submission(
        self, sub_id: int, token: str, plan: StagePlan, backend: str, size: int, at: dt.datetime
    ) -> dict[str, Any]:
        return {
            "id": sub_id,
            "token": token,
            "stage_id": plan.id,
            "backend": backend,
            "state": "submitted",
            "size": size,
            "batch_id": str(self.array_id),
            "created": at,
            "submitted_at": at,
            "updated": at,
        }

    def stages(self, cursor: Any) -> None:
        from campaigns.models import COUNTER_FOR_STATE, RETRIED_COUNTER_FOR_STATE, Stage

        rows = []
        for p in self.stage_plans:
            campaign = self.campaign_by_id[p.campaign]
            row = {
                "id": p.id,
                "campaign_id": p.campaign,
                "request_id": p.request,
                "sample_id": p.sample,
                "template_stage_id": self.stage_templates[campaign.experiment][p.position],
                "position": p.position,
                "name": p.name,
                "code_id": p.code,
                "code_sha256": f"{p.code:064x}",
                "code_location": f"/cvmfs/exp{campaign.experiment}/prod/{p.name}.py",
                "walltime_s": p.walltime,
                "walltime_median_s": p.walltime if p.counts["succeeded"] else None,
                "split": p.split,
                "events_per_job": p.epj if p.position == 0 else None,
                "files_per_job": p.files_per_job,
                "input_stage_id": p.input_stage,
                "output_dataset_id": p.dataset,
                "jobs_total": p.jobs,
                "events_done": p.events_done,
                "progress_at": p.progress_at,
                "created": campaign.launched or self.now,
            }
            for state, column in COUNTER_FOR_STATE.items():
                row[column] = p.counts[state]
            for state, column in RETRIED_COUNTER_FOR_STATE.items():
                row[column] = p.retried[state]
            rows.append(row)
        self._copy(cursor, Stage, rows)

    def catalogue(self, cursor: Any) -> None:
        """One output file per succeeded job, and the dataset counters: set-based SQL."""
        cursor.execute(
            """
            INSERT INTO campaigns_outputfile
                (dataset_id, name, size, checksum, events, job_id, path, created)
            SELECT s.output_dataset_id,
                   s.name || '_' || lpad(j.index::text, 7, '0') || '.root',
                   1000000000 + (j.id * 7919) % 1000000000,
                   encode(sha256(j.id::text::bytea), 'hex'),
                   j.events, j.id,
                   '/storage/' || d.name || '/' || s.name || '_' || lpad(j.index::text, 7, '0')
                       || '.root',
                   j.finished
            FROM campaigns_job j
            JOIN campaigns_stage s ON s.id = j.stage_id
            JOIN campaigns_dataset d ON d.id = s.output_dataset_id
            WHERE j.state = 'succeeded'
            """
        )
        self.counts["campaigns_outputfile"] = cursor.rowcount
        cursor.execute(
            """
            UPDATE campaigns_dataset d
            SET file_count = f.n, size_bytes = f.size, events = f.events
            FROM (SELECT dataset_id, count(*) AS n, sum(size) AS size, sum(events) AS events
                  FROM campaigns_outputfile GROUP BY dataset_id) f
            WHERE d.id = f.dataset_id
            """
        )

    # --- history -----------------------------------------------------------------------------

    def history(self, cursor: Any) -> None:
        """Snapshots (campaign, request and sample series), milestones, stuck flags."""
        from campaigns.models import StuckFlag
        from monitoring.models import Milestone, ProgressSnapshot

        by_sample: dict[int, list[StagePlan]] = defaultdict(list)
        for p in self.stage_plans:
            by_sample[p.sample].append(p)
        finals: dict[tuple, dict[str, Any]] = {}
        for sid, rid, campaign, _epj in self.samples:
            stages = by_sample[sid]
            counts = sum((p.counts for p in stages), Counter())
            last = stages[-1]
            values = {
                "events_done": last.events_done,
                "events_target": self.sample_events[sid],
                "jobs_total": sum(p.jobs for p in stages),
                "counts": counts,
            }
            for key in (("sample", campaign.id, rid, sid), ("request", campaign.id, rid, None)):
                total = finals.setdefault(
                    key,
                    {"events_done": 0, "events_target": 0, "jobs_total": 0, "counts": Counter()},
                )
                for name in ("events_done", "events_target", "jobs_total"):
                    total[name] += values[name]
                total["counts"] += counts
            total = finals.setdefault(
                ("campaign", campaign.id, None, None),
                {"events_done": 0, "events_target": 0, "jobs_total": 0, "counts": Counter()},
            )
            for name in ("events_done", "events_target", "jobs_total"):
                total[name] += values[name]
            total["counts"] += counts
        interval = dt.timedelta(seconds=self.args.snapshot_interval)
        raw_since = self.now - dt.timedelta(hours=48)

        def points(campaign: CampaignPlan) -> list[tuple[dt.datetime, int]]:
            """Moments of the series: hourly (tier 1) before the last 48 h, raw after."""
            start, end = campaign.launched, campaign.ended or self.now
            out, t = [], start
            while t < min(end, raw_since):
                out.append((t, 1))
                t += dt.timedelta(hours=1)
            t = max(t, raw_since) if end > raw_since else end
            while t <= end:
                out.append((t, 0 if t >= raw_since else 1))
                t += interval
            return out

        def snapshot_rows() -> Iterator[dict[str, Any]]:
            for (level, cid, rid, sid), final in finals.items():
                campaign = self.campaign_by_id[cid]
                if campaign.launched is None:
                    continue
                start, end = campaign.launched, campaign.ended or self.now
                length = max((end - start).total_seconds(), 1.0)
                c = final["counts"]
                in_flight = c["queued"] + c["running"] + c["held"]
                succeeded = c["succeeded"]
                for at, tier in points(campaign):
                    f = shape((at - start).total_seconds() / length)
                    ramp = min((at - start).total_seconds() / 86400, 1.0)
                    done = int(succeeded * f)
                    running = int(c["running"] * ramp)
                    yield {
                        "id": self.ids.next("snapshot"),
                        "campaign_id": cid,
                        "level": level,
                        "request_id": rid,
                        "sample_id": sid,
                        "taken_at": at,
                        "tier": tier,
                        "events_done": int(final["events_done"] * f),
                        "events_target": final["events_target"],
                        "jobs_total": final["jobs_total"],
                        "jobs": {
                            "succeeded": done,
                            "running": running,
                            "queued": int(c["queued"] * ramp),
                            "held": c["held"] if ramp >= 1 else 0,
                            "ready": max(final["jobs_total"] - done - running, 0) // 3,
                        },
                        "succeeded": done,
                        "running": running,
                        "in_flight": int(in_flight * ramp),
                        "slots": min(1000, final["jobs_total"]) if level == "campaign" else 0,
                    }

        self._copy(cursor, ProgressSnapshot, snapshot_rows())

        milestones = []
        for (level, cid, rid, _sid), final in finals.items():
            campaign = self.campaign_by_id[cid]
            if level == "sample" or campaign.launched is None:
                continue
            start, end = campaign.launched, campaign.ended or self.now
            reached = {"first_running": start + dt.timedelta(minutes=10)}
            if level == "campaign" and (end - start) > dt.timedelta(days=1):
                reached["full_speed"] = start + dt.timedelta(hours=30)
            target = final["events_target"] or 1
            if 2 * final["events_done"] >= target:
                reached["half_events"] = start + (end - start) * 0.5
            if final["events_done"] >= target:
                reached["all_events"] = end
            for kind, at in reached.items():
                milestones.append(
                    {
                        "id": self.ids.next("milestone"),
                        "campaign_id": cid,
                        "request_id": rid,
                        "kind": kind,
                        "reached_at": at,
                    }
                )
        self._copy(cursor, Milestone, milestones)

        # A few held stages flagged as stuck, as the detector would.
        flags = [
            {
                "id": self.ids.next("stuck"),
                "campaign_id": p.campaign,
                "stage_id": p.id,
                "kind": "no_progress",
                "reason": "No job of the stage finished in the last 6 hours.",
                "created": self.now - dt.timedelta(hours=2),
            }
            for p in self.stage_plans[::97]
            if p.counts["held"]
        ]
        self._copy(cursor, StuckFlag, flags)

    def reset_sequences(self) -> None:
        from django.apps import apps
        from django.core.management.color import no_style
        from django.db import connection

        models = [m for m in apps.get_models(include_auto_created=True)]
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(no_style(), models):
                cursor.execute(statement)
