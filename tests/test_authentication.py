"""CachedTokenAuthentication: a token is read once a second at most, and a revoked one stops
working at once in the process that revoked it, within max_age (1 s) everywhere else. Real
database rows throughout; only the clock of the entries' age is moved."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.urls import resolve
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from django_polls import authentication
from django_polls.authentication import CachedTokenAuthentication


@pytest.fixture(autouse=True)
def empty_memory() -> Iterator[None]:
    authentication.forget_all()
    yield
    authentication.forget_all()


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The entries' clock: ``now[0] += 2`` lets two seconds pass."""
    moment = [1000.0]
    monkeypatch.setattr(authentication, "clock", lambda: moment[0])
    return moment


def authenticate(key: str) -> Any:
    request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {key}")
    answer = CachedTokenAuthentication().authenticate(request)
    assert answer is not None
    return answer


def refused(key: str) -> bool:
    try:
        authenticate(key)
    except AuthenticationFailed:
        return True
    return False


@pytest.fixture
def token(alice: Any) -> Token:
    return Token.objects.create(user=alice)


def test_a_token_is_read_once_then_remembered(
    token: Token, alice: Any, django_assert_num_queries: Callable[..., Any]
) -> None:
    with django_assert_num_queries(1):
        user, auth = authenticate(token.key)
    with django_assert_num_queries(0):
        again, auth_again = authenticate(token.key)
    assert user.pk == again.pk == alice.pk
    assert auth.key == auth_again.key == token.key
    # Each request has its own objects: what one changes, the next does not see.
    assert again is not user and auth_again.user is again


def test_the_memory_lasts_max_age_then_the_token_is_read_again(
    token: Token, now: list[float], django_assert_num_queries: Callable[..., Any]
) -> None:
    authenticate(token.key)
    now[0] += 0.99
    with django_assert_num_queries(0):
        authenticate(token.key)
    now[0] += 0.02
    with django_assert_num_queries(1):
        authenticate(token.key)


@pytest.mark.parametrize(
    "revoke",
    [
        pytest.param(lambda token: token.delete(), id="token.delete()"),
        pytest.param(
            lambda token: Token.objects.filter(user=token.user).delete(), id="queryset delete"
        ),
        pytest.param(lambda token: token.user.delete(), id="user deleted"),
    ],
)
def test_a_deleted_token_is_refused_at_once(token: Token, revoke: Callable[[Token], Any]) -> None:
    authenticate(token.key)
    revoke(token)
    assert refused(token.key)


def test_a_deactivated_user_is_refused_at_once_and_after_commit(
    token: Token, alice: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    authenticate(token.key)
    with django_capture_on_commit_callbacks(execute=True):
        alice.is_active = False
        alice.save()
        assert refused(token.key)
    assert refused(token.key)


def test_a_revocation_that_sends_no_signal_is_seen_within_max_age(
    token: Token, alice: Any, now: list[float]
) -> None:
    """QuerySet.update() and SQL send no signal: as another process would, this one uses what
    it read for at most a second more."""
    authenticate(token.key)
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    now[0] += 0.5
    assert not refused(token.key)
    now[0] += 0.5
    assert refused(token.key)


def test_a_password_change_forgets_the_token_but_does_not_revoke_it(
    token: Token, alice: Any, django_assert_num_queries: Callable[..., Any]
) -> None:
    """As with DRF's TokenAuthentication: a token is not a password."""
    authenticate(token.key)
    alice.set_password("another horse battery staple")
    alice.save()
    with django_assert_num_queries(1):
        user, _ = authenticate(token.key)
    assert user.check_password("another horse battery staple")


def test_a_failed_look_up_is_not_remembered(alice: Any) -> None:
    key = "0" * 40
    assert refused(key)
    Token.objects.create(user=alice, key=key)
    assert not refused(key)


def test_the_least_recently_read_tokens_are_forgotten_beyond_max_entries(
    make_user: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    django_assert_num_queries: Callable[..., Any],
) -> None:
    monkeypatch.setattr(CachedTokenAuthentication, "max_entries", 2)
    first, second, third = (Token.objects.create(user=make_user()) for _ in range(3))
    for token in (first, second, third):
        authenticate(token.key)
    with django_assert_num_queries(0):
        authenticate(second.key)
        authenticate(third.key)
    with django_assert_num_queries(1):
        authenticate(first.key)


def test_through_the_api_a_deleted_token_gets_401_at_once(
    token: Token, settings: Any, make_poll: Callable[..., Any]
) -> None:
    # The URLs first, with the site's settings: DRF reads DEFAULT_AUTHENTICATION_CLASSES into
    # the viewset's class when its module is imported, and the other tests of the process need
    # the site's classes there.
    resolve("/api/v1/polls/")
    settings.REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["django_polls.authentication.CachedTokenAuthentication"]
    }
    poll = make_poll()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    url = f"/api/v1/polls/{poll.pk}/"
    assert client.get(url).status_code == 200
    token.delete()
    assert client.get(url).status_code == 401
