"""The admin: polls with inline options and read-only counts; votes read-only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from django_polls import services
from django_polls.models import Poll, Vote


@pytest.fixture
def staff_client(make_user: Callable[..., Any]) -> Client:
    client = Client()
    client.force_login(make_user("admin", is_staff=True, is_superuser=True))
    return client


def test_poll_pages_render_with_options_and_counts(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll(title="Lunch?")
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[poll.options.all()[0].pk])

    listing = staff_client.get("/admin/django_polls/poll/")
    change = staff_client.get(f"/admin/django_polls/poll/{poll.pk}/change/")

    assert listing.status_code == 200
    assert "Lunch?" in listing.content.decode()
    assert change.status_code == 200
    assert "Pizza" in change.content.decode() and "Soup" in change.content.decode()
    # The count is shown, not editable; once voted, options cannot be edited either.
    assert 'name="options-0-votes"' not in change.content.decode()
    assert 'name="options-0-text"' not in change.content.decode()


def test_options_stay_editable_until_the_first_vote(
    staff_client: Client, make_poll: Callable[..., Poll]
) -> None:
    poll = make_poll()
    change = staff_client.get(f"/admin/django_polls/poll/{poll.pk}/change/")
    assert 'name="options-0-text"' in change.content.decode()
    assert 'name="allow_multiple_votes"' in change.content.decode()


def test_the_vote_mode_is_read_only_once_voted(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll()
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[poll.options.all()[0].pk])
    change = staff_client.get(f"/admin/django_polls/poll/{poll.pk}/change/")
    assert 'name="allow_multiple_votes"' not in change.content.decode()


def test_the_close_action_closes_through_the_rules(
    staff_client: Client, make_poll: Callable[..., Poll]
) -> None:
    first, second = make_poll(), make_poll()
    response = staff_client.post(
        "/admin/django_polls/poll/",
        {"action": "close_polls", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert not Poll.objects.open().filter(pk__in=[first.pk, second.pk]).exists()


def test_votes_are_listed_but_cannot_be_added_changed_or_deleted(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll()
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[poll.options.all()[0].pk])
    vote = Vote.objects.get()

    listing = staff_client.get("/admin/django_polls/vote/")
    assert listing.status_code == 200
    assert "bob" in listing.content.decode()
    assert staff_client.get("/admin/django_polls/vote/add/").status_code == 403
    delete = staff_client.post(f"/admin/django_polls/vote/{vote.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    assert Vote.objects.filter(pk=vote.pk).exists()
    change = staff_client.get(f"/admin/django_polls/vote/{vote.pk}/change/")
    assert change.status_code == 200  # a read-only view
    assert 'name="_save"' not in change.content.decode()
