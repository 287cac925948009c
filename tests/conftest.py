"""Factories and clients shared by the test modules."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import EmailField
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from django_polls import services
from django_polls.models import Option, Poll, Vote

_names = itertools.count(1)

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL)"
)


def option_ids(poll: Poll) -> list[int]:
    """The poll's option ids in their creation order."""
    return list(
        Option.objects.filter(poll=poll).order_by("order", "pk").values_list("pk", flat=True)
    )


def expire(poll: Poll, *, ago: timedelta = timedelta(minutes=1)) -> datetime:
    """Let the poll's expiry pass. The rules refuse a past expiry, so this writes it directly."""
    past = timezone.now() - ago
    Poll.objects.filter(pk=poll.pk).update(expires_at=past)
    poll.refresh_from_db()
    return past


def db_state() -> dict[str, list[dict[str, Any]]]:
    """Every poll, option and vote row, so a test can show a rejected request changed nothing."""
    return {
        "polls": list(Poll.objects.order_by("pk").values()),
        "options": list(Option.objects.order_by("pk").values()),
        "votes": list(Vote.objects.order_by("pk").values()),
    }


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """A non-field error: a JSON body of exactly ``{"detail": "...", "code": "<code>"}``."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].split(";")[0].strip() == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def database_folds_alike(first: str, second: str) -> bool:
    """Whether the database's lower() makes two texts equal (it depends on its locale)."""
    sql = "SELECT lower(%s) = lower(%s)"
    if connection.vendor == "mysql" and not connection.features.supports_expression_indexes:
        # MariaDB's unique index compares lower(text) in a binary collation (migration 0003),
        # not in the connection's, which would also equate accented letters.
        sql = "SELECT lower(%s) COLLATE utf8mb4_nopad_bin = lower(%s) COLLATE utf8mb4_nopad_bin"
    with connection.cursor() as cursor:
        cursor.execute(sql, [first, second])
        return bool(cursor.fetchone()[0])


def username_field() -> str:
    """The user model's USERNAME_FIELD, to look users up by what they sign in with."""
    return get_user_model().USERNAME_FIELD


def login_of(name: str) -> str:
    """What a user called ``name`` signs in with on this site: the name itself, or an e-mail
    address where the user model's USERNAME_FIELD is one (``alice@example.com``)."""
    user_model = get_user_model()
    field = user_model._meta.get_field(user_model.USERNAME_FIELD)
    return f"{name}@example.com" if isinstance(field, EmailField) else name


@pytest.fixture
def make_user(db: None) -> Callable[..., Any]:
    """A user of the site's user model (AUTH_USER_MODEL), signing in with ``login_of(name)``."""

    def make(name: str | None = None, **fields: Any) -> Any:
        user_model = get_user_model()
        fields.setdefault(user_model.USERNAME_FIELD, login_of(name or f"user{next(_names)}"))
        return user_model.objects.create_user(  # type: ignore[attr-defined]
            password="correct horse battery staple", **fields
        )

    return make


@pytest.fixture
def make_poll(make_user: Callable[..., Any]) -> Callable[..., Poll]:
    """A poll created through the services, as the API would create it."""

    def make(
        *,
        created_by: Any = None,
        title: str = "Lunch?",
        options: Sequence[str] = ("Pizza", "Soup"),
        **fields: Any,
    ) -> Poll:
        poll = services.create_poll(
            created_by=created_by or make_user(), title=title, options=options, **fields
        )
        return Poll.objects.for_listing().get(pk=poll.pk)

    return make


@pytest.fixture
def client_for() -> Callable[[Any], APIClient]:
    """An API client that authenticates as ``user`` with a DRF token (None: anonymous)."""

    def make(user: Any) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def alice(make_user: Callable[..., Any]) -> Any:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[..., Any]) -> Any:
    return make_user("bob")
