"""``/api/v1/failure-rules/``: every write goes through the failure-rule service, which
validates it and records it in the audit trail; refusals name the field and write nothing."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from campaigns.models import FailureRule
from campaigns.services import CampaignError
from campaigns.services.failure_rules import create_rule, delete_rule, update_rule
from experiments.models import AuditEvent
from tests.campaigns.factories import workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(experiment):
    return workflow(experiment)


def _rule(template, **overrides) -> dict:
    return {
        "template": overrides.pop("template_id", template.pk),
        "exit_codes": [17],
        "failure_class": "other",
        "action": "more_walltime",
        "factor": 2.0,
        **overrides,
    }


def test_create_change_and_delete_are_audited(api, operator, experiment, template):
    client = api(operator)
    created = client.post("/api/v1/failure-rules/", _rule(template), format="json")
    assert created.status_code == 201, created.json()
    rule_id = created.json()["id"]
    event = AuditEvent.objects.get(action="create_failure_rule")
    assert event.actor == operator and event.experiment == experiment
    assert (
        event.data["rule"]["exit_codes"] == [17] and event.data["rule"]["template"] == template.pk
    )

    changed = client.patch(f"/api/v1/failure-rules/{rule_id}/", {"factor": 3.0}, format="json")
    assert changed.status_code == 200 and changed.json()["factor"] == 3.0
    event = AuditEvent.objects.get(action="update_failure_rule")
    assert event.data == {"changes": {"factor": [2.0, 3.0]}}

    assert client.delete(f"/api/v1/failure-rules/{rule_id}/").status_code == 204
    assert not FailureRule.objects.exists()
    event = AuditEvent.objects.get(action="delete_failure_rule")
    assert event.data["rule"]["factor"] == 3.0 and event.experiment == experiment


def test_a_general_rule_has_no_experiment_in_its_audit(api, operator):
    body = {"batch_reason": "NODE_FAIL", "failure_class": "node_failure", "action": "retry"}
    created = api(operator).post("/api/v1/failure-rules/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["template"] is None
    assert AuditEvent.objects.get(action="create_failure_rule").experiment is None


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"exit_codes": [999]}, "exit_codes", "from -255 to 255"),
        ({"factor": 11}, "factor", "between 1 and 10"),
        ({"stderr_pattern": "(a+)+$"}, "stderr_pattern", ""),
        ({"action": "pray"}, "action", "not a valid choice"),
        ({"template_id": 10**9}, "template", "does not exist"),
        ({"exit_codes": []}, "non_field_errors", "needs an exit code"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(api, operator, template, overrides, field, message):
    answer = api(operator).post("/api/v1/failure-rules/", _rule(template, **overrides), "json")

    assert answer.status_code == 400, answer.json()
    assert message in str(answer.json()[field])
    assert not FailureRule.objects.exists()
    assert not AuditEvent.objects.filter(action="create_failure_rule").exists()


def test_a_refused_change_leaves_the_rule_and_the_audit_alone(api, operator, template):
    rule = FailureRule.objects.create(
        template=template, exit_codes=[3], failure_class="fatal", action="never"
    )
    answer = api(operator).patch(
        f"/api/v1/failure-rules/{rule.pk}/", {"exit_codes": [], "factor": 2}, format="json"
    )
    assert answer.status_code == 400
    assert "needs an exit code" in answer.json()["non_field_errors"][0]
    rule.refresh_from_db()
    assert (rule.exit_codes, rule.factor) == ([3], 1.5)
    assert not AuditEvent.objects.filter(action="update_failure_rule").exists()


def test_only_operators_change_rules(api, liaison, other_liaison, template):
    rule = FailureRule.objects.create(
        template=template, exit_codes=[3], failure_class="fatal", action="never"
    )
    client = api(liaison)
    assert client.post("/api/v1/failure-rules/", _rule(template), "json").status_code == 403
    assert (
        client.patch(f"/api/v1/failure-rules/{rule.pk}/", {"factor": 2}, "json").status_code == 403
    )
    assert client.delete(f"/api/v1/failure-rules/{rule.pk}/").status_code == 403
    assert client.get(f"/api/v1/failure-rules/{rule.pk}/").status_code == 200
    # Another experiment's liaison does not see a rule of this experiment's template.
    assert api(other_liaison).get(f"/api/v1/failure-rules/{rule.pk}/").status_code == 404
    rule.refresh_from_db()
    assert rule.factor == 1.5 and FailureRule.objects.count() == 1


def test_the_service_refuses_non_operators_and_unknown_fields(operator, liaison, template):
    with pytest.raises(CampaignError) as info:
        create_rule(
            liaison, template=template, exit_codes=[1], failure_class="fatal", action="never"
        )
    assert info.value.kind == "forbidden"
    rule = create_rule(
        operator, template=template, exit_codes=[1], failure_class="fatal", action="never"
    )
    with pytest.raises(CampaignError):
        update_rule(liaison, rule, {"factor": 2.0})
    with pytest.raises(CampaignError):
        delete_rule(liaison, rule)
    with pytest.raises(ValidationError) as bad:
        update_rule(operator, rule, {"colour": "red"})
    assert bad.value.message_dict == {"colour": ["not a field of a failure rule"]}
    assert FailureRule.objects.get().factor == 1.5
