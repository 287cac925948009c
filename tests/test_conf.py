"""DJANGO_POLLS is read when used, so a changed setting takes effect at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from django_polls import services
from django_polls.conf import import_setting, polls_settings
from django_polls.models import Option, Poll, Vote

pytestmark = pytest.mark.django_db


def test_defaults() -> None:
    assert polls_settings.PAGE_SIZE == 20
    assert polls_settings.MAX_PAGE_SIZE == 100
    assert (polls_settings.MIN_OPTIONS, polls_settings.MAX_OPTIONS) == (2, 20)
    assert polls_settings.THROTTLE_CLASSES is None


def test_page_size_and_bound_follow_the_setting(
    make_poll: Callable[..., Poll], anon: APIClient
) -> None:
    for _ in range(4):
        make_poll()
    with override_settings(DJANGO_POLLS={"PAGE_SIZE": 2, "MAX_PAGE_SIZE": 3}):
        assert len(anon.get("/api/v1/polls/").json()["results"]) == 2
        assert len(anon.get("/api/v1/polls/?page_size=50").json()["results"]) == 3
    assert len(anon.get("/api/v1/polls/").json()["results"]) == 4


def test_option_bounds_follow_the_setting(
    client_for: Callable[[Any], APIClient], alice: Any
) -> None:
    body = {"title": "Pick", "options": [{"text": t} for t in "ABCD"]}
    with override_settings(DJANGO_POLLS={"MAX_OPTIONS": 3}):
        response = client_for(alice).post("/api/v1/polls/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"options": ["A poll needs between 2 and 3 options."]}
    assert not Poll.objects.exists()


def test_permission_classes_follow_the_setting(
    make_poll: Callable[..., Poll], client_for: Callable[[Any], APIClient], bob: Any
) -> None:
    poll = make_poll()
    anyone = {"POLL_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"]}
    with override_settings(DJANGO_POLLS=anyone):
        response = client_for(bob).patch(
            f"/api/v1/polls/{poll.pk}/", {"title": "Edited"}, format="json"
        )
    assert response.status_code == 200
    assert Poll.objects.get(pk=poll.pk).title == "Edited"


def stored_rows() -> tuple[list[dict[str, Any]], ...]:
    """Every poll, option and vote row, so a test can show a refused request changed nothing."""
    return (
        list(Poll.objects.order_by("pk").values()),
        list(Option.objects.order_by("pk").values()),
        list(Vote.objects.order_by("pk").values()),
    )


ANYONE_MAY_DO_ANYTHING = {
    "POLL_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "VOTE_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
}


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("post", ""), ("post", "{id}/vote/"), ("get", "{id}/vote/"), ("delete", "{id}/vote/")],
    ids=["create a poll", "vote", "read my vote", "withdraw my vote"],
)
def test_creating_and_voting_need_a_signed_in_user_whatever_the_permission_classes(
    make_poll: Callable[..., Poll], bob: Any, anon: APIClient, method: str, suffix: str
) -> None:
    # A poll has a creator and a vote a voter: permissions that let anyone in cannot change that.
    poll = make_poll()
    pizza = poll.options.order_by("order").values_list("pk", flat=True)[0]
    # Bob's vote is there for an anonymous withdrawal to (wrongly) find and remove.
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[pizza])
    before = stored_rows()
    body = {"title": "Lunch?", "options": [{"text": "Pizza"}, {"text": "Soup"}]}
    if "vote" in suffix:
        body = {"options": [pizza]}

    with override_settings(DJANGO_POLLS=ANYONE_MAY_DO_ANYTHING):
        response = getattr(anon, method)(
            f"/api/v1/polls/{suffix.format(id=poll.pk)}", body, format="json"
        )

    assert response.status_code == 401, response.content
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"
    assert stored_rows() == before


def test_a_ballot_may_name_at_most_max_options_options(
    make_poll: Callable[..., Poll], client_for: Callable[[Any], APIClient], bob: Any
) -> None:
    poll = make_poll(options=["A", "B", "C", "D"], allow_multiple_votes=True)
    option_ids = list(poll.options.order_by("order").values_list("pk", flat=True))
    url = f"/api/v1/polls/{poll.pk}/vote/"
    with override_settings(DJANGO_POLLS={"MAX_OPTIONS": 3}):
        refused = client_for(bob).post(url, {"options": option_ids}, format="json")
        assert not Vote.objects.exists()
        accepted = client_for(bob).post(url, {"options": option_ids[:3]}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"options": ["A ballot names at most 3 options."]}
    assert accepted.status_code == 201
    assert Vote.objects.filter(voter=bob).count() == 3


class OneVoteAMinute(ScopedRateThrottle):
    # DRF binds THROTTLE_RATES when it is imported, so a test sets the rates on a subclass.
    THROTTLE_RATES = {"django_polls.vote": "1/min", "django_polls.create": None}


def test_throttle_classes_follow_the_setting(
    make_poll: Callable[..., Poll], client_for: Callable[[Any], APIClient], bob: Any
) -> None:
    poll = make_poll(allow_multiple_votes=True)
    option_ids = [option.pk for option in poll.options.all()]
    throttled = {
        "DJANGO_POLLS": {"THROTTLE_CLASSES": [f"{__name__}.OneVoteAMinute"]},
        "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    }
    client = client_for(bob)
    with override_settings(**throttled):
        first = client.post(
            f"/api/v1/polls/{poll.pk}/vote/", {"options": [option_ids[0]]}, format="json"
        )
        second = client.post(
            f"/api/v1/polls/{poll.pk}/vote/", {"options": [option_ids[1]]}, format="json"
        )
        reading = client.get(f"/api/v1/polls/{poll.pk}/vote/")
    assert first.status_code == 201
    assert second.status_code == 429
    assert second.json()["code"] == "throttled"
    assert "Retry-After" in second.headers
    assert reading.status_code == 200  # only casting a vote is in the vote scope
    assert reading.json() == {"voted": True, "options": [option_ids[0]]}


def test_a_bad_class_path_names_the_setting() -> None:
    with pytest.raises(ImportError, match=r"DJANGO_POLLS\['PAGINATION_CLASS'\]"):
        import_setting("PAGINATION_CLASS", "django_polls.pagination.Missing")


def member_number(user: Any) -> str:
    """A site's public name for its users, for USER_DISPLAY."""
    return f"member {user.pk}"


def test_a_poll_names_its_creator_as_user_display_says(
    make_poll: Callable[..., Poll], alice: Any, anon: APIClient
) -> None:
    poll = make_poll(created_by=alice)

    with override_settings(DJANGO_POLLS={"USER_DISPLAY": "tests.test_conf.member_number"}):
        shown = anon.get(f"/api/v1/polls/{poll.pk}/").json()["created_by"]
        listed = anon.get("/api/v1/polls/").json()["results"][0]["created_by"]
    with override_settings(DJANGO_POLLS={}):
        by_default = anon.get(f"/api/v1/polls/{poll.pk}/").json()["created_by"]

    assert shown == listed == f"member {alice.pk}"
    assert by_default == alice.get_username()
