"""The example project's settings come from the environment, and production refuses to start
without the values it cannot do without."""

from __future__ import annotations

import json
import secrets
import subprocess
from multiprocessing import cpu_count
from pathlib import Path
from typing import Any

from tests.example.conftest import EXAMPLE_DIR, example_env, run_example

SHOW = """
import json, django
django.setup()
from django.conf import settings as s
db = s.DATABASES["default"]
print(json.dumps({
    "DEBUG": s.DEBUG, "SECRET_KEY": s.SECRET_KEY, "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "TIME_ZONE": s.TIME_ZONE, "USE_TZ": s.USE_TZ,
    "ENGINE": db["ENGINE"], "NAME": str(db["NAME"]), "HOST": db.get("HOST"),
    "PORT": db.get("PORT"), "USER": db.get("USER"), "OPTIONS": db.get("OPTIONS", {}),
    "CONN_MAX_AGE": db["CONN_MAX_AGE"], "CONN_HEALTH_CHECKS": db["CONN_HEALTH_CHECKS"],
    "CACHE": s.CACHES["default"], "CORS_ALLOWED_ORIGINS": s.CORS_ALLOWED_ORIGINS,
    "CSRF_TRUSTED_ORIGINS": s.CSRF_TRUSTED_ORIGINS,
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT, "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": s.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "SECURE_HSTS_PRELOAD": s.SECURE_HSTS_PRELOAD,
    "SECURE_PROXY_SSL_HEADER": s.SECURE_PROXY_SSL_HEADER,
    "THROTTLE_CLASSES": s.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"],
    "THROTTLE_RATES": s.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
    "RENDERERS": s.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"],
    "AUTHENTICATION": s.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"],
    "STATIC_ROOT": str(s.STATIC_ROOT), "LOG_LEVEL": s.LOGGING["root"]["level"],
    "NUM_PROXIES": s.REST_FRAMEWORK["NUM_PROXIES"],
}))
"""

PRODUCTION = {
    "SECRET_KEY": "k" + secrets.token_urlsafe(60),
    "ALLOWED_HOSTS": "polls.example.com",
    "DATABASE_URL": "postgres://polls:secret@db.internal:6432/polls",
    # Throttle counts shared by every worker (without it: django_polls.W001).
    "REDIS_URL": "redis://cache.internal:6379/0",
}


def settings_for(**values: str) -> dict[str, Any]:
    shown = run_example(
        "-c", SHOW, env=example_env(DJANGO_SETTINGS_MODULE="config.settings", **values)
    )
    return dict(json.loads(shown.stdout))


def start_failure(**values: str) -> str:
    """What `manage.py check` prints when the settings refuse to load."""
    result = run_example("manage.py", "check", env=example_env(**values), check=False)
    assert result.returncode != 0, result.stdout
    return result.stderr


def test_production_values_are_read_from_the_environment() -> None:
    settings = settings_for(**PRODUCTION, DATABASE_POOL_SIZE="3")
    assert settings["DEBUG"] is False
    assert settings["SECRET_KEY"] == PRODUCTION["SECRET_KEY"]
    assert settings["ALLOWED_HOSTS"] == ["polls.example.com"]
    assert settings["TIME_ZONE"] == "UTC"
    assert settings["USE_TZ"] is True
    assert settings["ENGINE"] == "django.db.backends.postgresql"
    assert (settings["NAME"], settings["HOST"], settings["PORT"], settings["USER"]) == (
        "polls",
        "db.internal",
        6432,
        "polls",
    )
    # A pool of open connections in each worker, nothing sent per request but the request's own
    # statements; a silent server fails fast.
    assert settings["CONN_MAX_AGE"] == 0
    assert settings["CONN_HEALTH_CHECKS"] is False
    assert settings["OPTIONS"] == {
        "connect_timeout": 5,
        "prepare_threshold": 5,
        "pool": {"min_size": 3, "max_size": 12, "timeout": 1, "reconnect_timeout": 1},
    }
    # No proxy trusted: X-Forwarded-For is not the client's address for throttling.
    assert settings["NUM_PROXIES"] == 0
    # Served over HTTPS unless told otherwise.
    assert settings["SECURE_SSL_REDIRECT"] is True
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["SECURE_HSTS_SECONDS"] == 31_536_000
    # HSTS for this host only: subdomains and preload lists are the domain owner's decision.
    assert settings["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert settings["SECURE_HSTS_PRELOAD"] is False
    assert settings["SECURE_PROXY_SSL_HEADER"] is None
    # JSON only: no browsable API outside DEBUG.
    assert settings["RENDERERS"] == ["rest_framework.renderers.JSONRenderer"]
    # DRF tokens, remembered for at most a second per process (django_polls.authentication).
    assert settings["AUTHENTICATION"][0] == (
        "django_polls.authentication.CachedTokenAuthentication"
    )


def test_the_pool_holds_four_connections_under_asgi_and_one_per_sync_worker() -> None:
    assert settings_for(**PRODUCTION)["OPTIONS"]["pool"] == {
        "min_size": 4,
        "max_size": 16,
        "timeout": 1,
        "reconnect_timeout": 1,
    }
    wsgi = settings_for(**PRODUCTION, ASGI="false")
    assert wsgi["OPTIONS"]["pool"] == {
        "min_size": 1,
        "max_size": 1,
        "timeout": 1,
        "reconnect_timeout": 1,
    }
    assert settings_for(SECRET_KEY="x" * 60, ASGI="false")["CONN_MAX_AGE"] == 600


def test_without_the_pool_connections_persist_and_are_checked_before_reuse() -> None:
    settings = settings_for(
        **PRODUCTION,
        DATABASE_POOL="false",
        CONN_MAX_AGE="120",
        DATABASE_CONNECT_TIMEOUT="3",
        DATABASE_PREPARED_STATEMENTS="false",
    )
    assert settings["CONN_MAX_AGE"] == 120
    assert settings["CONN_HEALTH_CHECKS"] is True
    assert settings["OPTIONS"] == {"connect_timeout": 3, "prepare_threshold": None}


def test_hsts_for_subdomains_and_preloading_are_opt_in() -> None:
    settings = settings_for(
        **PRODUCTION, SECURE_HSTS_INCLUDE_SUBDOMAINS="true", SECURE_HSTS_PRELOAD="true"
    )
    assert settings["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert settings["SECURE_HSTS_PRELOAD"] is True
    assert settings["SECURE_HSTS_SECONDS"] == 31_536_000


def test_production_refuses_to_start_without_a_secret_key() -> None:
    unset = {key: value for key, value in PRODUCTION.items() if key != "SECRET_KEY"}
    for values in (unset, {**unset, "SECRET_KEY": ""}, {**unset, "DEBUG": "false"}):
        error = start_failure(**values)
        assert "ImproperlyConfigured: SECRET_KEY is not set" in error


def test_debug_runs_with_a_development_key_and_plain_http() -> None:
    settings = settings_for(DEBUG="true")
    assert settings["DEBUG"] is True
    assert settings["SECRET_KEY"].startswith("django-insecure-")
    assert settings["SECURE_SSL_REDIRECT"] is False
    assert settings["SECURE_HSTS_SECONDS"] == 0
    assert "rest_framework.renderers.BrowsableAPIRenderer" in settings["RENDERERS"]


def test_defaults_are_an_sqlite_file_a_local_cache_and_throttling() -> None:
    settings = settings_for(SECRET_KEY="x" * 60)
    assert settings["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(settings["NAME"]) == EXAMPLE_DIR / "db.sqlite3"
    # Writers wait for each other instead of failing with "database is locked".
    assert settings["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert settings["OPTIONS"]["timeout"] == 20
    assert "journal_mode=WAL" in settings["OPTIONS"]["init_command"]
    # Under ASGI each request runs in a thread of its own: no connection outlives its request.
    assert settings["CONN_MAX_AGE"] == 0
    assert settings["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]
    assert settings["CACHE"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert settings["CORS_ALLOWED_ORIGINS"] == []
    assert settings["THROTTLE_CLASSES"] == ["config.throttling.ScopedRateThrottle"]
    assert settings["THROTTLE_RATES"] == {
        "django_polls.vote": "60/min",
        "django_polls.create": "20/min",
        "auth": "20/min",
    }
    assert Path(settings["STATIC_ROOT"]) == EXAMPLE_DIR / "staticfiles"
    assert settings["LOG_LEVEL"] == "INFO"


def test_cache_cors_throttling_and_proxy_are_configurable() -> None:
    settings = settings_for(
        SECRET_KEY="x" * 60,
        REDIS_URL="redis://127.0.0.1:6379/3",
        CORS_ALLOWED_ORIGINS="https://app.example.com, http://localhost:5173",
        CSRF_TRUSTED_ORIGINS="https://app.example.com",
        THROTTLE_VOTE_RATE="5/second",
        TRUST_X_FORWARDED_PROTO="true",
        LOG_LEVEL="WARNING",
    )
    assert settings["CACHE"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert settings["CACHE"]["LOCATION"] == "redis://127.0.0.1:6379/3"
    assert settings["CACHE"]["OPTIONS"]["socket_timeout"] <= 1
    assert settings["CORS_ALLOWED_ORIGINS"] == ["https://app.example.com", "http://localhost:5173"]
    assert settings["CSRF_TRUSTED_ORIGINS"] == ["https://app.example.com"]
    assert settings["THROTTLE_RATES"]["django_polls.vote"] == "5/second"
    assert settings["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert settings["LOG_LEVEL"] == "WARNING"

    assert settings_for(SECRET_KEY="x" * 60, THROTTLE="off")["THROTTLE_CLASSES"] == []


def test_a_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "polls.env"
    env_file.write_text(
        "SECRET_KEY=from-the-file-" + "f" * 50 + "\nALLOWED_HOSTS=file.example.com\nDEBUG=false\n"
    )
    settings = settings_for(ENV_FILE=str(env_file), ALLOWED_HOSTS="env.example.com")
    assert settings["SECRET_KEY"].startswith("from-the-file-")
    assert settings["ALLOWED_HOSTS"] == ["env.example.com"]


def test_a_missing_env_file_is_an_error_that_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.env"
    error = start_failure(ENV_FILE=str(missing), SECRET_KEY="x" * 60)
    assert f"ENV_FILE names {missing}, which does not exist" in error


def test_check_deploy_is_clean_with_production_values() -> None:
    clean = run_example(
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=example_env(**PRODUCTION),
        check=False,
    )
    assert clean.returncode == 0, clean.stderr
    assert "System check identified no issues" in clean.stdout

    # The same check does bite: plain HTTP is reported.
    plain = run_example(
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=example_env(**PRODUCTION, HTTPS="false"),
        check=False,
    )
    assert plain.returncode != 0
    assert "security.W008" in plain.stderr

    # And so does throttling that would count in each worker's memory.
    per_process = {name: value for name, value in PRODUCTION.items() if name != "REDIS_URL"}
    local = run_example(
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=example_env(**per_process),
        check=False,
    )
    assert local.returncode != 0
    assert "django_polls.W001" in local.stderr
    assert "LocMemCache" in local.stderr


GUNICORN = """
import json, runpy
conf = runpy.run_path("gunicorn.conf.py")
print(json.dumps({"bind": conf["bind"], "workers": conf["workers"],
    "worker_class": conf["worker_class"], "wsgi_app": conf["wsgi_app"]}))
"""


def test_gunicorn_takes_host_port_and_workers_from_the_environment() -> None:
    default = json.loads(run_example("-c", GUNICORN, env=example_env()).stdout)
    assert default["bind"] == "127.0.0.1:8000"
    # On SQLite a stream hears only its own worker's changes: one worker, serving many at once.
    assert default["workers"] == 1
    # Uvicorn workers: the API and the live results streams under ASGI.
    assert default["worker_class"] == "config.workers.Worker"
    assert default["wsgi_app"] == "config.asgi:application"
    # On PostgreSQL under ASGI, cores + 1; with sync workers 2 x cores + 1; at most 12.
    for values, workers in (
        ({"DATABASE_URL": "postgres://polls@db.internal/polls"}, cpu_count() + 1),
        ({"ASGI": "false"}, 2 * cpu_count() + 1),
    ):
        answer = run_example("-c", GUNICORN, env=example_env(**values))
        assert json.loads(answer.stdout)["workers"] == min(workers, 12), values

    chosen = json.loads(
        run_example(
            "-c",
            GUNICORN,
            env=example_env(HOST="0.0.0.0", PORT="9001", WEB_CONCURRENCY="3", ASGI="false"),
        ).stdout
    )
    assert chosen == {
        "bind": "0.0.0.0:9001",
        "workers": 3,
        "worker_class": "sync",
        "wsgi_app": "config.wsgi:application",
    }


def system_check(**values: str) -> subprocess.CompletedProcess[str]:
    return run_example(
        "manage.py",
        "check",
        "--fail-level",
        "WARNING",
        env=example_env(SECRET_KEY=PRODUCTION["SECRET_KEY"], **values),
        check=False,
    )


def test_throttle_counts_per_process_are_reported_only_with_several_workers() -> None:
    # `make demo` on SQLite: one worker counts every request, nothing to warn about.
    demo = system_check()
    assert demo.returncode == 0, demo.stderr
    assert "django_polls.W001" not in demo.stderr

    # Several workers, each with its memory cache: each counts on its own.
    for values in ({"WEB_CONCURRENCY": "4"}, {"ASGI": "false"}):
        several = system_check(**values)
        assert several.returncode != 0, values
        assert "django_polls.W001" in several.stderr, values

    # Several workers sharing Redis: nothing to warn about.
    shared = system_check(WEB_CONCURRENCY="4", REDIS_URL="redis://cache.internal:6379/0")
    assert shared.returncode == 0, shared.stderr


REPLICA = """
import json, django
django.setup()
from django.conf import settings as s
from django.core.checks import run_checks
print(json.dumps({
    "DATABASES": {alias: {k: db[k] for k in ("HOST", "PORT", "OPTIONS", "TEST",
        "DISABLE_SERVER_SIDE_CURSORS", "CONN_MAX_AGE")} for alias, db in s.DATABASES.items()},
    "ROUTERS": s.DATABASE_ROUTERS, "MIDDLEWARE": s.MIDDLEWARE,
    "REPLICA": s.DJANGO_POLLS["REPLICA_DATABASE"],
    "SECONDS": s.DJANGO_POLLS["READ_YOUR_WRITES_SECONDS"],
    "CHECKS": [m.id for m in run_checks() if m.id.startswith("django_polls.")],
}))
"""


def replica_settings(**values: str) -> dict[str, Any]:
    env = example_env(DJANGO_SETTINGS_MODULE="config.settings", **PRODUCTION, **values)
    return dict(json.loads(run_example("-c", REPLICA, env=env).stdout))


def test_a_replica_url_adds_the_alias_the_router_and_the_middleware() -> None:
    settings = replica_settings(
        DATABASE_REPLICA_URL="postgres://polls:secret@replica.internal:6432/polls",
        DATABASE_TRANSACTION_POOLER="true",
        READ_YOUR_WRITES_SECONDS="4",
    )
    primary, replica = settings["DATABASES"]["default"], settings["DATABASES"]["replica"]
    assert replica["HOST"] == "replica.internal" and primary["HOST"] == "db.internal"
    # The primary's connection settings: its pool, no prepared statements or server-side
    # cursors behind the pooler, and its test database.
    assert replica["OPTIONS"] == primary["OPTIONS"]
    assert replica["OPTIONS"]["prepare_threshold"] is None
    assert replica["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert replica["TEST"]["MIRROR"] == "default"
    assert settings["ROUTERS"] == ["django_polls.routers.ReplicaRouter"]
    middleware = settings["MIDDLEWARE"]
    assert middleware.index("django_polls.routers.ReadYourWritesMiddleware") == (
        middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1
    )
    assert (settings["REPLICA"], settings["SECONDS"]) == ("replica", 4)
    assert settings["CHECKS"] == []


def test_without_a_replica_url_nothing_is_routed() -> None:
    settings = replica_settings()
    assert set(settings["DATABASES"]) == {"default"}
    assert settings["ROUTERS"] == []
    assert "django_polls.routers.ReadYourWritesMiddleware" not in settings["MIDDLEWARE"]
    assert (settings["REPLICA"], settings["SECONDS"]) == (None, 10)
