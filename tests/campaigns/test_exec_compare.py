"""The poller's comparison by state (``compare_view``) finds exactly the changes of the
one lookup per job it replaces (``compare``), and the view keeps its three indexes in step
whatever is added, moved and dropped."""

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from campaigns.batch import BatchState, JobStatus, StatusAnswer
from campaigns.execution.inflight import BackendView, InFlight
from campaigns.execution.polling import compare, compare_view

IN_FLIGHT = ["queued", "running", "held"]
REPORTED = list(BatchState)


def row(job_id: int, batch_id: str, state: str) -> InFlight:
    return InFlight(job_id, job_id % 7, batch_id, f"/work/{job_id}", state, "slurm")


def check(view: BackendView) -> None:
    """The three indexes hold the same jobs."""
    rows = list(view.by_id.values())
    assert {r.batch_id: r for r in rows} == view.by_batch
    assert {s: ids for s, ids in view.in_state.items() if ids} == {
        s: {r.batch_id for r in rows if r.state == s} for s in {r.state for r in rows}
    }


# A view of up to 40 jobs (batch id "b<n>"), and an answer that lists some of them, some
# jobs we do not hold, in any reported state, some batch ids answered twice.
views = st.dictionaries(st.integers(0, 60), st.sampled_from(IN_FLIGHT), max_size=40)
answers = st.lists(
    st.tuples(st.integers(0, 80), st.sampled_from(REPORTED), st.none() | st.integers(0, 3)),
    max_size=60,
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(views, answers)
def test_the_same_changes_as_one_lookup_per_job(held, listed):
    rows = [row(n, f"b{n}", state) for n, state in held.items()]
    answer = StatusAnswer()
    for n, state, code in listed:
        answer[f"b{n}"] = JobStatus(state, code, f"reason {n}")
    assert answer.consistent()

    view = BackendView(rows)
    check(view)
    assert sorted(compare_view(view, answer)) == sorted(compare(rows, answer))
    # A plain dictionary (a backend that does not keep by_state) takes the lookups.
    assert sorted(compare_view(view, dict(answer))) == sorted(compare(rows, answer))


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    views,
    st.lists(
        st.tuples(
            st.sampled_from(["add", "move", "drop"]),
            st.integers(0, 60),
            st.sampled_from(IN_FLIGHT),
            st.integers(0, 3),
        ),
        max_size=40,
    ),
)
def test_the_view_keeps_its_indexes_in_step(held, steps):
    view = BackendView([row(n, f"b{n}", state) for n, state in held.items()])
    expected = {n: state for n, state in held.items()}
    for op, n, state, _ in steps:
        if op == "add":
            view.add(row(n, f"b{n}", state))
            expected[n] = state
        elif op == "move":
            view.move(n, state)
            if n in expected:
                expected[n] = state
        else:
            view.drop(n)
            expected.pop(n, None)
        check(view)
    assert {n: r.state for n, r in view.by_id.items()} == expected


def test_a_status_answered_again_moves_between_states():
    answer = StatusAnswer()
    answer["b1"] = JobStatus(BatchState.QUEUED)
    answer["b1"] = JobStatus(BatchState.RUNNING)
    assert answer.by_state == {BatchState.QUEUED: set(), BatchState.RUNNING: {"b1"}}
    assert answer.consistent()
    dict.update(answer, {"b2": JobStatus(BatchState.HELD)})  # bypasses by_state
    assert not answer.consistent()


def test_two_jobs_with_one_batch_id_are_both_kept():
    """Never expected of a batch system, but the view must not lose a job over it."""
    view = BackendView([row(1, "b1", "queued"), row(2, "b1", "running")])
    assert set(view.by_id) == {1, 2}
