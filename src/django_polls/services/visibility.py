"""Who may see a poll's results and, on a public poll, its ballots: one rule for ``results/``,
``results/stream/``, ``ballots/`` and the ``total_votes`` of poll bodies.

A poll's ``results_visibility`` says who: ``always`` anyone; ``after_vote`` signed-in callers who
have voted (a :class:`~django_polls.models.Participation` of theirs exists, on every kind of poll);
``after_close`` anyone once the poll is closed (or expired); ``owner`` nobody else. The poll's
owner and staff users always may. Whether the caller voted is read with the poll where a query
reads polls (:func:`with_caller_voted`, :func:`~django_polls.services.results.poll_with_options`),
so the rule costs no round trip of its own on the API's paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from django.db.models import Exists, OuterRef, QuerySet

from django_polls import methods
from django_polls.models import (
    VOTE_ROW_METHODS,
    Anonymity,
    Ballot,
    Participation,
    Poll,
    ResultsVisibility,
    Status,
    Vote,
)
from django_polls.services.errors import BallotsHidden, ResultsHidden

#: The attribute that carries "the caller has voted" where a query read it with the poll.
VOTED_ATTRIBUTE = "caller_voted"

Polls = TypeVar("Polls", bound=QuerySet[Poll])


def signed_in(user: Any) -> bool:
    return user is not None and bool(user.is_authenticated)


def sees_everything(*, poll: Poll, user: Any) -> bool:
    """The poll's owner and staff users see its results whatever the poll says."""
    return signed_in(user) and (bool(user.is_staff) or poll.created_by_id == user.pk)


def has_voted(*, poll_id: int, user: Any) -> bool:
    """Whether ``user`` took part in the poll (one indexed query)."""
    if not signed_in(user):
        return False
    return Participation.objects.filter(poll_id=poll_id, voter_id=user.pk).exists()


def may_see_results(*, poll: Poll, user: Any, voted: bool | None = None) -> bool:
    """Whether ``user`` (None or anonymous: a caller who is not signed in) may see the poll's
    results, its ``total_votes`` and, on a public poll, its ballots.

    ``voted`` is whether the user took part, where the caller knows it; otherwise it is taken
    from the poll's :data:`VOTED_ATTRIBUTE` (read by its query) or, only for an ``after_vote``
    poll and a caller who is neither its owner nor staff, read with one query.
    """
    visibility = poll.results_visibility
    if visibility == ResultsVisibility.ALWAYS or sees_everything(poll=poll, user=user):
        return True
    if visibility == ResultsVisibility.AFTER_CLOSE:
        # By the clock of ballots and closing, as the poll's status says.
        return poll.status == Status.CLOSED
    if visibility == ResultsVisibility.AFTER_VOTE:
        if not signed_in(user):
            return False
        if voted is None:
            voted = getattr(poll, VOTED_ATTRIBUTE, None)
        if voted is None:
            voted = has_voted(poll_id=poll.pk, user=user)
        return bool(voted)
    return False  # owner


def check_results_visible(*, poll: Poll, user: Any, voted: bool | None = None) -> None:
    """Raise :class:`ResultsHidden` unless :func:`may_see_results`."""
    if not may_see_results(poll=poll, user=user, voted=voted):
        raise ResultsHidden()


def check_ballots_visible(*, poll: Poll, user: Any) -> None:
    """Who chose what is listed on a public poll only (:class:`BallotsHidden` otherwise, for
    everybody, the owner included), and to those who may see its results
    (:class:`ResultsHidden` otherwise)."""
    if poll.anonymity != Anonymity.PUBLIC:
        raise BallotsHidden()
    check_results_visible(poll=poll, user=user)


def took_part(user: Any, poll: str = "pk") -> Exists:
    """Whether the signed-in ``user`` took part in the poll whose id is the field ``poll`` of
    the query this annotates (its ``pk`` by default): one indexed lookup in SQL."""
    return Exists(Participation.objects.filter(poll_id=OuterRef(poll), voter_id=user.pk))


def with_caller_voted(polls: Polls, user: Any) -> Polls:
    """``polls`` annotated with whether ``user`` voted on each (:data:`VOTED_ATTRIBUTE`): part of
    the query that reads the polls, so a page of polls costs no query more. Nothing is added for
    a caller who is not signed in (who never counts as a voter)."""
    if not signed_in(user):
        return polls
    return polls.annotate(**{VOTED_ATTRIBUTE: took_part(user)})


def results_visible_to_each(poll: Poll, users: Sequence[Any]) -> list[bool]:
    """:func:`may_see_results` for many users at once (the open streams of a poll), in one query
    at most: on an ``after_vote`` poll, which of the users took part."""
    voters: set[Any] = set()
    if poll.results_visibility == ResultsVisibility.AFTER_VOTE:
        asking = {
            user.pk
            for user in users
            if signed_in(user) and not sees_everything(poll=poll, user=user)
        }
        if asking:
            voters = set(
                Participation.objects.filter(poll_id=poll.pk, voter_id__in=asking).values_list(
                    "voter_id", flat=True
                )
            )
    return [
        may_see_results(poll=poll, user=user, voted=signed_in(user) and user.pk in voters)
        for user in users
    ]


def ballot_voters(*, poll: Poll) -> QuerySet[Participation]:
    """The voters of a public poll in the order they first voted, with their users: the rows a
    page of ``ballots/`` lists. A deleted account's ballot stays counted but is no longer
    anybody's, so it is not listed."""
    return (
        Participation.objects.filter(poll=poll, voter__isnull=False)
        .select_related("voter")
        .order_by("id")
    )


def public_ballots(*, poll: Poll, participations: Sequence[Participation]) -> list[dict[str, Any]]:
    """Each of ``participations`` (a page of :func:`ballot_voters`) as ``{"voter": <user>,
    "options": [ids in the poll's order], "created_at": <when the current ballot was stored>}``,
    their votes read in one query. Call :func:`check_ballots_visible` first.

    On a poll whose ballots are stored whole (ranked, score, ...) each entry carries the ballot
    in its method's field (``"ranking"``, ``"scores"``, ...) in place of ``"options"``."""
    field, empty = ballot_field_of(poll)
    found = ballots_by_voter(poll=poll, voter_ids=[entry.voter_id for entry in participations])
    entries = []
    for entry in participations:
        ballot, created_at = found.get(entry.voter_id, (empty, None))
        entries.append({"voter": entry.voter, field: ballot, "created_at": created_at})
    return entries


def ballot_field_of(poll: Poll) -> tuple[str, Any]:
    """The field that carries the poll's ballots (``options``, ``ranking``, ...), and what it
    holds for a voter without one (no options; no ballot)."""
    if poll.method in VOTE_ROW_METHODS:
        return "options", []
    return methods.get_method(poll.method).ballot_field, None


def ballots_by_voter(
    *,
    poll: Poll,
    voter_ids: Sequence[Any],
    option_order: Sequence[int] | None = None,
    contiguous: bool = False,
) -> dict[Any, tuple[Any, Any]]:
    """The current ballots of these voters of the poll, by voter id, read in one query: the
    ballot as its method's field shows it (the option ids in the poll's order, a ranking, ...)
    and when it was stored. Voters without a ballot are left out. Call
    :func:`check_ballots_visible` first.

    ``option_order``, the poll's option ids in its order where the caller has them, puts the
    options of single and multiple choice ballots in that order here rather than by a join in
    the query, which then reads the (poll, voter) index alone. ``contiguous``: ``voter_ids``,
    ascending, are every voter of the poll from the first of them to the last (a page of the
    poll's voters in id order), read as that range of the index rather than as a list of ids,
    which costs the driver and the database nothing per id."""
    if not voter_ids:
        return {}
    if contiguous:
        voters: dict[str, Any] = {"voter_id__gte": voter_ids[0], "voter_id__lte": voter_ids[-1]}
    else:
        voters = {"voter_id__in": list(voter_ids)}
    if poll.method not in VOTE_ROW_METHODS:
        method = methods.get_method(poll.method)
        return {
            voter_id: (method.to_json(choice), created_at)
            for voter_id, choice, created_at in Ballot.objects.filter(
                poll=poll, **voters
            ).values_list("voter_id", "choice", "created_at")
        }
    votes = Vote.objects.filter(poll=poll, **voters)
    if option_order is None:
        votes = votes.order_by("option__order", "option_id")
    else:
        votes = votes.order_by()
    found: dict[Any, tuple[list[int], Any]] = {}
    for voter_id, option_id, created_at in votes.values_list("voter_id", "option_id", "created_at"):
        chosen, stored = found.setdefault(voter_id, ([], created_at))
        chosen.append(option_id)
        # A ballot added to over several requests is complete as of its latest vote.
        if created_at > stored:
            found[voter_id] = (chosen, created_at)
    if option_order is not None:
        position = {option_id: index for index, option_id in enumerate(option_order)}
        for chosen, _ in found.values():
            if len(chosen) > 1:
                chosen.sort(key=lambda option_id: position.get(option_id, len(position)))
    return found
