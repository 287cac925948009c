"""``manage.py polls_recount``: find, report and repair counters that drifted from their votes."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from django_polls import services
from django_polls.models import OPTION_COUNT_SLOTS, Option, OptionCount, Poll, Tally, counted_votes
from django_polls.services.counts import set_count

pytestmark = pytest.mark.django_db


def recount(*args: str) -> str:
    out = io.StringIO()
    call_command("polls_recount", *args, stdout=out)
    return out.getvalue()


def counters(poll: Poll) -> list[int]:
    return list(
        poll.options.order_by("order")
        .annotate(counted=counted_votes())
        .values_list("counted", flat=True)
    )


def ids(poll: Poll) -> list[int]:
    return list(poll.options.order_by("order").values_list("pk", flat=True))


@pytest.fixture
def polls(make_poll: Callable[..., Poll], make_user: Callable[..., Any]) -> tuple[Poll, Poll]:
    """Two polls with votes: lunch 2 / 1 / 0 and colours 1 / 1 / 0."""
    lunch = make_poll(title="Lunch?", options=("Pizza", "Soup", "Salad"))
    colours = make_poll(
        title="Colours", options=("Red", "Green", "Blue"), allow_multiple_votes=True
    )
    for option in (0, 0, 1):
        services.cast_vote(poll_id=lunch.pk, voter=make_user(), option_ids=[ids(lunch)[option]])
    services.cast_vote(poll_id=colours.pk, voter=make_user(), option_ids=ids(colours)[:2])
    return lunch, colours


@pytest.fixture
def drifted(polls: tuple[Poll, Poll]) -> tuple[Poll, Poll]:
    """The same polls with three counters gone wrong: Pizza 7 (2 rows), Salad 4 (0), Red 0 (1)."""
    lunch, colours = polls
    pizza, _, salad = ids(lunch)
    set_count(pizza, 7)
    set_count(salad, 4)
    set_count(ids(colours)[0], 0)
    return lunch, colours


def test_a_consistent_database_has_no_drift(polls: tuple[Poll, Poll]) -> None:
    output = recount()

    assert output == "No drift: every count matches its vote rows.\n"


def test_an_empty_database_has_no_drift() -> None:
    assert "No drift" in recount()


def test_drift_is_reported_and_fails_without_changing_anything(
    drifted: tuple[Poll, Poll],
) -> None:
    lunch, colours = drifted
    pizza, _, salad = ids(lunch)
    red = ids(colours)[0]
    out = io.StringIO()

    with pytest.raises(CommandError) as excinfo:
        call_command("polls_recount", stdout=out)

    assert out.getvalue().splitlines() == [
        f"poll {lunch.pk} option {pizza}: stored 7, rows 2",
        f"poll {lunch.pk} option {salad}: stored 4, rows 0",
        f"poll {colours.pk} option {red}: stored 0, rows 1",
    ]
    assert str(excinfo.value) == "3 count(s) drift; run with --fix to repair."
    # manage.py turns a CommandError into this exit status.
    assert excinfo.value.returncode == 1
    assert counters(lunch) == [7, 1, 4]
    assert counters(colours) == [0, 1, 0]


def test_fix_repairs_the_drift_so_a_second_run_finds_none(drifted: tuple[Poll, Poll]) -> None:
    lunch, colours = drifted

    output = recount("--fix")

    assert output.splitlines()[-1] == "Repaired 3 count(s)."
    assert len(output.splitlines()) == 4
    assert counters(lunch) == [2, 1, 0]
    assert counters(colours) == [1, 1, 0]
    assert "No drift" in recount()
    assert "No drift" in recount("--fix")


def test_drift_in_a_slot_is_found_and_repaired(polls: tuple[Poll, Poll]) -> None:
    """An option's count is its counter plus its slots: a slot that drifted shows in the
    option's count, and the repair sets the counter to the vote rows and removes the slots."""
    lunch, _ = polls
    pizza, soup, _ = ids(lunch)
    OptionCount.objects.update_or_create(
        option_id=soup, slot=OPTION_COUNT_SLOTS - 1, defaults={"votes": 5}
    )
    before = counters(lunch)
    out = io.StringIO()

    with pytest.raises(CommandError):
        call_command("polls_recount", stdout=out)
    fixed = recount("--fix")

    assert f"poll {lunch.pk} option {soup}: stored {before[1]}, rows 1" in out.getvalue()
    assert before[1] > 1
    assert f"poll {lunch.pk} option {soup}: stored {before[1]}, rows 1" in fixed
    assert counters(lunch) == [2, 1, 0]
    assert not OptionCount.objects.filter(option_id=soup).exists()
    assert Option.objects.get(pk=soup).votes == 1
    assert recount() == "No drift: every count matches its vote rows.\n"
    assert OptionCount.objects.filter(option_id=pizza).exists() == (
        connection.vendor == "postgresql"
    )


def test_poll_limits_the_report_to_that_poll(drifted: tuple[Poll, Poll]) -> None:
    _, colours = drifted
    out = io.StringIO()

    with pytest.raises(CommandError) as excinfo:
        call_command("polls_recount", "--poll", str(colours.pk), stdout=out)

    assert out.getvalue() == f"poll {colours.pk} option {ids(colours)[0]}: stored 0, rows 1\n"
    assert str(excinfo.value).startswith("1 count(s) drift")


def test_poll_limits_the_fix_to_that_poll(drifted: tuple[Poll, Poll]) -> None:
    lunch, colours = drifted

    output = recount("--fix", "--poll", str(lunch.pk))

    assert f"poll {colours.pk}" not in output
    assert output.splitlines()[-1] == "Repaired 2 count(s)."
    assert counters(lunch) == [2, 1, 0]
    assert counters(colours) == [0, 1, 0]
    assert "No drift" in recount("--poll", str(lunch.pk))
    with pytest.raises(CommandError):
        recount("--poll", str(colours.pk))


def test_poll_is_repeatable(drifted: tuple[Poll, Poll], make_poll: Callable[..., Poll]) -> None:
    lunch, colours = drifted
    untouched = make_poll(title="Untouched")
    set_count(ids(untouched)[0], 5)

    output = recount("--fix", "--poll", str(lunch.pk), "--poll", str(colours.pk))

    assert output.splitlines()[-1] == "Repaired 3 count(s)."
    assert counters(untouched) == [5, 0]


def test_poll_with_a_consistent_poll_reports_no_drift(
    drifted: tuple[Poll, Poll], make_poll: Callable[..., Poll]
) -> None:
    """Drift elsewhere does not fail a run that is limited to a consistent poll."""
    consistent = make_poll(title="Fresh")

    assert "No drift" in recount("--poll", str(consistent.pk))


# ---------------------------------------------------------------------------------------------
# Polls whose ballots are stored whole: ranked, score


@pytest.fixture
def method_polls(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> tuple[Poll, Poll]:
    """A ranked poll with rankings (A, B) twice and (B) once; a score poll with A:4 B:1 and A:2."""
    ranked = make_poll(title="Rank", options=("A", "B", "C"), method="ranked")
    scored = make_poll(title="Score", options=("A", "B", "C"), method="score")
    a, b, _ = ids(ranked)
    for ranking in ([a, b], [a, b], [b]):
        services.cast_ballot(poll_id=ranked.pk, voter=make_user(), data={"ranking": ranking})
    x, y, _ = ids(scored)
    for entries in ([(x, 4), (y, 1)], [(x, 2)]):
        data = {"scores": [{"option": option, "score": score} for option, score in entries]}
        services.cast_ballot(poll_id=scored.pk, voter=make_user(), data=data)
    return ranked, scored


def test_ranked_and_score_counts_are_checked_against_their_ballots(
    method_polls: tuple[Poll, Poll],
) -> None:
    ranked, scored = method_polls
    assert recount() == "No drift: every count matches its vote rows.\n"
    a, b, c = ids(ranked)
    set_count(c, 3)
    Tally.objects.filter(poll=ranked, key=f"{a},{b}").update(ballots=5)
    Tally.objects.filter(poll=scored, key=f"{ids(scored)[0]}:2").delete()

    with pytest.raises(CommandError) as excinfo:
        recount()
    assert str(excinfo.value) == "3 count(s) drift; run with --fix to repair."

    output = recount("--fix")
    assert output.splitlines() == [
        f"poll {ranked.pk} option {c}: stored 3, ballots 0",
        f"poll {ranked.pk} count '{a},{b}': stored 5, ballots 2",
        f"poll {scored.pk} count '{ids(scored)[0]}:2': stored 0, ballots 1",
        "Repaired 3 count(s).",
    ]
    assert counters(ranked) == [2, 3, 0]
    assert recount() == "No drift: every count matches its vote rows.\n"
    assert services.results_for(poll=scored).options[0].distribution == [0, 0, 1, 0, 1, 0]


def test_secret_polls_say_what_was_checked(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    single = make_poll(anonymity="secret")
    ranked = make_poll(method="ranked", anonymity="secret")
    a, b = ids(ranked)
    for ranking in ([a, b], [b]):
        services.cast_ballot(poll_id=ranked.pk, voter=make_user(), data={"ranking": ranking})

    assert recount().splitlines() == [
        f"poll {single.pk} is secret: it keeps no ballots, so its counts cannot be checked.",
        f"poll {ranked.pk} is secret: it keeps no ballots; its options' votes were checked "
        "against its tallies, which nothing can check.",
        "No drift: every count matches its vote rows.",
    ]
    # An option's votes that its tallies do not add up to: found, and set from the tallies.
    set_count(a, 5)
    with pytest.raises(CommandError):
        recount()
    assert recount("--fix").splitlines()[0] == f"poll {ranked.pk} option {a}: stored 5, tallies 1"
    assert counters(ranked) == [1, 2]
