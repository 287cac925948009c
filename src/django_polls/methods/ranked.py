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
    #: The ballots that rank this option first (first among the poll's options: round 1).
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
    the options ``order`` (ids, in the poll's order); the rules are in this module's docstring."""
    return count_rankings({ranking_key(ranking): n for ranking, n in rankings.items()}, order)[1]


def count_rankings(tallies: Mapping[str, int], order: Sequence[int]) -> tuple[int, Runoff]:
    """The number of ballots and their instant runoff, from the count of each distinct ranking
    (keyed as :func:`ranking_key` writes it) among the options ``order``.

    Each distinct ranking is read up to its first option still in the race, and further only
    when that option is eliminated (it moves down to its next option still in the race): the
    work is about the number of distinct rankings times their length, whatever the number of
    ballots and of rounds. A ranking stays the string it is stored as, read from one comma to
    the next, since a million of them split into lists of numbers would take several times as
    long to build as the whole count. Ids that are not (or no longer) options of the poll are
    skipped: a ranking counts for its options alone.
    """
    ids = {str(option_id): option_id for option_id in order}
    votes = dict.fromkeys(ids, 0)
    holders: dict[str, list[int]] = {option: [] for option in ids}
    # The rankings that count for an option still in the race, their ballots, and where each
    # stands: the end of the option it counts for.
    keys: list[str] = []
    weights: list[int] = []
    ends: list[int] = []
    ballots = exhausted = 0
    for key, count in tallies.items():
        if count <= 0:
            continue
        ballots += count
        option, end = _next_in_race(key, -1, votes)
        if option is None:
            exhausted += count
            continue
        votes[option] += count
        holders[option].append(len(keys))
        keys.append(key)
        weights.append(count)
        ends.append(end)
    if not ballots:
        return 0, Runoff(rounds=[], winner=None, tied=[])
    standing = list(ids)
    position = {option: index for index, option in enumerate(standing)}
    history: list[dict[str, int]] = []
    rounds: list[Round] = []

    def finish(eliminated: list[str]) -> None:
        tallies = [Tally(id=ids[option], votes=votes[option]) for option in standing]
        out = [ids[option] for option in eliminated]
        rounds.append(Round(tallies=tallies, exhausted=exhausted, eliminated=out))

    while True:
        history.append(dict(votes))
        live = sum(votes.values())
        leader = max(standing, key=votes.__getitem__)
        if live and 2 * votes[leader] > live:
            finish([])
            return ballots, Runoff(rounds=rounds, winner=ids[leader], tied=[])
        if len(set(votes.values())) == 1:
            finish([])
            return ballots, Runoff(
                rounds=rounds, winner=None, tied=[ids[option] for option in standing]
            )
        eliminated = [option for option in standing if votes[option] == 0]
        if not eliminated:
            eliminated = [_last_of(standing, history, position)]
        finish(eliminated)
        standing = [option for option in standing if option not in eliminated]
        for option in eliminated:
            del votes[option]
        # The ballots of the eliminated options move to their next option still in the race.
        for option in eliminated:
            for index in holders.pop(option):
                option_next, end = _next_in_race(keys[index], ends[index], votes)
                if option_next is None:
                    exhausted += weights[index]
                else:
                    votes[option_next] += weights[index]
                    holders[option_next].append(index)
                    ends[index] = end


def _next_in_race(key: str, end: int, votes: Mapping[str, int]) -> tuple[str | None, int]:
    """The first option of the ranking ``key`` after position ``end`` (-1: from its start) that
    is still in the race (in ``votes``), and where that option ends (at a comma, or at the end of
    the key); None once the ranking has no more."""
    size = len(key)
    while end < size:
        start = end + 1
        end = key.find(",", start)
        if end < 0:
            end = size
        option = key[start:end]
        if option in votes:
            return option, end
    return None, end


def _last_of(
    standing: Sequence[str], history: Sequence[Mapping[str, int]], position: Mapping[str, int]
) -> str:
    """The option to eliminate: the fewest votes this round; among those tied, the fewest in the
    round before, and so on back to the first; then the last in the poll's order."""

    def weakness(option: str) -> tuple[Any, ...]:
        return (*(votes[option] for votes in reversed(history)), -position[option])

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
        ballots, runoff = counts.memoized("runoff", lambda tallies: count_rankings(tallies, order))
        first = (
            {tally.id: tally.votes for tally in runoff.rounds[0].tallies} if runoff.rounds else {}
        )
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
