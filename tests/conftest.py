"""Factories and clients shared by the test modules."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from django_polls import services
from django_polls.models import Poll

_names = itertools.count(1)

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL)"
)


def database_folds_alike(first: str, second: str) -> bool:
    """Whether the database's lower() makes two texts equal (it depends on its locale)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT lower(%s) = lower(%s)", [first, second])
        return bool(cursor.fetchone()[0])


@pytest.fixture
def make_user(db: None) -> Callable[..., Any]:
    def make(username: str | None = None, **fields: Any) -> Any:
        username = username or f"user{next(_names)}"
        return get_user_model().objects.create_user(
            username=username, password="correct horse battery staple", **fields
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
