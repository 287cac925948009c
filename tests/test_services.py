"""The service functions: the voting rules, their errors, the counters and the signals."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.dispatch import Signal
from django.test import override_settings
from django.utils import timezone

from django_polls import live, services, signals
from django_polls.models import (
    OPTION_COUNT_SLOTS,
    Option,
    OptionCount,
    Participation,
    Poll,
    Vote,
    counted_votes,
)
from django_polls.services.counts import set_count
from tests.conftest import database_folds_alike, expire

pytestmark = pytest.mark.django_db

Listen = Callable[[Signal], list[dict[str, Any]]]


@pytest.fixture
def single(make_poll: Callable[..., Poll]) -> Poll:
    return make_poll(title="Lunch?", options=("Pizza", "Soup", "Salad"))


@pytest.fixture
def multiple(make_poll: Callable[..., Poll]) -> Poll:
    return make_poll(title="Colours", options=("Red", "Green", "Blue"), allow_multiple_votes=True)


def ids(poll: Poll) -> list[int]:
    return list(poll.options.order_by("order").values_list("pk", flat=True))


def counters(poll: Poll) -> list[int]:
    return list(
        poll.options.order_by("order")
        .annotate(counted=counted_votes())
        .values_list("counted", flat=True)
    )


def chosen(poll: Poll, voter: Any) -> list[int]:
    return sorted(Vote.objects.filter(poll=poll, voter=voter).values_list("option_id", flat=True))


def later(**delta: float) -> datetime:
    return timezone.now() + timedelta(**delta)


# ---------------------------------------------------------------------------------------------
# create_poll


def test_create_poll_stores_the_poll_with_trimmed_texts_in_order(alice: Any) -> None:
    expiry = later(days=1)

    poll = services.create_poll(
        created_by=alice,
        title="  Where to eat?  ",
        description="Friday team lunch",
        options=["  Pizza", "Soup  ", "Salad"],
        expires_at=expiry,
        allow_multiple_votes=True,
    )

    stored = Poll.objects.get(pk=poll.pk)
    assert stored.title == "Where to eat?"
    assert stored.description == "Friday team lunch"
    assert stored.expires_at == expiry
    assert stored.allow_multiple_votes is True
    assert stored.created_by == alice
    assert stored.closed_at is None
    assert [(o.text, o.order, o.votes) for o in stored.options.order_by("order")] == [
        ("Pizza", 0, 0),
        ("Soup", 1, 0),
        ("Salad", 2, 0),
    ]


def test_create_poll_defaults(alice: Any) -> None:
    poll = services.create_poll(created_by=alice, title="Lunch?", options=["Pizza", "Soup"])

    stored = Poll.objects.get(pk=poll.pk)
    assert (stored.description, stored.expires_at, stored.allow_multiple_votes) == ("", None, False)
    assert stored.is_active is True


def test_create_poll_accepts_the_limits(alice: Any) -> None:
    poll = services.create_poll(
        created_by=alice,
        title="T" * 200,
        description="d" * 5000,
        options=[f"{n:02d}" + "x" * 198 for n in range(20)],
    )

    assert Option.objects.filter(poll=poll).count() == 20
    assert {len(text) for text in poll.options.values_list("text", flat=True)} == {200}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "T" * 201}, "title"),
        ({"description": "d" * 5001}, "description"),
        ({"options": ["Only one"]}, "options"),
        ({"options": []}, "options"),
        ({"options": [f"Option {n}" for n in range(21)]}, "options"),
        ({"options": ["Pizza", "   "]}, "options"),
        ({"options": ["Pizza", "x" * 201]}, "options"),
        ({"options": ["Pizza", "Soup", " pizza "]}, "options"),
        ({"options": ["Straße", "STRASSE"]}, "options"),
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, "expires_at"),
    ],
    ids=[
        "blank-title",
        "whitespace-title",
        "long-title",
        "long-description",
        "one-option",
        "no-options",
        "21-options",
        "blank-option",
        "long-option",
        "options-differing-in-case",
        "options-differing-in-case-folding",
        "past-expiry",
    ],
)
def test_create_poll_refuses_invalid_input_and_stores_nothing(
    alice: Any, fields: dict[str, Any], field: str
) -> None:
    arguments: dict[str, Any] = {"title": "Lunch?", "options": ["Pizza", "Soup"], **fields}

    with pytest.raises(services.InvalidInput) as excinfo:
        services.create_poll(created_by=alice, **arguments)

    assert list(excinfo.value.errors) == [field]
    assert all(isinstance(message, str) and message for message in excinfo.value.errors[field])
    assert excinfo.value.code == "invalid"
    assert not Poll.objects.exists()
    assert not Option.objects.exists()


def test_create_poll_error_messages(alice: Any) -> None:
    with pytest.raises(services.InvalidInput) as blank:
        services.create_poll(created_by=alice, title=" ", options=["Pizza", "Soup"])
    with pytest.raises(services.InvalidInput) as duplicate:
        services.create_poll(created_by=alice, title="Lunch?", options=["Pizza", "PIZZA"])

    assert blank.value.errors == {"title": ["This field may not be blank."]}
    assert duplicate.value.errors == {"options": ["Option texts must be unique within a poll."]}
    assert str(blank.value) == "title: This field may not be blank."


def test_create_poll_reads_the_option_limits_from_settings_when_called(alice: Any) -> None:
    with override_settings(DJANGO_POLLS={"MIN_OPTIONS": 3, "MAX_OPTIONS": 3}):
        with pytest.raises(services.InvalidInput) as excinfo:
            services.create_poll(created_by=alice, title="Lunch?", options=["Pizza", "Soup"])
        poll = services.create_poll(created_by=alice, title="Lunch?", options=["A", "B", "C"])

    assert excinfo.value.errors == {"options": ["A poll needs between 3 and 3 options."]}
    assert poll.options.count() == 3


# ---------------------------------------------------------------------------------------------
# update_poll


def test_update_poll_changes_only_the_given_fields(single: Poll) -> None:
    services.update_poll(poll=single, title="  Dinner?  ")

    stored = Poll.objects.get(pk=single.pk)
    assert stored.title == "Dinner?"
    assert stored.description == single.description
    assert [o.text for o in stored.options.all()] == ["Pizza", "Soup", "Salad"]
    assert ids(stored) == ids(single)


def test_update_poll_returns_the_updated_poll(single: Poll) -> None:
    updated = services.update_poll(
        poll=single, title="Dinner?", description="Tonight", allow_multiple_votes=True
    )

    assert (updated.title, updated.description, updated.allow_multiple_votes) == (
        "Dinner?",
        "Tonight",
        True,
    )


def test_update_poll_replaces_the_options_with_new_ones(single: Poll) -> None:
    old = ids(single)

    services.update_poll(poll=single, options=["  Curry ", "Ramen"])

    assert [(o.text, o.order) for o in single.options.order_by("order")] == [
        ("Curry", 0),
        ("Ramen", 1),
    ]
    assert not set(ids(single)) & set(old)
    assert not Option.objects.filter(pk__in=old).exists()


def test_update_poll_validates_like_create(single: Poll) -> None:
    with pytest.raises(services.InvalidInput) as excinfo:
        services.update_poll(poll=single, title="Dinner?", options=["Curry", "CURRY"])

    assert list(excinfo.value.errors) == ["options"]
    assert Poll.objects.get(pk=single.pk).title == "Lunch?"
    assert [o.text for o in single.options.all()] == ["Pizza", "Soup", "Salad"]


@pytest.mark.parametrize(
    "texts", [("İ", "i"), ("İstanbul", "istanbul")], ids=["dotted-I", "dotted-I-in-a-word"]
)
def test_options_the_database_folds_alike_are_invalid_input(
    alice: Any, single: Poll, texts: tuple[str, str]
) -> None:
    # Python's casefold() keeps "İ" apart from "i"; PostgreSQL's lower() folds it to "i", so its
    # unique index on lower(text) decides, and that verdict is the same InvalidInput as ours.
    before = ids(single)

    if database_folds_alike(*texts):
        with pytest.raises(services.InvalidInput) as created:
            services.create_poll(created_by=alice, title="Where?", options=texts)
        with pytest.raises(services.InvalidInput) as updated:
            services.update_poll(poll=single, title="Where?", options=texts)

        duplicate = {"options": ["Option texts must be unique within a poll."]}
        assert (created.value.errors, updated.value.errors) == (duplicate, duplicate)
        assert list(Poll.objects.values_list("pk", flat=True)) == [single.pk]
        assert Poll.objects.get(pk=single.pk).title == "Lunch?"
        assert ids(single) == before
    else:  # e.g. SQLite, whose lower() folds ASCII letters only
        poll = services.create_poll(created_by=alice, title="Where?", options=texts)
        services.update_poll(poll=single, options=texts)

        assert list(poll.options.order_by("order").values_list("text", flat=True)) == list(texts)
        assert list(single.options.order_by("order").values_list("text", flat=True)) == list(texts)


@pytest.fixture
def voted(single: Poll, alice: Any) -> Poll:
    services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[ids(single)[0]])
    return single


@pytest.mark.parametrize(
    "change",
    [
        {"options": ["Pizza", "Soup", "Curry"]},
        {"options": ["Pizza", "Soup"]},
        {"options": ["Soup", "Pizza", "Salad"]},
        {"options": ["pizza", "Soup", "Salad"]},
        {"allow_multiple_votes": True},
    ],
    ids=["new-text", "fewer", "reordered", "case-changed", "vote-mode"],
)
def test_update_poll_refuses_to_change_options_or_vote_mode_once_voted(
    voted: Poll, change: dict[str, Any]
) -> None:
    before = ids(voted)

    with pytest.raises(services.PollHasVotes) as excinfo:
        services.update_poll(poll=voted, title="Dinner?", **change)

    assert excinfo.value.code == "poll_has_votes"
    stored = Poll.objects.get(pk=voted.pk)
    assert (stored.title, stored.allow_multiple_votes) == ("Lunch?", False)
    assert ids(stored) == before
    assert counters(stored) == [1, 0, 0]


def test_update_poll_accepts_unchanged_options_and_vote_mode_once_voted(voted: Poll) -> None:
    before = ids(voted)
    expiry = later(days=2)

    services.update_poll(
        poll=voted,
        title="Dinner?",
        description="Tonight",
        expires_at=expiry,
        options=[" Pizza ", "Soup", "Salad"],
        allow_multiple_votes=False,
    )

    stored = Poll.objects.get(pk=voted.pk)
    assert (stored.title, stored.description, stored.expires_at) == ("Dinner?", "Tonight", expiry)
    assert ids(stored) == before
    assert counters(stored) == [1, 0, 0]


def test_update_poll_switches_the_vote_mode_of_a_poll_without_votes(single: Poll) -> None:
    services.update_poll(poll=single, allow_multiple_votes=True)

    assert Poll.objects.get(pk=single.pk).allow_multiple_votes is True


def test_update_poll_moves_the_expiry_to_the_future_or_removes_it(single: Poll) -> None:
    expiry = later(hours=5)

    services.update_poll(poll=single, expires_at=expiry)
    assert Poll.objects.get(pk=single.pk).expires_at == expiry

    services.update_poll(poll=single, expires_at=None)
    assert Poll.objects.get(pk=single.pk).expires_at is None


def test_update_poll_refuses_a_new_past_expiry(single: Poll) -> None:
    with pytest.raises(services.InvalidInput) as excinfo:
        services.update_poll(poll=single, title="Dinner?", expires_at=later(minutes=-1))

    assert excinfo.value.errors == {"expires_at": ["The expiry must be in the future."]}
    assert Poll.objects.get(pk=single.pk).title == "Lunch?"


def test_update_poll_accepts_an_unchanged_past_expiry(make_poll: Callable[..., Poll]) -> None:
    poll = make_poll(expires_at=later(hours=1))
    expire(poll)

    services.update_poll(poll=poll, title="Archived lunch", expires_at=poll.expires_at)

    assert Poll.objects.get(pk=poll.pk).title == "Archived lunch"


# ---------------------------------------------------------------------------------------------
# close_poll and delete_poll


def test_close_poll_closes_it_for_good(single: Poll) -> None:
    before = timezone.now()

    closed = services.close_poll(poll=single)

    assert closed.pk == single.pk
    assert closed.is_active is False
    assert single.closed_at is not None
    assert before <= single.closed_at <= timezone.now()
    assert single.is_active is False
    assert Poll.objects.finished().get() == single


def test_closing_a_closed_poll_changes_nothing(single: Poll) -> None:
    services.close_poll(poll=single)
    first = single.closed_at

    services.close_poll(poll=Poll.objects.get(pk=single.pk))

    assert Poll.objects.get(pk=single.pk).closed_at == first


def test_a_closed_poll_takes_no_votes_and_no_retractions(voted: Poll, alice: Any, bob: Any) -> None:
    services.close_poll(poll=voted)

    with pytest.raises(services.PollClosed) as excinfo:
        services.cast_vote(poll_id=voted.pk, voter=bob, option_ids=[ids(voted)[1]])
    with pytest.raises(services.PollClosed):
        services.retract_votes(poll_id=voted.pk, voter=alice)
    with pytest.raises(services.PollClosed):
        services.retract_votes(poll_id=voted.pk, voter=bob)

    assert excinfo.value.code == "poll_closed"
    assert counters(voted) == [1, 0, 0]
    assert Vote.objects.filter(poll=voted).count() == 1


def test_delete_poll_removes_its_options_and_votes(
    voted: Poll, make_poll: Callable[..., Poll], bob: Any
) -> None:
    other = make_poll(title="Other")
    services.cast_vote(poll_id=other.pk, voter=bob, option_ids=[ids(other)[0]])

    services.delete_poll(poll=voted)

    assert list(Poll.objects.all()) == [other]
    assert set(Option.objects.values_list("poll", flat=True)) == {other.pk}
    assert list(Vote.objects.values_list("poll", flat=True)) == [other.pk]


# ---------------------------------------------------------------------------------------------
# cast_vote


def test_cast_vote_stores_the_vote_and_counts_it(single: Poll, alice: Any) -> None:
    soup = ids(single)[1]
    before = timezone.now()

    receipt = services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[soup])

    assert (receipt.poll, receipt.options) == (single.pk, [soup])
    assert before <= receipt.created_at <= timezone.now()
    vote = Vote.objects.get()
    assert (vote.poll_id, vote.option_id, vote.voter, vote.created_at) == (
        single.pk,
        soup,
        alice,
        receipt.created_at,
    )
    assert counters(single) == [0, 1, 0]


@pytest.mark.parametrize("second", [0, 1], ids=["same-option", "other-option"])
def test_a_second_ballot_on_a_single_vote_poll_is_already_voted(
    single: Poll, alice: Any, second: int
) -> None:
    services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[ids(single)[0]])

    with pytest.raises(services.AlreadyVoted) as excinfo:
        services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[ids(single)[second]])

    assert excinfo.value.code == "already_voted"
    assert chosen(single, alice) == [ids(single)[0]]
    assert counters(single) == [1, 0, 0]


def test_a_multiple_vote_poll_takes_several_options_in_one_or_several_ballots(
    multiple: Poll, alice: Any
) -> None:
    red, green, blue = ids(multiple)

    first = services.cast_vote(poll_id=multiple.pk, voter=alice, option_ids=[blue, red])
    second = services.cast_vote(poll_id=multiple.pk, voter=alice, option_ids=[green])

    assert first.options == [blue, red]
    assert second.options == [green]
    assert chosen(multiple, alice) == [red, green, blue]
    assert counters(multiple) == [1, 1, 1]
    assert services.results_for(poll=Poll.objects.get(pk=multiple.pk)).total_votes == 3


def test_a_multiple_vote_poll_refuses_a_second_vote_for_one_option(
    multiple: Poll, alice: Any
) -> None:
    red, green, _ = ids(multiple)
    services.cast_vote(poll_id=multiple.pk, voter=alice, option_ids=[red])

    with pytest.raises(services.AlreadyVoted):
        services.cast_vote(poll_id=multiple.pk, voter=alice, option_ids=[red])
    # No partial ballot: green is not stored either.
    with pytest.raises(services.AlreadyVoted):
        services.cast_vote(poll_id=multiple.pk, voter=alice, option_ids=[green, red])

    assert chosen(multiple, alice) == [red]
    assert counters(multiple) == [1, 0, 0]


def test_other_voters_are_not_affected_by_someone_having_voted(
    single: Poll, alice: Any, bob: Any
) -> None:
    pizza = ids(single)[0]
    services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[pizza])

    services.cast_vote(poll_id=single.pk, voter=bob, option_ids=[pizza])

    assert counters(single) == [2, 0, 0]


@pytest.mark.parametrize(
    "ballot",
    [
        lambda own, foreign: [],
        lambda own, foreign: [own[0], own[0]],
        lambda own, foreign: [10**12],
        lambda own, foreign: [foreign[0]],
        lambda own, foreign: [own[0], foreign[0]],
        lambda own, foreign: [own[0], own[1]],
    ],
    ids=["empty", "repeated", "unknown", "foreign", "own-and-foreign", "two-on-single-vote"],
)
def test_cast_vote_refuses_an_invalid_ballot_and_stores_nothing(
    single: Poll,
    multiple: Poll,
    alice: Any,
    ballot: Callable[[list[int], list[int]], list[int]],
) -> None:
    with pytest.raises(services.InvalidInput) as excinfo:
        services.cast_vote(
            poll_id=single.pk, voter=alice, option_ids=ballot(ids(single), ids(multiple))
        )

    assert list(excinfo.value.errors) == ["options"]
    assert not Vote.objects.exists()
    assert counters(single) == [0, 0, 0]
    assert counters(multiple) == [0, 0, 0]


def test_cast_vote_names_the_unknown_option(single: Poll, multiple: Poll, alice: Any) -> None:
    foreign = ids(multiple)[2]

    with pytest.raises(services.InvalidInput) as excinfo:
        services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[ids(single)[0], foreign])

    assert excinfo.value.errors == {"options": [f"{foreign} is not an option of this poll."]}


def test_cast_vote_on_a_missing_poll(single: Poll, alice: Any) -> None:
    with pytest.raises(Poll.DoesNotExist):
        services.cast_vote(poll_id=single.pk + 1000, voter=alice, option_ids=[ids(single)[0]])


def test_cast_vote_on_an_expired_poll_is_poll_closed(
    make_poll: Callable[..., Poll], alice: Any
) -> None:
    poll = make_poll(expires_at=later(hours=1))
    expire(poll)

    with pytest.raises(services.PollClosed):
        services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[ids(poll)[0]])

    assert not Vote.objects.exists()


def test_an_invalid_ballot_on_a_closed_poll_is_invalid_input_first(
    single: Poll, multiple: Poll, alice: Any
) -> None:
    """The contract checks the ballot (400) before the poll's state (409)."""
    services.close_poll(poll=single)

    with pytest.raises(services.InvalidInput):
        services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[ids(multiple)[0]])


# ---------------------------------------------------------------------------------------------
# retract_votes and votes_of


def test_retract_votes_removes_every_vote_of_the_voter(
    multiple: Poll, alice: Any, bob: Any
) -> None:
    red, green, blue = ids(multiple)
    services.cast_vote(poll_id=multiple.pk, voter=alice, option_ids=[blue, red])
    services.cast_vote(poll_id=multiple.pk, voter=bob, option_ids=[red, green])

    removed = services.retract_votes(poll_id=multiple.pk, voter=alice)

    assert removed == [red, blue]
    assert chosen(multiple, alice) == []
    assert chosen(multiple, bob) == [red, green]
    assert counters(multiple) == [1, 1, 0]


def test_ballots_on_one_option_count_in_its_slots_and_a_retraction_folds_them(
    single: Poll, make_user: Callable[..., Any]
) -> None:
    """On PostgreSQL ballots add to slots of the option (one per participation, modulo the
    slots), not to its counter; a retraction folds them into the counter. Elsewhere ballots add
    to the counter. Either way the results are the vote rows."""
    pizza = ids(single)[0]
    voters = [make_user() for _ in range(5)]
    for voter in voters:
        services.cast_vote(poll_id=single.pk, voter=voter, option_ids=[pizza])
    slots = OptionCount.objects.filter(option_id=pizza)
    on_postgresql = connection.vendor == "postgresql"

    results = services.results_for(poll=Poll.objects.for_listing().get(pk=single.pk))
    assert [option.votes for option in results.options] == [5, 0, 0]
    assert Vote.objects.filter(option_id=pizza).count() == 5
    assert Option.objects.get(pk=pizza).votes == (0 if on_postgresql else 5)
    assert sorted(slots.values_list("votes", flat=True)) == ([1] * 5 if on_postgresql else [])
    assert all(0 <= slot < OPTION_COUNT_SLOTS for slot in slots.values_list("slot", flat=True))

    services.retract_votes(poll_id=single.pk, voter=voters[0])

    assert counters(single) == [4, 0, 0]
    assert Option.objects.get(pk=pizza).votes == 4
    assert not slots.exists()
    services.cast_vote(poll_id=single.pk, voter=voters[0], option_ids=[pizza])
    assert counters(single) == [5, 0, 0]
    assert services.find_drift(poll_ids=[single.pk]) == []


def test_retract_votes_without_votes_is_not_voted(single: Poll, alice: Any, bob: Any) -> None:
    services.cast_vote(poll_id=single.pk, voter=bob, option_ids=[ids(single)[0]])

    with pytest.raises(services.NotVoted) as excinfo:
        services.retract_votes(poll_id=single.pk, voter=alice)

    assert excinfo.value.code == "not_voted"
    assert counters(single) == [1, 0, 0]


def test_retracting_twice_is_not_voted_the_second_time(single: Poll, alice: Any) -> None:
    services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[ids(single)[0]])
    services.retract_votes(poll_id=single.pk, voter=alice)

    with pytest.raises(services.NotVoted):
        services.retract_votes(poll_id=single.pk, voter=alice)

    assert counters(single) == [0, 0, 0]


def test_after_retracting_the_voter_may_vote_again(single: Poll, alice: Any) -> None:
    pizza, soup, _ = ids(single)
    services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[pizza])
    services.retract_votes(poll_id=single.pk, voter=alice)

    services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[soup])

    assert chosen(single, alice) == [soup]
    assert counters(single) == [0, 1, 0]


def test_retract_votes_on_a_missing_poll(single: Poll, alice: Any) -> None:
    with pytest.raises(Poll.DoesNotExist):
        services.retract_votes(poll_id=single.pk + 1000, voter=alice)


def test_votes_of_lists_the_chosen_options(multiple: Poll, alice: Any, bob: Any) -> None:
    red, _, blue = ids(multiple)
    services.cast_vote(poll_id=multiple.pk, voter=alice, option_ids=[blue, red])

    assert services.votes_of(poll_id=multiple.pk, voter=alice) == [red, blue]
    assert services.votes_of(poll_id=multiple.pk, voter=bob) == []


def test_votes_of_a_missing_poll(single: Poll, alice: Any) -> None:
    with pytest.raises(Poll.DoesNotExist):
        services.votes_of(poll_id=single.pk + 1000, voter=alice)


# ---------------------------------------------------------------------------------------------
# results_for and percentage


def test_results_give_counts_and_percentages_in_option_order(
    single: Poll, make_user: Callable[..., Any]
) -> None:
    pizza, soup, salad = ids(single)
    for option in (pizza, soup, pizza):
        services.cast_vote(poll_id=single.pk, voter=make_user(), option_ids=[option])

    results = services.results_for(poll=Poll.objects.for_listing().get(pk=single.pk))

    assert results == services.Results(
        poll=single.pk,
        method="single",
        is_active=True,
        total_votes=3,
        total_voters=3,
        options=[
            services.OptionResult(id=pizza, text="Pizza", votes=2, percentage=66.67),
            services.OptionResult(id=soup, text="Soup", votes=1, percentage=33.33),
            services.OptionResult(id=salad, text="Salad", votes=0, percentage=0.0),
        ],
    )


def test_results_without_votes_are_zero_percent_everywhere(single: Poll) -> None:
    results = services.results_for(poll=single)

    assert results.total_votes == 0
    assert [option.percentage for option in results.options] == [0.0, 0.0, 0.0]


def test_results_of_a_closed_poll_are_not_active(voted: Poll) -> None:
    services.close_poll(poll=voted)

    results = services.results_for(poll=Poll.objects.for_listing().get(pk=voted.pk))

    assert (results.is_active, results.total_votes) == (False, 1)


def test_results_follow_every_vote_and_retraction_at_once(single: Poll, alice: Any) -> None:
    services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[ids(single)[2]])
    assert services.results_for(poll=Poll.objects.get(pk=single.pk)).options[2].votes == 1

    services.retract_votes(poll_id=single.pk, voter=alice)
    assert services.results_for(poll=Poll.objects.get(pk=single.pk)).total_votes == 0


@pytest.mark.parametrize(
    ("votes", "total", "expected"),
    [
        (0, 0, 0.0),
        (0, 7, 0.0),
        (7, 7, 100.0),
        (1, 3, 33.33),
        (2, 3, 66.67),
        (1, 8, 12.5),
        # Exact halves round up (round() would give 3.12 and 0.62).
        (1, 32, 3.13),
        (1, 160, 0.63),
        (1, 1600, 0.06),
    ],
)
def test_percentage_rounds_half_up_to_two_decimals(votes: int, total: int, expected: float) -> None:
    result = services.percentage(votes, total)

    assert type(result) is float
    assert result == expected


# ---------------------------------------------------------------------------------------------
# find_drift and repair_counts


@pytest.fixture
def two_polls_with_votes(
    single: Poll, multiple: Poll, make_user: Callable[..., Any]
) -> tuple[Poll, Poll]:
    for options in ([ids(single)[0]], [ids(single)[0]], [ids(single)[1]]):
        services.cast_vote(poll_id=single.pk, voter=make_user(), option_ids=options)
    services.cast_vote(poll_id=multiple.pk, voter=make_user(), option_ids=ids(multiple)[:2])
    return single, multiple


def test_find_drift_finds_nothing_when_counters_match(
    two_polls_with_votes: tuple[Poll, Poll],
) -> None:
    assert services.find_drift() == []
    assert services.repair_counts() == []


def test_find_drift_leaves_secret_polls_alone(
    multiple: Poll, make_user: Callable[..., Any]
) -> None:
    """A secret poll keeps counts without vote rows: they are no drift, and nothing repairs them
    to zero."""
    Poll.objects.filter(pk=multiple.pk).update(anonymity="secret", allow_vote_change=False)
    services.cast_vote(poll_id=multiple.pk, voter=make_user(), option_ids=ids(multiple)[:2])

    assert services.find_drift() == []
    assert services.repair_counts() == []
    assert sorted(
        Option.objects.filter(poll=multiple)
        .annotate(counted=counted_votes())
        .values_list("counted", flat=True)
    ) == [0, 1, 1]


def test_find_drift_reports_every_counter_that_differs_from_its_rows(
    two_polls_with_votes: tuple[Poll, Poll],
) -> None:
    single, multiple = two_polls_with_votes
    pizza, _, salad = ids(single)
    red = ids(multiple)[0]
    set_count(pizza, 7)
    set_count(salad, 3)
    set_count(red, 0)

    assert services.find_drift() == [
        services.Drift(poll_id=single.pk, option_id=pizza, stored=7, actual=2),
        services.Drift(poll_id=single.pk, option_id=salad, stored=3, actual=0),
        services.Drift(poll_id=multiple.pk, option_id=red, stored=0, actual=1),
    ]
    assert services.find_drift(poll_ids=[multiple.pk]) == [
        services.Drift(poll_id=multiple.pk, option_id=red, stored=0, actual=1),
    ]
    assert services.find_drift(poll_ids=[]) == []


def test_repair_counts_sets_drifting_counters_to_their_rows(
    two_polls_with_votes: tuple[Poll, Poll],
) -> None:
    single, multiple = two_polls_with_votes
    pizza = ids(single)[0]
    red = ids(multiple)[0]
    set_count(pizza, 7)
    set_count(red, 0)

    repaired = services.repair_counts()

    assert repaired == [
        services.Drift(poll_id=single.pk, option_id=pizza, stored=7, actual=2),
        services.Drift(poll_id=multiple.pk, option_id=red, stored=0, actual=1),
    ]
    assert counters(single) == [2, 1, 0]
    assert counters(multiple) == [1, 1, 0]
    assert services.find_drift() == []


def test_repair_counts_only_touches_the_given_polls(
    two_polls_with_votes: tuple[Poll, Poll],
) -> None:
    single, multiple = two_polls_with_votes
    set_count(ids(single)[1], 9)
    set_count(ids(multiple)[1], 9)

    repaired = services.repair_counts(poll_ids=[multiple.pk])

    assert [drift.poll_id for drift in repaired] == [multiple.pk]
    assert counters(multiple) == [1, 1, 0]
    assert counters(single) == [2, 9, 0]


# ---------------------------------------------------------------------------------------------
# Signals: sent once the change has committed, with the documented arguments


@pytest.fixture
def listen() -> Iterator[Listen]:
    """Connect a receiver to a signal; returns the list of calls it will record."""
    connected: list[tuple[Signal, Callable[..., None]]] = []

    def connect(signal: Signal) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = []

        def receiver(sender: Any, **kwargs: Any) -> None:
            kwargs.pop("signal")
            calls.append({"sender": sender, **kwargs})

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
        return calls

    yield connect
    for signal, receiver in connected:
        signal.disconnect(receiver)


class Rollback(Exception):
    pass


def test_poll_created_is_sent_after_commit(
    alice: Any, listen: Listen, django_capture_on_commit_callbacks: Any
) -> None:
    calls = listen(signals.poll_created)

    with django_capture_on_commit_callbacks(execute=True):
        poll = services.create_poll(created_by=alice, title="Lunch?", options=["Pizza", "Soup"])
        assert calls == []

    assert calls == [{"sender": Poll, "poll": poll, "created_by": alice}]


def test_poll_created_is_not_sent_when_the_transaction_rolls_back(
    alice: Any, listen: Listen, django_capture_on_commit_callbacks: Any
) -> None:
    calls = listen(signals.poll_created)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Rollback), transaction.atomic():
            services.create_poll(created_by=alice, title="Lunch?", options=["Pizza", "Soup"])
            raise Rollback
        with pytest.raises(services.InvalidInput):
            services.create_poll(created_by=alice, title="Lunch?", options=["Pizza"])

    assert callbacks == []
    assert calls == []
    assert not Poll.objects.exists()


def test_update_poll_sends_no_signal(
    single: Poll, listen: Listen, django_capture_on_commit_callbacks: Any
) -> None:
    calls = [listen(signal) for signal in (signals.poll_created, signals.poll_closed)]

    with django_capture_on_commit_callbacks(execute=True):
        services.update_poll(poll=single, title="Dinner?")

    assert calls == [[], []]


def test_vote_cast_is_sent_after_commit(
    multiple: Poll, alice: Any, listen: Listen, django_capture_on_commit_callbacks: Any
) -> None:
    calls = listen(signals.vote_cast)
    red, _, blue = ids(multiple)

    with django_capture_on_commit_callbacks(execute=True):
        services.cast_vote(poll_id=multiple.pk, voter=alice, option_ids=[blue, red])
        assert calls == []

    assert calls == [{"sender": Poll, "poll": multiple, "voter": alice, "option_ids": [blue, red]}]
    assert isinstance(calls[0]["poll"], Poll)


def test_vote_cast_is_not_sent_for_a_refused_ballot(
    single: Poll, alice: Any, listen: Listen, django_capture_on_commit_callbacks: Any
) -> None:
    pizza, soup, _ = ids(single)
    services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[pizza])
    calls = listen(signals.vote_cast)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(services.AlreadyVoted):
            services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[soup])
        with pytest.raises(services.InvalidInput):
            services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[pizza, soup])
        services.close_poll(poll=single)
        with pytest.raises(services.PollClosed):
            services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[soup])

    # poll_closed (on SQLite also the change for live results streams, see test_live.py)
    assert [c for c in callbacks if getattr(c, "func", None) is not live.publish_in_process] == [
        callbacks[-1]
    ]
    assert calls == []


def test_vote_cast_is_not_sent_when_the_transaction_rolls_back(
    single: Poll, alice: Any, listen: Listen, django_capture_on_commit_callbacks: Any
) -> None:
    calls = listen(signals.vote_cast)

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Rollback),
        transaction.atomic(),
    ):
        services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[ids(single)[0]])
        raise Rollback

    assert callbacks == []
    assert calls == []
    assert counters(single) == [0, 0, 0]


def test_vote_retracted_is_sent_after_commit(
    multiple: Poll, alice: Any, listen: Listen, django_capture_on_commit_callbacks: Any
) -> None:
    red, green, _ = ids(multiple)
    services.cast_vote(poll_id=multiple.pk, voter=alice, option_ids=[green, red])
    calls = listen(signals.vote_retracted)

    with django_capture_on_commit_callbacks(execute=True):
        services.retract_votes(poll_id=multiple.pk, voter=alice)
        assert calls == []

    assert calls == [{"sender": Poll, "poll": multiple, "voter": alice, "option_ids": [red, green]}]


def test_vote_retracted_is_not_sent_when_nothing_was_retracted(
    single: Poll,
    alice: Any,
    bob: Any,
    listen: Listen,
    django_capture_on_commit_callbacks: Any,
) -> None:
    services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[ids(single)[0]])
    calls = listen(signals.vote_retracted)

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(services.NotVoted):
            services.retract_votes(poll_id=single.pk, voter=bob)
        with pytest.raises(Rollback), transaction.atomic():
            services.retract_votes(poll_id=single.pk, voter=alice)
            raise Rollback

    assert calls == []
    assert chosen(single, alice) == [ids(single)[0]]


def test_poll_closed_is_sent_once_after_commit(
    single: Poll, listen: Listen, django_capture_on_commit_callbacks: Any
) -> None:
    calls = listen(signals.poll_closed)

    with django_capture_on_commit_callbacks(execute=True):
        services.close_poll(poll=single)
        assert calls == []
    with django_capture_on_commit_callbacks(execute=True) as again:
        services.close_poll(poll=Poll.objects.get(pk=single.pk))

    assert calls == [{"sender": Poll, "poll": single}]
    assert again == []


def test_poll_closed_is_not_sent_when_the_transaction_rolls_back(
    single: Poll, listen: Listen, django_capture_on_commit_callbacks: Any
) -> None:
    calls = listen(signals.poll_closed)

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Rollback),
        transaction.atomic(),
    ):
        services.close_poll(poll=single)
        raise Rollback

    assert callbacks == []
    assert calls == []
    assert Poll.objects.get(pk=single.pk).closed_at is None


# ---------------------------------------------------------------------------------------------
# Signals: a host's receiver that fails cannot undo or fail the change that has committed


class HostReceiverError(RuntimeError):
    pass


@pytest.fixture
def failing_receiver() -> Iterator[Listen]:
    """Connect a receiver that records its call and raises, as a host site's buggy one might."""
    connected: list[tuple[Signal, Callable[..., None]]] = []

    def connect(signal: Signal) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = []

        def receiver(sender: Any, **kwargs: Any) -> None:
            calls.append(kwargs)
            raise HostReceiverError("the host site's receiver failed")

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
        return calls

    try:
        yield connect
    finally:
        for signal, receiver in connected:
            signal.disconnect(receiver)


def assert_receiver_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Django logs the error of a robust on_commit callback (and does not raise it)."""
    failures = [
        record
        for record in caplog.records
        if record.exc_info and isinstance(record.exc_info[1], HostReceiverError)
    ]
    assert len(failures) == 1, caplog.records
    assert failures[0].levelno == logging.ERROR


def test_a_failing_poll_created_receiver_leaves_the_poll_created(
    alice: Any,
    failing_receiver: Listen,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = failing_receiver(signals.poll_created)

    with django_capture_on_commit_callbacks(execute=True):
        poll = services.create_poll(created_by=alice, title="Lunch?", options=["Pizza", "Soup"])

    assert len(calls) == 1
    stored = Poll.objects.get(pk=poll.pk)
    assert stored.created_by == alice
    assert [o.text for o in stored.options.order_by("order")] == ["Pizza", "Soup"]
    assert_receiver_error_logged(caplog)


def test_a_failing_vote_cast_receiver_leaves_the_vote_stored_and_counted(
    single: Poll,
    alice: Any,
    failing_receiver: Listen,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = failing_receiver(signals.vote_cast)
    soup = ids(single)[1]

    with django_capture_on_commit_callbacks(execute=True):
        receipt = services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[soup])

    assert len(calls) == 1
    assert (receipt.poll, receipt.options) == (single.pk, [soup])
    assert chosen(single, alice) == [soup]
    assert counters(single) == [0, 1, 0]
    assert_receiver_error_logged(caplog)


def test_a_failing_vote_retracted_receiver_leaves_the_votes_retracted(
    multiple: Poll,
    alice: Any,
    failing_receiver: Listen,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    red, green, _ = ids(multiple)
    services.cast_vote(poll_id=multiple.pk, voter=alice, option_ids=[red, green])
    calls = failing_receiver(signals.vote_retracted)

    with django_capture_on_commit_callbacks(execute=True):
        retracted = services.retract_votes(poll_id=multiple.pk, voter=alice)

    assert len(calls) == 1
    assert retracted == [red, green]
    assert chosen(multiple, alice) == []
    assert counters(multiple) == [0, 0, 0]
    assert_receiver_error_logged(caplog)


def test_a_failing_poll_closed_receiver_leaves_the_poll_closed(
    single: Poll,
    failing_receiver: Listen,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = failing_receiver(signals.poll_closed)

    with django_capture_on_commit_callbacks(execute=True):
        closed = services.close_poll(poll=single)

    assert len(calls) == 1
    assert closed.closed_at is not None
    assert Poll.objects.get(pk=single.pk).closed_at == closed.closed_at
    assert Poll.objects.get(pk=single.pk).is_active is False
    assert_receiver_error_logged(caplog)


# ---------------------------------------------------------------------------------------------
# Ballot policies: the rules hold for every caller (API, admin, a host's own code)


def test_create_poll_takes_every_policy(alice: Any) -> None:
    group = Group.objects.create(name="Board")
    opens_at = later(days=1)

    poll = services.create_poll(
        created_by=alice,
        title="Board election",
        options=["Ann", "Ben", "Cat"],
        method="multiple",
        min_choices=2,
        max_choices=2,
        opens_at=opens_at,
        results_visibility="after_close",
        anonymity="public",
        allow_vote_change=False,
        voter_group=group,
    )

    stored = Poll.objects.get(pk=poll.pk)
    assert (stored.method, stored.allow_multiple_votes) == ("multiple", True)
    assert (stored.min_choices, stored.max_choices, stored.opens_at) == (2, 2, opens_at)
    assert (stored.results_visibility, stored.anonymity) == ("after_close", "public")
    assert (stored.allow_vote_change, stored.voter_group) == (False, group)
    assert stored.status == "scheduled"


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"method": "approval"}, {"method": ['"approval" is not a valid choice.']}),
        ({"anonymity": "open"}, {"anonymity": ['"open" is not a valid choice.']}),
        (
            {"method": "single", "allow_multiple_votes": True},
            {"allow_multiple_votes": ['Contradicts method "single".']},
        ),
        (
            {"method": "multiple", "max_choices": 4},
            {"max_choices": ["max_choices (4) exceeds the number of options (3)."]},
        ),
        (
            {"anonymity": "secret", "allow_vote_change": True},
            {"allow_vote_change": ["A secret ballot cannot be changed: it must be false."]},
        ),
    ],
    ids=["method", "anonymity", "contradiction", "max", "secret"],
)
def test_create_poll_refuses_policies_that_break_a_rule(
    alice: Any, fields: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    with pytest.raises(services.InvalidInput) as excinfo:
        services.create_poll(
            created_by=alice, title="Board election", options=["Ann", "Ben", "Cat"], **fields
        )

    assert excinfo.value.errors == errors
    assert not Poll.objects.exists()


def test_a_poll_with_votes_keeps_its_terms_but_results_may_hide_further(voted: Poll) -> None:
    for change in (
        {"method": "multiple"},
        {"anonymity": "secret"},
        {"allow_vote_change": False},
        {"opens_at": later(days=1)},
    ):
        with pytest.raises(services.PollHasVotes):
            services.update_poll(poll=voted, **change)

    services.update_poll(poll=voted, results_visibility="owner", min_choices=1, max_choices=1)
    with pytest.raises(services.PollHasVotes):
        services.update_poll(poll=voted, results_visibility="after_vote")

    stored = Poll.objects.get(pk=voted.pk)
    assert (stored.method, stored.anonymity, stored.allow_vote_change) == (
        "single",
        "anonymous",
        True,
    )
    assert (stored.opens_at, stored.results_visibility) == (None, "owner")


def test_a_participation_alone_makes_a_poll_one_with_votes(single: Poll, alice: Any) -> None:
    assert services.has_votes(single) is False
    Participation.objects.create(poll=single, voter=alice, choices=1, min_choices=1, max_choices=1)

    assert services.has_votes(single) is True
    with pytest.raises(services.PollHasVotes):
        services.update_poll(poll=single, options=["Curry", "Ramen"])


def test_voter_groups_need_a_user_model_with_groups(alice: Any) -> None:
    assert services.voter_groups_supported() is True
    # A site whose users have no groups (AUTH_USER_MODEL without PermissionsMixin).
    with override_settings(AUTH_USER_MODEL="authtoken.Token"):
        assert services.voter_groups_supported() is False
        with pytest.raises(services.InvalidInput) as excinfo:
            services.create_poll(
                created_by=alice,
                title="Board election",
                options=["Ann", "Ben"],
                voter_group=Group.objects.create(name="Board"),
            )

    assert list(excinfo.value.errors) == ["voter_group"]
