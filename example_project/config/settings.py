"""Settings of the example project, read from the environment or a `.env` file (config/env.py).

`.env.example` documents each variable. Production needs at least `SECRET_KEY`, `ALLOWED_HOSTS`,
`DATABASE_URL` and `REDIS_URL`; `DEBUG` is off unless asked for, and `HTTPS` on unless `DEBUG`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import dj_database_url
from decouple import Csv
from django.core.exceptions import ImproperlyConfigured

from config import serving
from config.env import config

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core -------------------------------------------------------------------------------------

DEBUG = config("DEBUG", default=False, cast=bool)

SECRET_KEY = config("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment or in example_project/.env "
            "(see .env.example); only DEBUG=true runs with a development key."
        )
    SECRET_KEY = "django-insecure-development-key-for-debug-only"

ALLOWED_HOSTS = config("ALLOWED_HOSTS", default="localhost,127.0.0.1,[::1]", cast=Csv())

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_yasg",
    "drf_spectacular",
    "django_polls",
    "accounts",
    "demo",
]

MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The API's messages (and the admin) in the caller's language, from Accept-Language: the
    # app ships Spanish, French, German and Brazilian Portuguese; the error codes stay as they are.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
# Served under ASGI (uvicorn workers, the default) or WSGI (sync workers); gunicorn.conf.py reads
# the same variable.
ASGI = config("ASGI", default=True, cast=bool)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- Database ---------------------------------------------------------------------------------

# An SQLite file by default, PostgreSQL with DATABASE_URL=postgres://user:password@host:5432/name.
DATABASES = {
    "default": dj_database_url.parse(
        config("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Under ASGI a connection kept after its request would be one per request thread.
        conn_max_age=config("CONN_MAX_AGE", default=0 if ASGI else 600, cast=int),
        conn_health_checks=True,
    )
}
# DATABASE_URL reaches PostgreSQL through a transaction pooler (PgBouncer, pool_mode =
# transaction); docs/operating.md lists what that changes.
TRANSACTION_POOLER = config("DATABASE_TRANSACTION_POOLER", default=False, cast=bool)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that accepts connections but does not answer fails a request in seconds
    # (503) instead of holding a worker until Gunicorn kills it.
    connect_timeout = config("DATABASE_CONNECT_TIMEOUT", default=5, cast=int)
    DATABASES["default"]["OPTIONS"] = {
        "connect_timeout": connect_timeout,
        # The app's ballot statement is prepared once per connection (Django's own queries bind
        # on the client and are never prepared). Off behind a PgBouncer in transaction mode
        # that keeps no prepared statements (max_prepared_statements = 0).
        "prepare_threshold": 5
        if config("DATABASE_PREPARED_STATEMENTS", default=True, cast=bool)
        and not TRANSACTION_POOLER
        else None,
    }
    # Behind a pooler that hands out server connections per transaction (PgBouncer's
    # transaction mode): no prepared statements (above) and no server-side cursors, which
    # outlive a statement.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = TRANSACTION_POOLER
    if config("DATABASE_POOL", default=True, cast=bool):
        # psycopg's pool in each worker: a request takes a connection that is already open and
        # sends nothing more than its own statements (the persistent connections below check
        # theirs with a SELECT 1 per request). A connection that broke, say in a database
        # restart, fails its request (503) and is then replaced.
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
        # A sync worker serves one request at a time: one connection each, kept open. An ASGI
        # worker serves requests side by side, each in its thread: it keeps DATABASE_POOL_SIZE
        # open and opens up to four times as many in a burst (a sign-up holds its connection
        # while it hashes the password), so requests do not queue for a connection and time
        # out. Open live results streams hold none.
        pool_size = config("DATABASE_POOL_SIZE", default=4 if ASGI else 1, cast=int)
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": pool_size,
            "max_size": 4 * pool_size if ASGI else pool_size,
            # While the database is away a request waits at most a second for a connection
            # (503), and the pool gives up its background retries (1 s, 2 s, 4 s... apart) after
            # a second, so the next request reconnects at once: ballots succeed within about a
            # second of the database accepting connections again.
            "timeout": 1,
            "reconnect_timeout": 1,
        }
    # Without the pool, each worker keeps its connection for CONN_MAX_AGE seconds and checks it
    # before reuse, so a database restart costs one reconnect instead of one failed request.
    # Live results LISTEN on a session of their own: around a transaction pooler, straight to
    # PostgreSQL (DATABASE_LISTEN_URL), else on DATABASE_URL's server.
    if config("DATABASE_LISTEN_URL", default=""):
        DATABASES["listen"] = dj_database_url.parse(config("DATABASE_LISTEN_URL"))
        DATABASES["listen"]["OPTIONS"] = {"connect_timeout": connect_timeout}
    # A streaming replica of DATABASE_URL's database (DATABASE_REPLICA_URL), with the same
    # connection settings: the poll list and detail for callers who are not signed in and wrote
    # nothing within READ_YOUR_WRITES_SECONDS read it (django_polls.routers, docs/operating.md).
    if config("DATABASE_REPLICA_URL", default=""):
        replica = copy.deepcopy(DATABASES["default"])
        where = dj_database_url.parse(config("DATABASE_REPLICA_URL"))
        replica["NAME"], replica["HOST"], replica["PORT"] = (
            where["NAME"],
            where["HOST"],
            where["PORT"],
        )
        replica["USER"], replica["PASSWORD"] = where["USER"], where["PASSWORD"]
        # Tests that run against these settings read the default database's test copy.
        replica["TEST"] = {"MIRROR": "default"}
        DATABASES["replica"] = replica
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Writers queue for the lock (IMMEDIATE) instead of failing when two workers write at once;
        # WAL lets reads go on during a write.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL;",
    }

if "replica" in DATABASES:
    DATABASE_ROUTERS = ["django_polls.routers.ReplicaRouter"]
    # Answers to writes carry the cookie that reads the primary for READ_YOUR_WRITES_SECONDS.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
        "django_polls.routers.ReadYourWritesMiddleware",
    )

# Under ASGI, the threads of a worker that run the requests to synchronous views (config/asgi.py):
# as many as its pool may open connections, so a request never waits for one.
_pool = DATABASES["default"].get("OPTIONS", {}).get("pool")
ASGI_THREADS = config(
    "ASGI_THREADS", default=_pool["max_size"] if isinstance(_pool, dict) else 16, cast=int
)

# --- Cache ------------------------------------------------------------------------------------

# A shared Redis cache when REDIS_URL is set (throttle counters then hold across workers and
# servers); else each worker process has its own memory cache.
REDIS_URL = config("REDIS_URL", default="")
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # A Redis that hangs costs a request half a second, not the kernel's timeouts.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Auth -------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation ---------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------------

# Served by the project itself (WhiteNoise), so Swagger UI, ReDoc and the admin work offline and
# without a separate web server. `manage.py collectstatic` fills STATIC_ROOT.
STATIC_URL = "static/"
STATIC_ROOT = config("STATIC_ROOT", default="") or str(BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- HTTPS and security headers ---------------------------------------------------------------

# HTTPS=true (the default unless DEBUG) when the site is served over HTTPS: redirect plain HTTP,
# send cookies only over HTTPS, and send HSTS. `make demo` serves plain HTTP on 127.0.0.1.
HTTPS = config("HTTPS", default=not DEBUG, cast=bool)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = config("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0, cast=int)
# includeSubDomains and preload bind every subdomain of the site's domain, and preload lists are
# slow to leave: a decision about the whole domain that the site's owner opts into.
SECURE_HSTS_INCLUDE_SUBDOMAINS = config("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False, cast=bool)
SECURE_HSTS_PRELOAD = config("SECURE_HSTS_PRELOAD", default=False, cast=bool)
# check --deploy would ask for both (security.W005, W021); off is this project's documented
# default (docs/configuration.md), not an oversight.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
# django_polls.W001 (throttle counts in a cache of each process) matters with several worker
# processes, each counting on its own; one worker, as `make demo` runs on SQLite, counts them all.
if not REDIS_URL and serving.worker_processes() == 1:
    SILENCED_SYSTEM_CHECKS.append("django_polls.W001")
# Load balancers probe the health endpoint over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^api/health/$"]
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto (and strips it from clients).
if config("TRUST_X_FORWARDED_PROTO", default=False, cast=bool):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

CSRF_TRUSTED_ORIGINS = config("CSRF_TRUSTED_ORIGINS", default="", cast=Csv())
CSRF_FAILURE_VIEW = "config.errors.csrf_failure"

# Browser front ends on other origins (https://app.example.com,http://localhost:5173) may call
# the API; nothing outside /api/ is shared.
CORS_ALLOWED_ORIGINS = config("CORS_ALLOWED_ORIGINS", default="", cast=Csv())
CORS_URLS_REGEX = r"^/api/.*$"

# --- Django REST framework and django_polls ---------------------------------------------------

# THROTTLE=off turns every throttle off (load tests, a test suite driving the demo).
THROTTLE = config("THROTTLE", default=True, cast=bool)

REST_FRAMEWORK = {
    # Token first: a request without valid credentials gets 401 with WWW-Authenticate. DRF's
    # tokens, each remembered by a process for at most a second (a revoked token stops working
    # at once in the process that revoked it, within a second in the others; see
    # docs/operating.md).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "django_polls.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    # The OpenAPI 3.1 document (/api/openapi.json) is drf-spectacular's.
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Proxies in front that append to X-Forwarded-For; 0 trusts no such header, so a client
    # cannot pick the address that throttling counts it under.
    "NUM_PROXIES": config("NUM_PROXIES", default=0, cast=int),
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    ],
    "DEFAULT_THROTTLE_CLASSES": (["config.throttling.ScopedRateThrottle"] if THROTTLE else []),
    "DEFAULT_THROTTLE_RATES": {
        "django_polls.vote": config("THROTTLE_VOTE_RATE", default="60/min"),
        "django_polls.create": config("THROTTLE_CREATE_RATE", default="20/min"),
        "auth": config("THROTTLE_AUTH_RATE", default="20/min"),
    },
}

# Every key of django_polls with its default is in docs/configuration.md.
DJANGO_POLLS: dict[str, object] = {
    # Live results streams each worker process serves at once (then 503 too_many_streams).
    "MAX_STREAMS": config("MAX_STREAMS", default=1000, cast=int),
    # Of those, how many one client (user, else address) holds (then 429 too_many_client_streams).
    "MAX_STREAMS_PER_CLIENT": config("MAX_STREAMS_PER_CLIENT", default=20, cast=int),
    # Under ASGI on PostgreSQL, the connections each worker's async vote and results views may
    # open (django_polls.asgi), beside Django's pool.
    "ASYNC_POOL": {
        "min_size": 1,
        "max_size": config("DATABASE_ASYNC_POOL_SIZE", default=4, cast=int),
        # As Django's pool above: a second's wait at most, and no background retries past a
        # second, so ballots succeed within about a second of the database coming back.
        "timeout": 1,
        "reconnect_timeout": 1,
    },
    # Where live results LISTEN (see DATABASE_LISTEN_URL above).
    "LISTEN_DATABASE": "listen" if "listen" in DATABASES else None,
    # Every poll's audit trail, read by its owner at polls/{id}/audit/ (docs/audit.md).
    "AUDIT_TRAIL": config("AUDIT_TRAIL", default=True, cast=bool),
    # Webhooks (docs/webhooks.md): networks that webhook URLs may reach although they are not
    # public (e.g. 127.0.0.1/32 for a receiver on this machine), and the seconds one attempt
    # may take. Gunicorn runs the sender beside the server unless WEBHOOK_WORKER=false.
    "WEBHOOK_ALLOWED_NETWORKS": config("WEBHOOK_ALLOWED_NETWORKS", default="", cast=Csv()),
    "WEBHOOK_TIMEOUT": config("WEBHOOK_TIMEOUT", default=10, cast=int),
    "WEBHOOK_RETRY_DELAY": config("WEBHOOK_RETRY_DELAY", default=30, cast=int),
    # Where the reads that may lag go (DATABASE_REPLICA_URL above), and how long a client that
    # wrote reads only the primary.
    "REPLICA_DATABASE": "replica" if "replica" in DATABASES else None,
    "READ_YOUR_WRITES_SECONDS": config("READ_YOUR_WRITES_SECONDS", default=10, cast=int),
}

#: The token scheme of both documents.
TOKEN_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "Authorization",
    "description": "`Token <key>`: take a key from `POST /api/v1/auth/register/` or "
    "`POST /api/v1/auth/token/` and enter `Token <key>` under Authorize.",
}

SWAGGER_SETTINGS = {
    "DEFAULT_INFO": "config.docs.api_info",
    # The app's: every response described, and the 503/413/415 any request may get.
    "DEFAULT_AUTO_SCHEMA_CLASS": "django_polls.schema.yasg.DescribedResponses",
    "SECURITY_DEFINITIONS": {"Token": TOKEN_SCHEME},
    "USE_SESSION_AUTH": False,
    "PERSIST_AUTH": True,
    "DEFAULT_MODEL_RENDERING": "example",
}

# The OpenAPI 3.1 document, for client generators (docs/api.md, "Schemas and clients").
SPECTACULAR_SETTINGS = {
    "TITLE": "django-polls API",
    "VERSION": "v1",
    "OAS_VERSION": "3.1.0",
    "LICENSE": {"name": "MIT"},
    # Operation ids and tags are the app's own, whatever the mount; paths stay whole.
    "SCHEMA_PATH_PREFIX": "/api",
    "SCHEMA_PATH_PREFIX_TRIM": False,
    # The token alone, as in the Swagger 2.0 document (its USE_SESSION_AUTH is off).
    "AUTHENTICATION_WHITELIST": ["django_polls.authentication.CachedTokenAuthentication"],
    "APPEND_COMPONENTS": {"securitySchemes": {"Token": TOKEN_SCHEME}},
    # Request bodies of their own (PollRequest, without the read-only fields): what generated
    # clients send. As JSON: DRF's form and multipart parsers read no nested lists (a poll's
    # options, a ballot's scores), so the document offers no such encoding.
    "COMPONENT_SPLIT_REQUEST": True,
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PUBLIC": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # The documents are public: credentials a browser happens to send are not even looked at.
    "SERVE_AUTHENTICATION": [],
}

# --- Logging ----------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": config("LOG_LEVEL", default="") or "INFO"},
}
