"""Announcing that a poll's results or state changed: what writers and live results share.

:mod:`django_polls.services` announce changes (:func:`announce_change`) and :mod:`django_polls.live`
listens for them; both import this module, so neither needs the other to. On PostgreSQL a change
is a ``NOTIFY`` on :data:`CHANNEL`; elsewhere it reaches the receivers of this process through
:func:`publish_in_process`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import weakref
from collections.abc import Callable

from django.db import connection, transaction

#: The PostgreSQL notification channel; the payload is the poll id.
CHANNEL = "django_polls"

_receivers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Callable[[int], None]] = (
    weakref.WeakKeyDictionary()
)
_receivers_lock = threading.Lock()


def receive_in_process(loop: asyncio.AbstractEventLoop, receiver: Callable[[int], None]) -> None:
    """Have ``receiver`` called, on ``loop``, with the id of each poll published in this
    process."""
    with _receivers_lock:
        _receivers[loop] = receiver


def publish_in_process(poll_id: int) -> None:
    """Tell the receivers of this process that the poll changed; callable from any thread."""
    with _receivers_lock:
        receivers = list(_receivers.items())
    for loop, receiver in receivers:
        with contextlib.suppress(RuntimeError):  # that loop is closed
            loop.call_soon_threadsafe(receiver, poll_id)


def announce_change(*, poll_id: int) -> None:
    """Tell the live results streams of every process that the poll's results or state changed,
    once the current transaction commits (at once outside one); nothing if it rolls back.

    On PostgreSQL a ``NOTIFY``, which the database delivers only at commit and merges when one
    transaction repeats it; the ballot statement sends its own
    (:data:`django_polls.services.ballots.BALLOT_SQL`). Elsewhere the live results brokers of
    this process only (:func:`publish_in_process`).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(poll_id)])
    else:
        transaction.on_commit(functools.partial(publish_in_process, poll_id))
