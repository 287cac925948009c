"""Instant runoff (django_polls.methods.ranked.instant_runoff): hand-worked elections with known
answers, each documented edge case, and thousands of random elections checked against a
straightforward count of one ballot at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from django_polls.methods.ranked import Round, Runoff, Tally, instant_runoff

A, B, C, D = 1, 2, 3, 4


def election(*groups: tuple[int, Sequence[int]], order: Sequence[int] = (A, B, C)) -> Runoff:
    """Run instant runoff on ``(number of ballots, ranking)`` groups."""
    rankings: Counter[tuple[int, ...]] = Counter()
    for count, ranking in groups:
        rankings[tuple(ranking)] += count
    return instant_runoff(rankings, list(order))


def tallies(round_: Round) -> dict[int, int]:
    return {tally.id: tally.votes for tally in round_.tallies}


def test_a_majority_of_first_choices_wins_in_round_one() -> None:
    runoff = election((6, [A, B]), (3, [B]), (2, [C, A]))

    assert runoff.winner == A
    assert len(runoff.rounds) == 1
    assert tallies(runoff.rounds[0]) == {A: 6, B: 3, C: 2}
    assert runoff.rounds[0].exhausted == 0
    assert runoff.rounds[0].eliminated == []


def test_a_winner_after_two_eliminations() -> None:
    # Round 1: A 4, B 3, C 2, D 2 of 11: no majority; C and D tie for fewest: C had as many
    # votes in every round, so the last listed (D) goes first. Round 2: D's two ballots go to
    # C: A 4, B 3, C 4; B goes. Round 3: B's three go to C: A 4, C 7 of 11: C wins.
    runoff = election(
        (4, [A]),
        (3, [B, C]),
        (2, [C]),
        (2, [D, C]),
        order=(A, B, C, D),
    )

    assert [round_.eliminated for round_ in runoff.rounds] == [[D], [B], []]
    assert [tallies(round_) for round_ in runoff.rounds] == [
        {A: 4, B: 3, C: 2, D: 2},
        {A: 4, B: 3, C: 4},
        {A: 4, C: 7},
    ]
    assert runoff.winner == C


def test_exhausted_ballots_lower_the_majority_threshold() -> None:
    # 9 ballots. Round 1: A 4, B 3, C 2: no majority (5 needed). C goes; its two ballots rank
    # nothing else and are exhausted. Round 2: A 4, B 3 of the 7 left: 4 > 3.5, A wins with
    # less than half of all ballots.
    runoff = election((4, [A]), (3, [B]), (2, [C]))

    assert [round_.exhausted for round_ in runoff.rounds] == [0, 2]
    assert tallies(runoff.rounds[1]) == {A: 4, B: 3}
    assert runoff.winner == A


def test_a_tie_for_fewest_votes_eliminates_the_one_weaker_in_the_round_before() -> None:
    # Round 1: A 5, B 4, C 3, D 2 of 14: D goes, one ballot to C and one to B. Round 2: A 5,
    # B 5, C 4: C goes, its ballots to A (one of them is exhausted). Round 3: A 8 of 13 wins.
    runoff = election(
        (5, [A]), (4, [B, A]), (3, [C, A]), (1, [D, C]), (1, [D, B]), order=(A, B, C, D)
    )

    assert tallies(runoff.rounds[0]) == {A: 5, B: 4, C: 3, D: 2}
    assert tallies(runoff.rounds[1]) == {A: 5, B: 5, C: 4}
    assert runoff.rounds[1].eliminated == [C]
    assert runoff.winner == A

    # B and C tie at 4 in round 2; in round 1 B had 4 and C 3: C, weaker before, goes.
    tied = election((5, [A]), (4, [B]), (3, [C]), (1, [D, C]), order=(A, B, C, D))
    assert tallies(tied.rounds[1]) == {A: 5, B: 4, C: 4}
    assert tied.rounds[1].eliminated == [C]


def test_options_tied_in_every_round_go_last_listed_first() -> None:
    runoff = election((2, [A]), (1, [B, A]), (1, [C, A]))

    # B and C tie at 1 in round 1, the only round: C, listed last, goes.
    assert runoff.rounds[0].eliminated == [C]
    assert tallies(runoff.rounds[1]) == {A: 3, B: 1}
    assert runoff.winner == A


def test_options_without_votes_are_eliminated_together() -> None:
    runoff = election((2, [A, C]), (2, [B, D]), order=(A, B, C, D))

    assert runoff.rounds[0].eliminated == [C, D]
    assert tallies(runoff.rounds[1]) == {A: 2, B: 2}
    assert (runoff.winner, runoff.tied) == (None, [A, B])


def test_all_options_tied_is_a_tie_without_a_winner() -> None:
    runoff = election((2, [A]), (2, [B]), (2, [C]))

    assert len(runoff.rounds) == 1
    assert runoff.winner is None
    assert runoff.tied == [A, B, C]
    assert runoff.rounds[0].eliminated == []


def test_a_tie_between_the_last_two_ends_the_rounds() -> None:
    runoff = election((2, [A]), (2, [B]), (1, [C]))

    # C goes (fewest) and its ballot is exhausted: A 2, B 2 of 4, no majority, all tied.
    assert runoff.rounds[0].eliminated == [C]
    assert runoff.rounds[1].exhausted == 1
    assert runoff.winner is None
    assert runoff.tied == [A, B]


def test_every_ballot_exhausted_leaves_no_winner() -> None:
    # Only ids that are not options of the poll (deleted, or of another poll): nothing counts.
    runoff = election((3, [8, 9]))

    assert runoff.winner is None
    assert runoff.rounds[0].exhausted == 3
    assert runoff.tied == [A, B, C]


def test_the_one_option_left_standing_wins_with_its_ballots() -> None:
    # Two options left tie (no winner) or one has a majority; so one option alone is left only
    # where it is the only one: it wins with any ballot that ranks it.
    assert election((2, [A]), order=(A,)).winner == A
    alone = election((2, [B]), order=(A,))  # ballots for ids that are not options
    assert (alone.winner, alone.tied, alone.rounds[0].exhausted) == (None, [A], 2)
    # Every other option without votes: the last one standing has every live ballot.
    assert election((1, [C, A]), order=(A, B, C)).winner == C


def test_no_ballots_no_rounds_no_winner() -> None:
    assert election() == Runoff(rounds=[], winner=None, tied=[])
    assert election((0, [A])) == Runoff(rounds=[], winner=None, tied=[])


# ---------------------------------------------------------------------------------------------
# Against a straightforward count, one ballot at a time


def per_ballot(ballots: Sequence[Sequence[int]], order: Sequence[int]) -> Runoff:
    """Instant runoff as a person would count it: every ballot, every round, from the top."""
    if not ballots:
        return Runoff(rounds=[], winner=None, tied=[])
    standing = list(order)
    history: list[dict[int, int]] = []
    rounds: list[Round] = []
    while True:
        votes = dict.fromkeys(standing, 0)
        exhausted = 0
        for ballot in ballots:
            for option in ballot:
                if option in votes:
                    votes[option] += 1
                    break
            else:
                exhausted += 1
        history.append(votes)
        counted = [Tally(id=option, votes=votes[option]) for option in standing]
        live = sum(votes.values())
        winners = [option for option in standing if live and votes[option] * 2 > live]
        if winners:
            rounds.append(Round(tallies=counted, exhausted=exhausted, eliminated=[]))
            return Runoff(rounds=rounds, winner=winners[0], tied=[])
        if max(votes.values()) == min(votes.values()):
            rounds.append(Round(tallies=counted, exhausted=exhausted, eliminated=[]))
            return Runoff(rounds=rounds, winner=None, tied=list(standing))
        out = [option for option in standing if votes[option] == 0]
        if not out:
            fewest = min(votes.values())
            candidates = [option for option in standing if votes[option] == fewest]
            for earlier in reversed(history[:-1]):
                least = min(earlier[option] for option in candidates)
                candidates = [option for option in candidates if earlier[option] == least]
            out = [candidates[-1]]  # standing keeps the poll's order
        rounds.append(Round(tallies=counted, exhausted=exhausted, eliminated=out))
        standing = [option for option in standing if option not in out]


@st.composite
def elections(draw: Any) -> tuple[list[list[int]], list[int]]:
    order = list(range(10, 10 + draw(st.integers(min_value=1, max_value=6))))
    ranking = st.permutations(order).flatmap(
        lambda full: st.integers(min_value=1, max_value=len(full)).map(lambda n: full[:n])
    )
    return draw(st.lists(ranking, max_size=40)), order


@settings(max_examples=3000, deadline=None)
@given(elections())
def test_counting_distinct_rankings_agrees_with_counting_each_ballot(
    drawn: tuple[list[list[int]], list[int]],
) -> None:
    ballots, order = drawn
    rankings = Counter(tuple(ballot) for ballot in ballots)

    assert instant_runoff(rankings, order) == per_ballot(ballots, order)
