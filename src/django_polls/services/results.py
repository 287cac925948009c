"""Results read from the stored counters (O(options), never O(votes)), and the tools that check
and repair those counters."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from django_polls.changes import announce_change
from django_polls.models import CLOCK_ATTRIBUTE, Anonymity, Option, Poll, Vote
from django_polls.services.locks import lock_poll
from django_polls.services.sql import column, poll_columns


@dataclasses.dataclass(frozen=True)
class OptionResult:
    id: int
    text: str
    votes: int
    percentage: float


@dataclasses.dataclass(frozen=True)
class Results:
    poll: int
    is_active: bool
    total_votes: int
    options: list[OptionResult]


@dataclasses.dataclass(frozen=True)
class Drift:
    poll_id: int
    option_id: int
    stored: int
    actual: int


def results_for(*, poll: Poll, options: Sequence[Option] | None = None) -> Results:
    """Per-option counts and percentages from the stored counters: O(options), never O(votes).

    ``options`` are the poll's options in their order; by default ``poll.options``, which should
    then be prefetched (``Poll.objects.for_listing()``).
    """
    if options is None:
        options = list(poll.options.all())
    total = sum(option.votes for option in options)
    return Results(
        poll=poll.pk,
        is_active=poll.is_active,
        total_votes=total,
        options=[
            OptionResult(
                id=option.pk,
                text=option.text,
                votes=option.votes,
                percentage=percentage(option.votes, total),
            )
            for option in options
        ],
    )


def poll_with_options(*, poll_id: int) -> tuple[Poll, list[Option]] | None:
    """The poll and its options in their order, read in one query; None when the poll does not
    exist or has no options. The SQL is composed once per process, not built per call."""
    rows = list(Poll.objects.raw(_poll_with_options_sql(), [poll_id]))
    if not rows:
        return None
    options = [
        Option(
            id=extra["option_id"],
            poll_id=poll_id,
            text=extra["option_text"],
            votes=extra["option_votes"],
        )
        for extra in map(vars, rows)
    ]
    return rows[0], options


@functools.cache
def _poll_with_options_sql() -> str:
    quote = connection.ops.quote_name
    selected = ", ".join(f"p.{name}" for name in poll_columns())
    if connection.vendor == "postgresql":
        # The time by the clock of ballots and closing, for Poll.is_active: read here, not by
        # a query of its own.
        selected += f", clock_timestamp() AS {CLOCK_ATTRIBUTE}"
    return (
        f"SELECT {selected}, o.id AS option_id, o.{column(Option, 'text')} AS option_text,"
        f" o.{column(Option, 'votes')} AS option_votes"
        f" FROM {quote(Option._meta.db_table)} AS o"
        f" JOIN {quote(Poll._meta.db_table)} AS p ON p.id = o.{column(Option, 'poll')}"
        f" WHERE p.id = %s ORDER BY o.{column(Option, 'order')}, o.id"
    )


def percentage(votes: int, total: int) -> float:
    """100 * votes / total, rounded half-up to 2 decimals; 0.0 when there are no votes."""
    if not total:
        return 0.0
    exact = Decimal(100 * votes) / Decimal(total)
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def find_drift(*, poll_ids: Iterable[int] | None = None) -> list[Drift]:
    """Options whose stored counter differs from their vote rows (on every poll but secret ones,
    which keep no vote rows)."""
    actual = Coalesce(
        Subquery(
            Vote.objects.filter(option_id=OuterRef("pk"))
            .order_by()
            .values("option_id")
            .annotate(n=Count("id"))
            .values("n")
        ),
        Value(0),
    )
    # A secret poll keeps counts and no vote rows: nothing to check them against.
    options = (
        Option.objects.exclude(poll__anonymity=Anonymity.SECRET)
        .annotate(actual=actual)
        .exclude(votes=F("actual"))
    )
    if poll_ids is not None:
        options = options.filter(poll_id__in=list(poll_ids))
    return [
        Drift(poll_id=poll_id, option_id=option_id, stored=stored, actual=count)
        for option_id, poll_id, stored, count in options.order_by("poll_id", "order", "id")
        .values_list("pk", "poll_id", "votes", "actual")
        .iterator()
    ]


def repair_counts(*, poll_ids: Iterable[int] | None = None) -> list[Drift]:
    """Set every drifting counter to its vote rows; returns what was repaired.

    Each poll is locked exclusively while its counters are recomputed, so no ballot is in flight.
    """
    repaired: list[Drift] = []
    for poll_id in sorted({drift.poll_id for drift in find_drift(poll_ids=poll_ids)}):
        with transaction.atomic():
            try:
                lock_poll(poll_id, exclusive=True)
            except Poll.DoesNotExist:
                continue  # deleted meanwhile, with its counters
            drifts = find_drift(poll_ids=[poll_id])
            for drift in drifts:
                Option.objects.filter(pk=drift.option_id).update(votes=drift.actual)
            if drifts:
                announce_change(poll_id=poll_id)
            repaired.extend(drifts)
    return repaired
