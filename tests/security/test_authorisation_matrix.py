"""Every URL of the project, for every role: allowed or refused as intended, and nothing of
experiment A in any answer given to experiment B's liaison or to an anonymous visitor.

The routes come from walking the URL resolver, so a new page or endpoint fails
``test_every_route_is_classified`` until it is given its expectations in ``SPECS`` (or,
for the Django admin, matches ``ADMIN``).

Roles: ``anonymous``; ``liaison_a`` and ``physicist_a`` (members of experiment A);
``liaison_b`` (a member of B only); ``operator``; ``admin``. What each may do:
anonymous is sent to sign in (pages) or answered 401 (API); B's liaison gets 404 for
A's objects (their existence is not B's business); the physicist reads but does not act
(403); operators act; admins do everything, including the Django admin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from campaigns.execution import heartbeat
from campaigns.models import FailureRule, ProcessRole
from tests.security.routes import Route, walk
from tests.security.world import ROLES, World, leaks

# A deadline within the horizon (OPOS_DEADLINE_HORIZON_DAYS) whenever the tests run.
DEADLINE = (dt.date.today() + dt.timedelta(days=365)).isoformat()

pytestmark = pytest.mark.django_db

# Outcomes.
OK = "200"  # the page or answer itself
LOGIN = "login"  # 302 to the sign-in page
UNAUTH = "401"
FORBID = "403"
HIDDEN = "404"
ACT = "act"  # allowed: the action ran or was refused for its content (2xx, 3xx, 400, 409)
PUBLIC = "public"  # anything but a server error
NOT_ALLOWED = "405"

# Order of the roles for writes: refusals first, so the actions that change state run last.
WRITE_ORDER = ("anonymous", "liaison_b", "physicist_a", "liaison_a", "operator", "admin")


def roles(anonymous, liaison_a, physicist_a, liaison_b, operator, admin) -> dict[str, str]:
    return dict(
        zip(ROLES, (anonymous, liaison_a, physicist_a, liaison_b, operator, admin), strict=True)
    )


# Pages (anonymous -> sign in).
PAGE_ALL = roles(LOGIN, OK, OK, OK, OK, OK)
PAGE_MEMBER = roles(LOGIN, OK, OK, HIDDEN, OK, OK)
PAGE_OPERATOR = roles(LOGIN, FORBID, FORBID, FORBID, OK, OK)
# Acting on A's object: B's liaison does not see it (404); A's members may not (403).
PAGE_OPERATOR_ON_A = roles(LOGIN, FORBID, FORBID, HIDDEN, ACT, ACT)
# Operator pages that take an id: refused by role before any lookup (403 for B too).
PAGE_OPERATOR_ANY = roles(LOGIN, FORBID, FORBID, FORBID, ACT, ACT)
PAGE_LIAISON_ON_A = roles(LOGIN, ACT, FORBID, HIDDEN, ACT, ACT)
# API (anonymous -> 401).
API_ALL = roles(UNAUTH, OK, OK, OK, OK, OK)
API_MEMBER = roles(UNAUTH, OK, OK, HIDDEN, OK, OK)
API_OPERATOR = roles(UNAUTH, FORBID, FORBID, FORBID, OK, OK)
API_OPERATOR_ON_A = roles(UNAUTH, FORBID, FORBID, HIDDEN, ACT, ACT)
API_OPERATOR_ANY = roles(UNAUTH, FORBID, FORBID, FORBID, ACT, ACT)
API_LIAISON_ON_A = roles(UNAUTH, ACT, FORBID, HIDDEN, ACT, ACT)
EVERYONE = roles(PUBLIC, PUBLIC, PUBLIC, PUBLIC, PUBLIC, PUBLIC)


@dataclass
class Write:
    method: str
    expect: dict[str, str]
    data: Callable[[World], dict] = lambda w: {}


@dataclass
class Spec:
    """How to reach a route and what each role gets."""

    kwargs: Callable[[World], dict] = lambda w: {}
    get: dict[str, str] | None = None  # None: GET is not how this route is used (never 200)
    writes: list[Write] = field(default_factory=list)
    query: str = ""


def a(key: str, attr: str = "pk", param: str = "pk") -> Callable[[World], dict]:
    return lambda w: {param: getattr(getattr(w, key), attr)}


A_REQUEST = a("a_request", "number", "number")
A_SLUG = lambda w: {"slug": w.a.slug}  # noqa: E731
NEW_REQUEST = lambda w: {  # noqa: E731
    "experiment": w.a.slug,
    "physics_group": "secret-a-group",
    "ticket": "RITM0099999",
    "title": "Filed in the matrix",
    "deadline": DEADLINE,
    "samples": [
        {
            "name": "matrix",
            "template": w.a_template.pk,
            "events": 100,
            "events_per_job": 10,
            "output_dataset": f"{w.a.slug}:matrix-out",
        }
    ],
}


def new_allocation(experiment) -> dict:
    """An allocation in a period no seeded one overlaps (a second post: refused, 400/200)."""
    return {"experiment": experiment, "start": "2031-01-01", "end": "2031-01-31", "cpu_hours": 5}


SPECS: dict[str, Spec] = {
    # --- intake pages -----------------------------------------------------------------------
    "requests:home": Spec(get=PAGE_ALL),
    # Each user's own: saved filters (anyone's id but their own is "no longer exists") and
    # the time-zone preference.
    "requests:filter_save": Spec(
        writes=[Write("post", roles(LOGIN, ACT, ACT, ACT, ACT, ACT), lambda w: {"name": "m"})]
    ),
    "requests:filter_delete": Spec(
        lambda w: {"pk": 999999}, writes=[Write("post", roles(LOGIN, ACT, ACT, ACT, ACT, ACT))]
    ),
    "requests:preferences": Spec(
        get=PAGE_ALL,
        writes=[
            Write("post", roles(LOGIN, ACT, ACT, ACT, ACT, ACT), lambda w: {"time_zone": "UTC"})
        ],
    ),
    # Watching: anyone who may see the request (404 for another experiment's).
    "requests:watch": Spec(
        A_REQUEST,
        writes=[Write("post", roles(LOGIN, ACT, ACT, HIDDEN, ACT, ACT), lambda w: {"watch": "1"})],
    ),
    # Each user's own tokens; a revoke names a key of the user's own or nothing is revoked.
    "requests:tokens": Spec(
        get=PAGE_ALL,
        writes=[
            Write(
                "post",
                roles(LOGIN, ACT, ACT, ACT, ACT, ACT),
                lambda w: {"key": w.token("liaison_a")[:15]},
            )
        ],
    ),
    "requests:list": Spec(get=PAGE_ALL, query="?q=SECRET"),
    "requests:new": Spec(get=roles(LOGIN, OK, FORBID, OK, OK, OK)),
    "requests:detail": Spec(A_REQUEST, get=PAGE_MEMBER),
    "requests:edit": Spec(
        a("a_draft", "number", "number"), get=roles(LOGIN, OK, FORBID, HIDDEN, OK, OK)
    ),
    "requests:action": Spec(
        A_REQUEST,
        writes=[
            Write(
                "post",
                roles(LOGIN, FORBID, FORBID, HIDDEN, ACT, ACT),
                lambda w: {"action": "approve"},
            )
        ],
    ),
    # The confirmation step of an irreversible action: shown to those who may take it; the
    # write posts no reason, so it is refused for its content and nothing is cancelled.
    "requests:confirm": Spec(
        lambda w: {"number": w.a_request.number, "action": "cancel"},
        get=roles(LOGIN, OK, FORBID, HIDDEN, OK, OK),
        writes=[Write("post", roles(LOGIN, ACT, FORBID, HIDDEN, ACT, ACT))],
    ),
    "requests:comment": Spec(
        A_REQUEST, writes=[Write("post", PAGE_LIAISON_ON_A, lambda w: {"body": "matrix"})]
    ),
    "requests:assign": Spec(
        A_REQUEST,
        writes=[Write("post", PAGE_OPERATOR_ON_A, lambda w: {"assignee": w.users["operator"].pk})],
    ),
    "requests:triage": Spec(get=PAGE_OPERATOR),
    "experiments:training_list": Spec(get=PAGE_OPERATOR),
    "experiments:training_new": Spec(get=PAGE_OPERATOR),
    "experiments:code_list": Spec(get=PAGE_OPERATOR),
    "experiments:code_new": Spec(get=PAGE_OPERATOR),
    "experiments:code_approve": Spec(a("a_code"), writes=[Write("post", PAGE_OPERATOR_ANY)]),
    "requests:audit": Spec(get=PAGE_OPERATOR, query="?q=SECRET"),
    "login": Spec(get=EVERYONE),
    "lockouts": Spec(
        get=PAGE_OPERATOR,
        writes=[
            Write("post", PAGE_OPERATOR_ANY, lambda w: {"username": "x", "ip_address": "192.0.2.1"})
        ],
    ),
    "logout": Spec(writes=[Write("post", EVERYONE)]),
    "servicedesk:health": Spec(get=PAGE_OPERATOR),
    "servicedesk:run": Spec(
        lambda w: {"what": "retry"},
        writes=[Write("post", roles(LOGIN, FORBID, FORBID, FORBID, ACT, ACT))],
    ),
    # --- campaign pages ---------------------------------------------------------------------
    "campaigns:list": Spec(get=PAGE_ALL, query="?show=all"),
    "campaigns:new": Spec(get=PAGE_OPERATOR),
    "campaigns:detail": Spec(a("a_campaign"), get=PAGE_MEMBER),
    "campaigns:action": Spec(
        a("a_campaign"),
        writes=[Write("post", PAGE_OPERATOR_ON_A, lambda w: {"action": "pause", "note": "m"})],
    ),
    "campaigns:schedule": Spec(
        a("a_campaign"),
        writes=[Write("post", PAGE_OPERATOR_ON_A, lambda w: {"requests": [w.a_draft.pk]})],
    ),
    "campaigns:edit": Spec(
        a("a_campaign"),
        writes=[Write("post", PAGE_OPERATOR_ON_A, lambda w: {"priority": "high", "reason": "m"})],
    ),
    "campaigns:remove": Spec(
        a("a_campaign"),
        writes=[Write("post", PAGE_OPERATOR_ON_A, lambda w: {"request": w.a_request.pk})],
    ),
    "campaigns:template_list": Spec(get=PAGE_ALL),
    "campaigns:template_import": Spec(get=PAGE_OPERATOR),
    "campaigns:template_detail": Spec(a("a_template"), get=PAGE_MEMBER),
    "campaigns:template_clone": Spec(
        a("a_template"),
        writes=[Write("post", PAGE_OPERATOR_ANY, lambda w: {"experiment": w.a.pk})],
    ),
    "campaigns:template_export": Spec(a("a_template"), get=PAGE_MEMBER),
    "campaigns:dataset_list": Spec(get=PAGE_ALL, query="?q=SECRET"),
    "campaigns:dataset_detail": Spec(a("a_dataset"), get=PAGE_MEMBER),
    # The lifecycle: A's liaison acts first (retire), the operator is then refused by state.
    "campaigns:dataset_move": Spec(
        lambda w: {"pk": w.a_dataset.pk, "action": "retire"},
        get=roles(LOGIN, OK, FORBID, HIDDEN, OK, OK),
        writes=[Write("post", PAGE_LIAISON_ON_A, lambda w: {"reason": "m"})],
    ),
    "campaigns:dataset_invalidate_files": Spec(
        a("a_dataset"),
        get=roles(LOGIN, OK, FORBID, HIDDEN, OK, OK),
        query="?file=SECRET-A-FILE.root",
        writes=[
            Write(
                "post",
                PAGE_LIAISON_ON_A,
                lambda w: {"file": w.a_file.name, "reason": "m"},
            )
        ],
    ),
    "campaigns:stage_jobs": Spec(a("a_stage"), get=PAGE_MEMBER),
    "campaigns:stage_recover": Spec(a("a_stage"), writes=[Write("post", PAGE_OPERATOR_ANY)]),
    "campaigns:job_cancel_retry": Spec(a("a_job"), writes=[Write("post", PAGE_OPERATOR_ANY)]),
    "campaigns:stuck_list": Spec(get=PAGE_ALL),
    "campaigns:partitions": Spec(
        get=PAGE_OPERATOR,
        writes=[
            Write(
                "post",
                PAGE_OPERATOR_ANY,
                lambda w: {"backend": "slurm", "name": "matrix", "capacity": "5"},
            )
        ],
    ),
    # Refused by role before any lookup: a partition that does not exist is 404 to operators.
    "campaigns:partition_quota": Spec(
        lambda w: {"pk": 999999},
        writes=[Write("post", roles(LOGIN, FORBID, FORBID, FORBID, HIDDEN, HIDDEN))],
    ),
    "campaigns:partition_remove": Spec(
        lambda w: {"pk": 999999},
        writes=[Write("post", roles(LOGIN, FORBID, FORBID, FORBID, HIDDEN, HIDDEN))],
    ),
    # Steering running production (operators), and the requests' clone and extension.
    "campaigns:recover": Spec(
        a("a_campaign"), writes=[Write("post", PAGE_OPERATOR_ON_A, lambda w: {"note": "m"})]
    ),
    "campaigns:force_complete": Spec(
        a("a_campaign"), writes=[Write("post", PAGE_OPERATOR_ON_A, lambda w: {"reason": "m"})]
    ),
    "campaigns:launch_full": Spec(a("a_campaign"), writes=[Write("post", PAGE_OPERATOR_ON_A)]),
    "campaigns:settings": Spec(
        a("a_campaign"), writes=[Write("post", PAGE_OPERATOR_ON_A, lambda w: {"test_jobs": "0"})]
    ),
    "campaigns:request_clone": Spec(
        A_REQUEST, writes=[Write("post", roles(LOGIN, ACT, ACT, HIDDEN, ACT, ACT))]
    ),
    "campaigns:request_extend": Spec(
        A_REQUEST,
        writes=[
            Write(
                "post",
                roles(LOGIN, ACT, ACT, HIDDEN, ACT, ACT),
                lambda w: {"events": "10", "reason": "m"},
            )
        ],
    ),
    "campaigns:request_force_complete": Spec(
        A_REQUEST,
        writes=[Write("post", roles(LOGIN, ACT, ACT, HIDDEN, ACT, ACT), lambda w: {"reason": "m"})],
    ),
    # An extension that does not exist: refused by role first, then not found.
    "campaigns:extension_decide": Spec(
        lambda w: {"pk": 999999},
        writes=[
            Write(
                "post",
                roles(LOGIN, FORBID, FORBID, FORBID, HIDDEN, HIDDEN),
                lambda w: {"decision": "approve"},
            )
        ],
    ),
    # --- monitoring pages -------------------------------------------------------------------
    "monitoring:index": Spec(get=roles(LOGIN, ACT, ACT, ACT, ACT, ACT)),
    "monitoring:operations": Spec(get=PAGE_OPERATOR),
    "monitoring:experiment": Spec(A_SLUG, get=PAGE_MEMBER),
    "monitoring:report": Spec(
        A_SLUG,
        get=PAGE_MEMBER,
        writes=[Write("post", roles(LOGIN, FORBID, FORBID, HIDDEN, ACT, ACT))],
    ),
    "monitoring:csv": Spec(A_SLUG, get=PAGE_MEMBER),
    "monitoring:campaign": Spec(a("a_campaign"), get=PAGE_MEMBER),
    "monitoring:request": Spec(A_REQUEST, get=PAGE_MEMBER),
    "monitoring:job_log": Spec(a("a_job"), get=PAGE_OPERATOR),
    "monitoring:sla": Spec(get=PAGE_ALL),
    "monitoring:campaign_what_if": Spec(a("a_campaign"), get=PAGE_OPERATOR),
    "monitoring:request_what_if": Spec(A_REQUEST, get=PAGE_OPERATOR),
    "monitoring:request_commitments": Spec(
        A_REQUEST, get=PAGE_OPERATOR, writes=[Write("post", PAGE_OPERATOR_ANY)]
    ),
    "monitoring:campaign_commitments": Spec(
        a("a_campaign"), get=PAGE_OPERATOR, writes=[Write("post", PAGE_OPERATOR_ANY)]
    ),
    "monitoring:digest": Spec(
        get=PAGE_ALL,
        writes=[Write("post", roles(LOGIN, ACT, ACT, ACT, ACT, ACT), lambda w: {"daily": "on"})],
    ),
    "monitoring:accounting": Spec(get=PAGE_ALL),
    "monitoring:accounting_csv": Spec(get=PAGE_ALL),
    "monitoring:allocation_new": Spec(
        get=PAGE_OPERATOR,
        writes=[Write("post", PAGE_OPERATOR_ANY, lambda w: new_allocation(w.b.pk))],
    ),
    "monitoring:allocation_edit": Spec(
        a("a_allocation"),
        get=PAGE_OPERATOR,
        writes=[Write("post", PAGE_OPERATOR_ANY, lambda w: new_allocation(w.a.pk))],
    ),
    "metrics": Spec(get=roles(FORBID, FORBID, FORBID, FORBID, OK, OK)),
    "healthz": Spec(get=EVERYONE),
    # --- API --------------------------------------------------------------------------------
    "api-token": Spec(writes=[Write("post", EVERYONE)]),
    # Own tokens only: A's liaison revokes its own token; everyone else is told it does not
    # exist (404), whether another user's key or no key at all.
    "api-token-list": Spec(get=API_ALL),
    "api-token-revoke": Spec(
        lambda w: {"key": w.token("liaison_a")[:15]},
        writes=[Write("delete", roles(UNAUTH, ACT, HIDDEN, HIDDEN, HIDDEN, HIDDEN))],
    ),
    "servicedesk-webhook": Spec(
        writes=[Write("post", roles(UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH))]
    ),
    "campaign-progress": Spec(a("a_campaign", param="id"), get=API_MEMBER),
    "campaign-what-if": Spec(a("a_campaign", param="id"), get=API_OPERATOR_ANY),
    "request-progress": Spec(a("a_request", param="id"), get=API_MEMBER),
    "request-what-if": Spec(a("a_request", param="id"), get=API_OPERATOR_ANY),
    "experiment-list": Spec(get=API_ALL, query="?search=SECRET"),
    "experiment-detail": Spec(A_SLUG, get=API_MEMBER),
    "partition-list": Spec(
        get=API_OPERATOR,
        writes=[Write("post", API_OPERATOR_ANY, lambda w: {"name": "matrix", "capacity": 5})],
    ),
    "partition-detail": Spec(
        lambda w: {"pk": 999999},
        get=roles(UNAUTH, FORBID, FORBID, FORBID, HIDDEN, HIDDEN),
    ),
    "partition-quota": Spec(
        lambda w: {"pk": 999999},
        writes=[Write("post", roles(UNAUTH, FORBID, FORBID, FORBID, HIDDEN, HIDDEN))],
    ),
    "experiment-placement": Spec(
        A_SLUG, writes=[Write("post", API_OPERATOR_ON_A, lambda w: {"batch_qos": "matrix"})]
    ),
    "request-list": Spec(
        get=API_ALL,
        query="?search=SECRET",
        # B's liaison naming A's experiment is told it does not exist, as for any unknown slug.
        writes=[Write("post", roles(UNAUTH, ACT, FORBID, "400", ACT, ACT), NEW_REQUEST)],
    ),
    "request-detail": Spec(
        a("a_draft"),
        get=API_MEMBER,
        writes=[Write("patch", API_LIAISON_ON_A, lambda w: {"title": "Matrix title"})],
    ),
    "request-comments": Spec(
        a("a_request"),
        get=API_MEMBER,
        writes=[Write("post", API_LIAISON_ON_A, lambda w: {"body": "matrix"})],
    ),
    "request-eligibility": Spec(a("a_request"), get=API_MEMBER),
    "request-history": Spec(a("a_request"), get=API_MEMBER),
    "request-transitions": Spec(
        a("a_request"),
        writes=[Write("post", API_OPERATOR_ON_A, lambda w: {"action": "approve"})],
    ),
    "campaign-list": Spec(
        get=API_ALL,
        query="?search=SECRET",
        writes=[
            Write(
                "post",
                API_OPERATOR_ANY,
                lambda w: {"experiment": w.a.slug, "name": "matrix", "deadline": DEADLINE},
            )
        ],
    ),
    "campaign-detail": Spec(
        a("a_campaign"),
        get=API_MEMBER,
        writes=[Write("patch", API_OPERATOR_ON_A, lambda w: {"description": "m"})],
    ),
    "campaign-actions": Spec(
        a("a_campaign"),
        writes=[Write("post", API_OPERATOR_ON_A, lambda w: {"action": "pause", "note": "m"})],
    ),
    "campaign-plan": Spec(a("a_campaign"), get=API_MEMBER),
    "campaign-steering-recover": Spec(
        a("a_campaign"), writes=[Write("post", API_OPERATOR_ON_A, lambda w: {"note": "m"})]
    ),
    "campaign-steering-force-complete": Spec(
        a("a_campaign"), writes=[Write("post", API_OPERATOR_ON_A, lambda w: {"reason": "m"})]
    ),
    "campaign-steering-launch-full": Spec(
        a("a_campaign"), writes=[Write("post", API_OPERATOR_ON_A)]
    ),
    "campaign-steering-steering-settings": Spec(
        a("a_campaign"), writes=[Write("post", API_OPERATOR_ON_A, lambda w: {"test_jobs": 0})]
    ),
    "request-steering-clone": Spec(
        a("a_request"), writes=[Write("post", roles(UNAUTH, ACT, FORBID, HIDDEN, ACT, ACT))]
    ),
    "request-steering-force-complete": Spec(
        a("a_request"), writes=[Write("post", API_OPERATOR_ON_A, lambda w: {"reason": "m"})]
    ),
    "request-steering-extensions": Spec(
        a("a_request"),
        get=API_MEMBER,
        writes=[
            Write(
                "post",
                roles(UNAUTH, ACT, FORBID, HIDDEN, ACT, ACT),
                lambda w: {"events": 10, "reason": "m"},
            )
        ],
    ),
    "extension-list": Spec(get=API_ALL),
    "extension-detail": Spec(
        lambda w: {"pk": 999999}, get=roles(UNAUTH, HIDDEN, HIDDEN, HIDDEN, HIDDEN, HIDDEN)
    ),
    # Looked up before the role is checked: an extension nobody may see is 404 to all.
    "extension-approve": Spec(
        lambda w: {"pk": 999999},
        writes=[Write("post", roles(UNAUTH, HIDDEN, HIDDEN, HIDDEN, HIDDEN, HIDDEN))],
    ),
    # Looked up before the role is checked: an extension nobody may see is 404 to all.
    "extension-reject": Spec(
        lambda w: {"pk": 999999},
        writes=[Write("post", roles(UNAUTH, HIDDEN, HIDDEN, HIDDEN, HIDDEN, HIDDEN))],
    ),
    "campaign-batch-controls": Spec(a("a_campaign"), get=API_MEMBER),
    "campaign-remove": Spec(
        a("a_campaign"),
        writes=[Write("post", API_OPERATOR_ON_A, lambda w: {"request": w.a_approved.pk})],
    ),
    "campaign-schedule": Spec(
        a("a_campaign"),
        writes=[Write("post", API_OPERATOR_ON_A, lambda w: {"requests": [w.a_draft.pk]})],
    ),
    "template-list": Spec(
        get=API_ALL,
        query="?search=SECRET",
        writes=[
            Write("post", API_OPERATOR_ANY, lambda w: {"experiment": w.a.slug, "name": "matrix"})
        ],
    ),
    "template-detail": Spec(a("a_template"), get=API_MEMBER),
    "template-export": Spec(a("a_template"), get=API_MEMBER),
    "template-import": Spec(
        writes=[
            Write(
                "post",
                API_OPERATOR_ANY,
                lambda w: {"experiment": w.a.slug, "document": "name: matrix\n"},
            )
        ]
    ),
    "template-clone": Spec(
        a("a_template"),
        writes=[Write("post", API_OPERATOR_ANY, lambda w: {"experiment": w.a.slug})],
    ),
    # The operators' SLA records: refused by role before any lookup.
    "code-list": Spec(
        get=API_OPERATOR,
        query="?search=SECRET",
        writes=[
            Write(
                "post",
                API_OPERATOR_ANY,
                lambda w: {"experiment": w.a.slug, "name": "m", "version": "1", "location": "/m"},
            )
        ],
    ),
    "code-detail": Spec(a("a_code"), get=API_OPERATOR),
    "code-approve": Spec(a("a_code"), writes=[Write("post", API_OPERATOR_ANY)]),
    "training-list": Spec(
        get=API_OPERATOR,
        writes=[
            Write(
                "post",
                API_OPERATOR_ANY,
                lambda w: {"experiment": w.a.slug, "held_on": "2026-01-01", "topics": ["x"]},
            )
        ],
    ),
    "training-detail": Spec(a("a_training"), get=API_OPERATOR),
    "job-list": Spec(get=API_ALL),
    "job-detail": Spec(a("a_job"), get=API_MEMBER),
    "job-cancel-retry": Spec(a("a_job"), writes=[Write("post", API_OPERATOR_ON_A)]),
    "submission-list": Spec(get=API_ALL),
    "submission-detail": Spec(a("a_submission"), get=API_MEMBER),
    "dataset-list": Spec(
        get=API_ALL,
        query="?name=SECRET",
        writes=[
            Write(
                "post",
                API_LIAISON_ON_A,
                lambda w: {"experiment": w.a.slug, "name": f"{w.a.slug}:matrix-dataset"},
            )
        ],
    ),
    "dataset-detail": Spec(a("a_dataset"), get=API_MEMBER),
    "dataset-files": Spec(a("a_dataset"), get=API_MEMBER),
    "dataset-close": Spec(
        a("a_dataset"), writes=[Write("post", API_LIAISON_ON_A, lambda w: {"reason": "m"})]
    ),
    "dataset-reopen": Spec(
        a("a_dataset"), writes=[Write("post", API_LIAISON_ON_A, lambda w: {"reason": "m"})]
    ),
    "dataset-retire": Spec(
        a("a_dataset"), writes=[Write("post", API_LIAISON_ON_A, lambda w: {"reason": "m"})]
    ),
    "dataset-invalidate": Spec(
        a("a_dataset"), writes=[Write("post", API_LIAISON_ON_A, lambda w: {"reason": "m"})]
    ),
    "dataset-files-invalidate": Spec(
        a("a_dataset"),
        writes=[
            Write(
                "post",
                API_LIAISON_ON_A,
                lambda w: {"files": [w.a_file.name], "reason": "m"},
            )
        ],
    ),
    "dataset-remake": Spec(
        a("a_dataset"), writes=[Write("post", API_OPERATOR_ON_A, lambda w: {"reason": "m"})]
    ),
    "stuck-flag-list": Spec(get=API_ALL),
    "stuck-flag-detail": Spec(a("a_flag"), get=API_MEMBER),
    "failure-rule-list": Spec(
        get=API_ALL,
        writes=[
            Write(
                "post",
                API_OPERATOR_ANY,
                lambda w: {"failure_class": "fatal", "action": "never", "exit_codes": [9]},
            )
        ],
    ),
    "failure-rule-detail": Spec(
        a("a_rule"),
        get=API_MEMBER,
        writes=[
            Write(
                "patch",
                roles(UNAUTH, FORBID, FORBID, FORBID, ACT, ACT),
                lambda w: {"description": "m"},
            ),
            # The operator deletes it; the admin then finds it gone.
            Write("delete", roles(UNAUTH, FORBID, FORBID, FORBID, ACT, HIDDEN)),
        ],
    ),
    "accounting-ledger": Spec(get=API_ALL),
    "allocation-list": Spec(
        get=API_ALL,
        writes=[Write("post", API_OPERATOR_ANY, lambda w: new_allocation(w.b.slug))],
    ),
    "allocation-detail": Spec(
        a("a_allocation"),
        get=API_MEMBER,
        writes=[
            Write(
                "patch",
                roles(UNAUTH, FORBID, FORBID, FORBID, ACT, ACT),
                lambda w: {"cpu_hours": 7},
            ),
            # The operator deletes it; the admin then finds it gone.
            Write("delete", roles(UNAUTH, FORBID, FORBID, FORBID, ACT, HIDDEN)),
        ],
    ),
    "audit-event-list": Spec(get=API_OPERATOR, query="?search=SECRET"),
    "audit-event-detail": Spec(a("a_audit"), get=API_OPERATOR),
    "api-root": Spec(get=API_ALL),
    "schema": Spec(get=EVERYONE),
    "api-docs": Spec(get=EVERYONE),
}

# The Django admin: staff only. Non-admins are sent to the admin's sign-in; the audit
# trail can be read but never added, changed or deleted, even by an admin.
ADMIN_PREFIX = "admin:"
ADMIN_READ_ONLY = ("experiments_auditevent", "requests_app_transition")


def _client(role: str, world: World, api: bool):
    user = world.users[role]
    if api:
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {world.token(role)}")
        return client
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _is_login(response) -> bool:
    return response.status_code == 302 and "/login/" in response.get("Location", "")


def matches(expected: str, response) -> bool:
    status = response.status_code
    if status >= 500:
        return False
    if expected == LOGIN:
        return _is_login(response)
    if expected == ACT:
        return status not in (401, 403, 404, 405) and not _is_login(response)
    if expected == PUBLIC:
        return True
    return str(status) == expected


def _url(route: Route, spec: Spec, world: World, fmt: bool) -> str:
    kwargs = spec.kwargs(world)
    if fmt:
        kwargs["format"] = "json"
    return reverse(route.name, kwargs=kwargs)


@pytest.fixture
def world(settings, shared_world):
    settings.OPOS_METRICS_TOKEN = ""
    settings.OPOS_METRICS_ALLOWED_NETWORKS = []
    cache.clear()
    w = shared_world
    w.objects["a_rule"] = FailureRule.objects.create(
        template=w.a_template,
        position=1,
        exit_codes=[42],
        failure_class="fatal",
        action="never",
        description="SECRET-A-RULE",
    )
    # A running service: a worker and beat that just beat, so /healthz answers 200.
    heartbeat.record_start("celery@matrix", ProcessRole.WORKER, "matrix", 1)
    heartbeat.record_start("beat@matrix", ProcessRole.BEAT, "matrix", 2)
    return w


def _routes() -> list[Route]:
    return [r for r in walk() if not r.name.startswith(ADMIN_PREFIX)]


def test_every_route_is_classified():
    unclassified = sorted({r.name for r in _routes()} - set(SPECS))
    assert not unclassified, f"give these routes their expectations in SPECS: {unclassified}"
    stale = sorted(set(SPECS) - {r.name for r in _routes()})
    assert not stale, f"SPECS names routes that no longer exist: {stale}"


def _check(route: Route, world: World, problems: list[str]) -> None:
    spec = SPECS[route.name]
    api = route.pattern.startswith("api/")
    fmt = route.format_suffix
    url = _url(route, spec, world, fmt)
    for role in ROLES:
        client = _client(role, world, api)
        response = client.get(url + spec.query)
        if spec.get is None:
            if response.status_code == 200 or response.status_code >= 500:
                problems.append(f"GET {url} as {role}: {response.status_code} (not a GET route)")
        elif not matches(spec.get[role], response):
            problems.append(
                f"GET {url} as {role}: expected {spec.get[role]}, got {response.status_code}"
                f" {response.get('Location', '')}"
            )
        if role in ("anonymous", "liaison_b") and leaks(response.content):
            problems.append(f"GET {url} as {role} shows A's data: {leaks(response.content)[:2]}")
    if fmt:
        return  # the .json twin answers GET like its base; its writes are checked there
    for write in spec.writes:
        for role in WRITE_ORDER:
            client = _client(role, world, api)
            data = write.data(world)
            call = getattr(client, write.method)
            response = call(url, data, format="json") if api else call(url, data)
            expected = write.expect[role]
            if not matches(expected, response):
                problems.append(
                    f"{write.method.upper()} {url} as {role}: expected {expected},"
                    f" got {response.status_code} {response.content[:200]!r}"
                )
            if role in ("anonymous", "liaison_b") and leaks(response.content, data):
                problems.append(
                    f"{write.method.upper()} {url} as {role} shows A's data:"
                    f" {leaks(response.content, data)[:2]}"
                )


@pytest.mark.parametrize(
    "route", [r for r in _routes() if r.name in SPECS], ids=lambda r: r.name + r.pattern[-12:]
)
def test_route(route, world):
    problems: list[str] = []
    _check(route, world, problems)
    assert not problems, "\n".join(problems)


ADMIN_ROLES = roles(LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, PUBLIC)
# The admin's own sign-in and sign-out pages answer everyone.
ADMIN_PUBLIC = ("admin:login", "admin:logout")


def _admin_routes() -> list[Route]:
    return [
        r
        for r in walk()
        if r.name.startswith(ADMIN_PREFIX)
        and "object_id" not in r.params
        and r.name != "admin:None"
    ]


def test_admin_routes_are_for_admins_only(world):
    problems = []
    for route in _admin_routes():
        if set(route.params) - {"app_label"}:
            continue  # the content-type shortcut and the catch-all take free text
        kwargs = {p: "requests_app" for p in route.params}
        url = reverse(route.name, kwargs=kwargs)
        for role in ROLES:
            response = _client(role, world, api=False).get(url)
            expected = PUBLIC if route.name in ADMIN_PUBLIC else ADMIN_ROLES[role]
            if not matches(expected, response):
                problems.append(f"GET {url} as {role}: {response.status_code}")
            if role in ("anonymous", "liaison_b") and leaks(response.content):
                problems.append(f"GET {url} as {role} shows A's data")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("model", ADMIN_READ_ONLY)
def test_admin_cannot_edit_the_audit_trail(world, model):
    client = _client("admin", world, api=False)
    obj = world.a_audit if model.endswith("auditevent") else world.a_request.transitions.first()
    assert client.get(reverse(f"admin:{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:{model}_add")).status_code == 403
    change = client.post(reverse(f"admin:{model}_change", args=[obj.pk]), {"action": "x"})
    assert change.status_code in (302, 403) or b"readonly" in change.content
    assert (
        client.post(reverse(f"admin:{model}_delete", args=[obj.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert type(obj).objects.filter(pk=obj.pk).exists()
