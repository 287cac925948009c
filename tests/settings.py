"""Settings for the test suite: the database of DATABASE_URL (PostgreSQL or MySQL/MariaDB), else
SQLite in memory."""

from __future__ import annotations

import importlib.util
import os

import dj_database_url

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_database_url = os.environ.get("DATABASE_URL", "")
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url)}
    # One test database per tox environment, so environments never trip over each other.
    _suffix = os.environ.get("TOX_ENV_NAME", "local").replace("-", "_")
    DATABASES["default"]["TEST"] = {"NAME": f"test_django_polls_{_suffix}"}
    # With a threshold, psycopg may prepare statements: the ballot's statement is then prepared.
    if os.environ.get("PREPARE_THRESHOLD") and "postgres" in DATABASES["default"]["ENGINE"]:
        DATABASES["default"]["OPTIONS"] = {
            "prepare_threshold": int(os.environ["PREPARE_THRESHOLD"])
        }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
        # Four-byte UTF-8 (emoji in option texts) and InnoDB, as the app requires there.
        DATABASES["default"]["TEST"].update(
            {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
        )
        DATABASES["default"]["OPTIONS"] = {
            "charset": "utf8mb4",
            "init_command": "SET default_storage_engine=InnoDB",
        }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

# A second alias on the same database, as a site names its replica: the read routing's tests
# (tests/test_routers.py) count which alias each query takes. Nothing else uses it.
DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "rest_framework.authtoken",
    "django_polls",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

REST_FRAMEWORK: dict[str, object] = {
    # Token first, so an anonymous write gets 401 with WWW-Authenticate, as in the example project.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}
# The app's drf-spectacular hints apply where drf-spectacular describes the views.
if importlib.util.find_spec("drf_spectacular") is not None:
    REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
SPECTACULAR_SETTINGS = {"OAS_VERSION": "3.1.0"}
