"""Ballots of ranked and score polls under real concurrency (PostgreSQL, MySQL/MariaDB): threads,
each with its own connection, released together (see tests/test_concurrency.py)."""

from __future__ import annotations

import collections
import itertools
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from django_polls import services
from django_polls.models import Ballot, Option, Participation, Poll, Tally, counted_votes
from tests.conftest import option_ids
from tests.test_concurrency import SIMULTANEOUS, api_tally, run_together, tally

pytestmark = [
    pytest.mark.skipif(
        connection.vendor not in ("postgresql", "mysql"),
        reason="needs PostgreSQL or MySQL/MariaDB (set DATABASE_URL)",
    ),
    pytest.mark.django_db(transaction=True),
]


def tallies(poll: Poll) -> dict[str, int]:
    return {
        key: count
        for key, count in Tally.objects.filter(poll=poll).values_list("key", "ballots")
        if count and not key.startswith("#")  # the app's own: counts of changes
    }


def counters(poll: Poll) -> dict[int, int]:
    return dict(
        Option.objects.filter(poll=poll)
        .annotate(counted=counted_votes())
        .values_list("pk", "counted")
    )


def test_simultaneous_rankings_by_one_voter_store_one(make_poll: Any, make_user: Any) -> None:
    poll = make_poll(method="ranked", options=("Ann", "Ben", "Cat", "Dan"))
    voter = make_user()
    key = Token.objects.get_or_create(user=voter)[0].key
    url = reverse("django_polls:poll-vote", args=[poll.pk])
    # Different rankings, so that a second ballot stored would show in the counts.
    rankings = list(
        itertools.islice(itertools.cycle(itertools.permutations(option_ids(poll))), SIMULTANEOUS)
    )

    def ballot(ranking: tuple[int, ...]) -> Any:
        def post() -> tuple[int, str]:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
            response = client.post(url, {"ranking": list(ranking)}, "json")
            return response.status_code, response.json().get("code", "")

        return post

    outcomes = run_together([ballot(ranking) for ranking in rankings])

    assert api_tally(outcomes) == {(201, ""): 1, (409, "already_voted"): SIMULTANEOUS - 1}
    stored = Ballot.objects.get(poll=poll)
    assert tallies(poll) == {",".join(map(str, stored.choice)): 1}
    assert set(counters(poll).values()) == {1}
    assert Participation.objects.filter(poll=poll).count() == 1
    assert services.results_for(poll=poll).total_voters == 1


def test_many_voters_ranking_and_scoring_at_once_are_all_counted(
    make_poll: Any, make_user: Any
) -> None:
    ranked = make_poll(method="ranked", options=("Ann", "Ben", "Cat"))
    scored = make_poll(method="score", options=("Ann", "Ben", "Cat"))
    users = [make_user() for _ in range(SIMULTANEOUS // 2)]
    orders = list(itertools.permutations(option_ids(ranked)))
    ids = option_ids(scored)
    tasks = []
    for index, user in enumerate(users):
        ranking = list(orders[index % len(orders)])
        grades = [{"option": option, "score": (index + n) % 6} for n, option in enumerate(ids)]
        tasks.append(
            lambda user=user, ranking=ranking: services.cast_ballot(
                poll_id=ranked.pk, voter=user, data={"ranking": ranking}
            )
        )
        tasks.append(
            lambda user=user, grades=grades: services.cast_ballot(
                poll_id=scored.pk, voter=user, data={"scores": grades}
            )
        )

    outcomes = run_together(tasks)

    assert tally(outcomes) == {"ok": len(tasks)}
    expected_rankings = collections.Counter(
        ",".join(map(str, orders[index % len(orders)])) for index in range(len(users))
    )
    assert tallies(ranked) == dict(expected_rankings)
    expected_scores = collections.Counter(
        f"{option}:{(index + n) % 6}" for index in range(len(users)) for n, option in enumerate(ids)
    )
    assert tallies(scored) == dict(expected_scores)
    assert set(counters(ranked).values()) == {len(users)}
    assert services.find_ballot_drift() == []
