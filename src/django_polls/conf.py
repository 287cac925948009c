"""The ``DJANGO_POLLS`` settings hook.

Every value is read from ``settings.DJANGO_POLLS`` when it is accessed, never at import time, so
``override_settings`` and per-test changes just work. Problems with the dict are reported by the
system checks in :mod:`django_polls.checks`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from django.conf import settings
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    # Permission classes for reading and managing polls (list, detail, create, update, delete,
    # close, results). Object-level checks come from the same classes.
    "POLL_PERMISSION_CLASSES": (
        "rest_framework.permissions.IsAuthenticatedOrReadOnly",
        "django_polls.permissions.IsOwnerOrStaffOrReadOnly",
    ),
    # Permission classes for casting, reading and retracting one's own vote.
    "VOTE_PERMISSION_CLASSES": ("rest_framework.permissions.IsAuthenticated",),
    # Throttle classes for the app's views; None means the host's DEFAULT_THROTTLE_CLASSES.
    # The vote and create actions carry the scopes "django_polls.vote" and "django_polls.create";
    # results/ and results/stream/ carry "django_polls.results" and "django_polls.stream" when
    # DEFAULT_THROTTLE_RATES gives that scope a rate.
    "THROTTLE_CLASSES": None,
    # Pagination of the poll list.
    "PAGINATION_CLASS": "django_polls.pagination.PollPagination",
    "PAGE_SIZE": 20,
    "MAX_PAGE_SIZE": 100,
    # How many options a poll must and may have.
    "MIN_OPTIONS": 2,
    "MAX_OPTIONS": 20,
    # Text limits; the title and option limits cannot exceed the 200-character columns.
    "MAX_TITLE_LENGTH": 200,
    "MAX_OPTION_LENGTH": 200,
    "MAX_DESCRIPTION_LENGTH": 5000,
    # Live results streams (results/stream/): how many one process serves at once (beyond it a
    # new stream gets 503 too_many_streams), and the seconds between heartbeat comments.
    "MAX_STREAMS": 1000,
    "STREAM_HEARTBEAT": 15,
    # How a poll body names its creator (``created_by``): a dotted path to a callable that takes
    # a user and returns a string. By default the username (the user model's USERNAME_FIELD);
    # where that is an e-mail address, point it at a public name instead.
    "USER_DISPLAY": "django_polls.serializers.username",
    # How many of those streams one client may hold in one process (a signed-in user, else a
    # client address as DRF's throttles tell it); beyond it 429 too_many_client_streams.
    "MAX_STREAMS_PER_CLIENT": 20,
    # Who may vote, beyond a poll's voter_group: None, or a dotted path to a callable that takes
    # (user, poll) and returns whether the user may vote on the poll (e.g. by e-mail domain or
    # plan). Called in the service before a ballot is stored, changed or retracted; a refusal is
    # 403 not_eligible.
    "VOTER_POLICY": None,
    # The voting methods polls may use: dotted paths to subclasses of
    # django_polls.methods.base.VotingMethod. A site adds its own beside these (single and
    # multiple must stay: they are API v1's).
    "METHODS": (
        "django_polls.methods.choice.SingleChoice",
        "django_polls.methods.choice.MultipleChoice",
        "django_polls.methods.ranked.RankedChoice",
        "django_polls.methods.score.ScoreVoting",
    ),
    # The vote and results views under ASGI on PostgreSQL with psycopg 3 (see
    # django_polls.async_views): the sizes of each event loop's own pool of connections, which
    # takes nothing from Django's, how long a request waits for one (seconds) and how long the
    # pool keeps reconnecting in the background after the database went away. None runs those
    # views synchronously too.
    "ASYNC_POOL": {"min_size": 1, "max_size": 8, "timeout": 5.0, "reconnect_timeout": 5.0},
    # The DATABASES alias whose server the live results listener connects to for LISTEN, which
    # needs a session of its own: None is the default database. Behind a pooler that hands out
    # connections per transaction (PgBouncer's transaction mode), name an alias that reaches
    # PostgreSQL directly.
    "LISTEN_DATABASE": None,
    # How long (seconds) the answer to a request sent with an Idempotency-Key header is kept:
    # within it, a repeat of the request with the key gets that answer again, and the key with
    # another request gets 422 idempotency_key_reused.
    "IDEMPOTENCY_KEY_TTL": 24 * 60 * 60,
    # Whether to keep an audit trail: every poll's creation, edits, opening, closing and
    # deletion and every changed or withdrawn ballot, hash-chained (polls_verify_audit).
    "AUDIT_TRAIL": False,
    # Webhooks (docs/webhooks.md): how many attempts a delivery gets before it is parked as
    # failed, the seconds before the second attempt (doubled before each next one, with
    # jitter), the seconds one attempt may take in all, and how many subscriptions one user may
    # hold.
    "WEBHOOK_MAX_ATTEMPTS": 12,
    "WEBHOOK_RETRY_DELAY": 30,
    "WEBHOOK_TIMEOUT": 10,
    "WEBHOOK_MAX_SUBSCRIPTIONS": 20,
    # Days a delivered or failed delivery stays listed (webhooks/{id}/deliveries/, the admin)
    # before the sender removes it.
    "WEBHOOK_RETENTION_DAYS": 30,
    # Networks (CIDR strings) that webhook URLs may reach although they are not public
    # addresses: loopback, private, link-local and metadata addresses are refused otherwise.
    "WEBHOOK_ALLOWED_NETWORKS": (),
    # None, or a dotted path to a callable (no arguments) called once a transaction that wrote
    # webhook events has committed: where a site's task runner (Celery, Django's tasks) sends
    # them, it queues a task that calls django_polls.webhooks.deliver_due().
    "WEBHOOK_DISPATCH": None,
    # The DATABASES alias of a streaming replica that django_polls.routers.ReplicaRouter sends
    # the reads that may lag to (the poll list and detail, for callers who are not signed in and
    # wrote nothing lately); None reads everything from the default database.
    "REPLICA_DATABASE": None,
    # How long (seconds) after a request with an unsafe method its client reads only the
    # primary (a cookie set by django_polls.routers.ReadYourWritesMiddleware): longer than the
    # replica's usual lag.
    "READ_YOUR_WRITES_SECONDS": 10,
}

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

# The columns behind the length settings: a setting above these would let text reach the database
# that the column cannot hold.
COLUMN_LIMITS = {"MAX_TITLE_LENGTH": 200, "MAX_OPTION_LENGTH": 200}

INTEGER_KEYS = (
    "PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "MIN_OPTIONS",
    "MAX_OPTIONS",
    "MAX_TITLE_LENGTH",
    "MAX_OPTION_LENGTH",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_STREAMS",
    "STREAM_HEARTBEAT",
    "MAX_STREAMS_PER_CLIENT",
    "IDEMPOTENCY_KEY_TTL",
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_RETRY_DELAY",
    "WEBHOOK_TIMEOUT",
    "WEBHOOK_MAX_SUBSCRIPTIONS",
    "WEBHOOK_RETENTION_DAYS",
    "READ_YOUR_WRITES_SECONDS",
)
CLASS_LIST_KEYS = ("POLL_PERMISSION_CLASSES", "VOTE_PERMISSION_CLASSES", "THROTTLE_CLASSES")
CLASS_KEYS = ("PAGINATION_CLASS",)
CALLABLE_KEYS = ("USER_DISPLAY",)


def user_settings() -> dict[str, Any]:
    value = getattr(settings, "DJANGO_POLLS", {})
    return value if isinstance(value, dict) else {}


def get(name: str) -> Any:
    return user_settings().get(name, DEFAULTS[name])


def import_setting(name: str, dotted_path: str) -> Any:
    """Import one dotted path of a setting, naming the setting when it fails."""
    try:
        return import_string(dotted_path)
    except ImportError as exc:
        raise ImportError(
            f"Could not import {dotted_path!r} for setting DJANGO_POLLS[{name!r}]: {exc}"
        ) from exc


class PollsSettings:
    """Typed, read-at-access view of ``settings.DJANGO_POLLS``."""

    @property
    def POLL_PERMISSION_CLASSES(self) -> list[type[Any]]:
        return self._classes("POLL_PERMISSION_CLASSES")

    @property
    def VOTE_PERMISSION_CLASSES(self) -> list[type[Any]]:
        return self._classes("VOTE_PERMISSION_CLASSES")

    @property
    def THROTTLE_CLASSES(self) -> list[type[Any]] | None:
        if get("THROTTLE_CLASSES") is None:
            return None
        return self._classes("THROTTLE_CLASSES")

    @property
    def PAGINATION_CLASS(self) -> type[Any]:
        return import_setting("PAGINATION_CLASS", get("PAGINATION_CLASS"))  # type: ignore[no-any-return]

    @property
    def PAGE_SIZE(self) -> int:
        return int(get("PAGE_SIZE"))

    @property
    def MAX_PAGE_SIZE(self) -> int:
        return int(get("MAX_PAGE_SIZE"))

    @property
    def MIN_OPTIONS(self) -> int:
        return int(get("MIN_OPTIONS"))

    @property
    def MAX_OPTIONS(self) -> int:
        return int(get("MAX_OPTIONS"))

    @property
    def MAX_TITLE_LENGTH(self) -> int:
        return int(get("MAX_TITLE_LENGTH"))

    @property
    def MAX_OPTION_LENGTH(self) -> int:
        return int(get("MAX_OPTION_LENGTH"))

    @property
    def MAX_DESCRIPTION_LENGTH(self) -> int:
        return int(get("MAX_DESCRIPTION_LENGTH"))

    @property
    def MAX_STREAMS(self) -> int:
        return int(get("MAX_STREAMS"))

    @property
    def STREAM_HEARTBEAT(self) -> int:
        return int(get("STREAM_HEARTBEAT"))

    @property
    def USER_DISPLAY(self) -> Callable[[Any], str]:
        return import_setting("USER_DISPLAY", get("USER_DISPLAY"))  # type: ignore[no-any-return]

    @property
    def MAX_STREAMS_PER_CLIENT(self) -> int:
        return int(get("MAX_STREAMS_PER_CLIENT"))

    @property
    def IDEMPOTENCY_KEY_TTL(self) -> int:
        return int(get("IDEMPOTENCY_KEY_TTL"))

    @property
    def AUDIT_TRAIL(self) -> bool:
        return bool(get("AUDIT_TRAIL"))

    @property
    def WEBHOOK_MAX_ATTEMPTS(self) -> int:
        return int(get("WEBHOOK_MAX_ATTEMPTS"))

    @property
    def WEBHOOK_RETRY_DELAY(self) -> int:
        return int(get("WEBHOOK_RETRY_DELAY"))

    @property
    def WEBHOOK_TIMEOUT(self) -> int:
        return int(get("WEBHOOK_TIMEOUT"))

    @property
    def WEBHOOK_MAX_SUBSCRIPTIONS(self) -> int:
        return int(get("WEBHOOK_MAX_SUBSCRIPTIONS"))

    @property
    def WEBHOOK_RETENTION_DAYS(self) -> int:
        return int(get("WEBHOOK_RETENTION_DAYS"))

    @property
    def WEBHOOK_ALLOWED_NETWORKS(self) -> list[IPNetwork]:
        return [ipaddress.ip_network(value) for value in get("WEBHOOK_ALLOWED_NETWORKS")]

    @property
    def WEBHOOK_DISPATCH(self) -> Callable[[], Any] | None:
        path = get("WEBHOOK_DISPATCH")
        if path is None:
            return None
        return import_setting("WEBHOOK_DISPATCH", path)  # type: ignore[no-any-return]

    @property
    def REPLICA_DATABASE(self) -> str | None:
        alias = get("REPLICA_DATABASE")
        return str(alias) if alias else None

    @property
    def READ_YOUR_WRITES_SECONDS(self) -> int:
        return int(get("READ_YOUR_WRITES_SECONDS"))

    @property
    def VOTER_POLICY(self) -> Callable[[Any, Any], bool] | None:
        path = get("VOTER_POLICY")
        if path is None:
            return None
        return import_setting("VOTER_POLICY", path)  # type: ignore[no-any-return]

    @property
    def ASYNC_POOL(self) -> dict[str, Any] | None:
        value = get("ASYNC_POOL")
        if value is None:
            return None
        return {**DEFAULTS["ASYNC_POOL"], **value}

    @property
    def LISTEN_DATABASE(self) -> str:
        return str(get("LISTEN_DATABASE") or "default")

    @staticmethod
    def _classes(name: str) -> list[type[Any]]:
        paths: Sequence[str] = get(name)
        return [import_setting(name, path) for path in paths]


polls_settings = PollsSettings()
