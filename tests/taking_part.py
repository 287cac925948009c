"""Ballots for the tests of who sees results: cast through the services, with the participation
(and the voter count) that says the voter took part, and polls given a visibility policy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import F

from django_polls import services
from django_polls.models import VOTER_COUNT_STRIPES, Participation, Poll, VoterCount


def cast(poll: Poll, voter: Any, option_ids: Sequence[int]) -> services.Receipt:
    """Cast a ballot through the services and make sure that it counts as taking part."""
    receipt = services.cast_vote(poll_id=poll.pk, voter=voter, option_ids=list(option_ids))
    took_part(poll, voter, choices=len(option_ids))
    return receipt


def took_part(poll: Poll, voter: Any, *, choices: int = 1) -> None:
    """A participation of ``voter`` in the poll, and its voter count, unless the ballot services
    already stored them."""
    if Participation.objects.filter(poll=poll, voter=voter).exists():
        return
    taken = Participation.objects.create(
        poll=poll, voter=voter, choices=choices, min_choices=1, max_choices=max(choices, 1)
    )
    stripe = taken.pk % VOTER_COUNT_STRIPES
    VoterCount.objects.get_or_create(poll=poll, stripe=stripe)
    VoterCount.objects.filter(poll=poll, stripe=stripe).update(voters=F("voters") + 1)


def with_policy(poll: Poll, **fields: Any) -> Poll:
    """Give the poll ``results_visibility``, ``anonymity`` (a secret poll's ballots are final)
    and the like, written directly as an owner's edit would leave them."""
    if fields.get("anonymity") == "secret":
        fields.setdefault("allow_vote_change", False)
    Poll.objects.filter(pk=poll.pk).update(**fields)
    return Poll.objects.for_listing().get(pk=poll.pk)
