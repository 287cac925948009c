"""Reads from a streaming replica where lag cannot hide a caller's own write.

A replica replays the primary's changes a little later: what a client just wrote may not be there
yet. So the replica serves only what is safe to serve a little late, and only to callers who
cannot have written it:

- the poll list and a poll's detail (``polls/``, ``polls/{id}/``), to a caller who is not signed
  in and who wrote nothing within ``DJANGO_POLLS["READ_YOUR_WRITES_SECONDS"]``;

everything else reads the primary: results (a voter looks for their vote there), a caller's
ballot, everything a signed-in caller reads (their polls, just edited; API clients with tokens
often keep no cookies to be recognised by), every read in a request that writes, the token and
session lookups (a token made a moment ago must work), the admin and the host site's own views.

Two parts, both needed (``django_polls.W004`` says when one is missing)::

    DATABASE_ROUTERS = ["django_polls.routers.ReplicaRouter"]
    MIDDLEWARE = [..., "django_polls.routers.ReadYourWritesMiddleware", ...]
    DJANGO_POLLS = {"REPLICA_DATABASE": "replica"}

The middleware marks each request: a request with an unsafe method (POST, PUT, PATCH, DELETE)
answers with a cookie that sends the client's reads to the primary for the next
``READ_YOUR_WRITES_SECONDS``. The views that may read the replica say so
(:func:`allow_replica_reads`); the router sends their reads there unless the request is pinned.

A replica that cannot be reached does not fail those reads: the view that read it reads the
primary instead (:func:`replica_unreachable`), and the process sends its replica reads to the
primary for the next :data:`REPLICA_DOWN_SECONDS`, then tries the replica again. It logs the
first failure and the replica's return, once each. While the replica answers, nothing is checked
before a read: no extra round trip.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.db import DEFAULT_DB_ALIAS
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers

from django_polls import conf

logger = logging.getLogger("django_polls")

#: How long a process reads the primary instead of a replica that could not be reached, before
#: it tries the replica again.
REPLICA_DOWN_SECONDS = 5.0

#: The cookie that pins a client to the primary: the time (Unix seconds) until which it holds.
PIN_COOKIE = "django_polls_primary"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass
class Reads:
    """Where the current request's reads may go."""

    #: Wrote within READ_YOUR_WRITES_SECONDS (an unsafe method now, or the cookie).
    pinned: bool
    #: A view said its reads may lag (:func:`allow_replica_reads`) for this caller.
    replica: bool = False
    #: The request wrote (a write was routed): its later reads go to the primary.
    wrote: bool = False
    #: Whether the answer depended on the cookie (then it varies by Cookie).
    consulted: bool = False


_reads: contextvars.ContextVar[Reads | None] = contextvars.ContextVar(
    "django_polls_reads", default=None
)


class ReplicaHealth:
    """What this process knows of its replica: whether it failed a read lately."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        #: Until when (``clock``) reads that may lag go to the primary; 0 while none failed.
        self.down_until = 0.0
        #: Whether the replica is taken for down (logged), until a read on it succeeds.
        self.down = False
        self._lock = threading.Lock()

    def avoided(self) -> bool:
        """Whether the replica is to be left alone now (it failed within REPLICA_DOWN_SECONDS)."""
        return self.down and self.clock() < self.down_until

    def failed(self, alias: str, error: BaseException) -> None:
        with self._lock:
            self.down_until = self.clock() + REPLICA_DOWN_SECONDS
            first, self.down = not self.down, True
        if first:
            logger.warning(
                "The replica database %r cannot be reached (%s): its reads go to the primary, "
                "and the replica is tried again every %.0f s.",
                alias,
                error,
                REPLICA_DOWN_SECONDS,
            )

    def answered(self, alias: str) -> None:
        if not self.down:
            return
        with self._lock:
            was, self.down = self.down, False
        if was:
            logger.warning(
                "The replica database %r answers again: reads that may lag go to it.", alias
            )


#: This process's view of its replica (each process finds out for itself, at no cost to reads).
health = ReplicaHealth()


def replica_alias() -> str | None:
    alias = conf.get("REPLICA_DATABASE")
    return alias if isinstance(alias, str) and alias else None


def pinned_by_cookie(request: HttpRequest, now: float | None = None) -> bool:
    value = request.COOKIES.get(PIN_COOKIE, "")
    try:
        until = float(value)
    except ValueError:
        return bool(value)  # a cookie this module did not write: the primary, to be safe
    return until > (time.time() if now is None else now)


def allow_replica_reads(user: Any) -> None:
    """Let the rest of this request read the replica, when the caller cannot have written what
    it reads: not signed in, and not pinned. Called by the poll list and detail views once the
    caller is authenticated."""
    reads = _reads.get()
    if reads is None or replica_alias() is None:
        return
    reads.consulted = True
    if (
        not reads.pinned
        and not reads.wrote
        and not getattr(user, "is_authenticated", False)
        and not health.avoided()
    ):
        reads.replica = True


def reading_replica() -> bool:
    """Whether reads now go to the replica (for tests and logging)."""
    reads = _reads.get()
    return bool(reads and reads.replica and not reads.wrote and replica_alias())


def replica_unreachable(error: BaseException) -> bool:
    """Called by a view whose reads raised ``error`` (the database is down or busy, as
    :func:`django_polls.exceptions.database_unavailable` judges): whether they were the
    replica's. If so the rest of the request reads the primary, so the view may read again, and
    the process avoids the replica for :data:`REPLICA_DOWN_SECONDS`."""
    alias = replica_alias()
    reads = _reads.get()
    if alias is None or reads is None or not reading_replica():
        return False
    reads.replica = False
    health.failed(alias, error)
    return True


def replica_read() -> None:
    """Called by a view whose reads succeeded: if they were the replica's, it answers again."""
    alias = replica_alias()
    if alias is not None and health.down and reading_replica():
        health.answered(alias)


class ReplicaRouter:
    """Reads to ``DJANGO_POLLS["REPLICA_DATABASE"]`` where the request allows it, everything
    else to the default database. Put it first in ``DATABASE_ROUTERS``; it answers None (the
    next router, else Django's choice) for everything it does not send to the replica."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        return replica_alias() if reading_replica() else None

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        reads = _reads.get()
        if reads is not None:
            reads.wrote = True
        instance = hints.get("instance")
        replica = replica_alias()
        if replica and instance is not None and instance._state.db == replica:
            # Read from the replica, written to the primary (the replica is read-only).
            return DEFAULT_DB_ALIAS
        return None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        replica = replica_alias()
        both = {obj1._state.db, obj2._state.db}
        if replica and both <= {DEFAULT_DB_ALIAS, replica}:
            return True  # the same rows, seen a little apart
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        # The replica gets its tables from the primary's WAL.
        return False if db == replica_alias() else None


class ReadYourWritesMiddleware:
    """Marks each request for :class:`ReplicaRouter`: pinned to the primary when its method is
    unsafe or its client wrote within ``READ_YOUR_WRITES_SECONDS`` (the cookie this middleware
    sets on every answer to an unsafe method)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        if replica_alias() is None:
            return self.get_response(request)
        reads = self.begin(request)
        token = _reads.set(reads)
        try:
            response = self.get_response(request)
        finally:
            _reads.reset(token)
        return self.finish(request, reads, response)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        if replica_alias() is None:
            return await self.get_response(request)  # type: ignore[no-any-return]
        reads = self.begin(request)
        token = _reads.set(reads)
        try:
            response = await self.get_response(request)
        finally:
            _reads.reset(token)
        return self.finish(request, reads, response)

    @staticmethod
    def begin(request: HttpRequest) -> Reads:
        unsafe = request.method not in SAFE_METHODS
        return Reads(pinned=unsafe or pinned_by_cookie(request))

    @staticmethod
    def finish(request: HttpRequest, reads: Reads, response: HttpResponseBase) -> HttpResponseBase:
        if request.method not in SAFE_METHODS:
            seconds = int(conf.get("READ_YOUR_WRITES_SECONDS"))
            response.set_cookie(
                PIN_COOKIE,
                str(int(time.time()) + seconds),
                max_age=seconds,
                secure=request.is_secure(),
                httponly=True,
                samesite="Lax",
            )
        if reads.consulted:
            patch_vary_headers(response, ("Cookie",))
        return response
