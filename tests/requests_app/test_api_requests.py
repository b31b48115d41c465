"""``/api/v1/requests/``: filing, reading, editing, visibility, filters and query bounds."""

import datetime as dt

import pytest
from django.db.models import Sum
from django.utils import timezone

from requests_app.choices import RequestState
from requests_app.models import ProductionRequest, RequestCounter, Sample, Transition
from tests.factories import PhysicsGroupFactory
from tests.requests_app.builders import make_request, qualify, request_fields, sample_line

URL = "/api/v1/requests/"
FIELDS = {
    "id",
    "number",
    "experiment",
    "physics_group",
    "ticket",
    "title",
    "description",
    "deadline",
    "priority",
    "state",
    "samples",
    "requester",
    "assignee",
    "held_from",
    "hold_reason",
    "hold_seconds",
    "submitted",
    "allowed_actions",
    "created",
    "updated",
}
SAMPLE_FIELDS = {
    "name",
    "template",
    "template_id",
    "events",
    "events_per_job",
    "parameters",
    "input_dataset",
    "output_dataset",
}


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


@pytest.fixture
def other_template(other_experiment, other_liaison):
    return qualify(other_experiment, other_liaison)


def payload(**overrides) -> dict:
    body = {"experiment": "dune", **request_fields(), "samples": [sample_line()]}
    body.update(overrides)
    return body


def written() -> tuple:
    return (
        ProductionRequest.objects.count(),
        Sample.objects.count(),
        Transition.objects.count(),
        RequestCounter.objects.aggregate(n=Sum("last"))["n"],
    )


# --- Filing -------------------------------------------------------------------


def test_liaison_files_a_draft(api, liaison, template):
    response = api(liaison).post(URL, payload(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == FIELDS
    assert body["number"].startswith(f"DUNE-{timezone.now().year}-")
    assert (body["experiment"], body["physics_group"], body["state"]) == (
        "dune",
        "oscillations",
        "draft",
    )
    assert (body["requester"], body["assignee"], body["hold_seconds"]) == ("liaison", None, 0)
    assert body["allowed_actions"] == ["submit", "cancel"]
    (sample,) = body["samples"]
    assert set(sample) == SAMPLE_FIELDS
    assert (sample["template"], sample["template_id"]) == ("mc-gen", template.id)
    assert sample["parameters"] == {"seed": 7}
    assert ProductionRequest.objects.get(pk=body["id"]).number == body["number"]


def test_template_by_id(api, liaison, template):
    body = payload(samples=[sample_line(template=template.id)])
    response = api(liaison).post(URL, body, format="json")
    assert response.status_code == 201
    assert response.json()["samples"][0]["template"] == "mc-gen"


def test_file_and_submit_at_once(api, liaison, template):
    response = api(liaison).post(URL, payload(submit=True), format="json")
    assert response.status_code == 201
    assert response.json()["state"] == "submitted"
    assert response.json()["submitted"] is not None
    actions = Transition.objects.filter(request_id=response.json()["id"]).values_list(
        "action", flat=True
    )
    assert list(actions) == ["create", "submit"]


def test_refused_submit_saves_nothing(api, liaison, template):
    before = written()
    response = api(liaison).post(URL, payload(samples=[], submit=True), format="json")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "The request is not ready to submit.",
        "reasons": ["samples: add at least one sample"],
    }
    assert written() == before


def test_only_liaisons_of_the_experiment_file(api, template, physicist):
    before = written()
    response = api(physicist).post(URL, payload(), format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "You are not a liaison of DUNE."}
    assert written() == before


def test_another_experiments_slug_reads_as_unknown(api, template, other_liaison):
    """Its name and existence are not the caller's business (tests/security/)."""
    before = written()
    response = api(other_liaison).post(URL, payload(), format="json")
    assert response.status_code == 400
    assert response.json() == {"experiment": ["Object with slug=dune does not exist."]}
    assert written() == before


def test_operator_files_but_only_liaisons_submit(api, operator, template):
    assert api(operator).post(URL, payload(), format="json").status_code == 201
    before = written()
    response = api(operator).post(URL, payload(submit=True), format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "You may not submit this request."
    assert written() == before


def test_unknown_experiment(api, liaison, template):
    response = api(liaison).post(URL, payload(experiment="lhcb"), format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["experiment"]


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"deadline": "2020-01-01"}, {"deadline": ["2020-01-01 is in the past"]}),
        ({"ticket": "12345"}, "ticket"),
        ({"title": ""}, "title"),
        ({"physics_group": "nope"}, {"physics_group": ["not a working group of DUNE"]}),
        ({"priority": "urgent"}, "priority"),
        ({"deadline": "soon"}, "deadline"),
        (
            {"samples": [sample_line(), sample_line(name="b", events=0)]},
            {"samples": [{}, {"events": ["must be greater than zero"]}]},
        ),
        (
            {"samples": [sample_line(events_per_job=10**6)]},
            {"samples": [{"events_per_job": ["larger than the number of events (100000)"]}]},
        ),
        (
            {"samples": [sample_line(template="unknown")]},
            {"samples": [{"template": ["unknown workflow template for DUNE"]}]},
        ),
        (
            {"samples": [sample_line(parameters={"seed": "1; rm -rf /"})]},
            {"samples": [{"parameters": ["seed: expected a whole number, got '1; rm -rf /'"]}]},
        ),
        (
            {"samples": [sample_line(events="lots")]},
            {"samples": [{"events": ["A valid integer is required."]}]},
        ),
        (
            {"samples": [sample_line(template=True)]},
            {"samples": [{"template": ["Give the template's name or its id."]}]},
        ),
    ],
)
def test_bad_input_names_the_field(api, liaison, template, change, errors):
    before = written()
    response = api(liaison).post(URL, payload(**change), format="json")
    assert response.status_code == 400
    if isinstance(errors, str):
        assert list(response.json()) == [errors]
    else:
        assert response.json() == errors
    assert written() == before


def test_missing_fields(api, liaison, template):
    response = api(liaison).post(URL, {"experiment": "dune"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"physics_group", "ticket", "title", "deadline"}


def test_json_only(api, liaison, template):
    response = api(liaison).post(URL, {"experiment": "dune"})  # multipart form
    assert response.status_code == 415


def test_anonymous_is_refused(api, template):
    assert api().get(URL).status_code == 401


# --- Reading ------------------------------------------------------------------


def test_detail_by_id_or_number(api, liaison, physicist, template, experiment):
    req = make_request(experiment, liaison, RequestState.SUBMITTED)
    by_id = api(physicist).get(f"{URL}{req.id}/")
    by_number = api(physicist).get(f"{URL}{req.number}/")
    assert by_id.status_code == by_number.status_code == 200
    assert by_id.json() == by_number.json()
    assert by_id.json()["allowed_actions"] == []  # physicists watch
    assert api(physicist).get(f"{URL}REQ-1999-0001/").status_code == 404


def test_hold_time_includes_the_current_hold(api, liaison, template, experiment):
    req = make_request(
        experiment,
        liaison,
        RequestState.ON_HOLD,
        hold_started=timezone.now() - dt.timedelta(hours=1),
        hold_seconds=600,
    )
    body = api(liaison).get(f"{URL}{req.id}/").json()
    assert 4200 <= body["hold_seconds"] < 4260
    assert (body["held_from"], body["hold_reason"]) == ("approved", "account permissions")


def test_visibility_across_experiments(
    api, experiment, other_experiment, liaison, other_liaison, operator, template, other_template
):
    dune = [make_request(experiment, liaison, state) for state in ("draft", "submitted")]
    sbnd = make_request(other_experiment, other_liaison, RequestState.SUBMITTED)
    client = api(other_liaison)

    listed = client.get(URL).json()
    assert (listed["count"], [r["id"] for r in listed["results"]]) == (1, [sbnd.id])
    assert client.get(URL, {"search": dune[0].number}).json()["count"] == 0
    assert client.get(URL, {"experiment": "dune"}).json()["count"] == 0
    for req in dune:
        for suffix in ("", "history/", "eligibility/", "comments/"):
            assert client.get(f"{URL}{req.id}/{suffix}").status_code == 404
        assert client.get(f"{URL}{req.number}/").status_code == 404
        assert client.patch(f"{URL}{req.id}/", {"title": "x"}, format="json").status_code == 404
    assert api(operator).get(URL).json()["count"] == 3
    assert api(liaison).get(URL).json()["count"] == 2


# --- Editing ------------------------------------------------------------------


def test_liaison_edits_a_draft(api, liaison, template, experiment):
    req = make_request(experiment, liaison, title="Old")
    response = api(liaison).patch(
        f"{URL}{req.number}/",
        {"title": "New", "samples": [sample_line(name="s1"), sample_line(name="s2")]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["title"] == "New"
    assert [s["name"] for s in response.json()["samples"]] == ["s1", "s2"]
    edit = Transition.objects.get(request=req, action="edit")
    assert edit.changes["title"] == ["Old", "New"]


def test_edit_frozen_by_the_state_is_409_naming_the_field(api, liaison, template, experiment):
    req = make_request(experiment, liaison, RequestState.APPROVED)
    before = written()
    response = api(liaison).patch(f"{URL}{req.id}/", {"title": "Late"}, format="json")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "These fields cannot be changed in the request's current state.",
        "reasons": ["title: cannot be changed while the request is approved"],
        "fields": {"title": ["cannot be changed while the request is approved"]},
    }
    assert written() == before
    # Sending back the unchanged value is not an edit.
    same = api(liaison).patch(f"{URL}{req.id}/", {"title": req.title}, format="json")
    assert same.status_code == 200


def test_operator_changes_priority_after_approval(api, liaison, operator, template, experiment):
    req = make_request(experiment, liaison, RequestState.APPROVED)
    response = api(operator).patch(
        f"{URL}{req.id}/", {"priority": "critical", "assignee": "op"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["priority"], response.json()["assignee"]) == ("critical", "op")
    assert Transition.objects.get(request=req, action="edit").changes == {
        "priority": ["normal", "critical"],
        "assignee": [None, "op"],
    }


def test_assignee_must_be_an_operator(api, liaison, operator, template, experiment):
    req = make_request(experiment, liaison, RequestState.SUBMITTED)
    client = api(operator)
    response = client.patch(f"{URL}{req.id}/", {"assignee": "liaison"}, format="json")
    assert (response.status_code, response.json()) == (
        400,
        {"assignee": ["liaison is not an operator"]},
    )
    assert client.patch(f"{URL}{req.id}/", {"assignee": "nobody"}, format="json").status_code == 400


@pytest.mark.parametrize(
    ("who", "change", "detail"),
    [
        ("physicist", {"title": "x"}, "Only liaisons of DUNE and operators edit its requests."),
        ("liaison", {"assignee": "op"}, "Only operators change assignee."),
    ],
)
def test_never_allowed_is_403(request, api, operator, template, experiment, who, change, detail):
    req = make_request(experiment, request.getfixturevalue("liaison"))
    response = api(request.getfixturevalue(who)).patch(f"{URL}{req.id}/", change, format="json")
    assert (response.status_code, response.json()) == (403, {"detail": detail})


@pytest.mark.parametrize(
    ("change", "field"),
    [({"state": "approved"}, "state"), ({"experiment": "sbnd"}, "experiment")],
)
def test_read_only_fields_are_refused(
    api, liaison, template, experiment, other_experiment, change, field
):
    req = make_request(experiment, liaison)
    response = api(liaison).patch(f"{URL}{req.id}/", change, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_patch_bad_sample_line_keeps_the_old_samples(api, liaison, template, experiment):
    req = make_request(experiment, liaison, samples=2)
    names = sorted(req.samples.values_list("name", flat=True))
    response = api(liaison).patch(
        f"{URL}{req.id}/",
        {"samples": [sample_line(), sample_line(name="x", output_dataset="")]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["samples"][0] == {}
    assert list(response.json()["samples"][1]) == ["output_dataset"]
    assert sorted(req.samples.values_list("name", flat=True)) == names


def test_put_is_not_offered(api, liaison, template, experiment):
    req = make_request(experiment, liaison)
    assert api(liaison).put(f"{URL}{req.id}/", payload(), format="json").status_code == 405


# --- Filters, search, ordering, pagination --------------------------------------


@pytest.fixture
def catalogue(experiment, other_experiment, liaison, other_liaison, template, other_template):
    PhysicsGroupFactory(experiment=experiment, slug="supernova")
    today = timezone.localdate()
    specs = [
        ("dune", "draft", "oscillations", 10, "low", "Neutrino flux"),
        ("dune", "submitted", "supernova", 20, "critical", "Supernova bursts"),
        ("dune", "approved", "oscillations", 30, "high", "Beam MC"),
        ("dune", "on_hold", "oscillations", 40, "normal", "Cosmics"),
        ("sbnd", "submitted", "oscillations", 15, "normal", "SBND flux"),
    ]
    made = {}
    for slug, state, group, days, priority, title in specs:
        exp, user = (experiment, liaison) if slug == "dune" else (other_experiment, other_liaison)
        made[title] = make_request(
            exp,
            user,
            state,
            physics_group=exp.groups.get(slug=group),
            deadline=today + dt.timedelta(days=days),
            priority=priority,
            title=title,
        )
    return made


def titles(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [r["title"] for r in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"experiment": "sbnd"}, {"SBND flux"}),
        ({"experiment": "dune,sbnd", "state": "submitted"}, {"Supernova bursts", "SBND flux"}),
        ({"state": "submitted,approved"}, {"Supernova bursts", "Beam MC", "SBND flux"}),
        ({"state": ["draft", "on_hold"]}, {"Neutrino flux", "Cosmics"}),
        ({"physics_group": "supernova"}, {"Supernova bursts"}),
        ({"priority": "critical,high"}, {"Supernova bursts", "Beam MC"}),
        ({"deadline_before": 20}, {"Neutrino flux", "Supernova bursts", "SBND flux"}),
        ({"deadline_after": 30}, {"Beam MC", "Cosmics"}),
        ({"deadline_after": 15, "deadline_before": 25}, {"Supernova bursts", "SBND flux"}),
        ({"search": "flux"}, {"Neutrino flux", "SBND flux"}),
        ({"requester": "other"}, {"SBND flux"}),
    ],
)
def test_filters(api, operator, catalogue, query, expected):
    query = dict(query)
    for key in ("deadline_before", "deadline_after"):
        if key in query:
            query[key] = (timezone.localdate() + dt.timedelta(days=query[key])).isoformat()
    assert set(titles(api(operator).get(URL, query))) == expected


def test_search_by_number_and_ticket(api, operator, catalogue):
    req = catalogue["Beam MC"]
    assert titles(api(operator).get(URL, {"search": req.number})) == ["Beam MC"]
    assert titles(api(operator).get(URL, {"search": req.ticket.lower()})) == ["Beam MC"]


def test_bad_filter_value(api, operator, catalogue):
    assert api(operator).get(URL, {"state": "lost"}).status_code == 400
    assert api(operator).get(URL, {"deadline_before": "tomorrow"}).status_code == 400


def test_ordering(api, operator, catalogue):
    client = api(operator)
    assert titles(client.get(URL, {"ordering": "deadline", "experiment": "dune"})) == [
        "Neutrino flux",
        "Supernova bursts",
        "Beam MC",
        "Cosmics",
    ]
    assert titles(client.get(URL, {"ordering": "-priority,deadline"}))[:3] == [
        "Supernova bursts",
        "Beam MC",
        "SBND flux",
    ]
    assert titles(client.get(URL))[0] == "SBND flux"  # newest first by default


def test_pagination(api, operator, catalogue):
    client = api(operator)
    first = client.get(URL, {"page_size": 2, "ordering": "deadline"}).json()
    assert first["count"] == 5
    assert len(first["results"]) == 2
    assert first["previous"] is None
    seen = [r["id"] for r in first["results"]]
    page = first
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [r["id"] for r in page["results"]]
    assert sorted(seen) == sorted(r.id for r in catalogue.values())
    assert client.get(URL, {"page": 9}).status_code == 404


@pytest.mark.parametrize("role", ["operator", "liaison"])
def test_list_runs_a_bounded_number_of_queries(
    request, api, experiment, liaison, template, django_assert_max_num_queries, role
):
    client = api(request.getfixturevalue(role))
    for size in (2, 30):
        while ProductionRequest.objects.count() < size:
            make_request(experiment, liaison, RequestState.SUBMITTED, samples=3)
        with django_assert_max_num_queries(6):
            response = client.get(URL, {"page_size": 50})
        assert response.json()["count"] == size
        assert len(response.json()["results"][0]["samples"]) == 3
