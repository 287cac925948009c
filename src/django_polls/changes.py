"""Announcing that a poll's results or state changed: what writers and live results share.

:mod:`django_polls.services` announce changes (``announce_change``) and :mod:`django_polls.live`
listens for them; both import this module, so neither needs the other to. On PostgreSQL a change
is a ``NOTIFY`` on :data:`CHANNEL`; elsewhere it reaches the receivers of this process through
:func:`publish_in_process`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable

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
