"""Voting methods over HTTP (contract v1.1, "Ballots by method" and "Results by method"): ranked
and score polls, their ballots, every policy applied to them, changes and retractions moving the
counts, and results read from the counts; a method of the host site's own, installed through
DJANGO_POLLS["METHODS"]."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from django_polls import services
from django_polls.conf import DEFAULTS
from django_polls.methods.base import Counts
from django_polls.models import (
    Ballot,
    BallotChange,
    Option,
    Participation,
    Poll,
    Tally,
    Vote,
    counted_votes,
)
from django_polls.serializers import ResultsSerializer
from django_polls.services.results import Memo
from tests.conftest import assert_error, expire, option_ids

POLLS = "/api/v1/polls/"


def vote_url(poll: Poll) -> str:
    return f"{POLLS}{poll.pk}/vote/"


def results_url(poll: Poll) -> str:
    return f"{POLLS}{poll.pk}/results/"


def assert_field_error(response: Any, field: str) -> list[str]:
    """A 400 that blames exactly ``field``."""
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == [field], body
    assert body[field]
    return list(body[field])


def tallies(poll: Poll) -> dict[str, int]:
    return {
        key: count
        for key, count in Tally.objects.filter(poll=poll).values_list("key", "ballots")
        if count and not key.startswith("#")  # the app's own: counts of changes
    }


def counters(poll: Poll) -> list[int]:
    return list(
        Option.objects.filter(poll=poll)
        .order_by("order")
        .annotate(counted=counted_votes())
        .values_list("counted", flat=True)
    )


def stored(poll: Poll) -> dict[str, Any]:
    """Every row a ballot on the poll can write."""
    return {
        "ballots": list(Ballot.objects.filter(poll=poll).values("voter_id", "choice")),
        "tallies": tallies(poll),
        "votes": counters(poll),
        "participations": Participation.objects.filter(poll=poll).count(),
        "vote rows": Vote.objects.filter(poll=poll).count(),
    }


@pytest.fixture
def ranked(make_poll: Callable[..., Poll], alice: Any) -> Poll:
    return make_poll(created_by=alice, method="ranked", options=("Ann", "Ben", "Cat", "Dan"))


@pytest.fixture
def scored(make_poll: Callable[..., Poll], alice: Any) -> Poll:
    return make_poll(created_by=alice, method="score", options=("Ann", "Ben", "Cat"))


@pytest.fixture
def voter(make_user: Callable[..., Any], client_for: Callable[[Any], Any]) -> Any:
    return client_for(make_user())


def voters(
    count: int, make_user: Callable[..., Any], client_for: Callable[[Any], Any]
) -> list[Any]:
    return [client_for(make_user()) for _ in range(count)]


# ---------------------------------------------------------------------------------------------
# Creating polls of each method


def test_a_ranked_poll_is_created_with_the_limits_of_a_ranking(alice: Any, client_for: Any) -> None:
    body = {
        "title": "Chair",
        "method": "ranked",
        "options": [{"text": text} for text in ("Ann", "Ben", "Cat")],
    }
    response = client_for(alice).post(POLLS, body, format="json")

    assert response.status_code == 201, response.content
    poll = response.json()
    assert (poll["method"], poll["allow_multiple_votes"], poll["max_score"]) == (
        "ranked",
        False,
        None,
    )
    assert (poll["min_choices"], poll["max_choices"]) == (1, 3)


def test_a_score_poll_takes_max_score_5_by_default_and_1_to_10(alice: Any, client_for: Any) -> None:
    client = client_for(alice)
    body = {"title": "Stars", "method": "score", "options": [{"text": "A"}, {"text": "B"}]}

    assert client.post(POLLS, body, format="json").json()["max_score"] == 5
    assert client.post(POLLS, {**body, "max_score": 10}, format="json").json()["max_score"] == 10
    for bad in (0, 11, "ten", 2.5):
        assert_field_error(
            client.post(POLLS, {**body, "max_score": bad}, format="json"), "max_score"
        )


@pytest.mark.parametrize("method", ["single", "multiple", "ranked"])
def test_max_score_on_a_poll_that_is_not_score_is_400(
    alice: Any, client_for: Any, method: str
) -> None:
    body = {
        "title": "T",
        "method": method,
        "max_score": 3,
        "options": [{"text": "A"}, {"text": "B"}],
    }

    assert_field_error(client_for(alice).post(POLLS, body, format="json"), "max_score")
    assert not Poll.objects.exists()


def test_allow_multiple_votes_false_agrees_with_ranked_and_true_contradicts_it(
    alice: Any, client_for: Any
) -> None:
    body = {"title": "T", "method": "ranked", "options": [{"text": "A"}, {"text": "B"}]}
    client = client_for(alice)

    assert (
        client.post(POLLS, {**body, "allow_multiple_votes": False}, format="json").status_code
        == 201
    )
    response = client.post(POLLS, {**body, "allow_multiple_votes": True}, format="json")
    assert_field_error(response, "allow_multiple_votes")


def test_a_poll_without_votes_changes_method_and_max_score_follows(
    scored: Poll, alice: Any, client_for: Any
) -> None:
    client = client_for(alice)

    response = client.patch(f"{POLLS}{scored.pk}/", {"method": "ranked"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["max_score"] is None
    response = client.patch(f"{POLLS}{scored.pk}/", {"method": "score"}, format="json")
    assert response.json()["max_score"] == 5


def test_max_score_and_method_are_frozen_once_voted(
    scored: Poll, alice: Any, client_for: Any, voter: Any
) -> None:
    first = option_ids(scored)[0]
    assert (
        voter.post(
            vote_url(scored), {"scores": [{"option": first, "score": 3}]}, format="json"
        ).status_code
        == 201
    )
    client = client_for(alice)

    assert_error(
        client.patch(f"{POLLS}{scored.pk}/", {"max_score": 7}, format="json"), 409, "poll_has_votes"
    )
    assert_error(
        client.patch(f"{POLLS}{scored.pk}/", {"method": "ranked"}, format="json"),
        409,
        "poll_has_votes",
    )
    assert client.patch(f"{POLLS}{scored.pk}/", {"max_score": 5}, format="json").status_code == 200


# ---------------------------------------------------------------------------------------------
# Ranked ballots


def test_a_ranking_is_stored_counted_and_read_back(ranked: Poll, voter: Any) -> None:
    ann, ben, cat, _ = option_ids(ranked)

    response = voter.post(vote_url(ranked), {"ranking": [cat, ann, ben]}, format="json")

    assert response.status_code == 201, response.content
    receipt = response.json()
    assert list(receipt) == ["poll", "ranking", "created_at"]
    assert (receipt["poll"], receipt["ranking"]) == (ranked.pk, [cat, ann, ben])
    assert voter.get(vote_url(ranked)).json() == {"voted": True, "ranking": [cat, ann, ben]}
    assert tallies(ranked) == {f"{cat},{ann},{ben}": 1}
    # Each option ranked holds a vote (a selection), as on a multiple-choice poll.
    assert counters(ranked) == [1, 1, 1, 0]


def test_get_vote_before_voting_is_an_empty_ranking(ranked: Poll, voter: Any) -> None:
    assert voter.get(vote_url(ranked)).json() == {"voted": False, "ranking": []}


def test_ranked_results_run_instant_runoff_over_the_distinct_rankings(
    ranked: Poll, make_user: Any, client_for: Any, anon: Any
) -> None:
    ann, ben, cat, dan = option_ids(ranked)
    rankings = [[ann, ben]] * 3 + [[ben, cat]] * 2 + [[cat, ben]] * 2 + [[dan]]
    for client, ranking in zip(voters(len(rankings), make_user, client_for), rankings, strict=True):
        assert client.post(vote_url(ranked), {"ranking": ranking}, format="json").status_code == 201

    body = anon.get(results_url(ranked)).json()

    assert body["method"] == "ranked"
    assert (body["total_voters"], body["ballots"], body["total_votes"]) == (8, 8, 15)
    assert [option["first_choices"] for option in body["options"]] == [3, 2, 2, 1]
    assert [option["votes"] for option in body["options"]] == [3, 7, 4, 1]
    # Round 1: Ann 3, Ben 2, Cat 2, Dan 1 of 8: Dan goes (exhausted). Round 2: Ann 3, Ben 2,
    # Cat 2 of 7: Ben and Cat tie, and tied in round 1 too: Cat, listed last, goes, to Ben.
    # Round 3: Ann 3, Ben 4 of 7: Ben wins.
    assert body["rounds"] == [
        {
            "tallies": [
                {"id": ann, "votes": 3},
                {"id": ben, "votes": 2},
                {"id": cat, "votes": 2},
                {"id": dan, "votes": 1},
            ],
            "exhausted": 0,
            "eliminated": [dan],
        },
        {
            "tallies": [{"id": ann, "votes": 3}, {"id": ben, "votes": 2}, {"id": cat, "votes": 2}],
            "exhausted": 1,
            "eliminated": [cat],
        },
        {
            "tallies": [{"id": ann, "votes": 3}, {"id": ben, "votes": 4}],
            "exhausted": 1,
            "eliminated": [],
        },
    ]
    assert (body["winner"], body["tied"]) == (ben, [])


def test_ranked_results_without_ballots_have_no_rounds_and_no_winner(
    ranked: Poll, anon: Any
) -> None:
    body = anon.get(results_url(ranked)).json()

    assert (body["rounds"], body["winner"], body["ballots"], body["total_voters"]) == (
        [],
        None,
        0,
        0,
    )
    assert [option["first_choices"] for option in body["options"]] == [0, 0, 0, 0]


@pytest.mark.parametrize(
    "ranking",
    [
        "1",
        {"a": 1},
        [],
        ["1"],
        [1.5],
        [True],
        [0],
        [2**63],
        None,
    ],
    ids=["string", "object", "empty", "string id", "float", "bool", "zero", "too large", "null"],
)
def test_a_malformed_ranking_is_400(ranked: Poll, voter: Any, ranking: Any) -> None:
    assert_field_error(voter.post(vote_url(ranked), {"ranking": ranking}, format="json"), "ranking")
    assert stored(ranked)["participations"] == 0


def test_a_ranking_that_repeats_an_option_or_names_another_polls_is_400(
    ranked: Poll, make_poll: Any, voter: Any
) -> None:
    ann, ben, *_ = option_ids(ranked)
    other = option_ids(make_poll())[0]

    assert_field_error(
        voter.post(vote_url(ranked), {"ranking": [ann, ben, ann]}, format="json"), "ranking"
    )
    messages = assert_field_error(
        voter.post(vote_url(ranked), {"ranking": [ann, other]}, format="json"), "ranking"
    )
    assert messages == [f"{other} is not an option of this poll."]
    assert stored(ranked) == {
        "ballots": [],
        "tallies": {},
        "votes": [0, 0, 0, 0],
        "participations": 0,
        "vote rows": 0,
    }


def test_a_ranking_too_long_to_count_is_400(make_poll: Callable[..., Poll], voter: Any) -> None:
    poll = make_poll(method="ranked")
    huge = [2**62 + n for n in range(20)]  # 20 ids of 19 digits each fit; these never exist
    with override_settings(DJANGO_POLLS={"MAX_OPTIONS": 30}):
        ranking = [*huge, *(2**62 + 100 + n for n in range(8))]
        response = voter.post(vote_url(poll), {"ranking": ranking}, format="json")

    assert_field_error(response, "ranking")
    longer = voter.post(vote_url(poll), {"ranking": list(range(1, 22))}, format="json")
    assert assert_field_error(longer, "ranking") == ["A ballot names at most 20 options."]
    scores = [{"option": n, "score": 1} for n in range(1, 22)]
    assert_field_error(voter.post(vote_url(poll), {"scores": scores}, format="json"), "scores")


def test_the_ballot_field_must_be_the_methods(ranked: Poll, make_poll: Any, voter: Any) -> None:
    ann, _ben, *_ = option_ids(ranked)
    single = make_poll()

    assert_field_error(voter.post(vote_url(ranked), {"options": [ann]}, format="json"), "options")
    assert_field_error(voter.post(vote_url(ranked), {}, format="json"), "ranking")
    assert_field_error(
        voter.post(vote_url(ranked), {"ranking": [ann], "scores": []}, format="json"), "scores"
    )
    first = option_ids(single)[0]
    assert_field_error(voter.post(vote_url(single), {"ranking": [first]}, format="json"), "ranking")
    assert_field_error(
        voter.post(vote_url(single), {"options": [first], "ranking": [first]}, format="json"),
        "ranking",
    )
    assert_field_error(voter.put(vote_url(ranked), {"options": [ann]}, format="json"), "options")
    assert Participation.objects.count() == 0


def test_a_ranking_within_min_and_max_choices(make_poll: Callable[..., Poll], voter: Any) -> None:
    poll = make_poll(method="ranked", options=("A", "B", "C", "D"), min_choices=2, max_choices=3)
    a, b, c, d = option_ids(poll)

    messages = assert_field_error(
        voter.post(vote_url(poll), {"ranking": [a]}, format="json"), "ranking"
    )
    assert messages == ["A ballot on this poll holds at least 2 options."]
    messages = assert_field_error(
        voter.post(vote_url(poll), {"ranking": [a, b, c, d]}, format="json"), "ranking"
    )
    assert messages == ["A ballot on this poll holds at most 3 options."]
    assert voter.post(vote_url(poll), {"ranking": [d, a]}, format="json").status_code == 201


def test_one_ranked_ballot_per_voter(ranked: Poll, voter: Any) -> None:
    ann, ben, *_ = option_ids(ranked)
    assert voter.post(vote_url(ranked), {"ranking": [ann]}, format="json").status_code == 201

    assert_error(
        voter.post(vote_url(ranked), {"ranking": [ben]}, format="json"), 409, "already_voted"
    )
    assert tallies(ranked) == {str(ann): 1}


def test_ranked_ballots_follow_the_polls_schedule_and_group(
    make_poll: Callable[..., Poll], voter: Any, make_user: Any, client_for: Any
) -> None:
    later = make_poll(method="ranked", opens_at=timezone.now() + timedelta(hours=1))
    assert_error(
        voter.post(vote_url(later), {"ranking": option_ids(later)}, format="json"),
        409,
        "poll_not_open",
    )
    closed = make_poll(method="ranked")
    expire(closed)
    assert_error(
        voter.post(vote_url(closed), {"ranking": option_ids(closed)}, format="json"),
        409,
        "poll_closed",
    )
    board = Group.objects.create(name="Board")
    members = make_poll(method="ranked", voter_group=board)
    assert_error(
        voter.post(vote_url(members), {"ranking": option_ids(members)}, format="json"),
        403,
        "not_eligible",
    )
    member = make_user()
    member.groups.add(board)
    response = client_for(member).post(
        vote_url(members), {"ranking": option_ids(members)}, format="json"
    )
    assert response.status_code == 201
    assert Participation.objects.filter(poll__in=[later, closed]).count() == 0


def test_a_voter_policy_refuses_a_ranked_ballot(ranked: Poll, voter: Any) -> None:
    with override_settings(DJANGO_POLLS={"VOTER_POLICY": "tests.test_api_methods.nobody"}):
        response = voter.post(vote_url(ranked), {"ranking": option_ids(ranked)}, format="json")

    assert_error(response, 403, "not_eligible")


def nobody(user: Any, poll: Poll) -> bool:
    return False


def test_put_replaces_a_ranking_and_moves_its_counts(ranked: Poll, voter: Any) -> None:
    ann, ben, cat, dan = option_ids(ranked)
    voter.post(vote_url(ranked), {"ranking": [ann, ben]}, format="json")

    response = voter.put(vote_url(ranked), {"ranking": [dan, cat, ben]}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["ranking"] == [dan, cat, ben]
    assert tallies(ranked) == {f"{dan},{cat},{ben}": 1}
    assert counters(ranked) == [0, 1, 1, 1]
    assert voter.get(vote_url(ranked)).json()["ranking"] == [dan, cat, ben]
    change = BallotChange.objects.get(poll=ranked)
    assert (change.action, change.previous, change.current) == (
        "replaced",
        [ann, ben],
        [dan, cat, ben],
    )
    assert Participation.objects.get(poll=ranked).choices == 3


def test_put_without_a_ballot_is_404_and_on_final_ballots_409(
    make_poll: Callable[..., Poll], ranked: Poll, voter: Any
) -> None:
    assert_error(
        voter.put(vote_url(ranked), {"ranking": option_ids(ranked)}, format="json"),
        404,
        "not_voted",
    )
    final = make_poll(method="ranked", allow_vote_change=False)
    voter.post(vote_url(final), {"ranking": option_ids(final)}, format="json")
    assert_error(
        voter.put(vote_url(final), {"ranking": option_ids(final)[:1]}, format="json"),
        409,
        "vote_final",
    )
    assert_error(voter.delete(vote_url(final)), 409, "vote_final")


def test_delete_withdraws_a_ranking_and_its_counts(ranked: Poll, voter: Any, anon: Any) -> None:
    ann, ben, *_ = option_ids(ranked)
    voter.post(vote_url(ranked), {"ranking": [ben, ann]}, format="json")

    assert voter.delete(vote_url(ranked)).status_code == 204

    assert stored(ranked) == {
        "ballots": [],
        "tallies": {},
        "votes": [0, 0, 0, 0],
        "participations": 0,
        "vote rows": 0,
    }
    assert anon.get(results_url(ranked)).json()["total_voters"] == 0
    assert_error(voter.delete(vote_url(ranked)), 404, "not_voted")
    # And the voter may vote again.
    assert voter.post(vote_url(ranked), {"ranking": [ann]}, format="json").status_code == 201


def test_a_final_ballot_on_a_closed_poll_is_vote_final_first(
    make_poll: Callable[..., Poll], voter: Any
) -> None:
    final = make_poll(method="ranked", allow_vote_change=False)
    voter.post(vote_url(final), {"ranking": option_ids(final)}, format="json")
    expire(final)

    assert_error(
        voter.put(vote_url(final), {"ranking": option_ids(final)}, format="json"), 409, "vote_final"
    )
    assert_error(voter.delete(vote_url(final)), 409, "vote_final")


def test_a_closed_poll_keeps_its_rankings(ranked: Poll, voter: Any) -> None:
    voter.post(vote_url(ranked), {"ranking": option_ids(ranked)}, format="json")
    expire(ranked)

    assert_error(voter.delete(vote_url(ranked)), 409, "poll_closed")
    assert_error(
        voter.put(vote_url(ranked), {"ranking": option_ids(ranked)[:1]}, format="json"),
        409,
        "poll_closed",
    )


def test_a_secret_ranked_poll_keeps_only_the_counts(
    make_poll: Callable[..., Poll], voter: Any, anon: Any
) -> None:
    poll = make_poll(method="ranked", anonymity="secret")
    first, second = option_ids(poll)

    response = voter.post(vote_url(poll), {"ranking": [second, first]}, format="json")

    assert response.status_code == 201
    assert Ballot.objects.count() == 0
    assert BallotChange.objects.count() == 0
    assert tallies(poll) == {f"{second},{first}": 1}
    participation = Participation.objects.get(poll=poll)
    assert (participation.choices, participation.min_choices, participation.max_choices) == (
        1,
        1,
        1,
    )
    assert voter.get(vote_url(poll)).json() == {"voted": True, "ranking": None}
    assert anon.get(results_url(poll)).json()["winner"] == second
    assert_error(
        voter.post(vote_url(poll), {"ranking": [first]}, format="json"), 409, "already_voted"
    )


def test_a_public_ranked_poll_lists_each_ranking(
    make_poll: Callable[..., Poll], make_user: Any, client_for: Any, anon: Any
) -> None:
    poll = make_poll(method="ranked", anonymity="public")
    first, second = option_ids(poll)
    carol = make_user("carol")
    client_for(carol).post(vote_url(poll), {"ranking": [second, first]}, format="json")

    body = anon.get(f"{POLLS}{poll.pk}/ballots/").json()

    assert body["count"] == 1
    entry = body["results"][0]
    assert list(entry) == ["voter", "ranking", "created_at"]
    assert (entry["voter"], entry["ranking"]) == ("carol", [second, first])
    assert entry["created_at"]


def test_ranked_results_follow_the_polls_visibility(
    make_poll: Callable[..., Poll], voter: Any, anon: Any
) -> None:
    poll = make_poll(method="ranked", results_visibility="after_vote")

    assert_error(anon.get(results_url(poll)), 403, "results_hidden")
    assert_error(voter.get(results_url(poll)), 403, "results_hidden")
    voter.post(vote_url(poll), {"ranking": option_ids(poll)}, format="json")
    assert voter.get(results_url(poll)).status_code == 200


def test_ranked_results_answer_304_while_nothing_changed(
    ranked: Poll, voter: Any, anon: Any
) -> None:
    etag = anon.get(results_url(ranked))["ETag"]
    assert anon.get(results_url(ranked), HTTP_IF_NONE_MATCH=etag).status_code == 304
    voter.post(vote_url(ranked), {"ranking": option_ids(ranked)}, format="json")
    assert anon.get(results_url(ranked), HTTP_IF_NONE_MATCH=etag).status_code == 200


@pytest.mark.parametrize("method", ["ranked", "score"])
def test_method_results_are_exactly_what_their_documented_serializer_renders(
    make_poll: Callable[..., Poll], make_user: Any, anon: Any, method: str
) -> None:
    poll = make_poll(method=method, options=("A", "B", "C"))
    a, b, _ = option_ids(poll)
    data = (
        {"ranking": [a, b]}
        if method == "ranked"
        else {"scores": [{"option": a, "score": 3}, {"option": b, "score": 1}]}
    )
    services.cast_ballot(poll_id=poll.pk, voter=make_user(), data=data)

    response = anon.get(results_url(poll))

    expected = ResultsSerializer(
        services.results_for(poll=Poll.objects.for_listing().get(pk=poll.pk))
    )
    assert response.content == JSONRenderer().render(expected.data)


def test_ranked_results_read_counts_not_ballots(
    ranked: Poll, make_user: Any, anon: Any, django_assert_num_queries: Any
) -> None:
    ann, ben, *_ = option_ids(ranked)
    for _ in range(5):
        services.cast_ballot(poll_id=ranked.pk, voter=make_user(), data={"ranking": [ann, ben]})
    Ballot.objects.all().delete()  # the results never read them

    # The poll with its options, its count of changes, then its counts.
    with django_assert_num_queries(3):
        body = anon.get(results_url(ranked)).json()

    assert body["winner"] == ann
    assert body["ballots"] == 5


def test_the_rounds_are_computed_once_per_state_of_the_counts(
    ranked: Poll, make_user: Any, anon: Any, voter: Any, django_assert_num_queries: Any
) -> None:
    ann, ben, cat, _ = option_ids(ranked)
    for ranking in ([ann], [ben], [ben]):
        services.cast_ballot(poll_id=ranked.pk, voter=make_user(), data={"ranking": ranking})
    first = anon.get(results_url(ranked)).json()
    # Counts changed behind the app's back (no change counted): the rounds already computed
    # for this state are what readers get, in two queries, without reading the counts.
    Tally.objects.filter(poll=ranked, key=str(ben)).update(ballots=9)
    with django_assert_num_queries(2):
        again = anon.get(results_url(ranked)).json()
    assert again == first
    assert first["winner"] == ben

    # A ballot is a new state: the rounds are computed again, from every count.
    voter.post(vote_url(ranked), {"ranking": [cat]}, format="json")
    after = anon.get(results_url(ranked)).json()
    assert after["ballots"] == 9 + 1 + 1
    # And polls_recount --fix is a new state too.
    services.repair_ballot_counts(poll_ids=[ranked.pk])
    assert anon.get(results_url(ranked)).json()["ballots"] == 4


def test_readers_of_a_new_state_at_once_wait_for_one_count() -> None:
    """Eight readers of a state nobody has computed yet, at once in one process: the rounds are
    computed once, and every reader gets them."""
    poll = Poll(pk=10**9, created_at=timezone.now(), method="ranked")
    options = [Option(pk=pk, poll=poll, text=str(pk), votes=0) for pk in (1, 2, 3)]
    computed: list[int] = []
    gate = threading.Barrier(8)

    def count(tallies: Any) -> int:
        computed.append(len(tallies))
        time.sleep(0.2)  # long enough for every other reader to be waiting
        return len(computed)

    memo = Memo(8)

    def read(_: int) -> int:
        counts = Counts(
            poll=poll,
            options=options,
            total_voters=3,
            read_tallies=lambda: {"1,2": 2, "3": 1, "#changes/0": 3},
            read_version=lambda: 3,
            memo=memo,
        )
        gate.wait()
        return counts.memoized("count", count)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(read, range(8)))

    assert computed == [2]
    assert answers == [1] * 8


# ---------------------------------------------------------------------------------------------
# Score ballots


def scores(*pairs: tuple[int, int]) -> dict[str, Any]:
    return {"scores": [{"option": option, "score": score} for option, score in pairs]}


def test_scores_are_stored_counted_and_read_back(scored: Poll, voter: Any) -> None:
    ann, ben, _cat = option_ids(scored)

    response = voter.post(vote_url(scored), scores((ann, 5), (ben, 0)), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["scores"] == [{"option": ann, "score": 5}, {"option": ben, "score": 0}]
    assert voter.get(vote_url(scored)).json() == {
        "voted": True,
        "scores": [{"option": ann, "score": 5}, {"option": ben, "score": 0}],
    }
    assert tallies(scored) == {f"{ann}:5": 1, f"{ben}:0": 1}
    assert counters(scored) == [1, 1, 0]


def test_score_results_carry_count_sum_average_and_distribution(
    scored: Poll, make_user: Any, client_for: Any, anon: Any
) -> None:
    ann, ben, cat = option_ids(scored)
    ballots = [
        scores((ann, 5), (ben, 1)),
        scores((ann, 4), (ben, 0)),
        scores((ann, 4)),
    ]
    for client, ballot in zip(voters(3, make_user, client_for), ballots, strict=True):
        assert client.post(vote_url(scored), ballot, format="json").status_code == 201

    body = anon.get(results_url(scored)).json()

    assert (body["method"], body["max_score"], body["total_voters"]) == ("score", 5, 3)
    by_id = {option["id"]: option for option in body["options"]}
    assert {key: by_id[ann][key] for key in ("count", "sum", "average", "distribution")} == {
        "count": 3,
        "sum": 13,
        "average": 4.33,
        "distribution": [0, 0, 0, 0, 2, 1],
    }
    assert (by_id[ben]["count"], by_id[ben]["sum"], by_id[ben]["average"]) == (2, 1, 0.5)
    assert by_id[ben]["distribution"] == [1, 1, 0, 0, 0, 0]
    assert (by_id[cat]["count"], by_id[cat]["average"], by_id[cat]["distribution"]) == (
        0,
        None,
        [0] * 6,
    )
    assert [option["votes"] for option in body["options"]] == [3, 2, 0]


def test_an_average_rounds_half_up(scored: Poll, make_user: Any, anon: Any) -> None:
    ann = option_ids(scored)[0]
    for score in (1, 0, 0, 0, 0, 0, 0, 0):  # 1 / 8 = 0.125
        services.cast_ballot(poll_id=scored.pk, voter=make_user(), data=scores((ann, score)))

    assert anon.get(results_url(scored)).json()["options"][0]["average"] == 0.13


@pytest.mark.parametrize(
    "ballot",
    [
        {"scores": "5"},
        {"scores": []},
        {"scores": [5]},
        {"scores": [{"option": 1}]},
        {"scores": [{"option": 1, "score": 2, "extra": 1}]},
        {"scores": [{"option": "1", "score": 2}]},
        {"scores": [{"option": 1, "score": -1}]},
        {"scores": [{"option": 1, "score": 2.5}]},
        {"scores": [{"option": 1, "score": True}]},
    ],
    ids=[
        "string",
        "empty",
        "number",
        "no score",
        "extra key",
        "string id",
        "negative",
        "float",
        "bool",
    ],
)
def test_malformed_scores_are_400(scored: Poll, voter: Any, ballot: dict[str, Any]) -> None:
    assert_field_error(voter.post(vote_url(scored), ballot, format="json"), "scores")


def test_scores_above_max_score_or_twice_for_an_option_are_400(
    make_poll: Callable[..., Poll], voter: Any
) -> None:
    poll = make_poll(method="score", max_score=3)
    first, second = option_ids(poll)

    messages = assert_field_error(
        voter.post(vote_url(poll), scores((first, 4)), format="json"), "scores"
    )
    assert messages == ["A score on this poll is a whole number from 0 to 3."]
    assert_field_error(
        voter.post(vote_url(poll), scores((first, 1), (first, 2)), format="json"), "scores"
    )
    assert (
        voter.post(vote_url(poll), scores((first, 3), (second, 0)), format="json").status_code
        == 201
    )


def test_put_and_delete_move_the_score_counts(scored: Poll, voter: Any) -> None:
    ann, ben, cat = option_ids(scored)
    voter.post(vote_url(scored), scores((ann, 5), (ben, 2)), format="json")

    assert voter.put(vote_url(scored), scores((ben, 3), (cat, 1)), format="json").status_code == 200
    assert tallies(scored) == {f"{ben}:3": 1, f"{cat}:1": 1}
    assert counters(scored) == [0, 1, 1]

    assert voter.delete(vote_url(scored)).status_code == 204
    assert tallies(scored) == {}
    assert counters(scored) == [0, 0, 0]


def test_a_score_polls_counts_exist_from_its_creation_so_ballots_insert_none(
    make_poll: Callable[..., Poll], voter: Any, alice: Any, client_for: Any
) -> None:
    poll = make_poll(created_by=alice, method="score", max_score=2, anonymity="secret")
    first, second = option_ids(poll)
    keys = {f"{option}:{score}" for option in (first, second) for score in range(3)}
    method_keys = Tally.objects.filter(poll=poll).exclude(key__startswith="#")
    assert set(method_keys.values_list("key", flat=True)) == keys
    rows = set(method_keys.values_list("pk", flat=True))

    assert voter.post(vote_url(poll), scores((first, 2)), format="json").status_code == 201
    # The ballot updated a row made with the poll: nothing tells when its row was first used.
    assert set(method_keys.values_list("pk", flat=True)) == rows
    assert tallies(poll) == {f"{first}:2": 1}


def test_a_poll_without_votes_gets_the_counts_of_its_new_terms(
    make_poll: Callable[..., Poll], alice: Any, client_for: Any
) -> None:
    poll = make_poll(created_by=alice, method="score", options=("A", "B"))
    client = client_for(alice)

    client.patch(f"{POLLS}{poll.pk}/", {"max_score": 1}, format="json")
    assert Tally.objects.filter(poll=poll).count() == 2 * 2
    client.patch(f"{POLLS}{poll.pk}/", {"options": [{"text": "C"}, {"text": "D"}]}, format="json")
    keys = {f"{option}:{score}" for option in option_ids(poll) for score in range(2)}
    assert set(Tally.objects.filter(poll=poll).values_list("key", flat=True)) == keys
    client.patch(f"{POLLS}{poll.pk}/", {"method": "ranked"}, format="json")
    assert not Tally.objects.filter(poll=poll).exists()


def test_a_secret_score_poll_keeps_only_the_counts(
    make_poll: Callable[..., Poll], voter: Any
) -> None:
    poll = make_poll(method="score", anonymity="secret")
    first, _ = option_ids(poll)

    assert voter.post(vote_url(poll), scores((first, 2)), format="json").status_code == 201
    assert Ballot.objects.count() == 0
    assert tallies(poll) == {f"{first}:2": 1}
    assert voter.get(vote_url(poll)).json() == {"voted": True, "scores": None}


# ---------------------------------------------------------------------------------------------
# A method of the host site's own: the Borda count of tests/borda.py

WITH_BORDA = {"METHODS": [*DEFAULTS["METHODS"], "tests.borda.Borda"]}


def test_a_host_method_is_installed_through_the_setting(
    alice: Any, client_for: Any, make_user: Any, anon: Any
) -> None:
    client = client_for(alice)
    body = {"title": "Borda", "method": "borda", "options": [{"text": t} for t in "ABC"]}
    assert_field_error(client.post(POLLS, body, format="json"), "method")

    with override_settings(DJANGO_POLLS=WITH_BORDA):
        created = client.post(POLLS, body, format="json")
        assert created.status_code == 201, created.content
        poll = Poll.objects.get(pk=created.json()["id"])
        a, b, c = option_ids(poll)
        for ranking in ([a, b, c], [b, a], [b, c, a], [c]):
            response = client_for(make_user()).post(
                vote_url(poll), {"ranking": ranking}, format="json"
            )
            assert response.status_code == 201, response.content
            assert response.json()["ranking"] == ranking
        results = anon.get(results_url(poll)).json()
        voter = client_for(make_user())
        assert_field_error(
            voter.post(vote_url(poll), {"ranking": [a, a]}, format="json"), "ranking"
        )

    # Points: A 2 + 1 + 0 = 3, B 1 + 2 + 2 = 5, C 0 + 1 + 2 = 3.
    assert results["method"] == "borda"
    assert [option["points"] for option in results["options"]] == [3, 5, 3]
    assert results["winner"] == b
    assert results["total_voters"] == 4
    assert tallies(poll)[f"{b}@0"] == 2


def test_a_poll_whose_method_the_site_no_longer_lists_takes_no_ballots(
    alice: Any, client_for: Any, anon: Any, voter: Any
) -> None:
    with override_settings(DJANGO_POLLS=WITH_BORDA):
        poll = services.create_poll(created_by=alice, title="B", options=["A", "B"], method="borda")

    response = voter.post(vote_url(poll), {"ranking": option_ids(poll)}, format="json")

    assert response.status_code == 400
    # Its results fall back to what every method keeps.
    assert anon.get(results_url(poll)).json()["method"] == "borda"
