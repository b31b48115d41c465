"""Failure-rule stderr patterns: catastrophic backtracking is refused at input, and every
search on a job's stderr is bounded at run time (a stored bad pattern cannot stall finalize)."""

import pytest

from campaigns.batch import BatchState
from campaigns.execution import failures, logs
from campaigns.execution.patterns import UnsafePattern, check_pattern
from campaigns.models import FailureRule

pytestmark = pytest.mark.django_db

CATASTROPHIC = [
    r"(a+)+$",
    r"(\w+\s?)+$",
    r"(a|aa)+$",
    r"(x+x+)+y",
    r"([a-zA-Z]+)*$",
    r"^(([a-z])+.)+[A-Z]([a-z])+$",
    r"(.*,){12}X",
]
BENIGN = [
    r"No space left on device|Disk quota exceeded",
    r"(?i)error: .* not found",
    r"Segmentation fault.*core dumped",
    r"std::bad_alloc",
    r"^FATAL\b",
]


def rule(**fields) -> dict:
    return {"exit_codes": [], "failure_class": "other", "action": "never", **fields}


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_patterns_are_refused_by_the_api(api, operator, pattern):
    response = api(operator).post(
        "/api/v1/failure-rules/", rule(stderr_pattern=pattern), format="json"
    )
    assert response.status_code == 400
    assert "too slow" in str(response.json()["stderr_pattern"])
    assert not FailureRule.objects.exists()


@pytest.mark.parametrize("pattern", BENIGN)
def test_ordinary_patterns_are_accepted(api, operator, pattern):
    response = api(operator).post(
        "/api/v1/failure-rules/", rule(stderr_pattern=pattern), format="json"
    )
    assert response.status_code == 201, response.json()


def test_a_broken_pattern_is_named(api, operator):
    response = api(operator).post(
        "/api/v1/failure-rules/", rule(stderr_pattern="(unclosed"), format="json"
    )
    assert response.status_code == 400
    assert "not a regular expression" in str(response.json()["stderr_pattern"])


def test_check_pattern_directly():
    for pattern in CATASTROPHIC:
        with pytest.raises(UnsafePattern):
            check_pattern(pattern)
    for pattern in BENIGN:
        check_pattern(pattern)


def test_a_stored_catastrophic_pattern_gives_up_at_run_time(settings):
    # Written behind validation's back (an old row, a raw SQL fix): classification still
    # ends, the rule counts as not matching, and the next rule decides.
    settings.OPOS_FAILURE_PATTERN_TIMEOUT_MS = 50
    FailureRule.objects.create(
        stderr_pattern=r"(a+)+$", failure_class="fatal", action="never", position=0
    )
    FailureRule.objects.create(
        stderr_pattern=r"needle", failure_class="storage", action="retry", position=1
    )
    rules = failures.rules_for(None, failures.load_rules([]))
    hostile = "a" * logs.TAIL_BYTES + "!"
    chosen = failures.classify(BatchState.FAILED, 1, hostile, "", rules)
    assert chosen.failure_class == "other"  # neither operator rule, the catch-all
    chosen = failures.classify(BatchState.FAILED, 1, hostile + " needle", "", rules)
    assert chosen.failure_class == "storage"


def test_an_operator_pattern_still_classifies(db):
    FailureRule.objects.create(
        stderr_pattern=r"(?i)geometry file .* missing", failure_class="fatal", action="never"
    )
    rules = failures.rules_for(None, failures.load_rules([]))
    tail = "reading...\nGeometry file dune10kt.gdml missing\n"
    assert failures.classify(BatchState.FAILED, 2, tail, "", rules).failure_class == "fatal"
