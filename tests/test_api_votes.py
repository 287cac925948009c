"""Casting, reading and withdrawing one's vote: POST, GET and DELETE ``polls/{id}/vote/``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from django_polls import services
from django_polls.models import Option, Poll, Vote, counted_votes
from django_polls.serializers import VoteReceiptSerializer
from tests.conftest import assert_error, expire, login_of, option_ids, username_field

MISSING_POLL_ID = 987_654_321
# Poll ids that name no poll: never used, the largest BIGINT, and one past anything a BIGINT holds.
MISSING_POLL_IDS = {
    "an unused id": MISSING_POLL_ID,
    "the largest id": 2**63 - 1,
    "a huge id": 10**30,
    "a 5000-digit id": "1" * 5000,
}


def vote_url(poll_id: int | str) -> str:
    return f"/api/v1/polls/{poll_id}/vote/"


def stored(poll: Poll) -> tuple[int, dict[str, int]]:
    """What the database holds for the poll: its vote rows and each option's counter."""
    counters = dict(
        Option.objects.filter(poll=poll)
        .annotate(counted=counted_votes())
        .values_list("text", "counted")
    )
    return Vote.objects.filter(poll=poll).count(), counters


def close(poll: Poll) -> None:
    services.close_poll(poll=poll)


FINISH = {"closed": close, "expired": expire}


# ---------------------------------------------------------------------------------------------
# Casting a ballot


def test_a_voter_gets_a_receipt_for_their_ballot(make_poll, alice, client_for):
    poll = make_poll()
    _, soup = option_ids(poll)
    before = timezone.now()

    response = client_for(alice).post(vote_url(poll.pk), {"options": [soup]}, format="json")

    after = timezone.now()
    assert response.status_code == 201, response.content
    receipt = response.json()
    assert set(receipt) == {"poll", "options", "created_at"}
    assert receipt["poll"] == poll.pk
    assert receipt["options"] == [soup]
    created_at = parse_datetime(receipt["created_at"])
    assert created_at is not None
    assert before <= created_at <= after
    assert stored(poll) == (1, {"Pizza": 0, "Soup": 1})
    assert list(Vote.objects.values_list(f"voter__{username_field()}", "option_id")) == [
        (login_of("alice"), soup)
    ]


def test_the_receipt_is_exactly_what_its_documented_serializer_renders(
    make_poll, alice, client_for
):
    poll = make_poll(allow_multiple_votes=True)
    ballot = option_ids(poll)[::-1]

    response = client_for(alice).post(vote_url(poll.pk), {"options": ballot}, format="json")

    assert response.status_code == 201, response.content
    stored_at = Vote.objects.filter(poll=poll).values_list("created_at", flat=True)[0]
    receipt = services.Receipt(poll=poll.pk, options=ballot, created_at=stored_at)
    assert response.content == JSONRenderer().render(VoteReceiptSerializer(receipt).data)


def test_a_single_vote_poll_takes_one_ballot_per_voter(make_poll, alice, client_for):
    poll = make_poll()
    pizza, soup = option_ids(poll)
    client = client_for(alice)
    assert client.post(vote_url(poll.pk), {"options": [pizza]}, format="json").status_code == 201

    second = client.post(vote_url(poll.pk), {"options": [soup]}, format="json")

    assert_error(second, 409, "already_voted")
    assert stored(poll) == (1, {"Pizza": 1, "Soup": 0})


def test_voting_again_for_the_same_option_of_a_single_vote_poll_is_refused(
    make_poll, alice, client_for
):
    poll = make_poll()
    pizza, _ = option_ids(poll)
    client = client_for(alice)
    assert client.post(vote_url(poll.pk), {"options": [pizza]}, format="json").status_code == 201

    again = client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")

    assert_error(again, 409, "already_voted")
    assert stored(poll) == (1, {"Pizza": 1, "Soup": 0})


def test_each_voter_has_their_own_ballot(make_poll, alice, bob, client_for):
    poll = make_poll()
    pizza, soup = option_ids(poll)

    by_alice = client_for(alice).post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    by_bob = client_for(bob).post(vote_url(poll.pk), {"options": [soup]}, format="json")

    assert (by_alice.status_code, by_bob.status_code) == (201, 201)
    assert stored(poll) == (2, {"Pizza": 1, "Soup": 1})


def test_a_multiple_vote_poll_takes_several_options_in_one_ballot(make_poll, alice, client_for):
    poll = make_poll(options=("Pizza", "Soup", "Salad"), allow_multiple_votes=True)
    pizza, _, salad = option_ids(poll)

    response = client_for(alice).post(vote_url(poll.pk), {"options": [salad, pizza]}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["options"] == [salad, pizza]
    assert stored(poll) == (2, {"Pizza": 1, "Soup": 0, "Salad": 1})


def test_a_multiple_vote_poll_takes_further_options_in_later_ballots(make_poll, alice, client_for):
    poll = make_poll(options=("Pizza", "Soup", "Salad"), allow_multiple_votes=True)
    pizza, soup, salad = option_ids(poll)
    client = client_for(alice)

    first = client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    second = client.post(vote_url(poll.pk), {"options": [soup, salad]}, format="json")

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["options"] == [soup, salad]
    assert stored(poll) == (3, {"Pizza": 1, "Soup": 1, "Salad": 1})


def test_a_multiple_vote_poll_never_counts_one_option_twice_for_a_voter(
    make_poll, alice, client_for
):
    poll = make_poll(allow_multiple_votes=True)
    pizza, _ = option_ids(poll)
    client = client_for(alice)
    assert client.post(vote_url(poll.pk), {"options": [pizza]}, format="json").status_code == 201

    again = client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")

    assert_error(again, 409, "already_voted")
    assert stored(poll) == (1, {"Pizza": 1, "Soup": 0})


def test_a_ballot_that_repeats_an_earlier_choice_stores_none_of_its_options(
    make_poll, alice, client_for
):
    poll = make_poll(options=("Pizza", "Soup", "Salad"), allow_multiple_votes=True)
    pizza, soup, _ = option_ids(poll)
    client = client_for(alice)
    assert client.post(vote_url(poll.pk), {"options": [pizza]}, format="json").status_code == 201

    overlapping = client.post(vote_url(poll.pk), {"options": [pizza, soup]}, format="json")

    assert_error(overlapping, 409, "already_voted")
    # No partial ballot: Soup, the new choice, was not stored either.
    assert stored(poll) == (1, {"Pizza": 1, "Soup": 0, "Salad": 0})
    assert client.get(vote_url(poll.pk)).json() == {"voted": True, "options": [pizza]}


# ---------------------------------------------------------------------------------------------
# Malformed ballots: 400, nothing stored

BallotBuilder = Callable[[int, int, int], Any]

# Each builder gets (a valid option id, another valid option id, an option id of another poll).
BAD_BALLOTS: dict[str, BallotBuilder] = {
    "options is missing": lambda a, b, foreign: {},
    "options is a number": lambda a, b, foreign: {"options": a},
    "options is a string": lambda a, b, foreign: {"options": str(a)},
    "options is an object": lambda a, b, foreign: {"options": {"id": a}},
    "options is null": lambda a, b, foreign: {"options": None},
    "the body is a bare list": lambda a, b, foreign: [a],
    "options is empty": lambda a, b, foreign: {"options": []},
    "an id sent as a string": lambda a, b, foreign: {"options": [str(a)]},
    "a fractional id": lambda a, b, foreign: {"options": [1.5]},
    "a boolean id": lambda a, b, foreign: {"options": [True]},
    "a null id": lambda a, b, foreign: {"options": [None]},
    "a nested list": lambda a, b, foreign: {"options": [[a]]},
    "an unknown option": lambda a, b, foreign: {"options": [max(a, b, foreign) + 1000]},
    "a zero id": lambda a, b, foreign: {"options": [0]},
    "a negative id": lambda a, b, foreign: {"options": [-a]},
    "the largest 64-bit id": lambda a, b, foreign: {"options": [2**63 - 1]},
    "an id just past 64 bits": lambda a, b, foreign: {"options": [2**63]},
    "a huge id": lambda a, b, foreign: {"options": [10**30]},
    "an option of another poll": lambda a, b, foreign: {"options": [foreign]},
    "a valid option with one of another poll": lambda a, b, foreign: {"options": [a, foreign]},
    "a repeated id": lambda a, b, foreign: {"options": [a, a]},
}


@pytest.mark.parametrize("allow_multiple_votes", [False, True], ids=["single-vote", "multi-vote"])
@pytest.mark.parametrize("ballot", BAD_BALLOTS.values(), ids=BAD_BALLOTS.keys())
def test_a_malformed_ballot_is_rejected_and_stores_nothing(
    make_poll, alice, bob, client_for, ballot, allow_multiple_votes
):
    poll = make_poll(allow_multiple_votes=allow_multiple_votes)
    other_poll = make_poll(title="Dessert?", options=("Cake", "Fruit"))
    pizza, soup = option_ids(poll)
    cake, _ = option_ids(other_poll)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[soup])

    response = client_for(alice).post(vote_url(poll.pk), ballot(pizza, soup, cake), format="json")

    assert response.status_code == 400, response.content
    assert isinstance(response.json(), dict)
    assert stored(poll) == (1, {"Pizza": 0, "Soup": 1})
    assert stored(other_poll) == (0, {"Cake": 0, "Fruit": 0})


def test_a_malformed_ballot_names_the_options_field(make_poll, alice, client_for):
    poll = make_poll()

    response = client_for(alice).post(vote_url(poll.pk), {"options": ["21"]}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["options"]


def test_a_single_vote_poll_refuses_a_ballot_with_two_options(make_poll, alice, client_for):
    poll = make_poll()
    pizza, soup = option_ids(poll)

    response = client_for(alice).post(vote_url(poll.pk), {"options": [pizza, soup]}, format="json")

    assert response.status_code == 400, response.content
    assert response.json() == {"options": ["This poll takes exactly one option per voter."]}
    assert stored(poll) == (0, {"Pizza": 0, "Soup": 0})


@pytest.mark.parametrize("finish", FINISH.values(), ids=FINISH.keys())
@pytest.mark.parametrize(
    "ballot",
    [BAD_BALLOTS["an id sent as a string"], BAD_BALLOTS["an unknown option"]],
    ids=["a string id", "an unknown option"],
)
def test_a_malformed_ballot_is_400_even_on_a_finished_poll(
    make_poll, alice, client_for, ballot, finish
):
    # Order of checks: the body and its option ids (400) before the poll's state (409).
    poll = make_poll()
    pizza, soup = option_ids(poll)
    finish(poll)

    response = client_for(alice).post(vote_url(poll.pk), ballot(pizza, soup, soup), format="json")

    assert response.status_code == 400, response.content
    assert stored(poll) == (0, {"Pizza": 0, "Soup": 0})


def test_an_unknown_option_is_400_even_after_voting(make_poll, alice, client_for):
    # Order of checks: option ids (400) before the caller's votes (409).
    poll = make_poll()
    pizza, soup = option_ids(poll)
    client = client_for(alice)
    assert client.post(vote_url(poll.pk), {"options": [pizza]}, format="json").status_code == 201

    response = client.post(vote_url(poll.pk), {"options": [soup + 1000]}, format="json")

    assert response.status_code == 400, response.content
    assert stored(poll) == (1, {"Pizza": 1, "Soup": 0})


# ---------------------------------------------------------------------------------------------
# Polls that no longer take votes; who may vote; missing polls


@pytest.mark.parametrize("finish", FINISH.values(), ids=FINISH.keys())
def test_a_finished_poll_refuses_ballots(make_poll, alice, client_for, finish):
    poll = make_poll(expires_at=timezone.now() + timedelta(hours=1))
    pizza, _ = option_ids(poll)
    finish(poll)

    response = client_for(alice).post(vote_url(poll.pk), {"options": [pizza]}, format="json")

    assert_error(response, 409, "poll_closed")
    assert stored(poll) == (0, {"Pizza": 0, "Soup": 0})


def test_a_poll_still_takes_ballots_before_its_expiry(make_poll, alice, client_for):
    poll = make_poll(expires_at=timezone.now() + timedelta(minutes=5))
    pizza, _ = option_ids(poll)

    response = client_for(alice).post(vote_url(poll.pk), {"options": [pizza]}, format="json")

    assert response.status_code == 201, response.content
    assert stored(poll) == (1, {"Pizza": 1, "Soup": 0})


def test_an_anonymous_ballot_is_401_with_a_challenge(make_poll, anon):
    poll = make_poll()
    pizza, _ = option_ids(poll)

    response = anon.post(vote_url(poll.pk), {"options": [pizza]}, format="json")

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert stored(poll) == (0, {"Pizza": 0, "Soup": 0})


def test_a_ballot_with_a_bad_token_is_401(make_poll):
    poll = make_poll()
    pizza, _ = option_ids(poll)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")

    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"
    assert stored(poll) == (0, {"Pizza": 0, "Soup": 0})


def test_an_anonymous_ballot_on_a_missing_poll_is_401(anon, db):
    # Order of checks: authentication before the poll's existence.
    response = anon.post(vote_url(MISSING_POLL_ID), {"options": [1]}, format="json")

    assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize("poll_id", MISSING_POLL_IDS.values(), ids=MISSING_POLL_IDS.keys())
@pytest.mark.parametrize(
    "ballot", [{"options": [1]}, {"options": "nonsense"}], ids=["valid body", "malformed body"]
)
def test_a_ballot_on_a_missing_poll_is_404(make_poll, alice, client_for, ballot, poll_id):
    poll = make_poll()

    response = client_for(alice).post(vote_url(poll_id), ballot, format="json")

    assert_error(response, 404, "not_found")
    assert Vote.objects.count() == 0
    assert stored(poll) == (0, {"Pizza": 0, "Soup": 0})


# ---------------------------------------------------------------------------------------------
# Reading one's own vote


def test_a_voter_who_has_not_voted_sees_no_options(make_poll, alice, bob, client_for):
    poll = make_poll()
    _, soup = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[soup])

    response = client_for(alice).get(vote_url(poll.pk))

    assert response.status_code == 200
    assert response.json() == {"voted": False, "options": []}


def test_a_voter_sees_the_option_they_chose(make_poll, alice, bob, client_for):
    poll = make_poll()
    pizza, soup = option_ids(poll)
    client = client_for(alice)
    client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[soup])

    response = client.get(vote_url(poll.pk))

    assert response.status_code == 200
    assert response.json() == {"voted": True, "options": [pizza]}


def test_a_voter_sees_every_option_they_chose_on_a_multiple_vote_poll(make_poll, alice, client_for):
    poll = make_poll(options=("Pizza", "Soup", "Salad"), allow_multiple_votes=True)
    pizza, _, salad = option_ids(poll)
    client = client_for(alice)
    client.post(vote_url(poll.pk), {"options": [salad]}, format="json")
    client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")

    response = client.get(vote_url(poll.pk))

    assert response.status_code == 200
    assert sorted(response.json()["options"]) == sorted([pizza, salad])
    assert set(response.json()) == {"voted", "options"}


@pytest.mark.parametrize("finish", FINISH.values(), ids=FINISH.keys())
def test_a_voter_still_sees_their_vote_on_a_finished_poll(make_poll, alice, client_for, finish):
    poll = make_poll()
    pizza, _ = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza])
    finish(poll)

    response = client_for(alice).get(vote_url(poll.pk))

    assert response.status_code == 200
    assert response.json() == {"voted": True, "options": [pizza]}


def test_an_anonymous_caller_cannot_ask_for_their_vote(make_poll, anon):
    poll = make_poll()

    response = anon.get(vote_url(poll.pk))

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("poll_id", MISSING_POLL_IDS.values(), ids=MISSING_POLL_IDS.keys())
def test_asking_for_ones_vote_on_a_missing_poll_is_404(alice, client_for, poll_id):
    response = client_for(alice).get(vote_url(poll_id))

    assert_error(response, 404, "not_found")


# ---------------------------------------------------------------------------------------------
# Withdrawing one's votes


def test_a_voter_withdraws_their_vote(make_poll, alice, bob, client_for):
    poll = make_poll()
    pizza, _ = option_ids(poll)
    client = client_for(alice)
    client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[pizza])

    response = client.delete(vote_url(poll.pk))

    assert response.status_code == 204
    assert response.content == b""
    assert stored(poll) == (1, {"Pizza": 1, "Soup": 0})
    assert client.get(vote_url(poll.pk)).json() == {"voted": False, "options": []}
    # Bob's vote is untouched.
    assert client_for(bob).get(vote_url(poll.pk)).json() == {"voted": True, "options": [pizza]}


def test_withdrawing_removes_every_vote_of_the_caller_on_a_multiple_vote_poll(
    make_poll, alice, bob, client_for
):
    poll = make_poll(options=("Pizza", "Soup", "Salad"), allow_multiple_votes=True)
    pizza, soup, salad = option_ids(poll)
    client = client_for(alice)
    client.post(vote_url(poll.pk), {"options": [pizza, soup]}, format="json")
    client.post(vote_url(poll.pk), {"options": [salad]}, format="json")
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[soup, salad])
    assert stored(poll) == (5, {"Pizza": 1, "Soup": 2, "Salad": 2})

    response = client.delete(vote_url(poll.pk))

    assert response.status_code == 204
    assert stored(poll) == (2, {"Pizza": 0, "Soup": 1, "Salad": 1})
    assert client.get(vote_url(poll.pk)).json() == {"voted": False, "options": []}
    assert sorted(client_for(bob).get(vote_url(poll.pk)).json()["options"]) == [soup, salad]


def test_withdrawing_leaves_the_callers_votes_on_other_polls_alone(make_poll, alice, client_for):
    lunch = make_poll()
    dessert = make_poll(title="Dessert?", options=("Cake", "Fruit"))
    pizza, _ = option_ids(lunch)
    cake, _ = option_ids(dessert)
    services.cast_vote(poll_id=lunch.pk, voter=alice, option_ids=[pizza])
    services.cast_vote(poll_id=dessert.pk, voter=alice, option_ids=[cake])

    response = client_for(alice).delete(vote_url(lunch.pk))

    assert response.status_code == 204
    assert stored(lunch) == (0, {"Pizza": 0, "Soup": 0})
    assert stored(dessert) == (1, {"Cake": 1, "Fruit": 0})


def test_a_voter_can_vote_again_after_withdrawing(make_poll, alice, client_for):
    poll = make_poll()
    pizza, soup = option_ids(poll)
    client = client_for(alice)
    client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    assert client.delete(vote_url(poll.pk)).status_code == 204

    response = client.post(vote_url(poll.pk), {"options": [soup]}, format="json")

    assert response.status_code == 201, response.content
    assert stored(poll) == (1, {"Pizza": 0, "Soup": 1})
    assert client.get(vote_url(poll.pk)).json() == {"voted": True, "options": [soup]}


def test_withdrawing_without_having_voted_is_404_not_voted(make_poll, alice, bob, client_for):
    poll = make_poll()
    pizza, _ = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[pizza])

    response = client_for(alice).delete(vote_url(poll.pk))

    assert_error(response, 404, "not_voted")
    assert stored(poll) == (1, {"Pizza": 1, "Soup": 0})


def test_withdrawing_twice_is_404_not_voted_the_second_time(make_poll, alice, client_for):
    poll = make_poll()
    pizza, _ = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza])
    client = client_for(alice)
    assert client.delete(vote_url(poll.pk)).status_code == 204

    again = client.delete(vote_url(poll.pk))

    assert_error(again, 404, "not_voted")
    assert stored(poll) == (0, {"Pizza": 0, "Soup": 0})


@pytest.mark.parametrize("finish", FINISH.values(), ids=FINISH.keys())
def test_votes_on_a_finished_poll_cannot_be_withdrawn(make_poll, alice, client_for, finish):
    poll = make_poll()
    pizza, _ = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza])
    finish(poll)

    response = client_for(alice).delete(vote_url(poll.pk))

    assert_error(response, 409, "poll_closed")
    assert stored(poll) == (1, {"Pizza": 1, "Soup": 0})
    assert client_for(alice).get(vote_url(poll.pk)).json() == {"voted": True, "options": [pizza]}


@pytest.mark.parametrize("finish", FINISH.values(), ids=FINISH.keys())
def test_withdrawing_from_a_finished_poll_says_poll_closed_even_without_votes(
    make_poll, alice, bob, client_for, finish
):
    # Contract: 409 poll_closed comes before 404 not_voted.
    poll = make_poll()
    pizza, _ = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[pizza])
    finish(poll)

    response = client_for(alice).delete(vote_url(poll.pk))

    assert_error(response, 409, "poll_closed")
    assert stored(poll) == (1, {"Pizza": 1, "Soup": 0})


def test_an_anonymous_caller_cannot_withdraw_votes(make_poll, alice, anon):
    poll = make_poll()
    pizza, _ = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza])

    response = anon.delete(vote_url(poll.pk))

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert stored(poll) == (1, {"Pizza": 1, "Soup": 0})


@pytest.mark.parametrize("poll_id", MISSING_POLL_IDS.values(), ids=MISSING_POLL_IDS.keys())
def test_withdrawing_from_a_missing_poll_is_404(make_poll, alice, client_for, poll_id):
    poll = make_poll()
    pizza, _ = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza])

    response = client_for(alice).delete(vote_url(poll_id))

    assert_error(response, 404, "not_found")
    assert stored(poll) == (1, {"Pizza": 1, "Soup": 0})
