"""Array literals sent as one bound value: whatever the strings hold, PostgreSQL reads back
exactly the values they were made of."""

import pytest
from django.db import connection
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from campaigns.execution.bulk import array_literal

pytestmark = pytest.mark.django_db

# PostgreSQL's text never holds NUL, and UTF-8 has no lone surrogates; everything else
# must survive.
TEXT = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    max_size=30,
)


def test_literals_of_ints_strings_and_nulls():
    assert array_literal([]) == "{}"
    assert array_literal([3, 1, 2]) == "{3,1,2}"
    assert array_literal([None, 7]) == "{NULL,7}"
    assert array_literal(["a", 'say "hi"', "back\\slash", None]) == (
        '{"a","say \\"hi\\"","back\\\\slash",NULL}'
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL arrays")
@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), TEXT), max_size=20))
def test_postgresql_reads_back_the_strings(values):
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[]", [array_literal(values)])
        assert cursor.fetchone()[0] == values


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL arrays")
@hypothesis_settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=20))
def test_postgresql_reads_back_the_integers(values):
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::bigint[]", [array_literal(values)])
        assert cursor.fetchone()[0] == values
