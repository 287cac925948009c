"""Results read from the stored counters (O(options), never O(votes)), and the tools that check
and repair those counters."""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from django_polls import methods
from django_polls.changes import announce_change

# Results' shapes and rounding live with the methods; importable from here as before.
from django_polls.methods.base import OptionResult as OptionResult
from django_polls.methods.base import Results as Results
from django_polls.methods.base import percentage as percentage
from django_polls.models import (
    CHANGE_KEYS,
    CLOCK_ATTRIBUTE,
    VOTE_ROW_METHODS,
    Anonymity,
    Option,
    OptionCount,
    Participation,
    Poll,
    Tally,
    Vote,
    VoterCount,
    counted_votes,
)
from django_polls.services.aio import fetchall, fetchone, model_from_row
from django_polls.services.counts import set_count
from django_polls.services.locks import lock_poll
from django_polls.services.sql import column, poll_columns, voter_param
from django_polls.services.visibility import VOTED_ATTRIBUTE

#: The attribute that carries the poll's number of voters where a query read it with the poll.
VOTERS_ATTRIBUTE = "total_voters_read"


@dataclasses.dataclass(frozen=True)
class Drift:
    poll_id: int
    option_id: int
    stored: int
    actual: int


def results_for(*, poll: Poll, options: Sequence[Option] | None = None) -> Any:
    """The poll's results body (a dataclass), read by its method from the stored counts:
    O(options) for single and multiple, O(counts) for the others, never O(ballots).

    ``options`` are the poll's options in their order; by default ``poll.options``, which should
    then be prefetched (``Poll.objects.for_listing()``). The number of voters is the one read
    with the poll (:func:`poll_with_options`), else read here from its voter counts. Single and
    multiple answer :class:`Results`; other methods add their own fields (see
    :meth:`django_polls.methods.base.VotingMethod.results`), from the poll's tallies, read here
    when the method asks for them (or, for a state of the counts already computed, only the
    poll's count of changes).

    Who may see them is :func:`~django_polls.services.visibility.may_see_results`' to say.
    """
    if options is None:
        options = poll.counted_options()
    voters = getattr(poll, VOTERS_ATTRIBUTE, None)
    counts = methods.Counts(
        poll=poll,
        options=options,
        total_voters=total_voters(poll_id=poll.pk) if voters is None else int(voters),
        read_tallies=functools.partial(tallies_of, poll_id=poll.pk),
        read_version=functools.partial(changes_of, poll_id=poll.pk),
        memo=RESULTS_MEMO,
    )
    try:
        method = methods.get_method(poll.method)
    except methods.UnknownMethod:
        # A method the site no longer lists: what every method keeps, the options' votes.
        return counts.summary
    return method.results(counts)


class Memo(collections.OrderedDict[Any, Any]):
    """What methods computed for a state of a poll's counts (:meth:`Counts.memoized`), the
    newest ``size`` entries. Per process, yet never out of date: an entry is found only by the
    state it was computed for (the poll's count of changes, read with the counts), so every
    process answers a state alike."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


#: The memo of this process's results.
RESULTS_MEMO = Memo(256)


def changes_of(*, poll_id: int) -> int:
    """The poll's count of changes to its tallies (:data:`~django_polls.models.CHANGE_KEYS`):
    one query through the unique (poll, key) index, a few rows."""
    found = Tally.objects.filter(poll_id=poll_id, key__in=CHANGE_KEYS).aggregate(n=Sum("ballots"))
    return int(found["n"] or 0)


def tallies_of(*, poll_id: int) -> dict[str, int]:
    """The poll's counts by key (:class:`~django_polls.models.Tally`), the app's own (``#``)
    among them: one query, fetched whole (a million distinct rankings take half the time they
    take through the ORM, which fetches 100 rows at a time)."""
    with connection.cursor() as cursor:
        cursor.execute(_tallies_sql(), [poll_id])
        return dict(cursor.fetchall())


@functools.cache
def _tallies_sql() -> str:
    return "SELECT {key}, {ballots} FROM {table} WHERE {poll} = %s".format(
        key=column(Tally, "key"),
        ballots=column(Tally, "ballots"),
        table=connection.ops.quote_name(Tally._meta.db_table),
        poll=column(Tally, "poll"),
    )


def total_voters(*, poll_id: int) -> int:
    """The poll's distinct voters: the sum of its voter counts (a few rows, never O(ballots))."""
    found = VoterCount.objects.filter(poll_id=poll_id).aggregate(voters=Sum("voters"))["voters"]
    return int(found or 0)


def voters_subquery() -> Coalesce:
    """The sum of the voter counts of the poll ``OuterRef("poll_id")``, for a query of options."""
    voters = (
        VoterCount.objects.filter(poll_id=OuterRef("poll_id"))
        .order_by()
        .values("poll_id")
        .annotate(n=Sum("voters"))
        .values("n")
    )
    return Coalesce(Subquery(voters), Value(0))


def poll_with_options(*, poll_id: int, voter: Any = None) -> tuple[Poll, list[Option]] | None:
    """The poll and its options in their order, read in one query; None when the poll does not
    exist or has no options. The SQL is composed once per process, not built per call.

    The same query reads the poll's number of voters and whether ``voter`` (a signed-in user,
    else None) took part in it, which :func:`results_for` and
    :func:`~django_polls.services.visibility.may_see_results` then use.
    """
    rows = list(
        Poll.objects.raw(_poll_with_options_sql(), _poll_with_options_params(poll_id, voter))
    )
    if not rows:
        return None
    # Databases without a boolean type answer EXISTS with 0 or 1.
    setattr(rows[0], VOTED_ATTRIBUTE, bool(getattr(rows[0], VOTED_ATTRIBUTE)))
    return rows[0], _options_of(poll_id, map(vars, rows))


async def apoll_with_options(
    *, poll_id: int, voter: Any = None
) -> tuple[Poll, list[Option]] | None:
    """:func:`poll_with_options` on PostgreSQL for the async views: the same query, on a
    connection of the event loop's pool (:mod:`~django_polls.services.aio`)."""
    rows = await fetchall(_poll_with_options_sql(), _poll_with_options_params(poll_id, voter))
    if not rows:
        return None
    width = len(Poll._meta.concrete_fields)
    poll = model_from_row(Poll, rows[0][:width])
    extra = [CLOCK_ATTRIBUTE, VOTERS_ATTRIBUTE, VOTED_ATTRIBUTE]
    for name, value in zip(extra, rows[0][width:], strict=False):
        setattr(poll, name, value)
    names = ["option_id", "option_text", "option_votes"]
    return poll, _options_of(poll_id, (dict(zip(names, row[-3:], strict=True)) for row in rows))


async def apoll_exists(*, poll_id: int) -> bool:
    """Whether the poll exists, read on the event loop's pool."""
    table = connection.ops.quote_name(Poll._meta.db_table)
    return await fetchone(f"SELECT 1 FROM {table} WHERE id = %s", [poll_id]) is not None


def _poll_with_options_params(poll_id: int, voter: Any) -> list[Any]:
    voter_id = voter_param(voter) if voter is not None and voter.is_authenticated else None
    return [poll_id, poll_id, voter_id, poll_id]


def _options_of(poll_id: int, rows: Iterable[dict[str, Any]]) -> list[Option]:
    # MySQL and MariaDB add an integer column and a SUM as a DECIMAL: made an int again.
    return [
        Option(
            id=row["option_id"],
            poll_id=poll_id,
            text=row["option_text"],
            votes=int(row["option_votes"]),
        )
        for row in rows
    ]


@functools.cache
def _poll_with_options_sql() -> str:
    quote = connection.ops.quote_name
    selected = ", ".join(f"p.{name}" for name in poll_columns())
    if connection.vendor == "postgresql":
        # The time by the clock of ballots and closing, for Poll.is_active: read here, not by
        # a query of its own.
        selected += f", clock_timestamp() AS {CLOCK_ATTRIBUTE}"
    # Uncorrelated subqueries (the poll id is a parameter): each runs once, through the unique
    # (poll, stripe) and (poll, voter) indexes.
    voter_counts = quote(VoterCount._meta.db_table)
    participations = quote(Participation._meta.db_table)
    # An option's count: its counter plus its slots, through the unique (option, slot) index.
    slots = (
        f"(SELECT COALESCE(SUM(oc.{column(OptionCount, 'votes')}), 0)"
        f" FROM {quote(OptionCount._meta.db_table)} AS oc"
        f" WHERE oc.{column(OptionCount, 'option')} = o.id)"
    )
    selected += (
        f", (SELECT COALESCE(SUM(vc.{column(VoterCount, 'voters')}), 0) FROM {voter_counts} AS vc"
        f" WHERE vc.{column(VoterCount, 'poll')} = %s) AS {VOTERS_ATTRIBUTE}"
        f", EXISTS (SELECT 1 FROM {participations} AS pa"
        f" WHERE pa.{column(Participation, 'poll')} = %s"
        f" AND pa.{column(Participation, 'voter')} = %s) AS {VOTED_ATTRIBUTE}"
    )
    return (
        f"SELECT {selected}, o.id AS option_id, o.{column(Option, 'text')} AS option_text,"
        f" o.{column(Option, 'votes')} + {slots} AS option_votes"
        f" FROM {quote(Option._meta.db_table)} AS o"
        f" JOIN {quote(Poll._meta.db_table)} AS p ON p.id = o.{column(Option, 'poll')}"
        f" WHERE p.id = %s ORDER BY o.{column(Option, 'order')}, o.id"
    )


def find_drift(*, poll_ids: Iterable[int] | None = None) -> list[Drift]:
    """Options whose stored count (counter and slots) differs from their vote rows (on every
    poll but secret ones, which keep no vote rows)."""
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
    # Polls of other methods keep no vote rows: their counts are checked against their ballots
    # (:func:`find_ballot_drift`).
    options = (
        Option.objects.exclude(poll__anonymity=Anonymity.SECRET)
        .filter(poll__method__in=VOTE_ROW_METHODS)
        .annotate(stored=counted_votes(), actual=actual)
        .exclude(stored=F("actual"))
    )
    if poll_ids is not None:
        options = options.filter(poll_id__in=list(poll_ids))
    return [
        Drift(poll_id=poll_id, option_id=option_id, stored=stored, actual=count)
        for option_id, poll_id, stored, count in options.order_by("poll_id", "order", "id")
        .values_list("pk", "poll_id", "stored", "actual")
        .iterator()
    ]


def repair_counts(*, poll_ids: Iterable[int] | None = None) -> list[Drift]:
    """Set every drifting count to its vote rows (the counter, and no slots); returns what was
    repaired.

    Each poll is locked exclusively while its counts are recomputed, so no ballot is in flight.
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
                set_count(drift.option_id, drift.actual)
            if drifts:
                announce_change(poll_id=poll_id)
            repaired.extend(drifts)
    return repaired
