"""Database errors as the API answers them: 503 with Retry-After only for a database that is down
or busy (the same request may succeed later), 500 for a server that is broken (a table missing
after a forgotten ``migrate``), never a 4xx for what the client did not send.

Every error here is raised by a real database or driver: a real lock held by another connection,
a real port nobody listens on, a real table dropped.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connection, connections
from django.urls import reverse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView, exception_handler

from django_polls.exceptions import (
    DatabaseUnavailable,
    check_connection_pools,
    database_unavailable,
    to_api_exception,
    with_error_codes,
)
from django_polls.models import Option, Poll, Vote
from tests.conftest import assert_error, db_state, on_postgresql, option_ids


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def as_django_error(driver_error: Exception) -> OperationalError:
    """The driver's error wrapped as Django wraps it (``raise ... from driver_error``)."""
    error = OperationalError(*driver_error.args)
    error.__cause__ = driver_error
    return error


@pytest.fixture
def sqlite_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory) / "db.sqlite3"


def sqlite_error(path: Path, sql: str, *, hold_lock: bool = False) -> sqlite3.OperationalError:
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE IF NOT EXISTS t (x)")
    if hold_lock:
        holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute(sql)
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        other.close()
        holder.close()
    raise AssertionError(f"{sql} succeeded")


def test_on_sqlite_a_lock_held_past_the_timeout_is_unavailable(sqlite_file):
    locked = sqlite_error(sqlite_file, "INSERT INTO t VALUES (1)", hold_lock=True)

    assert database_unavailable(as_django_error(locked))


@pytest.mark.parametrize("sql", ["SELECT * FROM missing", "SELECT nope FROM t", "SELEC 1"])
def test_on_sqlite_a_missing_table_or_a_bad_query_is_no_reason_to_retry(sqlite_file, sql):
    assert not database_unavailable(as_django_error(sqlite_error(sqlite_file, sql)))


def test_on_postgresql_a_server_nobody_listens_on_is_unavailable() -> None:
    psycopg = pytest.importorskip("psycopg")
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(host="127.0.0.1", port=free_port(), user="postgres", connect_timeout=2)

    assert database_unavailable(as_django_error(refused.value))


@on_postgresql
@pytest.mark.parametrize(
    ("sql", "retry"),
    [
        ("SET LOCAL statement_timeout = '10ms'; SELECT pg_sleep(1)", True),
        ("SELECT pg_read_file('/no/such/file')", False),
    ],
    ids=["statement timeout", "a file the server lacks"],
)
def test_on_postgresql_the_sqlstate_decides(db, sql, retry):
    with pytest.raises(OperationalError) as failed, connection.cursor() as cursor:
        for statement in sql.split(";"):
            cursor.execute(statement)

    assert database_unavailable(failed.value) is retry


def test_on_mysql_the_error_number_decides() -> None:
    mysqldb = pytest.importorskip("MySQLdb")
    with pytest.raises(mysqldb.OperationalError) as refused:
        mysqldb.connect(host="127.0.0.1", port=free_port(), user="root", connect_timeout=2)
    assert refused.value.args[0] in {2002, 2003}  # MariaDB's client says 2002, MySQL's 2003
    assert database_unavailable(as_django_error(refused.value))
    try:
        server = mysqldb.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=2)
    except mysqldb.OperationalError:
        pytest.skip("no MySQL or MariaDB on 127.0.0.1:3306")
    with server, pytest.raises(mysqldb.OperationalError) as unknown_column:
        server.cursor().execute("SELECT no_such_column")
    assert unknown_column.value.args[0] == 1054
    assert not database_unavailable(as_django_error(unknown_column.value))


@on_postgresql
def test_on_postgresql_no_pooled_connection_in_time_is_unavailable() -> None:
    """Django's pool (``OPTIONS["pool"]``, Django 5.1+) takes connections with ``getconn()``
    under its error wrapper: psycopg_pool's PoolTimeout arrives as an OperationalError."""
    pool_module = pytest.importorskip("psycopg_pool")
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    pool = pool_module.ConnectionPool(kwargs=params, min_size=1, max_size=1, open=True)
    try:
        with pool.connection(), pytest.raises(pool_module.PoolTimeout) as waited:
            pool.getconn(timeout=0.1)
    finally:
        pool.close()

    assert database_unavailable(as_django_error(waited.value))


def test_on_mysql_a_lock_wait_timeout_is_unavailable() -> None:
    mysqldb = pytest.importorskip("MySQLdb")
    try:
        holder = mysqldb.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=2)
    except mysqldb.OperationalError:
        pytest.skip("no MySQL or MariaDB on 127.0.0.1:3306")
    database = f"django_polls_lock_probe_{os.getpid()}"
    waiter = mysqldb.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=2)
    try:
        holding = holder.cursor()
        holding.execute(f"CREATE DATABASE {database}")
        holding.execute(f"CREATE TABLE {database}.t (id INT PRIMARY KEY) ENGINE=InnoDB")
        holding.execute(f"INSERT INTO {database}.t VALUES (1)")
        holder.commit()
        holding.execute(f"SELECT id FROM {database}.t WHERE id = 1 FOR UPDATE")
        waiting = waiter.cursor()
        waiting.execute("SET SESSION innodb_lock_wait_timeout = 1")
        with pytest.raises(mysqldb.OperationalError) as timed_out:
            waiting.execute(f"SELECT id FROM {database}.t WHERE id = 1 FOR UPDATE")
    finally:
        waiter.close()
        holder.rollback()
        holder.cursor().execute(f"DROP DATABASE IF EXISTS {database}")
        holder.close()

    assert timed_out.value.args[0] == 1205
    assert database_unavailable(as_django_error(timed_out.value))


def test_a_missing_row_of_another_model_than_the_poll_is_no_404() -> None:
    missing_option = Option.DoesNotExist()

    assert to_api_exception(missing_option) is missing_option


class HostView(APIView):
    """A host site's own endpoint, its exception handler wrapped as the docs show."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def get_exception_handler(self) -> Any:
        return with_error_codes(exception_handler)

    def post(self, request: Request) -> Response:
        return Response({"keys": sorted(request.data)})

    def get(self, request: Request) -> Response:
        def recurse(depth: int) -> int:
            return recurse(depth + 1)

        return Response({"depth": recurse(0)})


def test_a_body_nested_too_deeply_for_python_is_a_parse_error_on_any_wrapped_view():
    request = APIRequestFactory().post(
        "/host/", b'{"a":' * 100_000, content_type="application/json"
    )

    response = HostView.as_view()(request)

    assert response.status_code == 400
    assert response.data == {
        "detail": "JSON parse error - nested too deeply.",
        "code": "parse_error",
    }


def test_a_recursion_error_of_the_code_itself_is_no_client_error():
    with pytest.raises(RecursionError):
        HostView.as_view()(APIRequestFactory().get("/host/"))


@pytest.mark.skipif(
    connection.vendor == "mysql",
    reason="MySQL/MariaDB commit DDL at once: the dropped table would outlive the test "
    "(a missing table is a ProgrammingError there, never a 503: see the errno test)",
)
def test_a_table_missing_after_a_forgotten_migrate_is_a_server_error_not_a_503(
    make_poll, bob, client_for, caplog
):
    poll = make_poll()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {connection.ops.quote_name(Vote._meta.db_table)}")
    client = client_for(bob)
    client.raise_request_exception = False

    response = client.post(
        reverse("django_polls:poll-vote", args=[poll.pk]),
        {"options": option_ids(poll)[:1]},
        format="json",
    )

    assert response.status_code == 500
    assert "Retry-After" not in response
    assert any(record.name == "django.request" for record in caplog.records)


@on_postgresql
def test_a_database_that_is_down_is_a_503_to_retry(transactional_db, anon):
    settings_dict: dict[str, Any] = connection.settings_dict
    port = settings_dict["PORT"]
    connection.close()
    settings_dict["PORT"] = str(free_port())  # a real server nobody listens on
    try:
        response = anon.get(reverse("django_polls:poll-list"))
    finally:
        connection.close()
        settings_dict["PORT"] = port

    assert_error(response, 503, "service_unavailable")
    assert response["Retry-After"] == "1"


EXPIRIES_NO_DATABASE_CAN_HOLD = {
    "after 9999 in UTC": "9999-12-31T23:00:00-05:00",
    "the year 10000": "10000-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    "expires_at", EXPIRIES_NO_DATABASE_CAN_HOLD.values(), ids=EXPIRIES_NO_DATABASE_CAN_HOLD.keys()
)
def test_an_expiry_out_of_range_is_a_field_error_that_changes_nothing(
    make_poll, alice, client_for, expires_at
):
    poll = make_poll(created_by=alice)
    before = db_state()
    client = client_for(alice)
    body = {"title": "Dinner?", "options": [{"text": "Rice"}, {"text": "Pasta"}]}

    created = client.post(
        reverse("django_polls:poll-list"), {**body, "expires_at": expires_at}, format="json"
    )
    updated = client.patch(
        reverse("django_polls:poll-detail", args=[poll.pk]),
        {"expires_at": expires_at},
        format="json",
    )

    for response in (created, updated):
        assert response.status_code == 400, response.content
        assert set(response.json()) == {"expires_at"}
    assert db_state() == before
    assert Poll.objects.count() == 1


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set when the default database's connection pool is told to test its idle connections
    (a pool of the test's in place of Django's)."""
    checked = threading.Event()

    class Pool:
        def check(self) -> None:
            checked.set()

    wrapper = connections["default"]
    monkeypatch.setattr(type(wrapper), "_connection_pools", {"default": Pool()}, raising=False)
    return checked


def test_an_outage_has_each_connection_pool_test_its_idle_connections(
    checked: threading.Event,
) -> None:
    # After a restart of PostgreSQL or PgBouncer every idle pooled connection is broken: the
    # first request that finds one has the pools replace them all, in the background.
    import psycopg

    error = as_django_error(psycopg.OperationalError("server closed the connection"))
    assert isinstance(to_api_exception(error), DatabaseUnavailable)
    assert checked.wait(5)
    # A pool is checked once at a time, and again at the next outage.
    checked.clear()
    check_connection_pools()
    assert checked.wait(5)


def test_a_busy_database_has_no_pool_checked(checked: threading.Event) -> None:
    import psycopg

    assert isinstance(
        to_api_exception(as_django_error(psycopg.errors.LockNotAvailable("lock"))),
        DatabaseUnavailable,
    )
    assert not checked.wait(0.2)
