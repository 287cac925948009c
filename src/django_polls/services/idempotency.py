"""Idempotency keys: a request sent with an ``Idempotency-Key`` header acts at most once for its
user and key; a repeat gets the answer kept for the first.

How a keyed request runs (:func:`run_once`):

1. The key's row is made if it does not exist yet (its own statement, committed at once), so that
   every request with the key finds the same row.
2. In one transaction, the row is locked without waiting (``FOR UPDATE NOWAIT``): a request
   that finds it locked is a repeat while the first is still running (409
   ``idempotency_key_in_progress``).
3. With the row locked: an answer kept for another request (method, path and body) is 422
   ``idempotency_key_reused``; an answer kept for this request is answered again; otherwise the
   request runs, and its answer is kept in the same transaction as the changes it made. A crash
   before the commit undoes both, so a retry runs the request afresh; after the commit, both
   are stored.

Answers are kept for every outcome the request itself decided (2xx, and 4xx such as 409
``already_voted``), not for 5xx (a database that is down), where a retry should run again. A
key lives ``IDEMPOTENCY_KEY_TTL`` seconds; then it may be used for another request. On SQLite,
which runs one writer at a time, a repeat waits for the first to finish and then gets its answer
instead of 409.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from django_polls.conf import polls_settings
from django_polls.models import IdempotencyKey
from django_polls.services.errors import (
    IdempotencyKeyInProgress,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
)
from django_polls.services.locks import mysql_errno, retrying_deadlocks

if TYPE_CHECKING:
    from django.contrib.auth.models import User

T = TypeVar("T")

#: How often a request looks for its key's row again when it vanished under it.
ATTEMPTS = 3
#: What a key may be: printable ASCII without spaces, 1 to 255 characters.
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")


@dataclasses.dataclass(frozen=True)
class IdempotentAnswer:
    """An answer kept for a request: its status, body (JSON text; empty for none) and the headers
    worth repeating."""

    status: int
    body: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def fingerprint(method: str, path: str, body: Any) -> str:
    """What tells one request from another: SHA-256 over its method, path and body (as JSON,
    keys sorted, so that the same body sent in another key order is the same request)."""
    text = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_once(
    *,
    user: User,
    key: str,
    request: str,
    run: Callable[[], T],
    answer_of: Callable[[T], IdempotentAnswer | None],
) -> T | IdempotentAnswer:
    """``run()``, unless a request with ``key`` by ``user`` ran already: then the answer kept for
    it. ``request`` is the request's :func:`fingerprint`; ``answer_of`` tells what to keep of
    ``run()``'s outcome (None: nothing, so a retry runs again).

    Raises :class:`IdempotencyKeyInvalid`, :class:`IdempotencyKeyInProgress` or
    :class:`IdempotencyKeyReused`.
    """
    if not KEY_PATTERN.fullmatch(key):
        raise IdempotencyKeyInvalid()
    for _ in range(ATTEMPTS):
        # On InnoDB, requests making the same key at once can deadlock on its unique index (each
        # waits on the key the other tries); the one rolled back runs again.
        row_id = retrying_deadlocks(lambda: _row_of(user, key))
        with transaction.atomic():
            row = _locked(row_id)
            if row is None:  # expired, and deleted by the user's next new key meanwhile
                continue
            now = timezone.now()
            if row.status is not None and row.expires_at > now:
                if row.fingerprint != request:
                    raise IdempotencyKeyReused()
                return IdempotentAnswer(status=row.status, body=row.body, headers=row.headers)
            outcome = run()
            answer = answer_of(outcome)
            if answer is not None and not transaction.get_rollback():
                IdempotencyKey.objects.filter(pk=row_id).update(
                    fingerprint=request,
                    created_at=now,
                    expires_at=_expiry(now),
                    status=answer.status,
                    body=answer.body,
                    headers=answer.headers,
                )
            return outcome
    raise IdempotencyKeyInProgress()


def purge_expired_keys(*, now: datetime | None = None) -> int:
    """Delete every key past its time; returns how many (``polls_purge_idempotency_keys``)."""
    expired = IdempotencyKey.objects.filter(expires_at__lte=now or timezone.now())
    return int(expired.delete()[0])


def _row_of(user: User, key: str) -> int:
    """The id of the user's row for ``key``, made (and committed) if there is none: the row every
    request with the key locks. Making one also deletes the user's keys past their time."""
    found = IdempotencyKey.objects.filter(user=user, key=key).values_list("pk", flat=True).first()
    if found is not None:
        return found
    now = timezone.now()
    IdempotencyKey.objects.filter(user=user, expires_at__lte=now).delete()
    try:
        with transaction.atomic():
            made = IdempotencyKey.objects.create(
                user=user, key=key, fingerprint="", created_at=now, expires_at=_expiry(now)
            )
        return made.pk
    except IntegrityError:  # made by a request with the same key meanwhile
        return IdempotencyKey.objects.filter(user=user, key=key).values_list("pk", flat=True)[0]


def _locked(row_id: int) -> IdempotencyKey | None:
    """The key's row, locked for the rest of the transaction (None if it was deleted); a row
    another request holds is :class:`IdempotencyKeyInProgress`."""
    rows = IdempotencyKey.objects.filter(pk=row_id)
    if not connection.features.has_select_for_update_nowait:
        # SQLite: a write takes the database's one write lock (the next writer waits for it).
        rows.update(key=F("key"))
        return rows.first()
    try:
        return rows.select_for_update(nowait=True).first()
    except OperationalError as exc:
        if _lock_not_available(exc):
            raise IdempotencyKeyInProgress() from exc
        raise


def _lock_not_available(exc: OperationalError) -> bool:
    """Whether ``NOWAIT`` found the row locked: PostgreSQL's SQLSTATE 55P03, MySQL's error 3572,
    MariaDB's 1205."""
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or getattr(exc.__cause__, "pgcode", None)
    return sqlstate == "55P03" or mysql_errno(exc) in (1205, 3572)


def _expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=polls_settings.IDEMPOTENCY_KEY_TTL)
