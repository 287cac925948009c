"""Live results: a per-process broker that tells open result streams when a poll changed.

Writers announce a change with :func:`django_polls.services.announce_change`, inside their
transaction. On PostgreSQL that is ``pg_notify('django_polls', '<poll id>')``, which the database
delivers only at commit (and merges when one transaction repeats it) to every process LISTENing:
one connection per process, opened by the first stream. Elsewhere (SQLite) the poll id reaches
the brokers of this process only, on commit.

A broker keeps a feed per poll with subscribers. On a change it reads the results once, for all
of the poll's subscribers, at most every :data:`MIN_INTERVAL` seconds per poll: a change that
comes sooner is read when the interval is over, so the last state is always sent. Every
subscriber keeps only the newest state it has not sent yet, so a slow client never holds a
backlog.

Who may see a poll's results can change while its streams are open (its ``results_visibility``
becomes stricter, a voter withdraws their ballot from an ``after_vote`` poll). Each read therefore
asks, with the poll it read, the gate of every stream (a function the stream view gives, from the
services: :meth:`Broker.admit`) whether its viewer may still see it, once for all the streams of
a gate; a stream whose viewer may not gets an event ``hidden`` instead, and ends. A stream gets no
state that no gate has judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import hashlib
import json
import logging
import re
import sys
import threading
import time
import types
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.core.checks import CheckMessage, Warning
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.utils import timezone

from django_polls import changes

# Importable from here as before.
from django_polls.changes import CHANNEL, publish_in_process  # noqa: F401
from django_polls.conf import polls_settings

logger = logging.getLogger("django_polls.live")

#: The ``application_name`` of the LISTEN connections, unless the site's OPTIONS name one.
LISTENER_NAME = "django_polls live results"
#: Shortest time between two reads of one poll's results, in seconds (coalescing).
MIN_INTERVAL = 0.25
#: How long a new stream waits for the broker's LISTEN connection before answering 503.
LISTEN_TIMEOUT = 10.0
#: Longest wait between two attempts to reconnect the LISTEN connection, in seconds.
MAX_RECONNECT_DELAY = 5.0
#: How many streams of one process run their opening checks (and first read) at once.
OPENING_AT_ONCE = 4
#: Seconds before a read of results that failed is tried again.
RETRY_DELAY = 1.0
#: How often an idle LISTEN connection is checked with a query, in seconds.
LISTEN_CHECK_INTERVAL = 30.0
#: The oldest psycopg the listener runs on: ``AsyncConnection.notifies(timeout=...)`` is 3.2's.
MIN_PSYCOPG = (3, 2)


def listener_unavailable() -> str | None:
    """Why live results cannot run on this site's PostgreSQL driver, or None when they can (or
    the database is not PostgreSQL: then changes travel in-process)."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return None
    # Django runs on psycopg 3 when it is importable, else on psycopg2: the listener needs 3.2.
    driver = connection.Database  # type: ignore[attr-defined]
    name = driver.__name__
    version = getattr(driver, "__version__", "")
    release = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if name == "psycopg" and release >= MIN_PSYCOPG:
        return None
    return (
        f"the PostgreSQL driver is {name} {version.split()[0] if version else ''}".rstrip()
        + "; live results listen with psycopg 3.2 or later"
    )


def results_tag(body: dict[str, Any]) -> str:
    """A tag that names one results body: the ``ETag`` of ``results/`` and the ``id:`` of a
    stream's events. Equal bodies have equal tags, whatever the route that read them."""
    canonical = json.dumps(body, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


def results_event(body: dict[str, Any]) -> tuple[str, bytes]:
    """The tag of a results body and the server-sent event that carries it."""
    tag = results_tag(body)
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return tag, f"id: {tag}\nevent: results\ndata: {data}\n\n".encode()


def deleted_event(poll_id: int) -> bytes:
    return f'event: deleted\ndata: {{"poll":{poll_id}}}\n\n'.encode()


def hidden_event(poll_id: int) -> bytes:
    """Ends a stream whose viewer may no longer see the poll's results."""
    return f'event: hidden\ndata: {{"poll":{poll_id},"code":"results_hidden"}}\n\n'.encode()


#: Whether each of the viewers (users) may see the results of the poll (a model instance, as
#: read with its results); called in a sync thread, so it may query the database.
Gate = Callable[[Any, list[Any]], list[bool]]


HEARTBEAT = b": heartbeat\n\n"


@dataclasses.dataclass(eq=False)
class Subscriber:
    """One open stream. ``pending`` is the newest event it has not sent; ``sent`` the tag of the
    last state it sent; ``ended`` that the poll is gone; ``hidden`` that its viewer may no longer
    see the results. Until :meth:`Broker.admit` gives it a ``viewer`` and a ``gate`` it is
    offered nothing (``missed`` then says a state went by)."""

    poll_id: int
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    pending: tuple[str, bytes] | None = None
    sent: str | None = None
    ended: bool = False
    viewer: Any = None
    gate: Gate | None = None
    admitted: bool = False
    missed: bool = False
    hidden: bool = False

    def offer(self, tag: str, event: bytes) -> None:
        self.pending = (tag, event)
        self.wake.set()

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    def hide(self) -> None:
        self.hidden = True
        self.pending = None
        self.wake.set()


@dataclasses.dataclass(eq=False)
class Feed:
    """A poll's subscribers and the state of its reads."""

    subscribers: set[Subscriber] = dataclasses.field(default_factory=set)
    last_read: float = float("-inf")
    reading: bool = False
    dirty: bool = False
    timer: asyncio.TimerHandle | None = None
    expiry_timer: asyncio.TimerHandle | None = None

    def cancel_timers(self) -> None:
        for timer in (self.timer, self.expiry_timer):
            if timer is not None:
                timer.cancel()
        self.timer = self.expiry_timer = None


def read_results(poll_id: int) -> tuple[dict[str, Any], datetime | None, Any] | None:
    """The poll's results body, its expiry and the poll, read in this (sync) thread; None when
    it is gone.

    The connection is then handled as at the end of a request: closed (back to the pool) unless
    persistent connections keep it.
    """
    from django_polls import services
    from django_polls.models import CLOCK_ATTRIBUTE, Poll

    try:
        found = services.poll_with_options(poll_id=poll_id)
        if found is None:
            poll = Poll.objects.filter(pk=poll_id).first()
            if poll is None:
                return None
            found = (poll, [])
        poll, options = found
        body = dataclasses.asdict(services.results_for(poll=poll, options=options))
        # The expiry timer runs on this process's clock; is_active, on the database's where it
        # has one: the expiry as this clock will read it when the database's reaches it.
        expires_at, clock_now = poll.expires_at, getattr(poll, CLOCK_ATTRIBUTE, None)
        if expires_at is not None and clock_now is not None:
            expires_at -= clock_now - timezone.now()
        return body, expires_at, poll
    finally:
        _release_connection()


def _release_connection() -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def read_and_judge(
    poll_id: int, subscribers: list[Subscriber]
) -> tuple[tuple[dict[str, Any], datetime | None] | None, set[Subscriber]]:
    """:func:`read_results`, and which of ``subscribers`` may no longer see them: each gate is
    asked once, for all of its subscribers, with the poll as read with the results."""
    found = read_results(poll_id)
    if found is None:
        return None, set()
    body, expires_at, poll = found
    by_gate: dict[Gate, list[Subscriber]] = {}
    for subscriber in subscribers:
        if subscriber.gate is not None:
            by_gate.setdefault(subscriber.gate, []).append(subscriber)
    refused: set[Subscriber] = set()
    try:
        for gate, judged in by_gate.items():
            verdicts = gate(poll, [subscriber.viewer for subscriber in judged])
            refused.update(s for s, allowed in zip(judged, verdicts, strict=True) if not allowed)
    finally:
        _release_connection()
    return (body, expires_at), refused


class Broker:
    """The feeds of one event loop (one per process under an ASGI server)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.feeds: dict[int, Feed] = {}
        self.listening = asyncio.Event()
        # Set while the listener waits to try again after a failure; cleared once it listens.
        self.failed = asyncio.Event()
        self.listener: asyncio.Task[None] | None = None
        self.connects = 0
        # Streams that open at once (a server restart: every client reconnects) run their
        # checks a few at a time, queued here, not all at once against the connection pool,
        # where they would time out (503, which EventSource does not retry).
        self.opening = asyncio.Semaphore(OPENING_AT_ONCE)

    # -- subscribers --------------------------------------------------------------------------

    async def subscribe(self, poll_id: int) -> Subscriber:
        """A subscriber of the poll, once changes committed from now on will reach it.

        Raises ``OperationalError`` when PostgreSQL does not take the LISTEN in time.
        """
        subscriber = Subscriber(poll_id)
        self.feeds.setdefault(poll_id, Feed()).subscribers.add(subscriber)
        try:
            await self._wait_until_listening()
        except BaseException:
            self.unsubscribe(subscriber)
            raise
        return subscriber

    def admit(self, subscriber: Subscriber, *, viewer: Any, gate: Gate) -> None:
        """Let the subscriber have the states that ``gate`` lets ``viewer`` see; the stream
        view calls it once the first state was judged (by the results action)."""
        subscriber.viewer, subscriber.gate, subscriber.admitted = viewer, gate, True
        if subscriber.missed:  # a state went by unjudged: read it again, for this one too
            subscriber.missed = False
            self.changed(subscriber.poll_id)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        feed = self.feeds.get(subscriber.poll_id)
        if feed is None:
            return
        feed.subscribers.discard(subscriber)
        if not feed.subscribers:
            feed.cancel_timers()
            del self.feeds[subscriber.poll_id]

    # -- changes ------------------------------------------------------------------------------

    def changed(self, poll_id: int) -> None:
        """The poll's results may have changed: read them now, or when the interval is over."""
        feed = self.feeds.get(poll_id)
        if feed is None:
            return
        if feed.reading:
            feed.dirty = True
            return
        if feed.timer is not None:
            return  # a read is already scheduled
        delay = feed.last_read + MIN_INTERVAL - time.monotonic()
        if delay > 0:
            feed.timer = self.loop.call_later(delay, self._read_now, poll_id)
        else:
            self._read_now(poll_id)

    def changed_all(self) -> None:
        for poll_id in list(self.feeds):
            self.changed(poll_id)

    def _read_now(self, poll_id: int) -> None:
        feed = self.feeds.get(poll_id)
        if feed is None:
            return
        feed.timer = None
        feed.reading = True
        feed.dirty = False
        feed.last_read = time.monotonic()
        self.loop.create_task(self._read(poll_id, feed))

    async def _read(self, poll_id: int, feed: Feed) -> None:
        judged = [s for s in feed.subscribers if s.admitted and not s.hidden]
        try:
            found, refused = await sync_to_async(read_and_judge)(poll_id, judged)
        except Exception:
            # The database is away or busy: try again in a while (after a lost LISTEN
            # connection, its reconnection asks for a read as well).
            logger.warning("Could not read the results of poll %s", poll_id, exc_info=True)
            feed.timer = self.loop.call_later(RETRY_DELAY, self._read_now, poll_id)
            return
        finally:
            feed.reading = False
        if self.feeds.get(poll_id) is not feed:
            return  # every subscriber left meanwhile
        if found is None:
            for subscriber in feed.subscribers:
                subscriber.end()
            feed.cancel_timers()
            del self.feeds[poll_id]
            return
        body, expires_at = found
        tag, event = results_event(body)
        judged_now = set(judged)
        for subscriber in feed.subscribers:
            if subscriber.hidden:
                continue
            if subscriber in refused:
                subscriber.hide()
            elif subscriber in judged_now:
                subscriber.offer(tag, event)
            elif subscriber.admitted:
                feed.dirty = True  # admitted while this was read: read again, judging it too
            else:
                subscriber.missed = True
        self._watch_expiry(poll_id, feed, body, expires_at)
        if feed.dirty:
            self.changed(poll_id)

    def _watch_expiry(
        self, poll_id: int, feed: Feed, body: dict[str, Any], expires_at: datetime | None
    ) -> None:
        """An expiry changes ``is_active`` without a write: read again once it has passed."""
        if feed.expiry_timer is not None:
            feed.expiry_timer.cancel()
            feed.expiry_timer = None
        if body["is_active"] and expires_at is not None:
            seconds = (expires_at - timezone.now()).total_seconds()
            feed.expiry_timer = self.loop.call_later(max(seconds, 0) + 0.05, self.changed, poll_id)

    # -- PostgreSQL LISTEN ----------------------------------------------------------------------

    async def _wait_until_listening(self) -> None:
        if connections[DEFAULT_DB_ALIAS].vendor != "postgresql" or self.listening.is_set():
            return
        if self.listener is None or self.listener.done():
            # A context of its own: the task must not inherit the request that started it.
            self.listener = contextvars.Context().run(self.loop.create_task, self._listen())
        if self.failed.is_set():
            # The listener's last attempt failed and it waits to try again: a stream opened now
            # would hear nothing, so it is told at once rather than after LISTEN_TIMEOUT.
            raise OperationalError("The live results broker is reconnecting.")
        waits = [
            self.loop.create_task(self.listening.wait()),
            self.loop.create_task(self.failed.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=LISTEN_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if not self.listening.is_set():
            raise OperationalError("The live results broker could not LISTEN.")

    async def _listen(self) -> None:
        """LISTEN on one connection for as long as the loop runs; after a lost connection,
        reconnect and send every feed the current state (notifications may have been lost).

        Whatever goes wrong (the database, the driver, a setting, a bug in a handler), the
        listener logs it, stops claiming to listen and tries again after a growing delay: it
        never ends but by cancellation.
        """
        delay = 0.1
        while True:
            try:
                import psycopg

                params = _connection_params()
                async with await psycopg.AsyncConnection.connect(
                    **params, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self.connects += 1
                    self.failed.clear()
                    self.listening.set()
                    delay = 0.1
                    if self.connects > 1:
                        self.changed_all()
                    while True:
                        async for notify in connection.notifies(timeout=LISTEN_CHECK_INTERVAL):
                            self._on_notify(notify.payload)
                        await connection.execute("SELECT 1")
            except Exception as exc:
                self.listening.clear()
                self.failed.set()
                # A lost connection is expected now and then (a restart, a failover); anything
                # else is a fault to fix, so it is logged as an error. Both with the traceback.
                driver = sys.modules.get("psycopg")
                lost = () if driver is None else (driver.OperationalError, driver.InterfaceError)
                expected = isinstance(exc, (OSError, *lost))
                logger.log(
                    logging.WARNING if expected else logging.ERROR,
                    "Live results: the LISTEN connection failed (%s: %s); retrying in %.1f s",
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=True,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RECONNECT_DELAY)

    def _on_notify(self, payload: str) -> None:
        try:
            poll_id = int(payload)
        except ValueError:
            return
        self.changed(poll_id)

    async def stop(self) -> None:
        """Stop listening and end every subscriber (for tests and orderly shutdowns)."""
        if self.listener is not None:
            self.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.listener
            self.listener = None
        self.listening.clear()
        self.failed.clear()
        for feed in self.feeds.values():
            feed.cancel_timers()
            for subscriber in feed.subscribers:
                subscriber.end()
        self.feeds.clear()


def _connection_params() -> dict[str, Any]:
    """psycopg connection arguments from the site's DATABASES (as Django would connect): the
    default database's, or ``LISTEN_DATABASE``'s (a server reached around a transaction
    pooler)."""
    params = dict(connections[polls_settings.LISTEN_DATABASE].get_connection_params())
    for django_only in ("cursor_factory", "prepare_threshold", "context"):
        params.pop(django_only, None)
    # Named, so that an operator can tell it in pg_stat_activity.
    params.setdefault("application_name", LISTENER_NAME)
    return params


_brokers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Broker] = weakref.WeakKeyDictionary()
_brokers_lock = threading.Lock()


def broker() -> Broker:
    """The broker of the running event loop, made on first use."""
    loop = asyncio.get_running_loop()
    with _brokers_lock:
        found = _brokers.get(loop)
        if found is None:
            found = _brokers[loop] = Broker(loop)
            # Changes published in this process (databases without NOTIFY) reach it.
            changes.receive_in_process(loop, found.changed)
    return found


# -- open streams -----------------------------------------------------------------------------

_open_streams = 0
_client_streams: Counter[str] = Counter()
_open_lock = threading.Lock()


def open_streams() -> int:
    """How many streams this process serves now."""
    return _open_streams


def client_streams(client: str) -> int:
    """How many streams this process serves to ``client`` now."""
    return _client_streams[client]


def take_slot(limit: int) -> bool:
    """Count one more open stream unless ``limit`` are open."""
    global _open_streams
    with _open_lock:
        if _open_streams >= limit:
            return False
        _open_streams += 1
        return True


def release_slot() -> None:
    global _open_streams
    with _open_lock:
        _open_streams -= 1


def take_client_slot(client: str, limit: int) -> bool:
    """Count one more open stream of ``client`` unless it has ``limit`` open."""
    with _open_lock:
        if _client_streams[client] >= limit:
            return False
        _client_streams[client] += 1
        return True


def release_client_slot(client: str) -> None:
    with _open_lock:
        _client_streams[client] -= 1
        if _client_streams[client] <= 0:
            del _client_streams[client]


class LiveStream:
    """The body of one stream: the state it opened with, then each newer state, with a comment
    every ``heartbeat`` seconds of quiet; it ends when the poll is deleted (event ``deleted``) or
    its viewer may no longer see the results (event ``hidden``).

    Whatever ends it (the client leaving, the server cancelling it, or a response that was never
    sent) unsubscribes it and frees its slots (the process's and its client's), once: the
    response calls :meth:`close` when it is done, whether or not it was iterated.
    """

    def __init__(
        self,
        broker: Broker,
        subscriber: Subscriber,
        first: dict[str, Any],
        *,
        heartbeat: float,
        client: str,
    ) -> None:
        self.broker = broker
        self.client = client
        self.subscriber = subscriber
        self.first = first
        self.heartbeat = heartbeat
        self._closed = False
        self._lock = threading.Lock()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._events()

    async def _events(self) -> AsyncIterator[bytes]:
        subscriber = self.subscriber
        try:
            tag, event = results_event(self.first)
            subscriber.sent = tag
            yield b"retry: 2000\n" + event
            while True:
                try:
                    await asyncio.wait_for(subscriber.wake.wait(), self.heartbeat)
                except asyncio.TimeoutError:
                    yield HEARTBEAT
                    continue
                subscriber.wake.clear()
                if subscriber.hidden:
                    yield hidden_event(subscriber.poll_id)
                    return
                pending, subscriber.pending = subscriber.pending, None
                if pending is not None and pending[0] != subscriber.sent:
                    subscriber.sent = pending[0]
                    yield pending[1]
                if subscriber.ended:
                    yield deleted_event(subscriber.poll_id)
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Unsubscribe and free the slot; callable from any thread, more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        release_slot()
        release_client_slot(self.client)
        with contextlib.suppress(RuntimeError):  # the loop is closed, and its feeds with it
            self.broker.loop.call_soon_threadsafe(self.broker.unsubscribe, self.subscriber)


# -- how this process serves ------------------------------------------------------------------

#: Set once this process is known to serve through a WSGI handler: streams answer 503 there.
_serves_wsgi = False
_wsgi_logged = False


def _called_from(*functions: Callable[..., Any]) -> bool:
    """Whether one of ``functions`` is among the callers of the current frame."""
    codes = {function.__code__ for function in functions}
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


def serves_wsgi() -> bool:
    """Whether this process serves requests through Django's WSGI handler.

    Known when the app is set up by ``get_wsgi_application()`` (the ``wsgi.py`` that Gunicorn's
    sync workers, uWSGI and mod_wsgi load), when Django's own ``runserver`` (a WSGI server) runs
    the system checks, or once a WSGI handler has served a request.
    """
    from django.core.management.commands.runserver import Command as RunServer

    return _serves_wsgi or _called_from(RunServer.inner_run)


def note_start_up() -> None:
    """Called from ``AppConfig.ready()``: a WSGI server runs no system checks, so the warning
    that streams need ASGI is logged here, once, as the process starts."""
    global _serves_wsgi
    from django.core.signals import request_started
    from django.core.wsgi import get_wsgi_application

    if _called_from(get_wsgi_application):
        _serves_wsgi = True
        log_needs_asgi()
    else:
        # The app was set up otherwise (an ASGI server, a command, a wsgi.py that called
        # django.setup() first): the first request tells which handler serves it.
        request_started.connect(_first_request, dispatch_uid="django_polls.live.first_request")


def _first_request(sender: type[Any], **kwargs: Any) -> None:
    global _serves_wsgi
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_started

    request_started.disconnect(dispatch_uid="django_polls.live.first_request")
    if isinstance(sender, type) and issubclass(sender, WSGIHandler):
        _serves_wsgi = True
        log_needs_asgi()


def needs_asgi() -> CheckMessage:
    """Check django_polls.W003 (registered in :mod:`django_polls.checks`, logged here)."""
    return Warning(
        "This process serves django_polls through a WSGI handler: its live results streams "
        "(results/stream/) answer 503 streams_need_asgi here.",
        hint="Serve the site with an ASGI server (uvicorn, Daphne, Hypercorn, Gunicorn with "
        "uvicorn workers) for live results, or silence django_polls.W003 where clients poll "
        "results/ instead.",
        id="django_polls.W003",
    )


def log_needs_asgi() -> None:
    """Log check django_polls.W003, once per process (the first requests may come at once)."""
    global _wsgi_logged
    warning = needs_asgi()
    if warning.is_silenced():  # SILENCED_SYSTEM_CHECKS quiets the log as it does the check
        return
    with _open_lock:
        if _wsgi_logged:
            return
        _wsgi_logged = True
    logger.warning("%s", warning)
