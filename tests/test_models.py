"""The database itself holds the voting rules, and the models' small queries and properties.

The integrity tests bypass :mod:`django_polls.services` and write rows directly, as a bug, a data
migration or a hand-written SQL fix would: the database must refuse what the services would. They
run on SQLite (triggers) and on PostgreSQL, MySQL and MariaDB (composite foreign keys), and each
checks, by the database's message, which rule refused the write (:func:`refused_by`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from django_polls import services
from django_polls.models import Option, Poll, Vote
from tests.conftest import expire

pytestmark = pytest.mark.django_db


@pytest.fixture
def single(make_poll: Callable[..., Poll]) -> Poll:
    return make_poll(title="Single", options=("Pizza", "Soup", "Salad"))


@pytest.fixture
def multiple(make_poll: Callable[..., Poll]) -> Poll:
    return make_poll(title="Multiple", options=("Red", "Green", "Blue"), allow_multiple_votes=True)


def options_of(poll: Poll) -> list[Option]:
    return list(poll.options.order_by("order"))


def add_vote(poll: Poll, option: Option, voter: Any, **fields: Any) -> Vote:
    """A vote row written straight to the database, as the services would write it."""
    fields.setdefault("poll_allows_multiple", poll.allow_multiple_votes)
    return Vote.objects.create(poll=poll, option=option, voter=voter, **fields)


# ---------------------------------------------------------------------------------------------
# Which rule refused a write: each database words the refusal its own way.


def _constraint(name: str) -> dict[str, tuple[type[Exception], str]]:
    """A rule PostgreSQL and MySQL/MariaDB know by name (a constraint or unique index)."""
    quoted = re.escape(name)
    return {
        "postgresql": (IntegrityError, rf'constraint "{quoted}"'),
        # Duplicate entry '...' for key '<index>' (MySQL prefixes the table);
        # ... CONSTRAINT `<name>` FOREIGN KEY ...
        "mysql": (IntegrityError, rf"for key '(?:\w+\.)?{quoted}'|CONSTRAINT `{quoted}` "),
    }


def _check(name: str) -> dict[str, tuple[type[Exception], str]]:
    """A check constraint, which SQLite names too."""
    return {
        **_constraint(name),
        "sqlite": (IntegrityError, rf"^CHECK constraint failed: {re.escape(name)}$"),
    }


def _sqlite_unique(table: str, *columns: str) -> tuple[type[Exception], str]:
    listed = ", ".join(f"{table}.{column}" for column in columns)
    return IntegrityError, rf"^UNIQUE constraint failed: {re.escape(listed)}$"


def _sqlite_trigger(message: str) -> tuple[type[Exception], str]:
    """The RAISE(ABORT, ...) of a trigger of migration 0002."""
    return IntegrityError, rf"^FOREIGN KEY constraint failed: {re.escape(message)}$"


# Rule -> vendor -> (exception, pattern of its message). On SQLite the triggers of migration
# 0002 stand in for the two composite foreign keys, and a vote's insert or update trigger
# checks both at once: its message cannot tell them apart.
REFUSALS: dict[str, dict[str, tuple[type[Exception], str]]] = {
    "vote_once_per_option": {
        **_constraint("django_polls_vote_once_per_option"),
        "sqlite": _sqlite_unique("django_polls_vote", "poll_id", "voter_id", "option_id"),
    },
    "vote_once_per_poll": {
        **_constraint("django_polls_vote_once_per_poll"),
        "sqlite": _sqlite_unique("django_polls_vote", "poll_id", "voter_id"),
    },
    "vote_option_in_poll": {
        **_constraint("django_polls_vote_option_in_poll"),
        "sqlite": _sqlite_trigger("vote does not match its poll"),
    },
    "option_with_votes_stays_in_poll": {
        **_constraint("django_polls_vote_option_in_poll"),
        "sqlite": _sqlite_trigger("the option has votes"),
    },
    "vote_mode_of_poll": {
        **_constraint("django_polls_vote_mode_of_poll"),
        "sqlite": _sqlite_trigger("vote does not match its poll"),
    },
    "poll_with_votes_keeps_mode": {
        **_constraint("django_polls_vote_mode_of_poll"),
        "sqlite": _sqlite_trigger("the poll has votes"),
    },
    "poll_mode_of_method": _check("django_polls_poll_mode_of_method"),
    "option_unique_text": {
        **_constraint("django_polls_option_unique_text"),
        "sqlite": (
            IntegrityError,
            r"^UNIQUE constraint failed: index 'django_polls_option_unique_text'$",
        ),
    },
    "option_unique_order": {
        **_constraint("django_polls_option_unique_order"),
        "sqlite": _sqlite_unique("django_polls_option", "poll_id", "order"),
    },
    "option_votes_not_negative": {
        "postgresql": (IntegrityError, r'constraint "django_polls_option_votes_check"'),
        # The unsigned column: ``votes - 1`` is computed unsigned and cannot go below 0.
        "mysql": (IntegrityError, r"UNSIGNED value is out of range in .*`votes` - 1"),
        "sqlite": (IntegrityError, r"^CHECK constraint failed: votes$"),
    },
    "option_votes_in_range": {
        "postgresql": (IntegrityError, r'constraint "django_polls_option_votes_check"'),
        # MySQL and MariaDB (strict mode) refuse an out-of-range value of an unsigned column.
        "mysql": (DataError, r"Out of range value for column 'votes'"),
        "sqlite": (IntegrityError, r"^CHECK constraint failed: votes$"),
    },
}


@contextmanager
def refused_by(rule: str) -> Iterator[None]:
    """The block's write is refused by ``rule`` (no other), inside a savepoint of its own."""
    error, pattern = REFUSALS[rule][connection.vendor]
    with pytest.raises(error, match=pattern), transaction.atomic():
        yield


# ---------------------------------------------------------------------------------------------
# One vote per option, one vote per single-vote poll


def test_a_second_row_for_the_same_poll_voter_and_option_is_refused(
    multiple: Poll, alice: Any
) -> None:
    red = options_of(multiple)[0]
    add_vote(multiple, red, alice)

    with refused_by("vote_once_per_option"):
        add_vote(multiple, red, alice)

    assert Vote.objects.filter(poll=multiple, voter=alice).count() == 1


def test_a_second_row_for_the_same_voter_on_a_single_vote_poll_is_refused(
    single: Poll, alice: Any
) -> None:
    pizza, soup, _ = options_of(single)
    add_vote(single, pizza, alice)

    with refused_by("vote_once_per_poll"):
        add_vote(single, soup, alice)

    assert list(Vote.objects.filter(voter=alice).values_list("option", flat=True)) == [pizza.pk]


def test_on_a_multiple_vote_poll_one_voter_may_have_rows_for_different_options(
    multiple: Poll, alice: Any
) -> None:
    red, green, blue = options_of(multiple)

    for option in (red, green, blue):
        add_vote(multiple, option, alice)

    assert Vote.objects.filter(poll=multiple, voter=alice).count() == 3


def test_different_voters_may_choose_the_same_option_of_a_single_vote_poll(
    single: Poll, alice: Any, bob: Any
) -> None:
    pizza = options_of(single)[0]

    add_vote(single, pizza, alice)
    add_vote(single, pizza, bob)

    assert Vote.objects.filter(option=pizza).count() == 2


def test_deleting_a_voter_keeps_their_votes_anonymously(
    single: Poll, make_user: Callable[..., Any]
) -> None:
    """Two deleted accounts' votes on one single-vote poll both stay (NULL voters never clash)."""
    pizza, soup, _ = options_of(single)
    first, second = make_user(), make_user()
    services.cast_vote(poll_id=single.pk, voter=first, option_ids=[pizza.pk])
    services.cast_vote(poll_id=single.pk, voter=second, option_ids=[soup.pk])

    first.delete()
    second.delete()

    assert list(Vote.objects.filter(poll=single).values_list("voter", flat=True)) == [None, None]
    assert Poll.objects.get(pk=single.pk).total_votes == 2


# ---------------------------------------------------------------------------------------------
# A vote matches its poll


def test_a_vote_for_an_option_of_another_poll_is_refused(
    single: Poll, multiple: Poll, alice: Any
) -> None:
    foreign = options_of(multiple)[0]

    with refused_by("vote_option_in_poll"):
        add_vote(single, foreign, alice)

    assert not Vote.objects.exists()


def test_moving_a_vote_to_an_option_of_another_poll_is_refused(
    single: Poll, multiple: Poll, alice: Any
) -> None:
    vote = add_vote(single, options_of(single)[0], alice)

    with refused_by("vote_option_in_poll"):
        Vote.objects.filter(pk=vote.pk).update(option=options_of(multiple)[1])

    assert Vote.objects.get(pk=vote.pk).option_id == options_of(single)[0].pk


def test_moving_an_option_with_votes_to_another_poll_is_refused(
    single: Poll, multiple: Poll, alice: Any
) -> None:
    pizza, _, salad = options_of(single)
    add_vote(single, pizza, alice)

    with refused_by("option_with_votes_stays_in_poll"):
        Option.objects.filter(pk=pizza.pk).update(poll=multiple, order=99)

    assert Option.objects.get(pk=pizza.pk).poll_id == single.pk
    # The same move of an option nobody chose is allowed: it was the vote that stood in the way.
    Option.objects.filter(pk=salad.pk).update(poll=multiple, order=98)
    assert Option.objects.get(pk=salad.pk).poll_id == multiple.pk


@pytest.mark.parametrize("flag_on_vote", [True, False], ids=["says-multiple", "says-single"])
def test_a_vote_whose_copy_of_the_vote_mode_disagrees_with_its_poll_is_refused(
    single: Poll, multiple: Poll, alice: Any, flag_on_vote: bool
) -> None:
    poll = multiple if not flag_on_vote else single
    option = options_of(poll)[0]

    with refused_by("vote_mode_of_poll"):
        add_vote(poll, option, alice, poll_allows_multiple=flag_on_vote)

    assert not Vote.objects.exists()


def test_a_single_vote_poll_cannot_be_dodged_by_a_vote_claiming_multiple(
    single: Poll, alice: Any
) -> None:
    """The partial unique index only covers rows flagged single: the flag must be the poll's."""
    pizza, soup, _ = options_of(single)
    add_vote(single, pizza, alice)

    with refused_by("vote_mode_of_poll"):
        add_vote(single, soup, alice, poll_allows_multiple=True)

    assert Vote.objects.filter(voter=alice).count() == 1


@pytest.mark.parametrize("allow_multiple", [False, True], ids=["to-multiple", "to-single"])
def test_switching_the_vote_mode_of_a_poll_with_votes_is_refused(
    make_poll: Callable[..., Poll], alice: Any, allow_multiple: bool
) -> None:
    poll = make_poll(allow_multiple_votes=allow_multiple)
    add_vote(poll, options_of(poll)[0], alice)

    with refused_by("poll_with_votes_keeps_mode"):
        Poll.objects.filter(pk=poll.pk).update(
            method="single" if allow_multiple else "multiple",
            allow_multiple_votes=not allow_multiple,
        )

    assert Poll.objects.get(pk=poll.pk).allow_multiple_votes is allow_multiple


def test_switching_the_vote_mode_of_a_poll_without_votes_is_fine(single: Poll) -> None:
    Poll.objects.filter(pk=single.pk).update(method="multiple", allow_multiple_votes=True)

    assert Poll.objects.get(pk=single.pk).allow_multiple_votes is True


def test_a_vote_mode_that_contradicts_the_method_is_refused(single: Poll) -> None:
    with refused_by("poll_mode_of_method"):
        Poll.objects.filter(pk=single.pk).update(allow_multiple_votes=True)

    assert Poll.objects.get(pk=single.pk).allow_multiple_votes is False


def test_switching_the_vote_mode_with_a_raw_sql_update_is_refused(single: Poll, alice: Any) -> None:
    add_vote(single, options_of(single)[0], alice)
    table = connection.ops.quote_name(Poll._meta.db_table)

    with refused_by("poll_with_votes_keeps_mode"), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET method = %s, allow_multiple_votes = %s WHERE id = %s",
            ["multiple", True, single.pk],
        )

    assert Poll.objects.get(pk=single.pk).allow_multiple_votes is False


# ---------------------------------------------------------------------------------------------
# Counters and option texts


def test_a_negative_vote_counter_is_refused(single: Poll) -> None:
    pizza = options_of(single)[0]

    with refused_by("option_votes_not_negative"):
        Option.objects.filter(pk=pizza.pk).update(votes=F("votes") - 1)

    assert Option.objects.get(pk=pizza.pk).votes == 0


def test_a_negative_vote_counter_set_outright_is_refused(single: Poll) -> None:
    pizza = options_of(single)[0]
    Option.objects.filter(pk=pizza.pk).update(votes=3)

    with refused_by("option_votes_in_range"):
        Option.objects.filter(pk=pizza.pk).update(votes=-1)

    assert Option.objects.get(pk=pizza.pk).votes == 3


@pytest.mark.parametrize("text", ["pizza", "PIZZA", "Pizza", "pIzZa"])
def test_two_options_of_one_poll_may_not_differ_only_in_case(single: Poll, text: str) -> None:
    with refused_by("option_unique_text"):
        Option.objects.create(poll=single, text=text, order=10)

    assert single.options.count() == 3


@pytest.mark.parametrize("text", ["Pizzà", "Pizza ", "Piz za"])
def test_options_that_differ_by_more_than_case_are_distinct(single: Poll, text: str) -> None:
    # Not equal under lower() anywhere, although MySQL's accent- and space-insensitive
    # collations would equate some of them.
    Option.objects.create(poll=single, text=text, order=10)

    assert Option.objects.filter(poll=single).count() == 4


def test_the_same_option_text_in_different_polls_is_fine(single: Poll, multiple: Poll) -> None:
    Option.objects.create(poll=multiple, text="PIZZA", order=10)

    assert Option.objects.filter(text__iexact="pizza").count() == 2


def test_two_options_of_one_poll_may_not_share_a_position(single: Poll) -> None:
    with refused_by("option_unique_order"):
        Option.objects.create(poll=single, text="Curry", order=0)

    assert single.options.count() == 3


# ---------------------------------------------------------------------------------------------
# Model behaviour


def test_a_new_poll_is_active(make_poll: Callable[..., Poll]) -> None:
    assert make_poll().is_active is True
    assert make_poll(expires_at=timezone.now() + timedelta(hours=1)).is_active is True


def test_a_closed_poll_is_not_active(make_poll: Callable[..., Poll]) -> None:
    poll = make_poll(expires_at=timezone.now() + timedelta(hours=1))

    services.close_poll(poll=poll)

    assert poll.is_active is False
    assert Poll.objects.get(pk=poll.pk).is_active is False


def test_an_expired_poll_is_not_active(make_poll: Callable[..., Poll]) -> None:
    poll = make_poll(expires_at=timezone.now() + timedelta(hours=1))

    expire(poll)

    assert poll.is_active is False


@pytest.fixture
def polls_in_every_state(make_poll: Callable[..., Poll]) -> dict[str, Poll]:
    soon = timezone.now() + timedelta(hours=1)
    polls = {
        "open": make_poll(title="Open"),
        "expiring": make_poll(title="Expiring", expires_at=soon),
        "closed": make_poll(title="Closed"),
        "expired": make_poll(title="Expired", expires_at=soon),
    }
    services.close_poll(poll=polls["closed"])
    expire(polls["expired"])
    return polls


def titles(polls: Any) -> set[str]:
    return {poll.title for poll in polls}


def test_open_lists_polls_that_take_votes(polls_in_every_state: dict[str, Poll]) -> None:
    assert titles(Poll.objects.open()) == {"Open", "Expiring"}


def test_finished_lists_closed_and_expired_polls(polls_in_every_state: dict[str, Poll]) -> None:
    assert titles(Poll.objects.finished()) == {"Closed", "Expired"}


def test_open_and_finished_at_a_later_time_count_the_expiry_then(
    polls_in_every_state: dict[str, Poll],
) -> None:
    later = timezone.now() + timedelta(hours=2)

    assert titles(Poll.objects.open(at=later)) == {"Open"}
    assert titles(Poll.objects.finished(at=later)) == {"Expiring", "Closed", "Expired"}


def test_a_poll_expiring_exactly_now_is_finished(make_poll: Callable[..., Poll]) -> None:
    poll = make_poll(expires_at=timezone.now() + timedelta(hours=1))
    assert poll.expires_at is not None

    assert not Poll.objects.open(at=poll.expires_at).exists()
    assert Poll.objects.finished(at=poll.expires_at).get() == poll


def test_search_matches_title_and_description_ignoring_case(
    make_poll: Callable[..., Poll],
) -> None:
    make_poll(title="Best LUNCH spot")
    make_poll(title="Weekend plans", description="Somewhere for lunch on Sunday?")
    make_poll(title="Team offsite", description="Dinner only")

    assert titles(Poll.objects.search("lunch")) == {"Best LUNCH spot", "Weekend plans"}
    assert titles(Poll.objects.search("OFFSITE")) == {"Team offsite"}
    assert not Poll.objects.search("breakfast").exists()


def test_search_combines_with_open(polls_in_every_state: dict[str, Poll]) -> None:
    assert titles(Poll.objects.open().search("exp")) == {"Expiring"}


def test_total_votes_counts_every_selection(multiple: Poll, alice: Any, bob: Any) -> None:
    red, green, blue = options_of(multiple)
    services.cast_vote(poll_id=multiple.pk, voter=alice, option_ids=[red.pk, green.pk, blue.pk])
    services.cast_vote(poll_id=multiple.pk, voter=bob, option_ids=[green.pk])

    assert Poll.objects.get(pk=multiple.pk).total_votes == 4


def test_total_votes_of_a_poll_without_votes_is_zero(single: Poll) -> None:
    assert single.total_votes == 0


def test_polls_are_listed_newest_first_with_ties_broken_by_higher_id(
    make_poll: Callable[..., Poll],
) -> None:
    first, second, third = (make_poll(title=title) for title in ("First", "Second", "Third"))
    Poll.objects.filter(pk__in=[first.pk, second.pk]).update(created_at=timezone.now())
    Poll.objects.filter(pk=third.pk).update(created_at=timezone.now() - timedelta(days=1))

    assert list(Poll.objects.all()) == [second, first, third]


def test_options_are_kept_in_creation_order(make_poll: Callable[..., Poll]) -> None:
    poll = make_poll(options=("Zebra", "apple", "Mango"))

    assert [option.text for option in Poll.objects.for_listing().get(pk=poll.pk).options.all()] == [
        "Zebra",
        "apple",
        "Mango",
    ]


def test_str_shows_the_poll_title_and_option_text(single: Poll) -> None:
    assert str(single) == "Single"
    assert [str(option) for option in options_of(single)] == ["Pizza", "Soup", "Salad"]
