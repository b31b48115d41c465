"""Two experiments full of work, and one user per role, for the security tests.

Everything of experiment A carries the marker ``SECRET-A`` (or ``SECRETA`` where only
letters and digits fit) in its names: title, campaign, dataset, file, template, code,
group, training notes, comments, the usernames of A's members. A response shown to a
user of experiment B must never contain it (``leaks``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from django.db.models import Model
from django.utils import timezone

from campaigns.choices import JobState, SubmissionState
from campaigns.models import Campaign, Dataset, Job, OutputFile, Stage, StuckFlag, Submission
from campaigns.services import campaign_action, schedule_requests
from experiments.choices import TrainingTopic
from experiments.models import AuditEvent, Experiment, ProductionCode, WorkflowTemplate
from experiments.models.visibility import forget_roles
from experiments.services import record_training
from monitoring.models import Allocation
from requests_app.choices import RequestState
from requests_app.models import Comment, Transition
from requests_app.services import tokens as api_tokens
from tests.campaigns.factories import CampaignFactory, workflow
from tests.factories import (
    ExperimentFactory,
    PhysicsGroupFactory,
    ProductionRequestFactory,
    SampleFactory,
    UserFactory,
    grant,
)

MARKER = re.compile(r"secret-?a", re.IGNORECASE)
ROLES = ("anonymous", "liaison_a", "physicist_a", "liaison_b", "operator", "admin")


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return [str(value)] if value is not None else []


def leaks(body: bytes | str, sent=None) -> list[str]:
    """The places in ``body`` where something of experiment A shows (empty when none).

    Values the caller sent (``sent``) may be echoed back: they are no leak.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    for echo in sorted(_strings(sent), key=len, reverse=True):
        if len(echo) > 3:
            text = text.replace(echo, "")
    return [text[max(m.start() - 60, 0) : m.end() + 60] for m in MARKER.finditer(text)]


@dataclass
class World:
    """The seeded objects; ``a_*`` belong to experiment A, ``b_*`` to experiment B."""

    a: Experiment
    b: Experiment
    users: dict = field(default_factory=dict)
    objects: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)

    def __getattr__(self, name):
        try:
            return self.objects[name]
        except KeyError:
            raise AttributeError(name) from None

    def reloaded(self) -> World:
        """The same world read again from the database: a test may change its objects in
        memory (``refresh_from_db``, a saved field) without the next test seeing it."""

        def again(value):
            if isinstance(value, Model):
                return type(value)._base_manager.get(pk=value.pk)
            return value

        return World(
            a=again(self.a),
            b=again(self.b),
            users={role: again(user) for role, user in self.users.items()},
            objects={name: again(value) for name, value in self.objects.items()},
            tokens=dict(self.tokens),
        )

    def token(self, role: str) -> str | None:
        user = self.users.get(role)
        if user is None:
            return None
        # Issued once per user: the database keeps only the digest.
        if role not in self.tokens:
            self.tokens[role] = api_tokens.issue(user)[1]
        return self.tokens[role]


def _request(experiment, requester, group, template, state, title, ticket, output):
    request = ProductionRequestFactory(
        experiment=experiment,
        physics_group=group,
        requester=requester,
        state=state,
        title=title,
        ticket=ticket,
        description=f"{title} justification",
        deadline=timezone.localdate() + dt.timedelta(days=40),
        submitted=timezone.now() if state != RequestState.DRAFT else None,
    )
    SampleFactory(
        request=request,
        template=template,
        name=f"{output}-sample",
        events=1000,
        events_per_job=250,
        output_dataset=output,
    )
    return request


def _execution(world: World, prefix: str, experiment, template, group, requester, operator):
    """A launched campaign of ``experiment`` with a submission, jobs, outputs and a flag."""
    approved = _request(
        experiment,
        requester,
        group,
        template,
        RequestState.APPROVED,
        f"{prefix}-PLANNED-TITLE",
        f"{prefix.replace('-', '')}0000002",
        f"{prefix.lower()}-out",
    )
    campaign = CampaignFactory(
        experiment=experiment, name=f"{prefix}-CAMPAIGN", created_by=operator, backend="local"
    )
    schedule_requests(campaign, [approved.pk], operator)
    campaign_action(campaign, "launch", operator)
    campaign.refresh_from_db()
    stage = Stage.objects.filter(campaign=campaign).order_by("position").first()
    submission = Submission.objects.create(
        token=f"{prefix.lower()}-token",
        stage=stage,
        backend="local",
        state=SubmissionState.SUBMITTED,
        size=2,
        batch_id=f"{prefix.lower()}-array",
        submitted_at=timezone.now(),
    )
    jobs = list(Job.objects.filter(stage=stage).order_by("index")[:2])
    now = timezone.now()
    Job.objects.filter(pk=jobs[0].pk).update(
        state=JobState.RUNNING,
        submission=submission,
        backend="local",
        batch_id=f"{prefix.lower()}-array_0",
        queued_at=now,
        started=now,
        state_since=now,
    )
    Job.objects.filter(pk=jobs[1].pk).update(
        state=JobState.QUEUED,
        submission=submission,
        backend="local",
        batch_id=f"{prefix.lower()}-array_1",
        queued_at=now,
        state_since=now,
    )
    dataset = Dataset.objects.create(
        experiment=experiment, name=f"{prefix}-DATASET", description=f"{prefix} inputs"
    )
    output = OutputFile.objects.create(
        dataset=dataset,
        name=f"{prefix}-FILE.root",
        size=123,
        checksum="0" * 64,
        events=10,
        job=jobs[0],
    )
    flag = StuckFlag.objects.create(
        campaign=campaign, stage=stage, job=jobs[1], kind="queued_too_long", reason="queued 2 d"
    )
    key = prefix.split("-")[-1].lower()
    world.objects.update(
        {
            f"{key}_approved": approved,
            f"{key}_campaign": campaign,
            f"{key}_stage": stage,
            f"{key}_submission": submission,
            f"{key}_job": jobs[0],
            f"{key}_queued_job": jobs[1],
            f"{key}_dataset": dataset,
            f"{key}_file": output,
            f"{key}_flag": flag,
        }
    )


def build_world() -> World:
    """Experiments A and B with requests, campaigns, jobs, catalogue and records."""
    a = ExperimentFactory(slug="secret-a-exp", name="SECRET-A-EXPERIMENT")
    b = ExperimentFactory(slug="bravo", name="Bravo")
    world = World(a=a, b=b)
    operator = grant(UserFactory(username="oper"), "operator")
    admin = grant(UserFactory(username="chief"), "admin")
    liaison_a = grant(UserFactory(username="secret-a-liaison"), "liaison", a)
    physicist_a = grant(UserFactory(username="secret-a-physicist"), "physicist", a)
    liaison_b = grant(UserFactory(username="bravo-liaison"), "liaison", b)
    world.users = {
        "anonymous": None,
        "liaison_a": liaison_a,
        "physicist_a": physicist_a,
        "liaison_b": liaison_b,
        "operator": operator,
        "admin": admin,
    }
    group_a = PhysicsGroupFactory(experiment=a, slug="secret-a-group", name="SECRET-A-GROUP")
    group_b = PhysicsGroupFactory(experiment=b, slug="bravo-group", name="Bravo group")
    template_a = workflow(a, name="SECRET-A-TEMPLATE")
    template_b = workflow(b, name="bravo-template")
    shared = WorkflowTemplate.objects.create(name="shared-template")
    ProductionCode.objects.filter(experiment=a).update(location="/code/SECRET-A-CODE.py")
    for code in ProductionCode.objects.filter(experiment=a):
        code.owners.add(liaison_a)

    # Requests: a submitted one and a draft of A, one submitted of B.
    submitted_a = _request(
        a,
        liaison_a,
        group_a,
        template_a,
        RequestState.SUBMITTED,
        "SECRET-A-TITLE",
        "SECRETA0000001",
        "secret-a-out-1",
    )
    draft_a = _request(
        a,
        liaison_a,
        group_a,
        template_a,
        RequestState.DRAFT,
        "SECRET-A-DRAFT",
        "SECRETA0000003",
        "secret-a-out-3",
    )
    request_b = _request(
        b,
        liaison_b,
        group_b,
        template_b,
        RequestState.SUBMITTED,
        "Bravo request",
        "BRAVO0000001",
        "bravo-out-1",
    )
    Transition.objects.create(
        request=submitted_a,
        action="submit",
        from_state="draft",
        to_state="submitted",
        actor=liaison_a,
        note="SECRET-A-NOTE",
    )
    Comment.objects.create(request=submitted_a, author=liaison_a, body="SECRET-A-COMMENT")
    Comment.objects.create(request=request_b, author=liaison_b, body="bravo comment")
    training_a = record_training(
        operator, a, dt.date(2026, 1, 10), TrainingTopic.values, [], "SECRET-A-TRAINING"
    )
    record_training(operator, b, dt.date(2026, 1, 11), TrainingTopic.values, [], "bravo training")
    world.objects.update(
        {
            "a_group": group_a,
            "b_group": group_b,
            "a_template": template_a,
            "b_template": template_b,
            "shared_template": shared,
            "a_code": ProductionCode.objects.filter(experiment=a).order_by("pk").first(),
            "b_code": ProductionCode.objects.filter(experiment=b).order_by("pk").first(),
            "a_request": submitted_a,
            "a_draft": draft_a,
            "b_request": request_b,
            "a_training": training_a,
        }
    )
    _execution(world, "SECRET-A", a, template_a, group_a, liaison_a, operator)
    _execution(world, "BRAVO-B", b, template_b, group_b, liaison_b, operator)
    world.objects["a_audit"] = AuditEvent.objects.filter(experiment=a).order_by("pk").first()
    today = timezone.localdate()
    period = {"start": today - dt.timedelta(days=3), "end": today + dt.timedelta(days=30)}
    world.objects["a_allocation"] = Allocation.objects.create(
        experiment=a, cpu_hours=1000, note="SECRET-A-GRANT", **period
    )
    Allocation.objects.create(experiment=b, cpu_hours=500, note="bravo grant", **period)
    for user in world.users.values():
        if user is not None:
            forget_roles(user)
    assert Campaign.objects.count() == 2
    return world
