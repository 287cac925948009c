"""Async PostgreSQL for the hot paths under ASGI: a psycopg ``AsyncConnectionPool`` per event loop,
opened with the connection settings of the site's default database, and models built from raw
rows as the ORM builds them.

Only the vote and results views use it (:mod:`django_polls.async_views`), and only where
:func:`available` says so: PostgreSQL through psycopg 3 with ``psycopg_pool`` installed. Their
statements are the ones the synchronous path runs; each runs in autocommit, so it is its own
transaction, as the ballot statement is outside ``ATOMIC_REQUESTS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import re
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar, cast

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model

from django_polls.conf import polls_settings

M = TypeVar("M", bound=Model)

#: The pool of each running event loop (a worker runs one).
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


@functools.cache
def driver_ready() -> bool:
    """Whether psycopg 3 and its pool are installed and the default database is PostgreSQL."""
    if connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
        return False
    try:
        import psycopg  # noqa: F401 (psycopg 3: psycopg2 is another module)
        import psycopg_pool  # noqa: F401
    except ImportError:
        return False
    return True


def available() -> bool:
    """Whether the async path may run a request's statements: the driver is ready, and the site
    does not wrap each request in a transaction (``ATOMIC_REQUESTS``), which only the
    synchronous path honours."""
    database = connections[DEFAULT_DB_ALIAS].settings_dict
    return (
        driver_ready()
        and not database.get("ATOMIC_REQUESTS")
        and polls_settings.ASYNC_POOL is not None
    )


def connection_params() -> dict[str, Any]:
    """What Django would pass psycopg for the default database (the name, credentials, OPTIONS,
    its adapters and ``prepare_threshold``), less what only Django's own cursors use."""
    wrapper = connections[DEFAULT_DB_ALIAS]
    params = dict(wrapper.get_connection_params())
    params.pop("cursor_factory", None)
    params["autocommit"] = True
    return params


async def _configure(connection: Any) -> None:
    options = connections[DEFAULT_DB_ALIAS].settings_dict.get("OPTIONS", {})
    role = options.get("assume_role")
    if role:
        from psycopg import sql

        await connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    level = options.get("isolation_level")
    if level is not None:
        from psycopg import IsolationLevel

        await connection.set_isolation_level(IsolationLevel(level))


async def pool() -> Any:
    """The running loop's pool, opened on first use."""
    loop = asyncio.get_running_loop()
    found = _pools.get(loop)
    if found is None:
        from psycopg import AsyncConnection
        from psycopg_pool import AsyncConnectionPool

        sizes = polls_settings.ASYNC_POOL
        assert sizes is not None  # available() says so
        found = AsyncConnectionPool(
            kwargs=connection_params(),
            connection_class=AsyncConnection,
            min_size=sizes["min_size"],
            max_size=sizes["max_size"],
            timeout=sizes["timeout"],
            reconnect_timeout=sizes["reconnect_timeout"],
            configure=_configure,
            open=False,
            name="django_polls",
        )
        _pools[loop] = found
        await found.open()
    return found


async def close() -> None:
    """Close the running loop's pool (a worker shutting down, a test's loop ending)."""
    found = _pools.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()


#: The connection that :func:`one_connection` holds for the current task, if any.
_held: contextvars.ContextVar[Any] = contextvars.ContextVar("django_polls_connection", default=None)


@contextlib.asynccontextmanager
async def one_connection() -> AsyncIterator[None]:
    """Run every statement of the block on one pooled connection, taken once: a request that
    runs two (the token read and the ballot) waits for the pool once, not twice."""
    if _held.get() is not None:
        yield
        return
    wrapper = connections[DEFAULT_DB_ALIAS]
    with wrapper.wrap_database_errors:
        async with (await pool()).connection() as connection:
            held = _held.set(connection)
            try:
                yield
            finally:
                _held.reset(held)


@contextlib.asynccontextmanager
async def cursor() -> AsyncIterator[Any]:
    """A raw cursor (PostgreSQL's own ``$1`` placeholders, see :func:`positional`) on the
    connection :func:`one_connection` holds, else on one taken from the pool for it; driver
    errors come out as Django's database errors (``OperationalError``, ``IntegrityError``...),
    as from the ORM."""
    from psycopg import AsyncRawCursor

    wrapper = connections[DEFAULT_DB_ALIAS]
    with wrapper.wrap_database_errors:
        held = _held.get()
        if held is not None:
            async with AsyncRawCursor(held) as found:
                yield found
            return
        async with (
            (await pool()).connection() as connection,
            AsyncRawCursor(connection) as found,
        ):
            yield found


async def fetchone(sql: str, params: Any) -> tuple[Any, ...] | None:
    """The first row of ``sql`` (psycopg's placeholders: ``%s`` or ``%(name)s``)."""
    async with cursor() as found:
        await found.execute(*positional(sql, params))
        row: tuple[Any, ...] | None = await found.fetchone()
        return row


async def fetchall(sql: str, params: Any) -> list[tuple[Any, ...]]:
    async with cursor() as found:
        await found.execute(*positional(sql, params))
        rows: list[tuple[Any, ...]] = await found.fetchall()
        return rows


PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


def positional(sql: str, params: Any) -> tuple[str, list[Any]]:
    """``sql`` and ``params`` as PostgreSQL takes them (``$1``, ``$2``... in order): psycopg
    converts a query on every execution, and caches no conversion of a statement as long as
    the ballot's."""
    query, names = _converted(sql)
    if isinstance(params, dict):
        return query, [params[name] for name in names]
    return query, list(params)


@functools.cache
def _converted(sql: str) -> tuple[str, tuple[str, ...]]:
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        name = match.group(1)
        if name is None:
            names.append(str(len(names)))
            return f"${len(names)}"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return PLACEHOLDER.sub(number, sql), tuple(names)


@functools.cache
def _converters(model: type[Model]) -> list[tuple[int, list[Any], Any]]:
    """Each concrete field's database converters (the backend's and the field's own), as the
    ORM's compiler applies them to the values it reads."""
    wrapper = connections[DEFAULT_DB_ALIAS]
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        assert isinstance(field, Field)
        expression = field.get_col(model._meta.db_table)
        backend = wrapper.ops.get_db_converters(expression)
        own = cast(Any, field).get_db_converters(wrapper)
        if backend or own:
            found.append((index, [*backend, *own], expression))
    return found


def model_from_row(model: type[M], values: Sequence[Any]) -> M:
    """An instance of ``model`` from the values of its concrete fields in their order, converted
    as the ORM converts what it reads."""
    values = list(values)
    wrapper = connections[DEFAULT_DB_ALIAS]
    for index, converters, expression in _converters(model):
        for converter in converters:
            values[index] = converter(values[index], expression, wrapper)
    names = [field.attname for field in model._meta.concrete_fields]
    return model.from_db(DEFAULT_DB_ALIAS, names, values)
