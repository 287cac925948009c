"""The API's errors: the exceptions that carry a status and a stable ``code``, and the wrapper a
host site puts around its DRF exception handler so that its other endpoints answer alike.

Only what the client caused is a 4xx, and only a database that is down or busy is a 503 (retry);
anything else, a missing table after a forgotten ``migrate`` for one, is the server's bug: it is
left to the host's exception handler and Django, which log it and answer 500.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import OperationalError, connections
from django.http import Http404
from django.utils.translation import gettext, gettext_lazy
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from django_polls import services
from django_polls.models import Poll

logger = logging.getLogger("django_polls")

__all__ = [
    "ConflictError",
    "DatabaseUnavailable",
    "RequestTooLarge",
    "Unprocessable",
    "check_connection_pools",
    "database_unavailable",
    "raised_while_parsing",
    "to_api_exception",
    "with_error_codes",
]


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = gettext_lazy("Conflict.")
    default_code = "conflict"


class Unprocessable(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = gettext_lazy("The request cannot be processed.")
    default_code = "unprocessable"


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = gettext_lazy("The database is busy or unavailable; retry shortly.")
    default_code = "service_unavailable"
    wait = 1  # DRF's exception handler sends it as Retry-After


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = gettext_lazy("The request body is too large.")
    default_code = "request_too_large"


# PostgreSQL's SQLSTATEs that mean "retry later": the server cannot be reached or is shutting
# down or starting (class 08, 57P01-57P03), has no connection slot free (53300), or a lock wait
# or statement ran out of time (55P03 lock_timeout, 57014 statement_timeout) or lost to another
# transaction (40P01 deadlock, 40001 serialization failure), each rolled back whole.
POSTGRESQL_RETRY_STATES = frozenset(
    {"57P01", "57P02", "57P03", "53300", "55P03", "57014", "40P01", "40001"}
)
# MySQL and MariaDB error numbers (the first argument of mysqlclient's errors) that mean the
# same: no connection (2002, 2003), a connection lost (2006, 2013, 2055), the server shutting
# down (1053), no connection slot free (1040), a lock wait timed out (1205) or a deadlock (1213).
MYSQL_RETRY_ERRNOS = frozenset({1040, 1053, 1205, 1213, 2002, 2003, 2006, 2013, 2055})
# SQLite's answers when another connection holds the lock past the busy timeout.
SQLITE_RETRY_MESSAGES = ("database is locked", "database table is locked")


def database_unavailable(exc: OperationalError) -> bool:
    """Whether the database error means the database is down or busy, so the same request may
    succeed when retried; not a broken schema, a bad query or a full disk."""
    cause = exc.__cause__
    module = type(cause).__module__.split(".")[0]
    if module in {"psycopg", "psycopg2", "psycopg_pool"}:
        # psycopg2 names it pgcode. Errors the client library raises itself have no SQLSTATE:
        # a refused or lost connection, or no pooled connection in time (psycopg_pool's
        # PoolTimeout, which Django's pool lets through wrapped as OperationalError).
        sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if sqlstate is None:
            return True
        return sqlstate.startswith("08") or sqlstate in POSTGRESQL_RETRY_STATES
    if module in {"MySQLdb", "pymysql"}:
        args: tuple[Any, ...] = getattr(cause, "args", ())
        return bool(args) and args[0] in MYSQL_RETRY_ERRNOS
    message = str(exc)
    return any(message.startswith(text) for text in SQLITE_RETRY_MESSAGES)


def connection_lost(exc: OperationalError) -> bool:
    """Whether PostgreSQL's error means the connection is gone or going (a restart, a pooler
    that closed it), not that the database is merely busy (a lock or statement timeout)."""
    cause = exc.__cause__
    if type(cause).__module__.split(".")[0] not in {"psycopg", "psycopg_pool"}:
        return False
    sqlstate = getattr(cause, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in {"57P01", "57P02", "57P03"}


_checking: set[str] = set()
_checking_lock = threading.Lock()


def check_connection_pools() -> None:
    """Have each of Django's connection pools in this process (``OPTIONS["pool"]``) test its
    idle connections, in a thread of its own, once at a time.

    Called when a request failed because the database is down or busy. After PostgreSQL or
    PgBouncer restarts every idle pooled connection is broken, and the pool finds out only when
    it hands one out: one failed request (or failed health check, which takes the host out of
    its balancer) per connection, for as long as they last. Testing them all at the first
    failure replaces them at once, and a healthy database costs nothing: no check per request.
    """
    for connection in connections.all(initialized_only=True):
        pools = getattr(type(connection), "_connection_pools", None)  # Django's psycopg pools
        pool = pools.get(connection.alias) if isinstance(pools, dict) else None
        if pool is None or not hasattr(pool, "check"):
            continue
        with _checking_lock:
            if connection.alias in _checking:
                continue
            _checking.add(connection.alias)
        threading.Thread(
            target=_check_pool,
            args=(connection.alias, pool),
            name="django-polls-pool-check",
            daemon=True,
        ).start()


def _check_pool(alias: str, pool: Any) -> None:
    try:
        pool.check()
    except Exception as exc:  # a pool closed meanwhile, say: the next request finds out
        logger.info("Checking the connection pool of %r failed: %s", alias, exc)
    finally:
        with _checking_lock:
            _checking.discard(alias)


def raised_while_parsing(exc: BaseException) -> bool:
    """Whether DRF's parsing of the request body raised ``exc``: a body nested too deeply for
    Python is the client's error, a RecursionError anywhere else a bug."""
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code is Request._parse.__code__:  # type: ignore[attr-defined]
            return True
        frame = frame.tb_next
    return False


def to_api_exception(exc: Exception) -> Exception:
    """Service and Django errors as the DRF exceptions that carry their status and code; any other
    exception as it is (DRF's own answer, or a 500 for the host's handlers and logs)."""
    if isinstance(exc, services.InvalidInput):
        return exceptions.ValidationError(exc.errors)
    if isinstance(exc, services.IdempotencyKeyInvalid):
        return exceptions.ParseError(exc.message, code=exc.code)
    if isinstance(exc, services.IdempotencyKeyReused):
        return Unprocessable(exc.message, code=exc.code)
    if isinstance(exc, services.NotVoted):
        return exceptions.NotFound(exc.message, code=exc.code)
    if isinstance(exc, services.NotEligible):
        return exceptions.PermissionDenied(exc.message, code=exc.code)
    if isinstance(exc, services.Conflict):
        return ConflictError(exc.message, code=exc.code)
    if isinstance(exc, services.Hidden):
        return exceptions.PermissionDenied(exc.message, code=exc.code)
    # The poll the request names; a missing row of any other model is a bug, not a 404.
    if isinstance(exc, (Http404, Poll.DoesNotExist)):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, RecursionError) and raised_while_parsing(exc):
        return exceptions.ParseError(gettext("JSON parse error - nested too deeply."))
    if isinstance(exc, RequestDataTooBig):
        return RequestTooLarge()
    if isinstance(exc, SuspiciousOperation):  # too many fields or files, and the like
        return exceptions.ParseError(str(exc) or gettext("Malformed request."))
    if isinstance(exc, OperationalError) and database_unavailable(exc):
        logger.warning("Database unavailable: %s", exc, exc_info=exc)
        if connection_lost(exc):
            check_connection_pools()
        return DatabaseUnavailable()
    return exc


def with_error_codes(handler: Callable[[Exception, dict[str, Any]], Response | None]) -> Any:
    """Wrap the host's exception handler: every non-field error body also gets a stable code."""

    def handle(exc: Exception, context: dict[str, Any]) -> Response | None:
        exc = to_api_exception(exc)
        response = handler(exc, context)
        if (
            response is not None
            and isinstance(exc, exceptions.APIException)
            and isinstance(response.data, dict)
            and "detail" in response.data
            and "code" not in response.data
        ):
            codes = exc.get_codes()
            response.data["code"] = codes if isinstance(codes, str) else exc.default_code
        return response

    return handle
