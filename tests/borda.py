"""A voting method of a host site's own, installed through DJANGO_POLLS["METHODS"] by the tests
(and shown in docs/api.md): the Borda count.

A ballot ranks options like a ranked poll's; an option ranked at position ``i`` (0 first) of a
poll with ``n`` options scores ``n - 1 - i`` points. The poll keeps how many ballots put each
option at each position (the tally key ``"21@0"``), so the points are read from at most
``n * n`` counts, however many ballots there are.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django_polls.methods.base import Counts, OptionResult, VotingMethod, is_id


@dataclasses.dataclass(frozen=True)
class BordaOption(OptionResult):
    points: int


@dataclasses.dataclass(frozen=True)
class BordaResults:
    poll: int
    method: str
    is_active: bool
    total_votes: int
    total_voters: int
    options: list[BordaOption]
    winner: int | None  # the most points; None with no ballots or a tie for the most


class Borda(VotingMethod):
    name = "borda"
    label = "Borda count"
    ballot_field = "ranking"

    def parse(self, value: Any) -> list[int]:
        if not isinstance(value, list) or not value or not all(map(is_id, value)):
            raise self.invalid("Give a non-empty list of option ids, most preferred first.")
        if len(set(value)) != len(value):
            raise self.invalid("An option may be ranked only once.")
        return value

    def options_named(self, choice: list[int]) -> list[int]:
        return choice

    def tally_keys(self, choice: list[int]) -> list[str]:
        return [f"{option_id}@{position}" for position, option_id in enumerate(choice)]

    def results(self, counts: Counts) -> BordaResults:
        summary = counts.summary
        top = len(summary.options) - 1
        points = dict.fromkeys((option.id for option in summary.options), 0)
        for key, ballots in counts.tallies.items():
            option_id, _, position = key.partition("@")
            if int(option_id) in points:
                points[int(option_id)] += ballots * (top - int(position))
        best = max(points.values(), default=0)
        leaders = [option_id for option_id, score in points.items() if score == best]
        return BordaResults(
            **{field: getattr(summary, field) for field in ("poll", "method", "is_active")},
            total_votes=summary.total_votes,
            total_voters=summary.total_voters,
            options=[
                BordaOption(**dataclasses.asdict(option), points=points[option.id])
                for option in summary.options
            ],
            winner=leaders[0] if best and len(leaders) == 1 else None,
        )
