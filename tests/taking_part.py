"""Ballots and policies for the tests of who sees results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django_polls import services
from django_polls.models import Poll


def cast(poll: Poll, voter: Any, option_ids: Sequence[int]) -> services.Receipt:
    """Cast a ballot through the services (which record that the voter took part)."""
    return services.cast_vote(poll_id=poll.pk, voter=voter, option_ids=list(option_ids))


def with_policy(poll: Poll, **fields: Any) -> Poll:
    """Give the poll ``results_visibility``, ``anonymity`` (a secret poll's ballots are final)
    and the like, written directly: an owner may make results stricter once a poll has votes,
    and the tests set up every state, the others included."""
    if fields.get("anonymity") == "secret":
        fields.setdefault("allow_vote_change", False)
    Poll.objects.filter(pk=poll.pk).update(**fields)
    return Poll.objects.for_listing().get(pk=poll.pk)
