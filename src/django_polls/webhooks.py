"""Sending webhook events: signed, posted, retried (docs/webhooks.md).

The events wait in the outbox (:mod:`django_polls.services.webhooks`). :func:`deliver_due` sends
the ones due: ``manage.py polls_deliver`` calls it in a loop, and a site that runs a task runner
calls it from a task instead (``DJANGO_POLLS["WEBHOOK_DISPATCH"]`` queues one as events commit;
a periodic one sends the retries).

Each event is a POST of JSON, ``{"id", "type", "created_at", "data"}``, with the headers
``X-Polls-Event`` (its type), ``X-Polls-Event-Id`` (its id: the same in every attempt, so a
receiver deduplicates on it) and ``X-Polls-Signature``, ``t=<unix time>,v1=<hex>``: HMAC-SHA256
with the subscription's secret over ``"<t>.<body>"`` (:func:`verify_signature` checks one). A 2xx
answer delivers it; anything else (a redirect too: none is followed, a timeout, a refused
connection, an address that is not public) is an attempt failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import DatabaseError, close_old_connections, connection

from django_polls.conf import polls_settings
from django_polls.models import Option, WebhookDelivery, counted_votes
from django_polls.services.errors import InvalidInput
from django_polls.services.results import total_voters
from django_polls.services.webhooks import (
    announce_transitions,
    attempt_failed,
    check_url,
    claim_due,
    delivered,
    fill_counts,
    purge_old_deliveries,
)

logger = logging.getLogger("django_polls.webhooks")

USER_AGENT = "django-polls-webhooks"
SIGNATURE_HEADER = "X-Polls-Signature"
EVENT_HEADER = "X-Polls-Event"
EVENT_ID_HEADER = "X-Polls-Event-Id"
#: How old (seconds) a signature :func:`verify_signature` accepts by default: older ones are
#: replays.
REPLAY_WINDOW = 300
#: Seconds a round's lease lasts beyond the time its attempts may take.
LEASE_MARGIN = 5
#: The most of an answer's body read (and dropped): a receiver cannot make the sender read more.
MAX_ANSWER = 4096


class DeliveryError(Exception):
    """An attempt that failed before an answer came: its reason, for the delivery's record."""


@dataclass(frozen=True)
class Attempt:
    """What one attempt to send a delivery came to: the answer's status (None without one) and,
    when it failed, why."""

    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


# -- signing ---------------------------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Polls-Signature`` header of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    body: bytes,
    header: str,
    secret: str,
    *,
    tolerance: int = REPLAY_WINDOW,
    now: float | None = None,
) -> bool:
    """Whether ``header`` (``X-Polls-Signature``) signs ``body`` with ``secret``, made within
    ``tolerance`` seconds of ``now``: for receivers written in Python (docs/webhooks.md shows
    the same in a few lines of any language)."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


def body_of(delivery: WebhookDelivery) -> bytes:
    """The JSON body of a delivery's event: the same bytes at every attempt."""
    event = {
        "id": str(delivery.event_id),
        "type": delivery.event,
        "created_at": delivery.created_at.isoformat().replace("+00:00", "Z"),
        "data": delivery.data,
    }
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


# -- posting ---------------------------------------------------------------------------------------


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address already checked, naming the URL's host for SNI and the certificate."""

    def __init__(self, address: str, port: int, *, hostname: str, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=ssl.create_default_context())
        self._hostname = hostname

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            self.sock, server_hostname=self._hostname
        )


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> int:
    """POST ``body`` to ``url`` and return the answer's status; raises :class:`DeliveryError`.

    The host is resolved and checked here (:func:`~django_polls.services.webhooks.check_url`:
    a public address, or one the site allows) and the connection made to that very address, so
    a name that resolves elsewhere between the check and the connection gains nothing. Nothing
    is followed (redirects are answers like any other). ``timeout`` bounds the whole attempt:
    when it runs out the connection is shut, whatever the receiver is doing."""
    parts = urlsplit(url)
    try:
        addresses = check_url(url)
    except InvalidInput as exc:
        raise DeliveryError(str(exc)) from None
    if not addresses:
        raise DeliveryError("the URL's host does not resolve")
    assert parts.hostname is not None  # checked
    port = parts.port or (443 if parts.scheme == "https" else 80)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = _PinnedHTTPSConnection(
            addresses[0], port, hostname=parts.hostname, timeout=timeout
        )
    else:
        connection = http.client.HTTPConnection(addresses[0], port, timeout=timeout)
    cut_off = threading.Event()
    watchdog = threading.Timer(timeout, _shut, args=(connection, cut_off))
    watchdog.start()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.netloc.rpartition("@")[2]
    try:
        connection.request("POST", target, body=body, headers={**headers, "Host": host})
        response = connection.getresponse()
        response.read(MAX_ANSWER)
        return response.status
    except (OSError, http.client.HTTPException) as exc:
        timed_out = cut_off.is_set() or isinstance(exc, TimeoutError)
        reason = "timed out" if timed_out else type(exc).__name__
        raise DeliveryError(f"no answer: {reason}") from None
    finally:
        watchdog.cancel()
        connection.close()


def _shut(connection: http.client.HTTPConnection, cut_off: threading.Event) -> None:
    cut_off.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def attempt(delivery: WebhookDelivery, *, timeout: float) -> Attempt:
    """Send the delivery once, signed now."""
    body = body_of(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery.event,
        EVENT_ID_HEADER: str(delivery.event_id),
        SIGNATURE_HEADER: signature(delivery.subscription.secret, int(time.time()), body),
    }
    try:
        status = post(delivery.subscription.url, body, headers, timeout=timeout)
    except DeliveryError as exc:
        return Attempt(None, str(exc))
    if 200 <= status < 300:
        return Attempt(status)
    return Attempt(status, f"answered {status}")


# -- rounds ----------------------------------------------------------------------------------------


def deliver_due(*, limit: int = 100, concurrency: int = 4) -> int:
    """One round: announce the polls that opened or expired by the clock, then send up to
    ``limit`` deliveries that are due, ``concurrency`` at a time; returns how many were sent
    (delivered or failed). Safe to run in several processes at once."""
    announce_transitions()
    _purge_now_and_then()
    timeout = polls_settings.WEBHOOK_TIMEOUT
    # Time for every attempt of the round, one after another in each of the threads, and a
    # margin: until then no other sender takes these deliveries.
    rounds = -(-limit // max(1, concurrency))
    _, claimed = claim_due(limit=limit, lease=timedelta(seconds=rounds * timeout + LEASE_MARGIN))
    if not claimed:
        return 0
    counts: dict[int, dict[str, Any]] = {}  # a secret poll's, read once per round
    for delivery in claimed:
        if delivery.data.get("counts", False) is None:
            if delivery.poll_id not in counts:
                counts[delivery.poll_id] = _counts(delivery.poll_id)
            fill_counts(delivery, counts[delivery.poll_id])
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        outcomes = list(pool.map(lambda d: attempt(d, timeout=timeout), claimed))
    for delivery, outcome in zip(claimed, outcomes, strict=True):
        if outcome.ok:
            assert outcome.status is not None
            delivered(delivery, response_status=outcome.status)
        else:
            attempt_failed(delivery, error=outcome.error, response_status=outcome.status)
            logger.warning(
                "Webhook delivery %s (subscription %s, %s) failed at attempt %s: %s",
                delivery.pk,
                delivery.subscription_id,
                delivery.event,
                delivery.attempts,
                outcome.error,
            )
    return len(claimed)


#: When this process last removed old deliveries (``time.monotonic()``), and how often it does.
_purged_at: list[float] = []
PURGE_EVERY = 3600.0


def _purge_now_and_then() -> None:
    """Old deliveries removed at most once an hour per process (``WEBHOOK_RETENTION_DAYS``)."""
    if _purged_at and time.monotonic() - _purged_at[-1] < PURGE_EVERY:
        return
    _purged_at[:] = [time.monotonic()]
    purge_old_deliveries()


def _counts(poll_id: int) -> dict[str, Any]:
    """A secret poll's counts as they stand: its voters, and the ballots naming each option."""
    voters = total_voters(poll_id=poll_id)
    options = Option.objects.filter(poll_id=poll_id).order_by("order", "pk")
    counts = options.annotate(count=counted_votes()).values_list("pk", "count")
    return {
        "voters": voters,
        "options": [{"id": pk, "votes": votes} for pk, votes in counts],
    }


def run(
    *,
    limit: int = 100,
    concurrency: int = 4,
    interval: float = 1.0,
    stop: Callable[[], bool] = lambda: False,
    round_done: Callable[[int], None] | None = None,
) -> None:
    """Send due deliveries in rounds until ``stop()``; waits ``interval`` seconds after a round
    that found nothing to send."""
    while not stop():
        try:
            sent = deliver_due(limit=limit, concurrency=concurrency)
        except DatabaseError:
            # The database is down, restarting or busy: what was claimed is sent again once
            # its lease runs out; the next round starts on a fresh connection.
            logger.exception("Webhook round failed; trying again in %s s", interval)
            close_old_connections()
            connection.close()
            sent = 0
        if round_done is not None:
            round_done(sent)
        if sent < limit:
            time.sleep(interval)
