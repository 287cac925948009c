"""The host's settings: the test suite's (the same database selection: SQLite, or DATABASE_URL
for PostgreSQL or MySQL/MariaDB), with the host's user model.

Token authentication comes first and the app is mounted at ``api/v1/``, as in
:mod:`tests.settings`.
"""

from __future__ import annotations

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = ["tests.hosts.uuid_email.users", *INSTALLED_APPS]
AUTH_USER_MODEL = "users.User"
ROOT_URLCONF = "tests.hosts.uuid_email.urls"
# Poll bodies name creators without publishing their e-mail addresses.
DJANGO_POLLS = {"USER_DISPLAY": "tests.hosts.uuid_email.users.models.public_name"}
