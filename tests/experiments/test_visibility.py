"""Per-experiment visibility, decided in one place (``visible_to``)."""

from experiments.models import Experiment, TrainingRecord
from requests_app.models import ProductionRequest
from tests.factories import ProductionRequestFactory


def test_liaison_sees_only_own_experiment(experiment, other_experiment, liaison, other_liaison):
    mine = ProductionRequestFactory(experiment=experiment)
    theirs = ProductionRequestFactory(experiment=other_experiment)
    assert list(Experiment.objects.visible_to(liaison)) == [experiment]
    assert list(ProductionRequest.objects.visible_to(liaison)) == [mine]
    assert list(ProductionRequest.objects.visible_to(other_liaison)) == [theirs]


def test_physicist_sees_own_experiment(experiment, other_experiment, physicist):
    ProductionRequestFactory(experiment=other_experiment)
    mine = ProductionRequestFactory(experiment=experiment)
    assert list(ProductionRequest.objects.visible_to(physicist)) == [mine]


def test_operator_and_admin_see_everything(experiment, other_experiment, operator, admin_user):
    ProductionRequestFactory(experiment=experiment)
    ProductionRequestFactory(experiment=other_experiment)
    assert ProductionRequest.objects.visible_to(operator).count() == 2
    assert ProductionRequest.objects.visible_to(admin_user).count() == 2
    assert Experiment.objects.visible_to(operator).count() == 2


def test_anonymous_and_roleless_see_nothing(experiment, django_user_model):
    from django.contrib.auth.models import AnonymousUser

    ProductionRequestFactory(experiment=experiment)
    nobody = django_user_model.objects.create_user("nobody", password="pw")
    assert not ProductionRequest.objects.visible_to(AnonymousUser()).exists()
    assert not ProductionRequest.objects.visible_to(nobody).exists()
    assert not TrainingRecord.objects.visible_to(nobody).exists()


def test_experiment_api_hides_other_experiments(api, experiment, other_experiment, other_liaison):
    response = api(other_liaison).get("/api/v1/experiments/")
    assert [e["slug"] for e in response.json()["results"]] == ["sbnd"]
    assert api(other_liaison).get("/api/v1/experiments/dune/").status_code == 404


def test_experiment_api_query_count_is_bounded(api, operator, django_assert_max_num_queries):
    from tests.factories import ExperimentFactory, PhysicsGroupFactory

    client = api(operator)
    for _ in range(3):
        PhysicsGroupFactory(experiment=ExperimentFactory())
    with django_assert_max_num_queries(6):
        client.get("/api/v1/experiments/")
    for _ in range(40):
        PhysicsGroupFactory(experiment=ExperimentFactory())
    with django_assert_max_num_queries(6):
        assert client.get("/api/v1/experiments/").json()["count"] == 43
