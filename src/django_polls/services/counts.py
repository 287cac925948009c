"""Options' counts: an option's counter (``Option.votes``) plus its slots
(:class:`~django_polls.models.OptionCount`).

On PostgreSQL a ballot adds its votes to one slot of each option it names, the slot of its
participation's id (:data:`COUNTED_SQL`, a step of the ballot statements), so that ballots on one
option of a hot poll take turns on a few rows instead of queueing for one, and they need no
exclusive lock of the option. A change or retraction, which holds the options' row locks, takes
a vote away by folding the option's slots into its counter (:func:`take_votes`): no row ever goes
below 0, and the positive integer columns still refuse a negative count. Elsewhere (SQLite,
MySQL and MariaDB, whose writers queue on the option rows anyway) votes go to the counter
directly and no slot is written.
"""

from __future__ import annotations

import functools
from collections.abc import Collection

from django.db import connection
from django.db.models import F

from django_polls.models import OPTION_COUNT_SLOTS, Option, OptionCount
from django_polls.services.sql import column

#: A ballot statement's step that counts its votes (format it with :func:`counted_sql`): one
#: vote in the slot of the participation's id (``{participated}``, a step that returns the
#: participation's id, or nothing when the ballot is refused) of each option of ``chosen``, in
#: option id order (the lock order), each row announcing the change to live results streams
#: (see :func:`~django_polls.changes.announce_change`; PostgreSQL sends one notification per
#: transaction for one channel and payload).
COUNTED_SQL = """counted AS (
    INSERT INTO {option_count} AS c ({option_count_option}, {option_count_slot},
        {option_count_votes})
    SELECT chosen.id, {participated}.id %% {slots}, 1 FROM chosen CROSS JOIN {participated}
    ORDER BY chosen.id
    ON CONFLICT ({option_count_option}, {option_count_slot}) DO UPDATE
        SET {option_count_votes} = c.{option_count_votes} + 1
    RETURNING c.{option_count_option} AS id, pg_notify({channel}, %(poll)s::text)
)"""


def counted_sql(*, participated: str, channel: str) -> str:
    """:data:`COUNTED_SQL` with the tables' names, the slots of ``participated``'s id."""
    return COUNTED_SQL.format(participated=participated, channel=channel, **_tables())


def _tables() -> dict[str, str]:
    return {
        "option": connection.ops.quote_name(Option._meta.db_table),
        "option_votes": column(Option, "votes"),
        "option_count": connection.ops.quote_name(OptionCount._meta.db_table),
        "option_count_option": column(OptionCount, "option"),
        "option_count_slot": column(OptionCount, "slot"),
        "option_count_votes": column(OptionCount, "votes"),
        "slots": str(OPTION_COUNT_SLOTS),
    }


#: One vote taken from each option of ``%(options)s`` (their rows locked by the caller): the
#: options' slots locked in (option, slot) order, the order in which ballots lock them (a ballot
#: adding to a slot meanwhile is waited for, and its vote folded too), deleted, and added to the
#: counters, less the vote.
FOLD_SQL = """WITH locked AS MATERIALIZED (
    SELECT id FROM {option_count} WHERE {option_count_option} = ANY(%(options)s)
    ORDER BY {option_count_option}, {option_count_slot}
    FOR UPDATE
), folded AS (
    DELETE FROM {option_count} WHERE id IN (SELECT id FROM locked)
    RETURNING {option_count_option} AS option_id, {option_count_votes} AS votes
)
UPDATE {option} AS o
SET {option_votes} = o.{option_votes}
    + coalesce((SELECT sum(votes) FROM folded WHERE option_id = o.id), 0) - 1
WHERE o.id = ANY(%(options)s)
"""


@functools.cache
def _fold_sql() -> str:
    return FOLD_SQL.format(**_tables())


def add_votes(option_ids: Collection[int]) -> None:
    """One vote more for each option, in a transaction that holds the options' row locks (a
    ballot off PostgreSQL, a change): to the counters."""
    Option.objects.filter(pk__in=list(option_ids)).update(votes=F("votes") + 1)


def take_votes(option_ids: Collection[int]) -> None:
    """One vote less for each option, in a transaction that holds the options' row locks (a
    change, a retraction): on PostgreSQL the options' slots folded into their counters first
    (:data:`FOLD_SQL`), so no row goes below 0."""
    ids = sorted(set(option_ids))
    if not ids:
        return
    if connection.vendor != "postgresql":
        Option.objects.filter(pk__in=ids).update(votes=F("votes") - 1)
        return
    with connection.cursor() as cursor:
        cursor.execute(_fold_sql(), {"options": ids})


def set_count(option_id: int, votes: int) -> None:
    """Set an option's count to ``votes``: its counter, and no slots (a repair, which holds the
    poll's exclusive lock: no ballot is in flight)."""
    Option.objects.filter(pk=option_id).update(votes=votes)
    OptionCount.objects.filter(option_id=option_id).delete()
