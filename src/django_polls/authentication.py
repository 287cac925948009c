"""Token authentication that remembers a token for at most a second.

DRF's ``TokenAuthentication`` reads the token and its user from the database on every request.
:class:`CachedTokenAuthentication` keeps what it read in the process for :attr:`max_age` seconds
(1), so a client that sends several requests in a row costs one read a second, not one each.
What it answers is what DRF's class answers; only when it reads differs.

What a revoked credential can still do (a token deleted, its user deactivated or deleted):

- Revoked through Django's ORM (the admin, ``token.delete()``, ``user.save()``,
  ``user.delete()``): nothing in the process that made the change, which forgets the token at
  once (signals) and again at commit. Other processes use what they read before for at most
  ``max_age`` seconds after that read.
- Revoked in any other way (``QuerySet.update()``, SQL, another program): every process, this
  one included, for at most ``max_age`` seconds after it last read the token.

In both cases that is what the token could do anyway while a request that authenticated with it
just before the revocation is still running. A password change does not revoke a DRF token (nor
with this class). Failed look-ups are never remembered, so a new token works at once. The same
on every database; nothing is shared between processes.
"""

from __future__ import annotations

import copy
import functools
import threading
import time
from collections import OrderedDict
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models.signals import post_delete, post_save
from rest_framework.authentication import TokenAuthentication

#: The clock of the entries' age (a module attribute, so tests can move it).
clock = time.monotonic

_lock = threading.Lock()
#: (token model, key) -> (when it was read, user, token), the least recently read first.
_entries: OrderedDict[tuple[type[Any], str], tuple[float, Any, Any]] = OrderedDict()
#: user pk -> the entries of that user's tokens.
_by_user: dict[Any, set[tuple[type[Any], str]]] = {}


class CachedTokenAuthentication(TokenAuthentication):
    """``TokenAuthentication`` with a per-process memory of :attr:`max_age` seconds. A host sets
    other bounds by subclassing (``max_age = 0`` reads on every request, as DRF does)."""

    #: Seconds after a read from the database during which its answer is used again.
    max_age: float = 1.0
    #: Tokens a process remembers at most; the least recently read are forgotten first.
    max_entries: int = 10_000

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        entry = (self.get_model(), key)
        # Taken before the read, so an entry never outlives max_age after the data it holds.
        now = clock()
        found = recall(entry, now, self.max_age)
        if found is not None:
            return found
        user, token = super().authenticate_credentials(key)
        if self.max_age > 0:
            remember(entry, now, user, token, self.max_entries)
        return copies(user, token)

    async def aauthenticate_credentials(self, key: str) -> tuple[Any, Any] | None:
        """What :meth:`authenticate_credentials` answers for a token that is valid, read (when it
        is not remembered) on the event loop's pool; None where DRF's class would refuse it, for
        the synchronous path to answer exactly as DRF does."""
        entry = (self.get_model(), key)
        now = clock()
        found = recall(entry, now, self.max_age)
        if found is not None:
            return found
        read = await read_token(self.get_model(), key)
        if read is None:
            return None
        user, token = read
        if self.max_age > 0:
            remember(entry, now, user, token, self.max_entries)
        return copies(user, token)


async def read_token(model: Any, key: str) -> tuple[Any, Any] | None:
    """A token and its active user, read in one query on the event loop's pool, as
    ``TokenAuthentication`` reads them (``select_related("user")``); None for an unknown key or
    an inactive user."""
    from django_polls.services import aio

    user_model = model._meta.get_field("user").related_model
    width = len(model._meta.concrete_fields)
    row = await aio.fetchone(_token_sql(model), [key])
    if row is None:
        return None
    token = aio.model_from_row(model, row[:width])
    user = aio.model_from_row(user_model, row[width:])
    if not user.is_active:
        return None
    token.user = user
    return user, token


@functools.cache
def _token_sql(model: Any) -> str:
    """A token and its user, every concrete field of each, by the token's key."""
    user_model = model._meta.get_field("user").related_model
    user_column = model._meta.get_field("user").column
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    selected = [f"t.{quote(field.column)}" for field in model._meta.concrete_fields]
    selected += [f"u.{quote(field.column)}" for field in user_model._meta.concrete_fields]
    return (
        f"SELECT {', '.join(selected)} FROM {quote(model._meta.db_table)} AS t"
        f" JOIN {quote(user_model._meta.db_table)} AS u"
        f" ON u.{quote(user_model._meta.pk.column)} = t.{quote(user_column)}"
        f" WHERE t.{quote(model._meta.pk.column)} = %s"
    )


def recall(entry: tuple[type[Any], str], now: float, max_age: float) -> tuple[Any, Any] | None:
    """A request's own copies of the user and token remembered for ``entry``, when read less
    than ``max_age`` seconds before ``now``."""
    found = _entries.get(entry)
    if found is not None and now - found[0] < max_age:
        return copies(found[1], found[2])
    return None


def copies(user: Any, token: Any) -> tuple[Any, Any]:
    """A request's own user and token: it may change them (``last_login``, attributes), which
    the next request must not see."""
    user, token = copy.copy(user), copy.copy(token)
    token.user = user
    return user, token


def remember(
    entry: tuple[type[Any], str], read_at: float, user: Any, token: Any, most: int
) -> None:
    with _lock:
        _entries[entry] = (read_at, user, token)
        _entries.move_to_end(entry)
        _by_user.setdefault(user.pk, set()).add(entry)
        while len(_entries) > most:
            oldest, (_, old_user, _) = _entries.popitem(last=False)
            _drop_from_user(old_user.pk, oldest)


def _drop_from_user(user_pk: Any, entry: tuple[type[Any], str]) -> None:
    keys = _by_user.get(user_pk)
    if keys is not None:
        keys.discard(entry)
        if not keys:
            del _by_user[user_pk]


def forget(*, key: str | None = None, user_pk: Any = None) -> None:
    """Forget a token by its key, or every token of a user, in this process. A hook for
    invalidations from elsewhere (e.g. a notification from the database)."""
    with _lock:
        if key is not None:
            for entry in [entry for entry in _entries if entry[1] == key]:
                _, user, _ = _entries.pop(entry)
                _drop_from_user(user.pk, entry)
        if user_pk is not None:
            for entry in _by_user.pop(user_pk, set()):
                _entries.pop(entry, None)


def forget_all() -> None:
    """Forget every token this process remembers."""
    with _lock:
        _entries.clear()
        _by_user.clear()


def _now_and_at_commit(**which: Any) -> None:
    # Now, so this process stops at once; and at commit, in case a request read the old rows
    # again in between (before the commit they were still the committed state).
    forget(**which)
    transaction.on_commit(lambda: forget(**which))


def _user_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    _now_and_at_commit(user_pk=instance.pk)


def _token_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    _now_and_at_commit(key=instance.pk)


# Lazy senders: resolved once the models are loaded. Every token change and every save or
# deletion of a user (deactivation, a new password) forgets what this process remembers of them.
for _signal in (post_save, post_delete):
    _signal.connect(_user_changed, sender=settings.AUTH_USER_MODEL, dispatch_uid=f"{__name__}.user")
    if apps.is_installed("rest_framework.authtoken"):
        _signal.connect(_token_changed, sender="authtoken.Token", dispatch_uid=f"{__name__}.token")
