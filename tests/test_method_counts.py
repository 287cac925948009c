"""The counts of ranked and score polls stay what their ballots add up to, whatever sequence of
ballots, changes and retractions (property-based, on the real database)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_polls import services
from django_polls.models import Ballot, Participation, Poll
from django_polls.services.results import changes_of
from tests.conftest import option_ids

pytestmark = pytest.mark.django_db

#: (voter index, action, ballot seed): cast, change or retract by one of four voters.
STEPS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3),
        st.sampled_from(["cast", "change", "retract"]),
        st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=3, unique=True),
    ),
    max_size=12,
)


def ballot_of(method: str, ids: list[int], picks: list[int]) -> dict[str, Any]:
    chosen = [ids[pick % len(ids)] for pick in picks]
    chosen = list(dict.fromkeys(chosen))
    if method == "ranked":
        return {"ranking": chosen}
    return {"scores": [{"option": pk, "score": (pk + n) % 6} for n, pk in enumerate(chosen)]}


@pytest.mark.parametrize("method", ["ranked", "score"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=STEPS)
def test_counts_follow_any_sequence_of_ballots(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any], method: str, steps: Any
) -> None:
    poll = make_poll(method=method, options=("A", "B", "C"))
    ids = option_ids(poll)
    voters = [make_user() for _ in range(4)]
    changes = 0
    for index, action, picks in steps:
        voter = voters[index]
        try:
            if action == "cast":
                services.cast_ballot(
                    poll_id=poll.pk, voter=voter, data=ballot_of(method, ids, picks)
                )
            elif action == "change":
                services.change_ballot(
                    poll_id=poll.pk, voter=voter, data=ballot_of(method, ids, picks)
                )
            else:
                services.retract_votes(poll_id=poll.pk, voter=voter)
            changes += 1
        except (services.AlreadyVoted, services.NotVoted):
            pass

    assert services.find_ballot_drift(poll_ids=[poll.pk]) == []
    ballots = Ballot.objects.filter(poll=poll).count()
    assert Participation.objects.filter(poll=poll).count() == ballots
    results = services.results_for(poll=Poll.objects.for_listing().get(pk=poll.pk))
    assert results.total_voters == ballots
    if method == "ranked":
        assert results.ballots == ballots
    # Every ballot, change and retraction is a new state of the counts, counted once.
    assert changes_of(poll_id=poll.pk) == changes
