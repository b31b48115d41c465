"""A database made while experiments, roles, SLA records, templates and the audit trail lived
in ``requests_app`` keeps every row through the move to ``experiments``: the tables keep
their names, the foreign keys of requests still lead to them, the content types (and so the
permissions granted on them) follow."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from experiments.models import (
    AuditEvent,
    Experiment,
    Membership,
    ProductionCode,
    StageTemplate,
    TrainingRecord,
    WorkflowTemplate,
)
from requests_app.models import ProductionRequest

# The last migration of each app before the move.
BEFORE_MOVE = [
    ("requests_app", "0013_experiment_batch_placement"),
    ("campaigns", "0014_partitions_capacity_and_quotas"),
    ("monitoring", "0004_weekly_report"),
    ("servicedesk", "0001_initial"),
]
MOVED = [
    "experiment",
    "physicsgroup",
    "membership",
    "globalrole",
    "trainingrecord",
    "productioncode",
    "workflowtemplate",
    "stagetemplate",
    "auditevent",
]


def _old_layout():
    """Migrate the test database back to the layout before the move; its historical apps."""
    executor = MigrationExecutor(connection)
    # Unapplying experiments' first migration unapplies every migration that follows it.
    executor.migrate([("experiments", None)])
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_MOVE)
    ours = {"experiments", *(app for app, _ in BEFORE_MOVE)}
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] not in ours]
    return executor.loader.project_state([*BEFORE_MOVE, *others]).apps


def _content_types_as_before(old) -> dict[str, int]:
    """The content types an older database has: the moved models under ``requests_app``
    (post_migrate of this test database made them under ``experiments``)."""
    ContentType = old.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="experiments").delete()
    return {
        model: ContentType.objects.get_or_create(app_label="requests_app", model=model)[0].pk
        for model in MOVED
    }


@pytest.mark.django_db(transaction=True)
def test_rows_made_at_the_previous_layout_survive_the_move():
    old = _old_layout()
    old_types = _content_types_as_before(old)
    User = old.get_model("auth", "User")
    liaison = User.objects.create(username="lia")
    operator = User.objects.create(username="opal")
    experiment = old.get_model("requests_app", "Experiment").objects.create(
        slug="dune", name="DUNE", default_backend="slurm", batch_partition="long"
    )
    group = old.get_model("requests_app", "PhysicsGroup").objects.create(
        experiment=experiment, slug="nu", name="Oscillations"
    )
    membership = old.get_model("requests_app", "Membership").objects.create(
        user=liaison, experiment=experiment, role="liaison"
    )
    old.get_model("requests_app", "GlobalRole").objects.create(user=operator, role="operator")
    code = old.get_model("requests_app", "ProductionCode").objects.create(
        experiment=experiment, name="gen.sh", version="1", location="/code/gen.sh", approved=True
    )
    code.owners.add(liaison)
    training = old.get_model("requests_app", "TrainingRecord").objects.create(
        experiment=experiment, held_on="2026-01-05", topics=["submission", "monitoring"]
    )
    training.attendees.add(operator)
    template = old.get_model("requests_app", "WorkflowTemplate").objects.create(
        experiment=experiment, name="mc", version=2
    )
    stage = old.get_model("requests_app", "StageTemplate").objects.create(
        template=template, position=1, name="gen", code=code, parameters={"seed": {"type": "int"}}
    )
    audit = old.get_model("requests_app", "AuditEvent").objects.create(
        actor=operator, action="grant_role", experiment=experiment, target="lia", data={"r": 1}
    )
    request = old.get_model("requests_app", "ProductionRequest").objects.create(
        number="DUNE-2026-0001",
        ticket="RITM0000001",
        experiment=experiment,
        physics_group=group,
        requester=liaison,
        title="MC for the far detector",
        deadline="2099-01-01",
    )
    old.get_model("requests_app", "Sample").objects.create(
        request=request,
        name="s1",
        template=template,
        events=100,
        events_per_job=10,
        output_dataset="dune:mc-s1",
    )
    # A permission granted on a moved model, as the admin would.
    change_experiment, _ = old.get_model("auth", "Permission").objects.get_or_create(
        content_type_id=old_types["experiment"],
        codename="change_experiment",
        defaults={"name": "Can change experiment"},
    )
    operator.user_permissions.add(change_experiment)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    moved = Experiment.objects.get(slug="dune")
    assert moved.pk == experiment.pk
    assert (moved.default_backend, moved.batch_partition) == ("slurm", "long")
    assert list(moved.groups.values_list("slug", flat=True)) == ["nu"]
    assert Membership.objects.get(pk=membership.pk).user.username == "lia"
    owners = ProductionCode.objects.get(pk=code.pk).owners
    assert list(owners.values_list("username", flat=True)) == ["lia"]
    assert list(
        TrainingRecord.objects.get(pk=training.pk).attendees.values_list("username", flat=True)
    ) == ["opal"]
    assert StageTemplate.objects.get(pk=stage.pk).code_id == code.pk
    assert WorkflowTemplate.objects.get(pk=template.pk).stages.get().name == "gen"
    event = AuditEvent.objects.get(pk=audit.pk)
    assert (event.experiment, event.actor.username, event.data) == (moved, "opal", {"r": 1})

    filed = ProductionRequest.objects.select_related("experiment", "physics_group").get(
        number="DUNE-2026-0001"
    )
    assert filed.experiment == moved
    assert filed.physics_group.name == "Oscillations"
    sample = filed.samples.select_related("template").get()
    assert sample.template.pk == template.pk
    assert sample.template.stages.get().code.name == "gen.sh"

    # The content types moved with the models: the same rows, under the new label.
    ContentType.objects.clear_cache()
    for model in MOVED:
        assert ContentType.objects.get(app_label="experiments", model=model).pk == old_types[model]
    assert not ContentType.objects.filter(app_label="requests_app", model__in=MOVED).exists()
    assert ContentType.objects.get_for_model(Experiment).pk == old_types["experiment"]
    granted = Permission.objects.get(pk=change_experiment.pk)
    assert granted.content_type.app_label == "experiments"
    from django.contrib.auth import get_user_model

    assert get_user_model().objects.get(username="opal").has_perm("experiments.change_experiment")

    # New rows go into the same tables, after the old ones.
    second = Experiment.objects.create(slug="sbnd", name="SBND")
    assert second.pk > moved.pk
    assert Membership.objects.create(user=filed.requester, experiment=second, role="physicist")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM requests_app_experiment")
        assert cursor.fetchone()[0] == 2


@pytest.mark.django_db(transaction=True)
def test_the_move_unapplies_back_to_the_previous_layout():
    """Migrating back puts the content types where the older code looks for them."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()
    experiment_type = ContentType.objects.get_for_model(Experiment).pk
    old = _old_layout()
    ContentType_old = old.get_model("contenttypes", "ContentType")
    assert ContentType_old.objects.get(app_label="requests_app", model="experiment").pk == (
        experiment_type
    )
    assert not ContentType_old.objects.filter(app_label="experiments", model__in=MOVED).exists()
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()
    assert ContentType.objects.get_for_model(Experiment).pk == experiment_type
