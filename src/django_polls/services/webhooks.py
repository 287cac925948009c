"""Webhooks: the subscriptions, and the outbox of events to send them.

An event is written, one :class:`~django_polls.models.WebhookDelivery` row per subscription that
hears it, in the transaction of the change it tells of (on PostgreSQL a first ``options`` ballot
writes it in the ballot's own statement, see :data:`VOTE_CAST_SQL`): nothing is announced that
did not commit, and nothing that committed is lost if the process dies right after. The sender
(:mod:`django_polls.webhooks`) claims due rows here (:func:`claim_due`), posts them, and records
each outcome (:func:`delivered`, :func:`attempt_failed`).

What an event tells (``data``):

* ``poll.*``: the poll (id, title, method, anonymity, its times); ``poll.deleted`` its id and
  title.
* ``vote.*``: the poll's id and the ballot (``{"options": [...]}``, ``{"ranking": [...]}``, ...;
  ``previous`` for a change or withdrawal); the voter's key on ``public`` polls only. On
  ``secret`` polls nothing but the poll's id and its counts, read when the event is first sent
  (``counts: null`` until then).

Opening and expiry by the clock are events too: :func:`announce_transitions` (called by every
round of the sender) announces the polls that opened or expired since its last round, once.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext

from django_polls.conf import IPNetwork, polls_settings
from django_polls.models import (
    WEBHOOK_URL_LENGTH,
    Anonymity,
    Poll,
    WebhookClock,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
    read_poll_clock,
)
from django_polls.services.errors import InvalidInput
from django_polls.services.sql import column

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Status = WebhookDelivery.Status
#: How long :func:`announce_transitions` lets its window grow before it moves on, though it
#: found nothing: a round writes nothing unless it announced something or this passed.
SWEEP_WINDOW = timedelta(minutes=5)
#: The shortest secret a subscription takes.
MIN_SECRET_LENGTH = 16


# -- subscriptions ---------------------------------------------------------------------------------


def create_subscription(
    *,
    created_by: User,
    url: str,
    secret: str,
    events: Sequence[str],
    site_wide: bool = False,
    description: str = "",
    is_active: bool = True,
) -> WebhookSubscription:
    """A new subscription of ``created_by``'s; raises :class:`InvalidInput` for a URL that may
    not be reached (:func:`check_url`), a short secret, unknown events, or one subscription
    more than ``WEBHOOK_MAX_SUBSCRIPTIONS``. Only staff may make one ``site_wide`` (the caller
    checks: that is a permission, 403)."""
    fields = clean_subscription(url=url, secret=secret, events=events)
    with transaction.atomic():
        held = WebhookSubscription.objects.filter(created_by=created_by).count()
        if held >= polls_settings.WEBHOOK_MAX_SUBSCRIPTIONS:
            raise InvalidInput(
                {
                    "non_field_errors": [
                        gettext("You hold %(count)d webhook subscriptions, as many as allowed.")
                        % {"count": held}
                    ]
                }
            )
        return WebhookSubscription.objects.create(
            created_by=created_by,
            site_wide=site_wide,
            description=description,
            is_active=is_active,
            **fields,
        )


def update_subscription(subscription: WebhookSubscription, **changes: Any) -> WebhookSubscription:
    """Change the given fields (``url``, ``secret``, ``events``, ``description``,
    ``is_active``, ``site_wide``), each checked as on creation."""
    fields = {key: value for key, value in changes.items() if key in ("description", "is_active")}
    fields |= clean_subscription(
        **{key: value for key, value in changes.items() if key in ("url", "secret", "events")}
    )
    if "site_wide" in changes:
        fields["site_wide"] = bool(changes["site_wide"])
    WebhookSubscription.objects.filter(pk=subscription.pk).update(**fields)
    subscription.refresh_from_db()
    return subscription


def clean_subscription(
    *, url: str | None = None, secret: str | None = None, events: Sequence[str] | None = None
) -> dict[str, Any]:
    """The fields given, checked; :class:`InvalidInput` names every field that is wrong."""
    fields: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    if url is not None:
        try:
            check_url(url)
        except InvalidInput as exc:
            errors.update(exc.errors)
        fields["url"] = url
    if secret is not None:
        if len(secret) < MIN_SECRET_LENGTH:
            errors["secret"] = [
                gettext("Give a secret of at least %(count)d characters.")
                % {"count": MIN_SECRET_LENGTH}
            ]
        fields["secret"] = secret
    if events is not None:
        unknown = [event for event in events if event not in WebhookEvent.values]
        if not events or unknown:
            errors["events"] = [
                gettext("Give a non-empty list of events, each one of: %(events)s.")
                % {"events": ", ".join(WebhookEvent.values)}
            ]
        fields["events"] = sorted(set(events))
    if errors:
        raise InvalidInput(errors)
    return fields


def check_url(url: str) -> list[str]:
    """The addresses ``url``'s host has now; raises :class:`InvalidInput` for a URL that is not
    ``http``/``https`` or reaches an address that is not public (loopback, private, link-local,
    metadata, ...) outside ``WEBHOOK_ALLOWED_NETWORKS``. A host that does not resolve passes
    (none may yet); every delivery checks again, and sends to the very address it checked."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(url) > WEBHOOK_URL_LENGTH
        or parts.username is not None
        or any(character.isspace() for character in url)
    ):
        raise InvalidInput(
            {"url": [gettext("Give an http or https URL without credentials in it.")]}
        )
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput({"url": [gettext("The URL's port is not a number.")]}) from None
    try:
        addresses = resolve(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    except OSError:
        return []
    refused = [address for address in addresses if not address_allowed(address)]
    if refused:
        raise InvalidInput(
            {
                "url": [
                    gettext(
                        "The URL reaches %(address)s, which is not a public address; webhooks "
                        "are not sent there."
                    )
                    % {"address": refused[0]}
                ]
            }
        )
    return addresses


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (raises ``OSError`` when it does not)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_allowed(address: str) -> bool:
    """Whether webhooks may reach ``address``: a public (global) address, or one within
    ``WEBHOOK_ALLOWED_NETWORKS``."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    if any(ip in network for network in _allowed_networks()):
        return True
    return ip.is_global and not ip.is_multicast


def _allowed_networks() -> list[IPNetwork]:
    return polls_settings.WEBHOOK_ALLOWED_NETWORKS


# -- the outbox ------------------------------------------------------------------------------------


def subscribers(*, owner_id: Any, event: str) -> list[int]:
    """The active subscriptions that hear ``event`` of a poll of ``owner_id``'s."""
    matching = WebhookSubscription.objects.filter(
        Q(site_wide=True) | Q(created_by_id=owner_id), is_active=True
    ).values_list("pk", "events")
    return [pk for pk, events in matching if event in events]


def announce(poll: Poll, event: str, data: Mapping[str, Any], *, at: datetime | None = None) -> int:
    """Write ``event`` about ``poll`` to the outbox for each subscription that hears it, in the
    caller's transaction; returns how many deliveries. Once the transaction commits, calls
    ``WEBHOOK_DISPATCH`` (where the site names one)."""
    targets = subscribers(owner_id=poll.created_by_id, event=event)
    if not targets:
        return 0
    now = timezone.now()
    event_id = uuid.uuid4()
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            subscription_id=target,
            event_id=event_id,
            event=event,
            poll_id=poll.pk,
            data=dict(data),
            created_at=at or now,
            next_attempt_at=now,
        )
        for target in targets
    )
    dispatch_on_commit()
    return len(targets)


def dispatch_on_commit() -> None:
    """Have the site's task runner send the events written, once they commit
    (``WEBHOOK_DISPATCH``)."""
    dispatch = polls_settings.WEBHOOK_DISPATCH
    if dispatch is not None:
        transaction.on_commit(dispatch, robust=True)


def poll_data(poll: Poll) -> dict[str, Any]:
    """What ``poll.*`` events tell of a poll."""
    return {
        "id": poll.pk,
        "title": poll.title,
        "method": poll.method,
        "anonymity": poll.anonymity,
        "results_visibility": poll.results_visibility,
        "created_at": _iso(poll.created_at),
        "opens_at": _iso(poll.opens_at),
        "expires_at": _iso(poll.expires_at),
        "closed_at": _iso(poll.closed_at),
    }


def poll_created(poll: Poll) -> None:
    """``poll.created``, and ``poll.opened`` for a poll open at once."""
    announce(poll, WebhookEvent.POLL_CREATED, poll_data(poll), at=poll.created_at)
    if poll.opens_at is None or poll.opens_at <= poll.created_at:
        announce(poll, WebhookEvent.POLL_OPENED, poll_data(poll), at=poll.created_at)


def poll_closed(poll: Poll) -> None:
    announce(poll, WebhookEvent.POLL_CLOSED, {**poll_data(poll), "expired": False})


def poll_deleted(poll: Poll) -> None:
    announce(poll, WebhookEvent.POLL_DELETED, {"id": poll.pk, "title": poll.title})


def vote_data(
    poll: Poll, voter: Any, field: str, ballot: Any, *, previous: Any = None
) -> dict[str, Any]:
    """What a ``vote.*`` event tells: see the module's docstring."""
    if poll.anonymity == Anonymity.SECRET:
        return {"poll": poll.pk, "counts": None}
    data: dict[str, Any] = {"poll": poll.pk}
    if poll.anonymity == Anonymity.PUBLIC:
        data["voter"] = str(voter.pk)
    if ballot is not None:
        data["ballot"] = {field: ballot}
    if previous is not None:
        data["previous"] = {field: previous}
    return data


def vote_cast(poll: Poll, voter: Any, field: str, ballot: Any, *, at: datetime) -> None:
    announce(poll, WebhookEvent.VOTE_CAST, vote_data(poll, voter, field, ballot), at=at)


def vote_changed(
    poll: Poll, voter: Any, field: str, previous: Any, current: Any, *, at: datetime
) -> None:
    data = vote_data(poll, voter, field, current, previous=previous)
    announce(poll, WebhookEvent.VOTE_CHANGED, data, at=at)


def vote_retracted(poll: Poll, voter: Any, field: str, previous: Any, *, at: datetime) -> None:
    data = vote_data(poll, voter, field, None, previous=previous)
    announce(poll, WebhookEvent.VOTE_RETRACTED, data, at=at)


#: ``vote.cast`` in the ballot statement of PostgreSQL (:data:`~django_polls.services.ballots
#: .BALLOT_SQL`): a CTE over its ``accepted`` row (the poll's id, owner, anonymity and stamp),
#: written when its ballot was ``counted``; ``{ballot}`` is the SQL of the ballot's JSON.
#: Format it with :func:`vote_cast_sql`.
VOTE_CAST_SQL = """announced AS (
    INSERT INTO {delivery} ({subscription}, event_id, event, poll_id, data, created_at, status,
        attempts, next_attempt_at, claimed_by, last_error)
    SELECT s.id, event.id, 'vote.cast', accepted.id,
        CASE accepted.anonymity
            WHEN 'secret' THEN jsonb_build_object('poll', accepted.id, 'counts', NULL)
            WHEN 'public' THEN jsonb_build_object('poll', accepted.id,
                'voter', %(voter)s::text, 'ballot', {ballot})
            ELSE jsonb_build_object('poll', accepted.id, 'ballot', {ballot}) END,
        accepted.stamp, 'pending', 0, clock_timestamp(), '', ''
    FROM accepted CROSS JOIN (SELECT gen_random_uuid() AS id) AS event
    JOIN {subscriptions} AS s ON s.is_active AND (s.site_wide OR s.{owner} = accepted.owner)
        AND s.events @> '["vote.cast"]'::jsonb
    WHERE EXISTS (SELECT FROM {written})
    RETURNING 1
)"""


@functools.cache
def vote_cast_sql(*, ballot: str, written: str) -> str:
    quote = connection.ops.quote_name
    return VOTE_CAST_SQL.format(
        delivery=quote(WebhookDelivery._meta.db_table),
        subscription=column(WebhookDelivery, "subscription"),
        subscriptions=quote(WebhookSubscription._meta.db_table),
        owner=column(WebhookSubscription, "created_by"),
        ballot=ballot,
        written=written,
    )


# -- opening and expiry by the clock ---------------------------------------------------------------


def announce_transitions(*, now: datetime | None = None) -> int:
    """Announce the polls that opened (``poll.opened``, at their opening time) or expired
    (``poll.closed`` with ``expired: true``, at their expiry) since the last call, once each;
    returns how many events. The first call ever only marks the time."""
    now = now or read_poll_clock()
    with transaction.atomic():
        clock = WebhookClock.objects.select_for_update().filter(pk=1).first()
        if clock is None:
            WebhookClock.objects.get_or_create(pk=1, defaults={"swept_at": now})
            return 0
        since = clock.swept_at
        if now <= since:
            return 0
        window = Q(closed_at__isnull=True)
        opened = Poll.objects.filter(
            window | Q(closed_at__gt=F("opens_at")),
            opens_at__gt=since,
            opens_at__lte=now,
            created_at__lt=F("opens_at"),
        ).order_by("opens_at", "pk")
        expired = Poll.objects.filter(
            window | Q(closed_at__gte=F("expires_at")), expires_at__gt=since, expires_at__lte=now
        ).order_by("expires_at", "pk")
        written = 0
        for poll in opened:
            written += announce(poll, WebhookEvent.POLL_OPENED, poll_data(poll), at=poll.opens_at)
        for poll in expired:
            data = {**poll_data(poll), "expired": True}
            written += announce(poll, WebhookEvent.POLL_CLOSED, data, at=poll.expires_at)
        if written or now - since > SWEEP_WINDOW:
            # Else the window simply grows (nothing in it yet), and nothing is written.
            WebhookClock.objects.filter(pk=1).update(swept_at=now)
    return written


# -- sending ---------------------------------------------------------------------------------------


def claim_due(
    *, limit: int, lease: timedelta, now: datetime | None = None
) -> tuple[str, list[WebhookDelivery]]:
    """Take up to ``limit`` deliveries that are due, oldest first, for one round of sending:
    each is leased to the caller (a token, returned) for ``lease``, time enough to send them
    all, and its attempt counted. Several senders may claim side by side: rows another holds
    are skipped (``SKIP LOCKED`` where the database has it), and a lease that runs out (its
    sender died) makes the delivery due again."""
    now = now or timezone.now()
    token = uuid.uuid4().hex
    with transaction.atomic():
        due = WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit])
        if not ids:
            return token, []
        WebhookDelivery.objects.filter(
            pk__in=ids, status=Status.PENDING, next_attempt_at__lte=now
        ).update(
            claimed_by=token,
            next_attempt_at=now + lease,
            attempts=F("attempts") + 1,
            last_attempt_at=now,
        )
        claimed = list(
            WebhookDelivery.objects.filter(claimed_by=token)
            .select_related("subscription")
            .order_by("pk")
        )
    return token, claimed


def fill_counts(delivery: WebhookDelivery, counts: Mapping[str, Any]) -> None:
    """Keep the counts a secret poll's event was first sent with, so a retry sends the same."""
    delivery.data = {**delivery.data, "counts": dict(counts)}
    WebhookDelivery.objects.filter(pk=delivery.pk).update(data=delivery.data)


def delivered(delivery: WebhookDelivery, *, response_status: int) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=Status.DELIVERED,
        delivered_at=timezone.now(),
        response_status=response_status,
        last_error="",
        claimed_by="",
    )


def attempt_failed(
    delivery: WebhookDelivery, *, error: str, response_status: int | None = None
) -> None:
    """Record a failed attempt: retried after a delay that doubles with each attempt (with
    jitter), or parked as failed after ``WEBHOOK_MAX_ATTEMPTS``."""
    fields: dict[str, Any] = {
        "last_error": error[:300],
        "response_status": response_status,
        "claimed_by": "",
    }
    if delivery.attempts >= polls_settings.WEBHOOK_MAX_ATTEMPTS:
        fields["status"] = Status.FAILED
    else:
        fields["next_attempt_at"] = timezone.now() + retry_delay(delivery.attempts)
    WebhookDelivery.objects.filter(pk=delivery.pk, claimed_by=delivery.claimed_by).update(**fields)


def retry_delay(attempts: int) -> timedelta:
    """How long after its ``attempts``-th failed attempt a delivery is tried again: the first
    delay doubled each time, between half and all of it (jitter, so that a receiver back from
    an outage is not hit by every retry at once)."""
    full = polls_settings.WEBHOOK_RETRY_DELAY * 2 ** min(attempts - 1, 20)
    return timedelta(seconds=full * random.uniform(0.5, 1.0))


def redeliver(deliveries: Iterable[WebhookDelivery]) -> int:
    """Send these deliveries again (failed ones included), as soon as a sender runs: the
    same event, with the same id; attempts count from 0."""
    ids = [delivery.pk for delivery in deliveries]
    return WebhookDelivery.objects.filter(pk__in=ids).update(
        status=Status.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        claimed_by="",
        delivered_at=None,
    )


def purge_old_deliveries(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Remove deliveries delivered or failed more than ``WEBHOOK_RETENTION_DAYS`` ago, ``batch``
    at a time; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=polls_settings.WEBHOOK_RETENTION_DAYS)
    removed = 0
    while True:
        old = WebhookDelivery.objects.filter(
            status__in=(Status.DELIVERED, Status.FAILED), created_at__lt=cutoff
        ).values_list("pk", flat=True)[:batch]
        count, _ = WebhookDelivery.objects.filter(pk__in=list(old)).delete()
        removed += count
        if count < batch:
            return removed


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
