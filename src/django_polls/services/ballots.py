"""Ballots: cast, retract, and read one's own; the hot path of the API.

On PostgreSQL a ballot is one statement (:data:`BALLOT_SQL`); elsewhere a transaction of a few
statements that takes the same locks in the same order (:mod:`django_polls.services.locks`) and
judges with the same rules (:func:`judge_ballot`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, FilteredRelation, Q
from django.utils import timezone

from django_polls import changes, signals
from django_polls.changes import announce_change
from django_polls.models import ClockTimestamp, Option, Poll, Vote
from django_polls.services.errors import (
    AlreadyVoted,
    InvalidInput,
    NotVoted,
    PollChanged,
    PollClosed,
)
from django_polls.services.locks import (
    ADVISORY_LOCK_NAMESPACE,
    is_unique_violation,
    lock_options,
    lock_poll,
    retrying_deadlocks,
)
from django_polls.services.sql import column, poll_columns

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclasses.dataclass(frozen=True)
class Receipt:
    poll: int
    options: list[int]
    created_at: datetime


def cast_vote(*, poll_id: int, voter: User, option_ids: Sequence[int]) -> Receipt:
    """Store one ballot: all of ``option_ids`` or, when any rule says no, nothing.

    Raises ``Poll.DoesNotExist``, :class:`InvalidInput` (unknown or foreign option, more than one
    option on a single-vote poll), :class:`PollClosed` or :class:`AlreadyVoted`.

    On PostgreSQL the ballot is one statement (one round trip, see :data:`BALLOT_SQL`); elsewhere
    it is a transaction of a few statements. Both take the same locks in the same order and judge
    with :func:`judge_ballot`, and the same tests run on both.
    """
    ids = list(option_ids)
    if not ids or len(set(ids)) != len(ids):
        raise InvalidInput({"options": ["Give a non-empty list of distinct option ids."]})
    listened = signals.vote_cast.has_listeners(Poll)
    try:
        if connection.vendor == "postgresql":
            now, poll = _cast_vote_in_one_statement(poll_id, voter, ids, with_poll=listened)
        elif connection.vendor == "mysql":
            poll, now = retrying_deadlocks(lambda: _cast_vote_in_steps(poll_id, voter, ids))
        else:
            poll, now = _cast_vote_in_steps(poll_id, voter, ids)
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise AlreadyVoted() from exc
        raise PollChanged() from exc
    if listened:
        transaction.on_commit(
            lambda: signals.vote_cast.send(
                sender=Poll, poll=poll, voter=voter, option_ids=list(ids)
            ),
            robust=True,
        )
    return Receipt(poll=poll_id, options=ids, created_at=now)


def judge_ballot(
    ids: Sequence[int], *, known: Collection[int], allows_multiple: bool, is_open: bool
) -> None:
    """The voting rules for one ballot, in the order their errors are reported.

    ``known`` are the ballot's ids that are options of the poll; ``is_open`` whether the poll takes
    votes at the ballot's timestamp. :data:`BALLOT_SQL` applies the same rules in its ``WHERE``.
    """
    unknown = [option_id for option_id in ids if option_id not in known]
    if unknown:
        raise InvalidInput({"options": [f"{unknown[0]} is not an option of this poll."]})
    if len(ids) > 1 and not allows_multiple:
        raise InvalidInput({"options": ["This poll takes exactly one option per voter."]})
    if not is_open:
        raise PollClosed()


def _cast_vote_in_steps(poll_id: int, voter: User, ids: list[int]) -> tuple[Poll, datetime]:
    with transaction.atomic():
        poll = lock_poll(poll_id, exclusive=False)
        # Off PostgreSQL (where a ballot is one statement, stamped by the database's clock) the
        # clock is this process's; taken once the locks are held.
        now = timezone.now()
        # Checks the ids and locks the chosen options' rows, in id order (see above).
        known = set(lock_options(Option.objects.filter(poll_id=poll.pk, pk__in=ids)))
        judge_ballot(
            ids,
            known=known,
            allows_multiple=poll.allow_multiple_votes,
            is_open=poll.is_open_at(now),
        )
        Vote.objects.bulk_create(
            Vote(
                poll_id=poll.pk,
                option_id=option_id,
                voter=voter,
                poll_allows_multiple=poll.allow_multiple_votes,
                created_at=now,
            )
            for option_id in sorted(ids)
        )
        Option.objects.filter(pk__in=ids).update(votes=F("votes") + 1)
        announce_change(poll_id=poll.pk)
    return poll, now


#: A whole ballot on PostgreSQL, in one statement and so one round trip and (outside a
#: transaction) one commit. Its steps are those of the portable path, in the same lock order:
#: the poll under the shared locks (``poll``), the timestamp taken once they are held
#: (``stamped``), the ballot's options locked in id order (``chosen``), the rules (``verdict``,
#: as in :func:`judge_ballot`), the vote rows (``stored``, only when every rule passes) and the
#: counters (``counted``, which also announces the change to live results streams, see
#: :func:`announce_change`). The last row reports what the rules saw, so a refusal names its reason
#: without another query, and (when asked) the poll as locked, for the ``vote_cast`` signal.
#: Format it with :func:`_ballot_sql`.
BALLOT_SQL = """WITH poll AS (
    SELECT {poll_columns},
        pg_advisory_xact_lock_shared(%(namespace)s, (id %% 2147483648)::int4) AS advisory_lock
    FROM {poll} WHERE id = %(poll)s
    FOR SHARE
), stamped AS MATERIALIZED (
    SELECT id, allow_multiple_votes, closed_at, expires_at, clock_timestamp() AS stamp FROM poll
), chosen AS MATERIALIZED (
    SELECT o.id FROM {option} AS o JOIN stamped ON o.{option_poll} = stamped.id
    WHERE o.id = ANY(%(options)s::bigint[])
    ORDER BY o.id
    FOR NO KEY UPDATE OF o
), verdict AS MATERIALIZED (
    SELECT id, stamp, allow_multiple_votes,
        closed_at IS NULL AND (expires_at IS NULL OR expires_at > stamp) AS is_open,
        ARRAY(SELECT id FROM chosen ORDER BY id) AS known
    FROM stamped
), stored AS (
    INSERT INTO {vote} ({vote_poll}, {vote_option}, {vote_voter}, {vote_mode}, {vote_created})
    SELECT verdict.id, chosen.id, %(voter)s, verdict.allow_multiple_votes, verdict.stamp
    FROM verdict CROSS JOIN chosen
    WHERE verdict.is_open
        AND cardinality(verdict.known) = %(count)s
        AND (verdict.allow_multiple_votes OR %(count)s = 1)
    ORDER BY chosen.id
    RETURNING {vote_option}
), counted AS (
    UPDATE {option} SET {option_votes} = {option_votes} + 1
    WHERE id IN (SELECT {vote_option} FROM stored)
    RETURNING id, pg_notify({channel}, %(poll)s::text)
)
SELECT verdict.stamp, verdict.allow_multiple_votes, verdict.is_open, verdict.known,
    (SELECT count(*) FROM counted){poll_row}
FROM verdict{poll_join}
"""


@functools.cache
def _ballot_sql(*, with_poll: bool = False) -> str:
    quote = connection.ops.quote_name
    columns = poll_columns()
    return BALLOT_SQL.format(
        poll_columns=", ".join(columns),
        poll_row="".join(f", poll.{name}" for name in columns) if with_poll else "",
        poll_join=" CROSS JOIN poll" if with_poll else "",
        poll=quote(Poll._meta.db_table),
        option=quote(Option._meta.db_table),
        option_poll=column(Option, "poll"),
        option_votes=column(Option, "votes"),
        vote=quote(Vote._meta.db_table),
        vote_poll=column(Vote, "poll"),
        vote_option=column(Vote, "option"),
        vote_voter=column(Vote, "voter"),
        vote_mode=column(Vote, "poll_allows_multiple"),
        vote_created=column(Vote, "created_at"),
        channel=f"'{changes.CHANNEL}'",
    )


def _cast_vote_in_one_statement(
    poll_id: int, voter: User, ids: list[int], *, with_poll: bool
) -> tuple[datetime, Poll | None]:
    # Inside the caller's transaction a savepoint keeps a refused ballot from spoiling it;
    # outside one the statement commits on its own.
    scope = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with scope, _ballot_cursor() as (cursor, bigint):
        params = {
            "namespace": ADVISORY_LOCK_NAMESPACE,
            "poll": bigint(poll_id),
            "options": [bigint(option_id) for option_id in ids],
            "voter": _voter_param(voter, bigint),
            "count": len(ids),
        }
        cursor.execute(_ballot_sql(with_poll=with_poll), params)
        row = cursor.fetchone()
    if row is None:
        raise Poll.DoesNotExist()
    stamp, allows_multiple, is_open, known, counted, *poll_values = row
    if counted != len(ids):
        judge_ballot(ids, known=set(known), allows_multiple=allows_multiple, is_open=is_open)
        raise PollChanged()  # the rules passed yet nothing was stored; cannot happen
    if not with_poll:
        return stamp, None
    fields = [field.attname for field in Poll._meta.concrete_fields]
    return stamp, Poll.from_db(connection.alias, fields, poll_values)


def _voter_param(voter: User, bigint: Callable[[int], Any]) -> Any:
    """The voter's key as the ballot statement binds it: converted by the key's own field, as
    the ORM would (a UUID, a string, ...), and an integer key as a BIGINT, so that one prepared
    statement serves every ballot whatever the user model."""
    key = Vote._meta.get_field("voter").target_field
    value = key.get_db_prep_value(getattr(voter, key.attname), connection, prepared=False)
    if isinstance(value, int) and not isinstance(value, bool):
        return bigint(value)
    return value


@contextlib.contextmanager
def _ballot_cursor() -> Iterator[tuple[Any, Callable[[int], Any]]]:
    """A cursor for the ballot statement, and how to pass it a BIGINT.

    Where the site allows prepared statements (the database's ``OPTIONS["prepare_threshold"]``;
    Django's default, None, allows none), a cursor that binds on the server, so psycopg prepares
    the statement once per connection; ids go as int8 whatever their size, so one prepared
    statement serves every ballot. Else Django's own cursor, which binds on the client.
    """
    cursor = connection.cursor()
    raw = connection.connection
    if getattr(raw, "prepare_threshold", None) is None:
        with cursor:
            yield cursor, int
        return
    cursor.close()
    from django.db.backends.postgresql.base import (  # type: ignore[attr-defined]
        ServerBindingCursor,
    )
    from psycopg.types.numeric import Int8

    with connection._prepare_cursor(ServerBindingCursor(raw)) as server_cursor:  # type: ignore[attr-defined]
        yield server_cursor, Int8


def retract_votes(*, poll_id: int, voter: User) -> list[int]:
    """Remove every vote of ``voter`` on the poll; returns the options that lost a vote."""
    with transaction.atomic():
        poll = lock_poll(poll_id, exclusive=False)
        # The clock is read, after the locks, by the query of the caller's options: by the
        # clock of ballots and closing (the database's on PostgreSQL), and no extra round trip.
        mine = Vote.objects.filter(poll_id=poll.pk, voter=voter).order_by()
        now, candidates = _clock_and_options(poll.pk, voter)
        if not poll.is_open_at(now):
            raise PollClosed()
        if not candidates:
            raise NotVoted()
        # With the options locked, no ballot or retraction of theirs can change these rows, so
        # what is read next is exactly what is deleted and uncounted.
        lock_options(Option.objects.filter(pk__in=candidates))
        rows = dict(mine.filter(option_id__in=candidates).values_list("pk", "option_id"))
        if not rows:
            raise NotVoted()
        option_ids = sorted(rows.values())
        Vote.objects.filter(pk__in=list(rows)).delete()
        Option.objects.filter(pk__in=option_ids).update(votes=F("votes") - 1)
        announce_change(poll_id=poll.pk)
        transaction.on_commit(
            lambda: signals.vote_retracted.send(
                sender=Poll, poll=poll, voter=voter, option_ids=option_ids
            ),
            robust=True,
        )
    return option_ids


def _clock_and_options(poll_id: int, voter: User) -> tuple[datetime, list[int]]:
    """The time by :func:`poll_clock` and the options ``voter`` voted for on the poll, in one
    query (a row per option, or one row without one)."""
    mine = FilteredRelation("votes", condition=Q(votes__voter=voter))
    rows = Poll.objects.filter(pk=poll_id).annotate(mine=mine).order_by()
    if connection.vendor == "postgresql":
        found = list(rows.values_list(ClockTimestamp(), "mine__option"))
        now = found[0][0]
    else:
        found = list(rows.values_list("pk", "mine__option"))
        now = timezone.now()
    return now, [option_id for _, option_id in found if option_id is not None]


def votes_of(*, poll_id: int, voter: User) -> list[int]:
    """The option ids the voter chose on the poll (empty when none); Poll.DoesNotExist if none."""
    chosen = list(
        Vote.objects.filter(poll_id=poll_id, voter=voter)
        .order_by("option_id")
        .values_list("option_id", flat=True)
    )
    if not chosen and not Poll.objects.filter(pk=poll_id).exists():
        raise Poll.DoesNotExist()
    return chosen


# First key of the app's PostgreSQL advisory locks; the second is the poll id (wrapped to int4,
