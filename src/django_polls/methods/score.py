"""Score voting (star ratings).

A ballot ``{"scores": [{"option": 21, "score": 4}, {"option": 22, "score": 0}]}`` gives distinct
options of the poll a whole score from 0 to the poll's ``max_score`` each, ``min_choices`` to
``max_choices`` entries. An option a ballot leaves out is not scored by it (which is not a 0).

The poll keeps, per option, the number of ballots that gave it each score (the tally key
``"21:4"``), so an option's count, sum, average and distribution are read from at most
``max_score + 1`` counts, whatever the number of ballots.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext

from django_polls.conf import polls_settings
from django_polls.methods.base import (
    Counts,
    OptionResult,
    VotingMethod,
    is_id,
    rounded,
)

#: A score poll's ``max_score`` when it sets none.
DEFAULT_MAX_SCORE = 5


@dataclasses.dataclass(frozen=True)
class ScoredOptionResult(OptionResult):
    #: Ballots that scored the option.
    count: int
    #: The sum of their scores.
    sum: int
    #: sum / count, rounded half-up to 2 decimals; None when nobody scored it.
    average: float | None
    #: How many ballots gave each score, from 0 to max_score.
    distribution: list[int]


@dataclasses.dataclass(frozen=True)
class ScoreResults:
    poll: int
    method: str
    is_active: bool
    total_votes: int
    total_voters: int
    max_score: int
    options: list[ScoredOptionResult]


def score_key(option_id: int, score: int) -> str:
    return f"{option_id}:{score}"


def distributions(tallies: Mapping[str, int], max_score: int) -> dict[int, list[int]]:
    """Per option id, the number of ballots that gave it each score from 0 to ``max_score``."""
    found: dict[int, list[int]] = {}
    for key, count in tallies.items():
        option, _, score = key.partition(":")
        if option.isdigit() and score.isdigit() and int(score) <= max_score:
            found.setdefault(int(option), [0] * (max_score + 1))[int(score)] += count
    return found


class ScoreVoting(VotingMethod):
    name = "score"
    label = "score voting"
    ballot_field = "scores"
    takes_max_score = True
    ballot_schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"option": {"type": "integer"}, "score": {"type": "integer"}},
            "required": ["option", "score"],
        },
        "description": "Distinct options of this poll, each with a whole score from 0 to the "
        "poll's max_score; min_choices to max_choices entries.",
    }

    def parse(self, value: Any) -> list[dict[str, int]]:
        if not isinstance(value, list):
            raise self.invalid(gettext('Give a list of {"option": id, "score": n} objects.'))
        if not value:
            raise self.invalid(gettext("Score at least one option."))
        limit = polls_settings.MAX_OPTIONS
        if len(value) > limit:
            raise self.invalid(self.too_long(limit))
        entries = []
        for index, item in enumerate(value, start=1):
            if not isinstance(item, dict) or set(item) != {"option", "score"}:
                raise self.invalid(
                    self.item_error(index, gettext('Give exactly "option" and "score".'))
                )
            option, score = item["option"], item["score"]
            if not is_id(option):
                raise self.invalid(
                    self.item_error(index, gettext("A valid option id is required."))
                )
            if type(score) is not int or score < 0:
                raise self.invalid(
                    self.item_error(index, gettext("A score is a whole number from 0."))
                )
            entries.append({"option": option, "score": score})
        if len({entry["option"] for entry in entries}) != len(entries):
            raise self.invalid(gettext("An option may be scored only once."))
        return entries

    def options_named(self, choice: list[dict[str, int]]) -> list[int]:
        return [entry["option"] for entry in choice]

    def check(self, choice: list[dict[str, int]], *, poll: Any) -> None:
        high = poll.max_score or DEFAULT_MAX_SCORE
        for entry in choice:
            if entry["score"] > high:
                raise self.invalid(
                    gettext("A score on this poll is a whole number from 0 to %(high)d.")
                    % {"high": high}
                )

    def tally_keys(self, choice: list[dict[str, int]]) -> list[str]:
        return [score_key(entry["option"], entry["score"]) for entry in choice]

    def initial_tally_keys(self, *, poll: Any, option_ids: Sequence[int]) -> list[str]:
        high = poll.max_score or DEFAULT_MAX_SCORE
        return [
            score_key(option_id, score) for option_id in option_ids for score in range(high + 1)
        ]

    def options_of_key(self, key: str) -> list[int] | None:
        option, _, _ = key.partition(":")
        return [int(option)] if option.isdigit() else None

    def results(self, counts: Counts) -> ScoreResults:
        summary = counts.summary
        high = counts.poll.max_score or DEFAULT_MAX_SCORE
        found = distributions(counts.tallies, high)
        options = []
        for option in summary.options:
            spread = found.get(option.id, [0] * (high + 1))
            count = sum(spread)
            total = sum(score * n for score, n in enumerate(spread))
            options.append(
                ScoredOptionResult(
                    **dataclasses.asdict(option),
                    count=count,
                    sum=total,
                    average=rounded(Decimal(total) / Decimal(count)) if count else None,
                    distribution=spread,
                )
            )
        return ScoreResults(
            poll=summary.poll,
            method=summary.method,
            is_active=summary.is_active,
            total_votes=summary.total_votes,
            total_voters=summary.total_voters,
            max_score=high,
            options=options,
        )
