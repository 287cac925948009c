"""The locks every write takes, in one order (the poll, then options by ascending id, then vote
rows), and how each database reports the errors that concurrency causes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import IntegrityError, OperationalError, connection
from django.db.models import F, QuerySet

from django_polls.models import Option, Poll

T = TypeVar("T")

# where two polls sharing a key only ever wait for each other, never break a rule).
ADVISORY_LOCK_NAMESPACE = 0x504F4C4C  # "POLL"


def lock_poll(poll_id: int, *, exclusive: bool) -> Poll:
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


def lock_options(options: QuerySet[Option]) -> list[int]:
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


def mysql_errno(exc: BaseException) -> int | None:
    args = getattr(exc.__cause__, "args", None) or exc.args
    return args[0] if args and isinstance(args[0], int) else None


def is_unique_violation(exc: IntegrityError) -> bool:
    if connection.vendor == "mysql":
        return mysql_errno(exc) == MYSQL_DUPLICATE_KEY
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or getattr(exc.__cause__, "pgcode", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return "UNIQUE constraint failed" in str(exc)


def retrying_deadlocks(run: Callable[[], T]) -> T:
    """``run()`` (a transaction of the portable path), run again when InnoDB rolled it back as
    a deadlock's victim; elsewhere, and inside a caller's transaction, once.

    Ballots lock in one order, yet InnoDB can still deadlock them: inserts that wait on the same
    unique key each hold a shared lock on it, and when the transaction they wait for rolls back
    (or deletes the row, as a retraction does) each needs the exclusive lock the other blocks.
    InnoDB then rolls one back whole, so running it again is safe and gives the answer it would
    have got in turn (stored, or already voted). Inside a caller's transaction nothing can be
    retried: that transaction is gone, and the error goes up.
    """
    retry = connection.vendor == "mysql" and not connection.in_atomic_block
    attempts = DEADLOCK_RETRIES + 1 if retry else 1
    for attempt in range(1, attempts + 1):
        try:
            return run()
        except OperationalError as exc:
            if mysql_errno(exc) != MYSQL_DEADLOCK or attempt == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
