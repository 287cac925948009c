"""Single and multiple choice (API v1): a ballot is a list of option ids; the counts are the
options' own ``votes``. Their ballots are stored as vote rows, by one statement on PostgreSQL
(:data:`django_polls.services.BALLOT_SQL`); on a multiple-choice poll a voter may add options in
several requests, up to ``max_choices``."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

from django_polls.conf import polls_settings
from django_polls.methods.base import Counts, Results, VotingMethod, is_id


class ChoiceMethod(VotingMethod):
    """A ballot ``{"options": [21, 22]}``: distinct ids of the poll's options."""

    ballot_field = "options"
    ballot_schema = {
        "type": "array",
        "items": {"type": "integer"},
        "description": "Ids of options of this poll: exactly one on a single-vote poll, one or "
        "more distinct ids on a multiple-vote poll.",
    }

    def parse(self, value: Any) -> list[int]:
        # The messages of API v1 (BallotSerializer's).
        if not isinstance(value, list):
            raise self.invalid(
                gettext('Expected a list of items but got type "{input_type}".').format(
                    input_type=type(value).__name__
                )
            )
        if not value:
            raise self.invalid(gettext("This list may not be empty."))
        limit = polls_settings.MAX_OPTIONS
        if len(value) > limit:
            raise self.invalid(self.too_long(limit))
        for index, item in enumerate(value, start=1):
            if not is_id(item):
                raise self.invalid(self.item_error(index, gettext("A valid integer is required.")))
        if len(set(value)) != len(value):
            raise self.invalid(gettext("Option ids must not repeat."))
        return list(value)

    def options_named(self, choice: list[int]) -> list[int]:
        return list(choice)

    def tally_keys(self, choice: list[int]) -> list[str]:
        return []  # the options' votes are the counts

    def results(self, counts: Counts) -> Results:
        return counts.summary


class SingleChoice(ChoiceMethod):
    name = "single"
    label = "single choice"


class MultipleChoice(ChoiceMethod):
    name = "multiple"
    label = "multiple choice"
