"""Voting methods that system check django_polls.E013 refuses (tests/test_checks.py)."""

from __future__ import annotations

from django_polls.methods.base import VotingMethod
from django_polls.methods.ranked import RankedChoice


class Unnamed(VotingMethod):
    ballot_field = "points"


class TooLongAName(RankedChoice):
    name = "a-name-of-seventeen"


class AnotherRanked(RankedChoice):
    """Shares the name "ranked"."""


class OptionsApproval(VotingMethod):
    name = "approval"
    ballot_field = "options"


class NotAMethod:
    name = "not"
