"""The voting rules, in one place.

Every write that matters (create, update, close and delete a poll; cast and retract a vote; repair
counters) is a function here, run in a transaction. Views, serializers, the admin and management
commands call these functions and never write votes or counters themselves.

Concurrency, in short (docs/architecture.md has the whole story):

* Every transaction locks in one order: the poll, then option rows by ascending id, then vote
  rows. One order means no deadlocks.
* On PostgreSQL a ballot or retraction holds a *shared* lock on its poll (a transaction-scoped
  advisory lock plus ``FOR SHARE`` on the row), so ballots on one poll run side by side. Closing,
  editing, deleting and repairing a poll take the *exclusive* locks: they wait for the ballots in
  flight, and ballots that arrive later queue behind them (advisory locks are granted in order,
  so a busy poll can still be closed at once). Timestamps are taken after the locks.
* On MySQL/MariaDB the same order with row locks alone: the poll ``LOCK IN SHARE MODE`` for
  ballots and retractions, ``FOR UPDATE`` for poll changes, options ``FOR UPDATE`` through their
  primary key. InnoDB can still pick a ballot as a deadlock's victim when two wait on one
  duplicate vote row; such a ballot runs again (see :func:`_cast_vote_retrying_deadlocks`).
* SQLite serialises writers on the whole database; a transaction's first statement is a write.
* Duplicate ballots are refused by the unique indexes on ``Vote``; the loser's transaction rolls
  back whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import (
    Count,
    F,
    Field,
    FilteredRelation,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from django_polls import changes, signals
from django_polls.conf import polls_settings
from django_polls.models import CLOCK_ATTRIBUTE, ClockTimestamp, Option, Poll, Vote, poll_clock

if TYPE_CHECKING:
    # To the type checker, the site's user model (AUTH_USER_MODEL); nothing is imported at run time.
    from django.contrib.auth.models import User


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


#: Marks an argument of :func:`update_poll` that should stay as it is.
UNCHANGED: Any = _Unchanged()


class PollRuleError(Exception):
    """A request that breaks a voting rule. ``code`` is stable and part of the API."""

    code = "invalid"
    default_message = "The request breaks a poll rule."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidInput(PollRuleError):
    """Input that can never succeed; ``errors`` maps field names to messages (HTTP 400)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


class Conflict(PollRuleError):
    """Input that is fine but clashes with the poll's state or the caller's votes (HTTP 409)."""

    code = "conflict"


class PollClosed(Conflict):
    code = "poll_closed"
    default_message = "This poll is closed or expired and no longer takes votes."


class AlreadyVoted(Conflict):
    code = "already_voted"
    default_message = "You have already voted on this poll as far as it allows."


class PollHasVotes(Conflict):
    code = "poll_has_votes"
    default_message = (
        "This poll has votes: its options and allow_multiple_votes can no longer change."
    )


class PollChanged(Conflict):
    code = "poll_changed"
    default_message = "The poll changed while the vote was being stored; fetch it and retry."


class NotVoted(PollRuleError):
    code = "not_voted"
    default_message = "You have not voted on this poll."


@dataclasses.dataclass(frozen=True)
class Receipt:
    poll: int
    options: list[int]
    created_at: datetime


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


# ---------------------------------------------------------------------------------------------
# Polls


def clean_title(title: str) -> str:
    title = title.strip()
    limit = polls_settings.MAX_TITLE_LENGTH
    if not title:
        raise InvalidInput({"title": ["This field may not be blank."]})
    if len(title) > limit:
        raise InvalidInput({"title": [f"Ensure this field has no more than {limit} characters."]})
    return title


def clean_description(description: str) -> str:
    limit = polls_settings.MAX_DESCRIPTION_LENGTH
    if len(description) > limit:
        raise InvalidInput(
            {"description": [f"Ensure this field has no more than {limit} characters."]}
        )
    return description


DUPLICATE_OPTIONS = "Option texts must be unique within a poll."


def check_option_count(count: int) -> None:
    low, high = polls_settings.MIN_OPTIONS, polls_settings.MAX_OPTIONS
    if not low <= count <= high:
        raise InvalidInput({"options": [f"A poll needs between {low} and {high} options."]})


def clean_option_texts(texts: Sequence[str]) -> list[str]:
    """Trimmed texts, MIN_OPTIONS to MAX_OPTIONS of them, non-blank, unique ignoring case."""
    check_option_count(len(texts))
    limit = polls_settings.MAX_OPTION_LENGTH
    cleaned = [text.strip() for text in texts]
    if any(not text for text in cleaned):
        raise InvalidInput({"options": ["Option texts may not be blank."]})
    if any(len(text) > limit for text in cleaned):
        raise InvalidInput(
            {"options": [f"Ensure each option text has no more than {limit} characters."]}
        )
    folded = [text.casefold() for text in cleaned]
    if len(set(folded)) != len(folded):
        raise InvalidInput({"options": [DUPLICATE_OPTIONS]})
    return cleaned


def clean_expiry(expires_at: datetime | None, *, current: datetime | None = None) -> None:
    """A new expiry must lie in the future; an unchanged one is accepted as it is."""
    if expires_at is None or expires_at == current:
        return
    if expires_at <= _read_poll_clock():
        raise InvalidInput({"expires_at": ["The expiry must be in the future."]})


def _read_poll_clock() -> datetime:
    """The time by :func:`poll_clock`, the clock that will judge the expiry: on PostgreSQL a
    query (only when an expiry is set or moved), elsewhere this process's clock."""
    clock = poll_clock()
    if isinstance(clock, datetime):
        return clock
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        now: datetime = cursor.fetchone()[0]
    return now


def create_poll(
    *,
    created_by: User,
    title: str,
    options: Sequence[str],
    description: str = "",
    expires_at: datetime | None = None,
    allow_multiple_votes: bool = False,
) -> Poll:
    title = clean_title(title)
    description = clean_description(description)
    texts = clean_option_texts(options)
    clean_expiry(expires_at)
    with transaction.atomic():
        poll = Poll.objects.create(
            title=title,
            description=description,
            expires_at=expires_at,
            allow_multiple_votes=allow_multiple_votes,
            created_by=created_by,
        )
        _add_options(poll, texts)
        transaction.on_commit(
            lambda: signals.poll_created.send(sender=Poll, poll=poll, created_by=created_by),
            robust=True,
        )
    return poll


def update_poll(
    *,
    poll: Poll,
    title: Any = UNCHANGED,
    description: Any = UNCHANGED,
    expires_at: Any = UNCHANGED,
    allow_multiple_votes: Any = UNCHANGED,
    options: Any = UNCHANGED,
) -> Poll:
    """Change the given fields. Options and the vote mode are frozen once the poll has votes.

    ``options`` replaces the list (new ids) on a poll without votes; on a poll with votes the
    same texts in the same order are accepted as unchanged and anything else is refused.
    """
    changes: dict[str, Any] = {}
    if title is not UNCHANGED:
        changes["title"] = clean_title(title)
    if description is not UNCHANGED:
        changes["description"] = clean_description(description)
    texts = clean_option_texts(options) if options is not UNCHANGED else None
    with transaction.atomic():
        locked = _lock_poll(poll.pk, exclusive=True)
        if expires_at is not UNCHANGED:
            clean_expiry(expires_at, current=locked.expires_at)
            changes["expires_at"] = expires_at
        if allow_multiple_votes is not UNCHANGED:
            changes["allow_multiple_votes"] = allow_multiple_votes
        mode = changes.get("allow_multiple_votes", locked.allow_multiple_votes)
        mode_changes = mode != locked.allow_multiple_votes
        has_votes = (texts is not None or mode_changes) and Vote.objects.filter(
            poll=locked
        ).exists()
        if has_votes and (
            mode_changes or texts != list(locked.options.values_list("text", flat=True))
        ):
            raise PollHasVotes()
        changed = {k: v for k, v in changes.items() if getattr(locked, k) != v}
        if changed:
            Poll.objects.filter(pk=locked.pk).update(**changed)
        if texts is not None and not has_votes:
            locked.options.all().delete()
            _add_options(locked, texts)
        if changed or (texts is not None and not has_votes):
            announce_change(poll_id=locked.pk)
    locked.refresh_from_db()
    return locked


def close_poll(*, poll: Poll) -> Poll:
    """Close the poll for good. Closing a closed poll changes nothing."""
    with transaction.atomic():
        locked = _lock_poll(poll.pk, exclusive=True)
        if locked.closed_at is None:
            # Stamped once the ballots in flight have committed, so none is dated after it, by
            # the clock that stamps them.
            Poll.objects.filter(pk=poll.pk).update(closed_at=_now_by_ballot_clock())
            announce_change(poll_id=poll.pk)
            transaction.on_commit(
                lambda: signals.poll_closed.send(sender=Poll, poll=poll), robust=True
            )
    poll.refresh_from_db(fields=["closed_at"])
    return poll


#: The clock that stamps ballots and closings and judges "open": see :func:`models.poll_clock`.
_ClockTimestamp = ClockTimestamp
_now_by_ballot_clock = poll_clock


def delete_poll(*, poll: Poll) -> None:
    with transaction.atomic():
        # Lock first so no ballot is in flight while the rows go.
        _lock_poll(poll.pk, exclusive=True)
        Poll.objects.filter(pk=poll.pk).delete()
        announce_change(poll_id=poll.pk)


def _add_options(poll: Poll, texts: Iterable[str]) -> None:
    """Create the options (inside the caller's transaction, which an error rolls back whole).

    The database compares texts with its own ``lower()``, which folds some letters unlike
    Python (``"İ"`` and ``"i"``): its verdict is reported like ours.
    """
    try:
        Option.objects.bulk_create(
            Option(poll=poll, text=text, order=index) for index, text in enumerate(texts)
        )
    except IntegrityError as exc:
        if _is_unique_violation(exc):
            raise InvalidInput({"options": [DUPLICATE_OPTIONS]}) from exc
        raise


# ---------------------------------------------------------------------------------------------
# Votes


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
            poll, now = _cast_vote_retrying_deadlocks(poll_id, voter, ids)
        else:
            poll, now = _cast_vote_in_steps(poll_id, voter, ids)
    except IntegrityError as exc:
        if _is_unique_violation(exc):
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
        poll = _lock_poll(poll_id, exclusive=False)
        # Off PostgreSQL (where a ballot is one statement, stamped by the database's clock) the
        # clock is this process's; taken once the locks are held.
        now = timezone.now()
        # Checks the ids and locks the chosen options' rows, in id order (see above).
        known = set(_lock_options(Option.objects.filter(poll_id=poll.pk, pk__in=ids)))
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


def _column(model: type[Poll | Option | Vote], name: str) -> str:
    """The quoted column of a model field."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return connection.ops.quote_name(field.column)


def _poll_columns() -> list[str]:
    return [_column(Poll, field.name) for field in Poll._meta.concrete_fields]


@functools.cache
def _ballot_sql(*, with_poll: bool = False) -> str:
    quote = connection.ops.quote_name
    poll_columns = _poll_columns()
    return BALLOT_SQL.format(
        poll_columns=", ".join(poll_columns),
        poll_row="".join(f", poll.{column}" for column in poll_columns) if with_poll else "",
        poll_join=" CROSS JOIN poll" if with_poll else "",
        poll=quote(Poll._meta.db_table),
        option=quote(Option._meta.db_table),
        option_poll=_column(Option, "poll"),
        option_votes=_column(Option, "votes"),
        vote=quote(Vote._meta.db_table),
        vote_poll=_column(Vote, "poll"),
        vote_option=_column(Vote, "option"),
        vote_voter=_column(Vote, "voter"),
        vote_mode=_column(Vote, "poll_allows_multiple"),
        vote_created=_column(Vote, "created_at"),
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
        poll = _lock_poll(poll_id, exclusive=False)
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
        _lock_options(Option.objects.filter(pk__in=candidates))
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
# where two polls sharing a key only ever wait for each other, never break a rule).
ADVISORY_LOCK_NAMESPACE = 0x504F4C4C  # "POLL"


def _lock_poll(poll_id: int, *, exclusive: bool) -> Poll:
    """Read the poll under a shared (ballots) or exclusive (poll changes) lock, in one statement.

    Raises ``Poll.DoesNotExist``. SQLite serialises writers on the whole database: a transaction
    that reads first and writes later cannot wait for the write lock (SQLite refuses at once with
    "database is locked"), so there the first statement is a write that waits its turn. MySQL and
    MariaDB lock the row: ``LOCK IN SHARE MODE`` (both servers know it) or ``FOR UPDATE``.
    """
    if connection.vendor == "sqlite":
        Poll.objects.filter(pk=poll_id).update(id=F("id"))
    if connection.vendor == "mysql":
        table = connection.ops.quote_name(Poll._meta.db_table)
        row_lock = "FOR UPDATE" if exclusive else "LOCK IN SHARE MODE"
        found = list(Poll.objects.raw(f"SELECT * FROM {table} WHERE id = %s {row_lock}", [poll_id]))
        if not found:
            raise Poll.DoesNotExist()
        return found[0]
    if connection.vendor != "postgresql":
        return Poll.objects.get(pk=poll_id)
    table = connection.ops.quote_name(Poll._meta.db_table)
    advisory = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    row_lock = "FOR UPDATE" if exclusive else "FOR SHARE"
    sql = (
        f"SELECT *, {advisory}(%s, (id %% 2147483648)::int4) AS advisory_lock"
        f" FROM {table} WHERE id = %s {row_lock}"
    )
    found = list(Poll.objects.raw(sql, [ADVISORY_LOCK_NAMESPACE, poll_id]))
    if not found:
        raise Poll.DoesNotExist()
    return found[0]


def _lock_options(options: QuerySet[Option]) -> list[int]:
    """Lock option rows in id order (no deadlocks); returns their ids.

    On PostgreSQL ``FOR NO KEY UPDATE`` because inserting a vote takes a key-share lock on its
    option, which a plain ``FOR UPDATE`` would conflict with.

    MySQL and MariaDB know only ``FOR UPDATE``, and lock the entries of the index a statement
    reads through. A vote's composite foreign key takes a shared lock on its option's entry in the
    unique (id, poll) index; were another transaction's ``FOR UPDATE`` to read through that index
    (it covers a query for ids), it would queue for that entry before the row, in the opposite
    order, and InnoDB would report a deadlock. So the lock reads through the primary key: only
    the transaction that holds an option's row ever locks its other index entries.
    """
    if connection.vendor != "mysql":
        locked = options.select_for_update(no_key=True).order_by("pk").values_list("pk", flat=True)
        return list(locked)
    query = options.select_for_update().order_by("pk").values_list("pk", flat=True)
    sql, params = query.query.sql_with_params()
    table = f"FROM {connection.ops.quote_name(Option._meta.db_table)}"
    sql = sql.replace(table, f"{table} FORCE INDEX (PRIMARY)", 1)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


#: MySQL's error numbers: a duplicate key, and a deadlock (the server rolled back the transaction).
MYSQL_DUPLICATE_KEY = 1062
MYSQL_DEADLOCK = 1213

#: How many times a ballot whose transaction MySQL chose as a deadlock's victim runs again.
DEADLOCK_RETRIES = 3


def _mysql_errno(exc: BaseException) -> int | None:
    args = getattr(exc.__cause__, "args", None) or exc.args
    return args[0] if args and isinstance(args[0], int) else None


def _is_unique_violation(exc: IntegrityError) -> bool:
    if connection.vendor == "mysql":
        return _mysql_errno(exc) == MYSQL_DUPLICATE_KEY
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or getattr(exc.__cause__, "pgcode", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return "UNIQUE constraint failed" in str(exc)


def _cast_vote_retrying_deadlocks(
    poll_id: int, voter: User, ids: list[int]
) -> tuple[Poll, datetime]:
    """The portable ballot, run again when InnoDB rolled it back as a deadlock's victim.

    Ballots lock in one order, yet InnoDB can still deadlock them: inserts that wait on the same
    unique key each hold a shared lock on it, and when the transaction they wait for rolls back
    (or deletes the row, as a retraction does) each needs the exclusive lock the other blocks.
    InnoDB then rolls one back whole, so running it again is safe and gives the answer it would
    have got in turn (stored, or already voted). Inside a caller's transaction nothing can be
    retried: that transaction is gone, and the error goes up.
    """
    attempts = 1 if connection.in_atomic_block else DEADLOCK_RETRIES + 1
    for attempt in range(1, attempts + 1):
        try:
            return _cast_vote_in_steps(poll_id, voter, ids)
        except OperationalError as exc:
            if _mysql_errno(exc) != MYSQL_DEADLOCK or attempt == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# Results and counters


def announce_change(*, poll_id: int) -> None:
    """Tell the live results streams of every process that the poll's results or state changed,
    once the current transaction commits (at once outside one); nothing if it rolls back.

    On PostgreSQL a ``NOTIFY``, which the database delivers only at commit and merges when one
    transaction repeats it; the ballot statement sends its own (:data:`BALLOT_SQL`). Elsewhere
    the live results brokers of this process only (see :mod:`django_polls.changes`).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [changes.CHANNEL, str(poll_id)])
    else:
        transaction.on_commit(functools.partial(changes.publish_in_process, poll_id))


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
    poll_columns = ", ".join(f"p.{column}" for column in _poll_columns())
    if connection.vendor == "postgresql":
        # The time by the clock of ballots and closing, for Poll.is_active: read here, not by
        # a query of its own.
        poll_columns += f", clock_timestamp() AS {CLOCK_ATTRIBUTE}"
    return (
        f"SELECT {poll_columns}, o.id AS option_id, o.{_column(Option, 'text')} AS option_text,"
        f" o.{_column(Option, 'votes')} AS option_votes"
        f" FROM {quote(Option._meta.db_table)} AS o"
        f" JOIN {quote(Poll._meta.db_table)} AS p ON p.id = o.{_column(Option, 'poll')}"
        f" WHERE p.id = %s ORDER BY o.{_column(Option, 'order')}, o.id"
    )


def percentage(votes: int, total: int) -> float:
    """100 * votes / total, rounded half-up to 2 decimals; 0.0 when there are no votes."""
    if not total:
        return 0.0
    exact = Decimal(100 * votes) / Decimal(total)
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def find_drift(*, poll_ids: Iterable[int] | None = None) -> list[Drift]:
    """Options whose stored counter differs from their vote rows."""
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
    options = Option.objects.annotate(actual=actual).exclude(votes=F("actual"))
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
                _lock_poll(poll_id, exclusive=True)
            except Poll.DoesNotExist:
                continue  # deleted meanwhile, with its counters
            drifts = find_drift(poll_ids=[poll_id])
            for drift in drifts:
                Option.objects.filter(pk=drift.option_id).update(votes=drift.actual)
            if drifts:
                announce_change(poll_id=poll_id)
            repaired.extend(drifts)
    return repaired
