"""Ballot policies (contract v1.1) at ``polls/{id}/vote/``: opening time, choice limits, secret
ballots, changing a ballot, final ballots and who may vote."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone

from django_polls import services, signals
from django_polls.models import (
    BallotChange,
    Option,
    Participation,
    Poll,
    Vote,
    VoterCount,
    counted_votes,
)
from tests.conftest import assert_error, option_ids

FOUR = ("Pizza", "Soup", "Salad", "Curry")


def vote_url(poll_id: int) -> str:
    return f"/api/v1/polls/{poll_id}/vote/"


def with_policy(poll: Poll, **fields: Any) -> Poll:
    """The poll with these fields set, as its owner would have created it."""
    Poll.objects.filter(pk=poll.pk).update(**fields)
    return Poll.objects.for_listing().get(pk=poll.pk)


def counts(poll: Poll) -> list[int]:
    return list(
        Option.objects.filter(poll=poll)
        .order_by("order")
        .annotate(counted=counted_votes())
        .values_list("counted", flat=True)
    )


def voters(poll: Poll) -> int:
    """The poll's count of voters, as results read it."""
    return VoterCount.objects.filter(poll=poll).aggregate(n=Sum("voters"))["n"] or 0


def nothing_stored(poll: Poll) -> bool:
    return (
        not Vote.objects.filter(poll=poll).exists()
        and not Participation.objects.filter(poll=poll).exists()
        and not any(counts(poll))
        and voters(poll) == 0
    )


@pytest.fixture
def multiple(make_poll: Callable[..., Poll]) -> Poll:
    return make_poll(options=FOUR, allow_multiple_votes=True)


# ---------------------------------------------------------------------------------------------
# Opening time


def test_a_scheduled_poll_refuses_ballots_until_it_opens(make_poll, alice, client_for):
    poll = with_policy(make_poll(), opens_at=timezone.now() + timedelta(hours=1))
    pizza, _ = option_ids(poll)
    client = client_for(alice)

    refused = client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")

    assert_error(refused, 409, "poll_not_open")
    assert nothing_stored(poll)
    with_policy(poll, opens_at=timezone.now() - timedelta(seconds=1))
    assert client.post(vote_url(poll.pk), {"options": [pizza]}, format="json").status_code == 201
    assert counts(poll) == [1, 0]


def test_a_closed_poll_that_never_opened_says_closed(make_poll, alice, client_for):
    poll = with_policy(make_poll(), opens_at=timezone.now() + timedelta(hours=1))
    services.close_poll(poll=poll)

    response = client_for(alice).post(
        vote_url(poll.pk), {"options": [option_ids(poll)[0]]}, format="json"
    )

    assert_error(response, 409, "poll_closed")


# ---------------------------------------------------------------------------------------------
# How many options a ballot holds


def test_a_request_naming_more_options_than_the_maximum_is_400(multiple, alice, client_for):
    poll = with_policy(multiple, max_choices=2)

    response = client_for(alice).post(
        vote_url(poll.pk), {"options": option_ids(poll)[:3]}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"options": ["A ballot on this poll holds at most 2 options."]}
    assert nothing_stored(poll)


def test_ballots_over_several_requests_stop_at_the_maximum(multiple, alice, client_for):
    poll = with_policy(multiple, max_choices=2)
    pizza, soup, salad, _ = option_ids(poll)
    client = client_for(alice)

    first = client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    second = client.post(vote_url(poll.pk), {"options": [soup]}, format="json")
    third = client.post(vote_url(poll.pk), {"options": [salad]}, format="json")

    assert (first.status_code, second.status_code) == (201, 201)
    assert_error(third, 409, "already_voted")
    assert counts(poll) == [1, 1, 0, 0]
    assert Participation.objects.get(poll=poll, voter=alice).choices == 2
    assert voters(poll) == 1


def test_a_first_ballot_below_the_minimum_is_400_and_later_ones_may_add_one(
    multiple, alice, client_for
):
    poll = with_policy(multiple, min_choices=2)
    pizza, soup, salad, _ = option_ids(poll)
    client = client_for(alice)

    too_few = client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    enough = client.post(vote_url(poll.pk), {"options": [pizza, soup]}, format="json")
    one_more = client.post(vote_url(poll.pk), {"options": [salad]}, format="json")

    assert too_few.status_code == 400
    assert too_few.json() == {"options": ["A ballot on this poll holds at least 2 options."]}
    assert (enough.status_code, one_more.status_code) == (201, 201)
    assert counts(poll) == [1, 1, 1, 0]


def test_a_voter_is_counted_once_however_many_ballots_they_cast(multiple, alice, bob, client_for):
    pizza, soup, salad, _ = option_ids(multiple)
    for voter, ballots in ((alice, [[pizza], [soup], [salad]]), (bob, [[pizza, soup]])):
        for ballot in ballots:
            services.cast_vote(poll_id=multiple.pk, voter=voter, option_ids=ballot)

    assert voters(multiple) == 2
    assert counts(multiple) == [2, 2, 1, 0]


# ---------------------------------------------------------------------------------------------
# Secret ballots


@pytest.fixture
def secret(make_poll: Callable[..., Poll]) -> Poll:
    return with_policy(
        make_poll(options=FOUR, allow_multiple_votes=True),
        anonymity="secret",
        allow_vote_change=False,
    )


def test_a_secret_ballot_is_counted_and_not_linked_to_its_voter(secret, alice, client_for):
    pizza, soup, _, _ = option_ids(secret)
    client = client_for(alice)

    response = client.post(vote_url(secret.pk), {"options": [pizza, soup]}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["options"] == [pizza, soup]
    assert counts(secret) == [1, 1, 0, 0]
    assert not Vote.objects.filter(poll=secret).exists()
    assert not BallotChange.objects.exists()
    # That alice voted, and not even how many options her ballot chose.
    assert list(
        Participation.objects.filter(poll=secret).values_list(
            "voter", "choices", "min_choices", "max_choices"
        )
    ) == [(alice.pk, 1, 1, 1)]
    assert client.get(vote_url(secret.pk)).json() == {"voted": True, "options": None}


def test_a_secret_ballot_is_final_and_single(secret, alice, client_for):
    pizza, soup, salad, _ = option_ids(secret)
    client = client_for(alice)
    client.post(vote_url(secret.pk), {"options": [pizza]}, format="json")

    again = client.post(vote_url(secret.pk), {"options": [soup]}, format="json")
    changed = client.put(vote_url(secret.pk), {"options": [salad]}, format="json")
    withdrawn = client.delete(vote_url(secret.pk))

    assert_error(again, 409, "already_voted")
    assert_error(changed, 409, "vote_final")
    assert_error(withdrawn, 409, "vote_final")
    assert counts(secret) == [1, 0, 0, 0]
    assert voters(secret) == 1


def test_a_secret_poll_tells_signal_receivers_who_voted_but_not_for_what(
    secret, alice, django_capture_on_commit_callbacks
):
    received: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        received.append(kwargs)

    signals.vote_cast.connect(receiver, sender=Poll)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.cast_vote(poll_id=secret.pk, voter=alice, option_ids=option_ids(secret)[:1])
    finally:
        signals.vote_cast.disconnect(receiver, sender=Poll)

    assert [(kwargs["voter"], kwargs["option_ids"]) for kwargs in received] == [(alice, None)]


def test_a_voter_who_has_not_voted_on_a_secret_poll_is_told_so(secret, alice, client_for):
    assert client_for(alice).get(vote_url(secret.pk)).json() == {"voted": False, "options": None}


# ---------------------------------------------------------------------------------------------
# Changing a ballot


def test_put_replaces_the_ballot_and_moves_the_counts_at_once(make_poll, alice, client_for):
    poll = make_poll()
    pizza, soup = option_ids(poll)
    client = client_for(alice)
    client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")

    response = client.put(vote_url(poll.pk), {"options": [soup]}, format="json")

    assert response.status_code == 200, response.content
    assert set(response.json()) == {"poll", "options", "created_at"}
    assert response.json()["options"] == [soup]
    assert counts(poll) == [0, 1]
    assert voters(poll) == 1
    assert client.get(vote_url(poll.pk)).json() == {"voted": True, "options": [soup]}
    [change] = services.ballot_history(poll_id=poll.pk, voter=alice)
    assert (change.voter, change.action, change.previous, change.current) == (
        alice,
        "replaced",
        [pizza],
        [soup],
    )


def test_put_on_a_multiple_vote_poll_replaces_every_option(multiple, alice, client_for):
    pizza, soup, salad, curry = option_ids(multiple)
    client = client_for(alice)
    client.post(vote_url(multiple.pk), {"options": [pizza, soup]}, format="json")
    client.post(vote_url(multiple.pk), {"options": [salad]}, format="json")

    response = client.put(vote_url(multiple.pk), {"options": [soup, curry]}, format="json")

    assert response.status_code == 200
    assert counts(multiple) == [0, 1, 0, 1]
    assert Participation.objects.get(poll=multiple, voter=alice).choices == 2
    assert client.get(vote_url(multiple.pk)).json() == {"voted": True, "options": [soup, curry]}


def test_put_keeps_the_choice_limits(multiple, alice, client_for):
    poll = with_policy(multiple, min_choices=2, max_choices=3)
    pizza, soup, salad, curry = option_ids(poll)
    client = client_for(alice)
    client.post(vote_url(poll.pk), {"options": [pizza, soup]}, format="json")

    too_few = client.put(vote_url(poll.pk), {"options": [salad]}, format="json")
    too_many = client.put(
        vote_url(poll.pk), {"options": [pizza, soup, salad, curry]}, format="json"
    )

    assert too_few.json() == {"options": ["A ballot on this poll holds at least 2 options."]}
    assert too_many.json() == {"options": ["A ballot on this poll holds at most 3 options."]}
    assert (too_few.status_code, too_many.status_code) == (400, 400)
    assert counts(poll) == [1, 1, 0, 0]


def test_put_without_a_ballot_is_404_not_voted(make_poll, alice, client_for):
    poll = make_poll()

    response = client_for(alice).put(
        vote_url(poll.pk), {"options": [option_ids(poll)[0]]}, format="json"
    )

    assert_error(response, 404, "not_voted")
    assert nothing_stored(poll)


def test_put_with_two_options_on_a_single_vote_poll_is_400(make_poll, alice, client_for):
    poll = make_poll()
    client = client_for(alice)
    client.post(vote_url(poll.pk), {"options": [option_ids(poll)[0]]}, format="json")

    response = client.put(vote_url(poll.pk), {"options": option_ids(poll)}, format="json")

    assert response.status_code == 400
    assert response.json() == {"options": ["This poll takes exactly one option per voter."]}


@pytest.mark.parametrize("method", ["put", "delete"])
def test_final_ballots_cannot_be_changed_or_withdrawn(make_poll, alice, client_for, method):
    poll = with_policy(make_poll(), allow_vote_change=False)
    pizza, soup = option_ids(poll)
    client = client_for(alice)
    client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")

    response = getattr(client, method)(vote_url(poll.pk), {"options": [soup]}, format="json")

    assert_error(response, 409, "vote_final")
    assert counts(poll) == [1, 0]
    assert not BallotChange.objects.exists()


def test_put_on_a_closed_poll_is_409_poll_closed(make_poll, alice, client_for):
    poll = make_poll()
    pizza, soup = option_ids(poll)
    client = client_for(alice)
    client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    services.close_poll(poll=poll)

    response = client.put(vote_url(poll.pk), {"options": [soup]}, format="json")

    assert_error(response, 409, "poll_closed")
    assert counts(poll) == [1, 0]


def test_put_naming_an_option_of_another_poll_is_400(make_poll, alice, client_for):
    poll, other = make_poll(), make_poll()
    client = client_for(alice)
    client.post(vote_url(poll.pk), {"options": [option_ids(poll)[0]]}, format="json")

    response = client.put(vote_url(poll.pk), {"options": [option_ids(other)[0]]}, format="json")

    assert response.status_code == 400
    assert counts(poll) == [1, 0]


def test_a_withdrawal_is_kept_in_the_history_and_uncounts_the_voter(multiple, alice, client_for):
    pizza, soup, _, _ = option_ids(multiple)
    client = client_for(alice)
    client.post(vote_url(multiple.pk), {"options": [pizza, soup]}, format="json")

    assert client.delete(vote_url(multiple.pk)).status_code == 204

    change = BallotChange.objects.get(poll=multiple)
    assert (change.action, change.previous, change.current) == ("retracted", [pizza, soup], [])
    assert voters(multiple) == 0
    assert not Participation.objects.filter(poll=multiple).exists()
    assert client.get(vote_url(multiple.pk)).json() == {"voted": False, "options": []}


def test_vote_changed_is_sent_after_commit_with_both_ballots(
    make_poll, alice, django_capture_on_commit_callbacks
):
    poll = make_poll()
    pizza, soup = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza])
    received: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        received.append(kwargs)

    signals.vote_changed.connect(receiver, sender=Poll)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.change_vote(poll_id=poll.pk, voter=alice, option_ids=[soup])
            assert received == []  # not before the commit
    finally:
        signals.vote_changed.disconnect(receiver, sender=Poll)

    assert [
        (kwargs["poll"].pk, kwargs["voter"], kwargs["previous_option_ids"], kwargs["option_ids"])
        for kwargs in received
    ] == [(poll.pk, alice, [pizza], [soup])]


# ---------------------------------------------------------------------------------------------
# Who may vote


def test_only_members_of_the_voter_group_may_vote(make_poll, alice, bob, client_for):
    team = Group.objects.create(name="team")
    alice.groups.add(team)
    poll = with_policy(make_poll(), voter_group=team)
    pizza, _ = option_ids(poll)

    outsider = client_for(bob).post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    member = client_for(alice).post(vote_url(poll.pk), {"options": [pizza]}, format="json")

    assert_error(outsider, 403, "not_eligible")
    assert member.status_code == 201
    assert counts(poll) == [1, 0]


def test_not_eligible_comes_before_the_ballot_is_judged(make_poll, bob, client_for):
    poll = with_policy(make_poll(), voter_group=Group.objects.create(name="team"))

    response = client_for(bob).post(vote_url(poll.pk), {"options": [999_999]}, format="json")

    assert_error(response, 403, "not_eligible")


def test_a_voter_who_left_the_group_cannot_change_their_ballot(make_poll, alice, client_for):
    team = Group.objects.create(name="team")
    alice.groups.add(team)
    poll = with_policy(make_poll(), voter_group=team)
    pizza, soup = option_ids(poll)
    client = client_for(alice)
    client.post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    alice.groups.remove(team)

    response = client.put(vote_url(poll.pk), {"options": [soup]}, format="json")

    assert_error(response, 403, "not_eligible")
    assert counts(poll) == [1, 0]


def only_alice(user: Any, poll: Poll) -> bool:
    """A site's voter policy, for the tests: only users whose login starts with "alice"."""
    return str(user.get_username()).startswith("alice")


@override_settings(DJANGO_POLLS={"VOTER_POLICY": "tests.test_api_ballots.only_alice"})
def test_the_sites_voter_policy_decides_who_may_vote(make_poll, alice, bob, client_for):
    poll = make_poll()
    pizza, soup = option_ids(poll)

    refused = client_for(bob).post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    allowed = client_for(alice).post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    changed = client_for(alice).put(vote_url(poll.pk), {"options": [soup]}, format="json")

    assert_error(refused, 403, "not_eligible")
    assert (allowed.status_code, changed.status_code) == (201, 200)
    assert counts(poll) == [0, 1]


@override_settings(DJANGO_POLLS={"VOTER_POLICY": "tests.test_api_ballots.only_alice"})
def test_the_voter_policy_on_a_missing_poll_is_404(alice, client_for, db):
    response = client_for(alice).post(vote_url(987_654), {"options": [1]}, format="json")

    assert_error(response, 404, "not_found")
