"""System checks for the ``DJANGO_POLLS`` settings dict.

Ids are stable and never reused; each is documented in docs/configuration.md.
"""

from __future__ import annotations

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
    errors.extend(_check_throttle_rates())
    errors.extend(_check_throttle_cache())
    return errors


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


def needs_asgi() -> CheckMessage:
    return Warning(
        "This process serves django_polls through a WSGI handler: its live results streams "
        "(results/stream/) answer 503 streams_need_asgi here.",
        hint="Serve the site with an ASGI server (uvicorn, Daphne, Hypercorn, Gunicorn with "
        "uvicorn workers) for live results, or silence django_polls.W003 where clients poll "
        "results/ instead.",
        id="django_polls.W003",
    )


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
        messages.append(needs_asgi())
    return messages
