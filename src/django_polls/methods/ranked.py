"""Ranked choice, counted by instant runoff.

A ballot ``{"ranking": [22, 21, 23]}`` lists distinct options of the poll, most preferred first,
``min_choices`` to ``max_choices`` of them. The poll keeps a count per distinct ranking (the tally
key ``"22,21,23"``), and the rounds are run over those counts, never over ballots: their cost
grows with the number of distinct rankings, not of ballots.

The rounds (:func:`instant_runoff`):

* Each round counts every ballot for its most preferred option still in the race. A ballot whose
  options are all out is *exhausted*, and counts in no later round.
* An option with more than half of the round's non-exhausted ballots wins, and the rounds end.
* Otherwise, when every option still in the race has the same number of votes (all tied, which
  includes every ballot exhausted), the rounds end in a tie: no winner, ``tied`` names them.
* Otherwise options are eliminated: every option with no votes at once (there is nothing of
  theirs to pass on), else the one with the fewest votes. **Tie rule**: among options tied for
  the fewest votes, the one with fewer votes in the round before is eliminated, and so on back to
  the first round; options tied in every round go in the reverse of the poll's order (the last
  listed first). The rule is deterministic and needs nothing but the counts.
* With no ballots there are no rounds and no winner.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.utils.translation import gettext

from django_polls.conf import polls_settings
from django_polls.methods.base import Counts, OptionResult, VotingMethod, is_id


@dataclasses.dataclass(frozen=True)
class Tally:
    id: int
    votes: int


@dataclasses.dataclass(frozen=True)
class Round:
    """One round: the votes of each option still in the race (in the poll's order), the ballots
    exhausted so far, and the options eliminated at its end."""

    tallies: list[Tally]
    exhausted: int
    eliminated: list[int]


@dataclasses.dataclass(frozen=True)
class Runoff:
    rounds: list[Round]
    winner: int | None
    tied: list[int]


@dataclasses.dataclass(frozen=True)
class RankedOptionResult(OptionResult):
    #: The ballots that rank this option first.
    first_choices: int


@dataclasses.dataclass(frozen=True)
class RankedResults:
    poll: int
    method: str
    is_active: bool
    total_votes: int
    total_voters: int
    options: list[RankedOptionResult]
    #: Ballots counted (a ballot is one voter's ranking).
    ballots: int
    rounds: list[Round]
    winner: int | None
    #: The options still tied when the rounds ended without a winner (else empty).
    tied: list[int]


def instant_runoff(rankings: Mapping[tuple[int, ...], int], order: Sequence[int]) -> Runoff:
    """Instant runoff over ``rankings`` (each distinct ranking with its number of ballots) among
    the options ``order`` (ids, in the poll's order); the rules are in this module's docstring.

    Each distinct ranking is read once to find its first choice, and again only when the option
    it counts for is eliminated (it moves down to its next option still in the race): the work
    is about the number of distinct rankings times their length, whatever the number of ballots
    and of rounds.
    """
    position = {option_id: index for index, option_id in enumerate(order)}
    # Ids that are not (or no longer) options of the poll are skipped: a ranking counts for its
    # options alone.
    groups = [
        ([option_id for option_id in ranking if option_id in position], count)
        for ranking, count in rankings.items()
        if count > 0
    ]
    if not groups:
        return Runoff(rounds=[], winner=None, tied=[])
    standing = list(order)
    votes = dict.fromkeys(standing, 0)
    holders: dict[int, list[int]] = {option_id: [] for option_id in standing}
    # Where each distinct ranking stands: the index of the option it counts for now.
    cursor = [0] * len(groups)
    exhausted = 0
    for index, (ranking, count) in enumerate(groups):
        if ranking:
            votes[ranking[0]] += count
            holders[ranking[0]].append(index)
        else:
            exhausted += count
    history: list[dict[int, int]] = []
    rounds: list[Round] = []
    while True:
        history.append(dict(votes))
        tallies = [Tally(id=option_id, votes=votes[option_id]) for option_id in standing]
        live = sum(votes.values())
        leader = max(standing, key=lambda option_id: votes[option_id])
        if live and 2 * votes[leader] > live:
            rounds.append(Round(tallies=tallies, exhausted=exhausted, eliminated=[]))
            return Runoff(rounds=rounds, winner=leader, tied=[])
        if len(set(votes.values())) == 1:
            rounds.append(Round(tallies=tallies, exhausted=exhausted, eliminated=[]))
            return Runoff(rounds=rounds, winner=None, tied=list(standing))
        eliminated = [option_id for option_id in standing if votes[option_id] == 0]
        if not eliminated:
            eliminated = [_last_of(standing, history, position)]
        rounds.append(Round(tallies=tallies, exhausted=exhausted, eliminated=eliminated))
        standing = [option_id for option_id in standing if option_id not in eliminated]
        for option_id in eliminated:
            del votes[option_id]
        # The ballots of the eliminated options move to their next option still in the race.
        for option_id in eliminated:
            for index in holders.pop(option_id):
                ranking, count = groups[index]
                step = cursor[index] + 1
                while step < len(ranking) and ranking[step] not in votes:
                    step += 1
                cursor[index] = step
                if step < len(ranking):
                    votes[ranking[step]] += count
                    holders[ranking[step]].append(index)
                else:
                    exhausted += count


def _last_of(
    standing: Sequence[int], history: Sequence[Mapping[int, int]], position: Mapping[int, int]
) -> int:
    """The option to eliminate: the fewest votes this round; among those tied, the fewest in the
    round before, and so on back to the first; then the last in the poll's order."""

    def weakness(option_id: int) -> tuple[Any, ...]:
        return (*(votes[option_id] for votes in reversed(history)), -position[option_id])

    return min(standing, key=weakness)


def ranking_key(ranking: Iterable[int]) -> str:
    return ",".join(str(option_id) for option_id in ranking)


def parse_ranking_key(key: str) -> tuple[int, ...]:
    return tuple(int(part) for part in key.split(",") if part)


class RankedChoice(VotingMethod):
    name = "ranked"
    label = "ranked choice (instant runoff)"
    ballot_field = "ranking"
    ballot_schema = {
        "type": "array",
        "items": {"type": "integer"},
        "description": "Distinct ids of options of this poll, most preferred first, "
        "min_choices to max_choices of them.",
    }

    def parse(self, value: Any) -> list[int]:
        if not isinstance(value, list):
            raise self.invalid(gettext("Give a list of option ids, most preferred first."))
        if not value:
            raise self.invalid(gettext("Rank at least one option."))
        limit = polls_settings.MAX_OPTIONS
        if len(value) > limit:
            raise self.invalid(self.too_long(limit))
        for index, item in enumerate(value, start=1):
            if not is_id(item):
                raise self.invalid(
                    self.item_error(index, gettext("A valid option id is required."))
                )
        if len(set(value)) != len(value):
            raise self.invalid(gettext("An option may be ranked only once."))
        return list(value)

    def options_named(self, choice: list[int]) -> list[int]:
        return list(choice)

    def tally_keys(self, choice: list[int]) -> list[str]:
        return [ranking_key(choice)]

    def options_of_key(self, key: str) -> list[int] | None:
        return list(parse_ranking_key(key))

    def results(self, counts: Counts) -> RankedResults:
        summary = counts.summary
        order = [option.id for option in summary.options]
        # The rounds cost about the number of distinct rankings: computed once per state of the
        # poll's counts, not once per reader.
        first, ballots, runoff = counts.memoized("runoff", lambda tallies: _count(tallies, order))
        return RankedResults(
            poll=summary.poll,
            method=summary.method,
            is_active=summary.is_active,
            total_votes=summary.total_votes,
            total_voters=summary.total_voters,
            options=[
                RankedOptionResult(
                    **dataclasses.asdict(option), first_choices=first.get(option.id, 0)
                )
                for option in summary.options
            ],
            ballots=ballots,
            rounds=runoff.rounds,
            winner=runoff.winner,
            tied=runoff.tied,
        )


def _count(tallies: Mapping[str, int], order: Sequence[int]) -> tuple[dict[int, int], int, Runoff]:
    """First choices per option, the number of ballots and the runoff, from the count of each
    distinct ranking."""
    rankings: Counter[tuple[int, ...]] = Counter()
    for key, count in tallies.items():
        rankings[parse_ranking_key(key)] += count
    first: Counter[int] = Counter()
    for ranking, count in rankings.items():
        if ranking:
            first[ranking[0]] += count
    return dict(first), sum(rankings.values()), instant_runoff(rankings, order)
