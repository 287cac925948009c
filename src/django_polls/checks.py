"""System checks for the ``DJANGO_POLLS`` settings dict.

Ids are stable and never reused; each is documented in docs/configuration.md.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any, cast

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from django_polls import conf

THROTTLE_SCOPES = ("django_polls.vote", "django_polls.create")


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, "DJANGO_POLLS", {})
    if not isinstance(raw, dict):
        return [
            Error(
                "DJANGO_POLLS must be a dict.",
                hint=f"Got {type(raw).__name__}; use DJANGO_POLLS = {{}} for the defaults.",
                id="django_polls.E001",
            )
        ]
    errors: list[CheckMessage] = []
    unknown = sorted(set(raw) - set(conf.DEFAULTS))
    if unknown:
        errors.append(
            Error(
                f"Unknown DJANGO_POLLS key(s): {', '.join(map(repr, unknown))}.",
                hint=f"Known keys: {', '.join(sorted(conf.DEFAULTS))}.",
                id="django_polls.E002",
            )
        )
    bad_integers = [key for key in conf.INTEGER_KEYS if not _is_positive_int(conf.get(key))]
    for key in bad_integers:
        errors.append(
            Error(
                f"DJANGO_POLLS[{key!r}] must be a positive integer.",
                hint=f"Got {conf.get(key)!r}; the default is {conf.DEFAULTS[key]!r}.",
                id="django_polls.E003",
            )
        )
    if not {"PAGE_SIZE", "MAX_PAGE_SIZE"} & set(bad_integers) and conf.get("PAGE_SIZE") > conf.get(
        "MAX_PAGE_SIZE"
    ):
        errors.append(
            Error(
                "DJANGO_POLLS['PAGE_SIZE'] is larger than DJANGO_POLLS['MAX_PAGE_SIZE'].",
                hint="The default page size must fit under the page size bound.",
                id="django_polls.E004",
            )
        )
    if not {"MIN_OPTIONS", "MAX_OPTIONS"} & set(bad_integers):
        low, high = conf.get("MIN_OPTIONS"), conf.get("MAX_OPTIONS")
        if low < 2 or low > high:
            errors.append(
                Error(
                    "DJANGO_POLLS['MIN_OPTIONS'] must be at least 2 and at most "
                    "DJANGO_POLLS['MAX_OPTIONS'].",
                    hint=f"Got MIN_OPTIONS={low!r}, MAX_OPTIONS={high!r}.",
                    id="django_polls.E005",
                )
            )
    for key, limit in conf.COLUMN_LIMITS.items():
        if key not in bad_integers and conf.get(key) > limit:
            errors.append(
                Error(
                    f"DJANGO_POLLS[{key!r}] exceeds the database column length of {limit}.",
                    hint=f"Use a value from 1 to {limit}.",
                    id="django_polls.E006",
                )
            )
    errors.extend(_check_import_paths())
    errors.extend(_check_callables())
    errors.extend(_check_voter_policy())
    errors.extend(_check_methods())
    errors.extend(_check_throttle_rates())
    errors.extend(_check_throttle_cache())
    errors.extend(_check_async_pool())
    errors.extend(_check_listen_database())
    errors.extend(_check_replica())
    if not isinstance(conf.get("AUDIT_TRAIL"), bool):
        errors.append(
            Error(
                "DJANGO_POLLS['AUDIT_TRAIL'] must be True or False.",
                hint=f"Got {conf.get('AUDIT_TRAIL')!r}.",
                id="django_polls.E016",
            )
        )
    errors.extend(_check_webhook_networks())
    errors.extend(_check_optional_callable("WEBHOOK_DISPATCH", "django_polls.E018"))
    return errors


def _check_webhook_networks() -> list[CheckMessage]:
    """WEBHOOK_ALLOWED_NETWORKS is a list of networks in CIDR notation."""
    value = conf.get("WEBHOOK_ALLOWED_NETWORKS")
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        return [
            Error(
                "DJANGO_POLLS['WEBHOOK_ALLOWED_NETWORKS'] must be a list of networks.",
                hint=f"Got {value!r}; e.g. ['127.0.0.1/32', '10.0.0.0/8'].",
                id="django_polls.E017",
            )
        ]
    errors: list[CheckMessage] = []
    for network in value:
        try:
            ipaddress.ip_network(network)
        except (TypeError, ValueError) as exc:
            errors.append(
                Error(
                    f"DJANGO_POLLS['WEBHOOK_ALLOWED_NETWORKS'] holds {network!r}, which is not a "
                    "network.",
                    hint=f"{exc}; write networks in CIDR notation, e.g. '10.0.0.0/8'.",
                    id="django_polls.E017",
                )
            )
    return errors


def _check_optional_callable(
    key: str, check_id: str, hint: str | None = None
) -> list[CheckMessage]:
    """The setting is None or a dotted path to a callable."""
    value = conf.get(key)
    if value is None:
        return []
    if not isinstance(value, str):
        return [
            Error(
                f"DJANGO_POLLS[{key!r}] must be None or a dotted path to a callable.",
                hint=f"Got {value!r}.",
                id=check_id,
            )
        ]
    try:
        found = conf.import_setting(key, value)
    except ImportError as exc:
        return [Error(str(exc), id=check_id)]
    if not callable(found):
        message = f"DJANGO_POLLS[{key!r}] names {value!r}, which is not callable."
        return [Error(message, hint=hint, id=check_id)]
    return []


def _check_listen_database() -> list[CheckMessage]:
    alias = conf.get("LISTEN_DATABASE")
    if alias is None:
        return []
    engine = settings.DATABASES.get(alias, {}).get("ENGINE") if isinstance(alias, str) else None
    if engine != "django.db.backends.postgresql":
        return [
            Error(
                "DJANGO_POLLS['LISTEN_DATABASE'] must be None or the alias of a PostgreSQL "
                "database in DATABASES.",
                hint=f"Got {alias!r}; aliases: {', '.join(map(repr, settings.DATABASES))}.",
                id="django_polls.E015",
            )
        ]
    return []


ROUTER = "django_polls.routers.ReplicaRouter"
MIDDLEWARE = "django_polls.routers.ReadYourWritesMiddleware"


def _check_replica() -> list[CheckMessage]:
    alias = conf.get("REPLICA_DATABASE")
    if alias is None:
        return []
    if not isinstance(alias, str) or alias == "default" or alias not in settings.DATABASES:
        return [
            Error(
                "DJANGO_POLLS['REPLICA_DATABASE'] must be None or the alias of a database in "
                "DATABASES other than 'default'.",
                hint=f"Got {alias!r}; aliases: {', '.join(map(repr, settings.DATABASES))}.",
                id="django_polls.E019",
            )
        ]
    missing = [
        f"{path} in {setting}"
        for path, setting in ((ROUTER, "DATABASE_ROUTERS"), (MIDDLEWARE, "MIDDLEWARE"))
        if path not in [_dotted(item) for item in getattr(settings, setting, [])]
    ]
    if missing:
        return [
            Warning(
                "DJANGO_POLLS['REPLICA_DATABASE'] is set but nothing reads from it without "
                + " and ".join(missing)
                + ".",
                hint="Both are needed: the middleware pins clients that wrote to the primary, "
                "the router sends the other reads that may lag to the replica (docs/operating.md).",
                id="django_polls.W004",
            )
        ]
    return []


def _dotted(item: object) -> str:
    """A router or middleware as its dotted path (DATABASE_ROUTERS may hold instances)."""
    if isinstance(item, str):
        return item
    kind = item if isinstance(item, type) else type(item)
    return f"{kind.__module__}.{kind.__qualname__}"


def _check_async_pool() -> list[CheckMessage]:
    value = conf.get("ASYNC_POOL")
    if value is None:
        return []
    known = set(conf.DEFAULTS["ASYNC_POOL"])
    sizes = {**conf.DEFAULTS["ASYNC_POOL"], **value} if isinstance(value, dict) else {}
    if (
        not isinstance(value, dict)
        or set(value) - known
        or not all(_is_positive_int(sizes[key]) for key in ("min_size", "max_size"))
        or sizes["min_size"] > sizes["max_size"]
        or not all(_is_positive_number(sizes[key]) for key in ("timeout", "reconnect_timeout"))
    ):
        return [
            Error(
                "DJANGO_POLLS['ASYNC_POOL'] must be None or a dict of positive integers "
                "'min_size' <= 'max_size' and positive numbers 'timeout' and "
                "'reconnect_timeout' (seconds).",
                hint=f"Got {value!r}; the default is {conf.DEFAULTS['ASYNC_POOL']!r}.",
                id="django_polls.E014",
            )
        ]
    return []


def _is_positive_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_import_paths() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for key in conf.CLASS_LIST_KEYS + conf.CLASS_KEYS:
        value = conf.get(key)
        if key == "THROTTLE_CLASSES" and value is None:
            continue
        is_list = key in conf.CLASS_LIST_KEYS
        paths = value if is_list else [value]
        if (is_list and not isinstance(value, (list, tuple))) or not all(
            isinstance(path, str) for path in paths
        ):
            shape = "a list of dotted paths" if is_list else "a dotted path"
            errors.append(
                Error(
                    f"DJANGO_POLLS[{key!r}] must be {shape}.",
                    hint=f"Got {value!r}.",
                    id="django_polls.E007",
                )
            )
            continue
        for path in paths:
            try:
                conf.import_setting(key, path)
            except ImportError as exc:
                errors.append(Error(str(exc), id="django_polls.E007"))
    return errors


def _check_callables() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for key in conf.CALLABLE_KEYS:
        value = conf.get(key)
        if not isinstance(value, str):
            errors.append(
                Error(
                    f"DJANGO_POLLS[{key!r}] must be a dotted path to a callable.",
                    hint=f"Got {value!r}; the default is {conf.DEFAULTS[key]!r}.",
                    id="django_polls.E011",
                )
            )
            continue
        try:
            found = conf.import_setting(key, value)
        except ImportError as exc:
            errors.append(Error(str(exc), id="django_polls.E011"))
            continue
        if not callable(found):
            errors.append(
                Error(
                    f"DJANGO_POLLS[{key!r}] names {value!r}, which is not callable.",
                    hint="Name a function that takes a user and returns a string.",
                    id="django_polls.E011",
                )
            )
    return errors


def _check_voter_policy() -> list[CheckMessage]:
    """VOTER_POLICY is None or names a callable; anything else would fail every ballot."""
    return _check_optional_callable(
        "VOTER_POLICY",
        "django_polls.E012",
        hint="Name a function that takes (user, poll) and returns whether the user may vote on "
        "the poll.",
    )


def _check_methods() -> list[CheckMessage]:
    """METHODS names VotingMethod subclasses, with distinct names (``options`` ballots for single
    and multiple alone), single and
    multiple among them (a poll without a method is single; allow_multiple_votes is multiple)."""
    from django_polls.methods.base import VotingMethod
    from django_polls.models import VOTE_ROW_METHODS

    value = conf.get("METHODS")
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
        return [
            Error(
                "DJANGO_POLLS['METHODS'] must be a list of dotted paths.",
                hint=f"Got {value!r}.",
                id="django_polls.E013",
            )
        ]
    errors: list[CheckMessage] = []
    names: dict[str, str] = {}
    for path in value:
        try:
            found = conf.import_setting("METHODS", path)
        except ImportError as exc:
            errors.append(Error(str(exc), id="django_polls.E013"))
            continue
        if not (isinstance(found, type) and issubclass(found, VotingMethod)):
            errors.append(
                Error(
                    f"DJANGO_POLLS['METHODS'] names {path!r}, which is no subclass of "
                    "django_polls.methods.base.VotingMethod.",
                    id="django_polls.E013",
                )
            )
            continue
        name, field = getattr(found, "name", ""), getattr(found, "ballot_field", "")
        if not isinstance(name, str) or not 0 < len(name) <= 16:
            errors.append(
                Error(
                    f"The method {path!r} needs a name of 1 to 16 characters (Poll.method).",
                    hint=f"Got {name!r}.",
                    id="django_polls.E013",
                )
            )
            continue
        if name in names:
            errors.append(
                Error(
                    f"The methods {names[name]!r} and {path!r} share the name {name!r}.",
                    id="django_polls.E013",
                )
            )
        names[name] = path
        if field == "options" and name not in VOTE_ROW_METHODS:
            errors.append(
                Error(
                    f'The method {path!r} takes its ballot in "options", which belongs to '
                    "single and multiple choice (their ballots are vote rows).",
                    hint='Name another ballot field, e.g. "ranking" or "points".',
                    id="django_polls.E013",
                )
            )
    missing = [name for name in ("single", "multiple") if name not in names]
    if missing and not errors:
        errors.append(
            Error(
                f"DJANGO_POLLS['METHODS'] lacks {' and '.join(missing)}: API v1's methods must "
                "stay.",
                hint="List django_polls.methods.choice.SingleChoice and MultipleChoice.",
                id="django_polls.E013",
            )
        )
    return errors


#: Cache backends that keep their entries in each process: throttle counts there are per worker.
PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def _throttle_classes() -> list[type[Any]]:
    """The throttle classes of the app's views (DJANGO_POLLS, else DRF's defaults)."""
    from rest_framework.settings import api_settings

    throttles = conf.polls_settings.THROTTLE_CLASSES
    if throttles is None:
        throttles = list(cast("list[type[Any]]", api_settings.DEFAULT_THROTTLE_CLASSES))
    return throttles


def _check_throttle_cache() -> list[CheckMessage]:
    """Rate throttles count in a cache; a per-process cache counts per worker."""
    from django.core.cache import cache as default_cache
    from django.core.cache import caches
    from rest_framework.throttling import SimpleRateThrottle

    try:
        throttles = _throttle_classes()
    except ImportError:
        return []  # reported by E007
    found = set()
    for cls in throttles:
        if not issubclass(cls, SimpleRateThrottle):
            continue
        cache = getattr(cls, "cache", default_cache)
        if cache is default_cache:  # a proxy: the backend is the default cache's
            cache = caches["default"]
        backend = f"{type(cache).__module__}.{type(cache).__qualname__}"
        if backend in PER_PROCESS_CACHES:
            found.add(backend)
    return [
        Warning(
            f"django_polls is throttled with counts kept in {backend}, a cache of each process: "
            "with several worker processes or servers every one counts on its own, so a voter "
            "gets the limit once per process.",
            hint="Use a shared cache for the throttle counts (Redis, Memcached or the database "
            "cache), or silence django_polls.W001 where the site runs in one process.",
            id="django_polls.W001",
        )
        for backend in sorted(found)
    ]


def _check_throttle_rates() -> list[CheckMessage]:
    """ScopedRateThrottle answers 500 for a scope without a rate: say so at start-up instead."""
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    try:
        throttles = _throttle_classes()
    except ImportError:
        return []  # reported by E007
    if not any(issubclass(cls, ScopedRateThrottle) for cls in throttles):
        return []
    rates = api_settings.DEFAULT_THROTTLE_RATES or {}
    missing = [scope for scope in THROTTLE_SCOPES if scope not in rates]
    if not missing:
        return []
    return [
        Error(
            "ScopedRateThrottle is active for django_polls but REST_FRAMEWORK"
            f"['DEFAULT_THROTTLE_RATES'] has no rate for {', '.join(map(repr, missing))}.",
            hint="Add a rate such as '30/min' for each scope, or None to leave it unthrottled.",
            id="django_polls.E008",
        )
    ]


#: Databases whose rules the app keeps (migrations 0001 to 0003, the locking in services).
SUPPORTED_VENDORS = ("postgresql", "sqlite", "mysql")
#: The oldest servers with what the app relies on there: composite foreign keys on InnoDB, and
#: either indexes on expressions (MySQL 8.0.13) or stored generated columns under unique indexes
#: in a no-pad collation (MariaDB 10.4, Django 4.2's floor).
MYSQL_MINIMUM = (8, 0, 13)
MARIADB_MINIMUM = (10, 4)


@register()
def check_databases(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Refuse databases on which the voting rules would not be kept.

    The vendor is read from the settings, at every start-up. MySQL and MariaDB are asked (one
    query, and the version and mode Django reads on connecting anyway) only where Django asks the
    checks to use the database, as ``migrate`` does before it creates tables and
    ``check --database`` does; a database that does not answer is not this check's to report.
    """
    from django.db import DatabaseError, connections, router

    from django_polls.models import Poll

    databases = kwargs.get("databases")
    aliases = [
        alias
        for alias in (connections if databases is None else databases)
        if router.allow_migrate_model(alias, Poll)
    ]
    errors: list[CheckMessage] = []
    for alias in aliases:
        connection = connections[alias]
        if connection.vendor not in SUPPORTED_VENDORS:
            errors.append(
                Error(
                    f"django_polls does not support the {connection.vendor!r} database of "
                    f"DATABASES[{alias!r}]: the voting rules would not be kept there.",
                    hint="Use PostgreSQL, MySQL/MariaDB (InnoDB) or SQLite; docs/databases.md "
                    "says what each enforces.",
                    id="django_polls.E009",
                )
            )
        elif connection.vendor == "mysql" and databases is not None:
            with contextlib.suppress(DatabaseError):  # down: migrate itself will say so
                errors.extend(_check_mysql(alias, connection))
    return errors


def _check_mysql(alias: str, connection: Any) -> list[CheckMessage]:
    problems = []
    version = tuple(connection.mysql_version)
    minimum = MARIADB_MINIMUM if connection.mysql_is_mariadb else MYSQL_MINIMUM
    if version < minimum:
        server = "MariaDB" if connection.mysql_is_mariadb else "MySQL"
        problems.append(
            f"{server} {'.'.join(map(str, version))} is older than "
            f"{'.'.join(map(str, minimum))}, the oldest with the generated columns and keys "
            "django_polls relies on"
        )
    # Set by Django on connecting, from OPTIONS["isolation_level"] (default "read committed").
    isolation = getattr(connection, "isolation_level", None) or "the server's default"
    if isolation != "read committed":
        problems.append(
            f"its isolation level is {isolation}, not read committed (Django's default): a "
            "retraction would re-read its votes in an old snapshot and could miscount"
        )
    sql_mode = set(connection.sql_mode)
    if not sql_mode & {"STRICT_TRANS_TABLES", "STRICT_ALL_TABLES"}:
        problems.append(
            "the session is not in strict mode (sql_mode), so a vote counter below zero would "
            "be stored as 0 instead of refused"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT @@default_storage_engine, (SELECT GROUP_CONCAT(table_name ORDER BY table_name)"
            " FROM information_schema.tables WHERE table_schema = DATABASE()"
            " AND table_name LIKE 'django\\_polls\\_%%' AND engine <> 'InnoDB')"
        )
        default_engine, others = cursor.fetchone()
    if others:
        problems.append(f"these tables are not on InnoDB: {others}")
    if str(default_engine).lower() != "innodb":
        problems.append(f"new tables would be created on {default_engine}, not InnoDB")
    return [
        Error(
            f"DATABASES[{alias!r}] cannot keep the voting rules of django_polls: {problem}.",
            hint="django_polls needs InnoDB (foreign keys, row locks, transactions), strict "
            "mode and a supported server; docs/databases.md says how.",
            id="django_polls.E010",
        )
        for problem in problems
    ]


@register()
def check_live_results(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Live results need psycopg 3.2 on PostgreSQL, and an ASGI server: say so at start-up."""
    from django_polls import live

    messages: list[CheckMessage] = []
    problem = live.listener_unavailable()
    if problem is not None:
        messages.append(
            Warning(
                f"django_polls live results cannot run here: {problem}. Every results/stream/ "
                "answers 503 streams_unavailable; the rest of the API works.",
                hint="Install psycopg 3.2 or later (pip install 'django-polls-api[postgres]'); "
                "Django then uses it in place of psycopg2. Or silence django_polls.W002 where "
                "clients poll results/ instead.",
                id="django_polls.W002",
            )
        )
    if live.serves_wsgi():
        messages.append(live.needs_asgi())
    return messages
