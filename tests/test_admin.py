"""The admin: polls written through the services, options with read-only counts, votes read-only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from django_polls import services
from django_polls.models import Option, Poll, Vote


@pytest.fixture
def admin_user(make_user: Callable[..., Any]) -> Any:
    return make_user("admin", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def page(response: Any) -> str:
    return str(response.content.decode())


def first_option(poll: Poll) -> int:
    return int(poll.options.order_by("order")[0].pk)


def add_form(**fields: Any) -> dict[str, Any]:
    return {
        "title": "Lunch?",
        "description": "",
        "option_texts": "Pizza\nSoup",
        "allow_multiple_votes": "",
        "expires_at_0": "",
        "expires_at_1": "",
        "options-TOTAL_FORMS": "0",
        "options-INITIAL_FORMS": "0",
        **fields,
    }


def change_form(poll: Poll, **fields: Any) -> dict[str, Any]:
    texts = "\n".join(poll.options.order_by("order").values_list("text", flat=True))
    count = str(poll.options.count())
    return {
        "title": poll.title,
        "description": poll.description,
        "option_texts": texts,
        "allow_multiple_votes": "on" if poll.allow_multiple_votes else "",
        "expires_at_0": "",
        "expires_at_1": "",
        "options-TOTAL_FORMS": count,
        "options-INITIAL_FORMS": count,
        **fields,
    }


def test_adding_a_poll_creates_it_with_its_options(
    staff_client: Client, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = staff_client.post(
            "/admin/django_polls/poll/add/", add_form(created_by=admin_user.pk)
        )
    assert response.status_code == 302, page(response)
    poll = Poll.objects.get()
    assert poll.title == "Lunch?"
    assert poll.created_by == admin_user
    assert list(poll.options.values_list("text", flat=True)) == ["Pizza", "Soup"]
    assert callbacks, "poll_created is sent on commit, as through the API"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"option_texts": "Pizza\nPIZZA"}, "Option texts must be unique within a poll."),
        ({"option_texts": "Pizza"}, "A poll needs between 2 and 20 options."),
        ({"title": "   "}, "This field"),
    ],
    ids=["duplicate options", "one option", "blank title"],
)
def test_adding_a_poll_that_breaks_a_rule_shows_the_error_and_stores_nothing(
    staff_client: Client, admin_user: Any, fields: dict[str, str], message: str
) -> None:
    response = staff_client.post(
        "/admin/django_polls/poll/add/", add_form(created_by=admin_user.pk, **fields)
    )
    assert response.status_code == 200
    assert message in page(response)
    assert not Poll.objects.exists()
    assert not Option.objects.exists()


def test_an_expiry_in_the_past_is_refused(staff_client: Client, admin_user: Any) -> None:
    past = timezone.now() - timedelta(days=1)
    response = staff_client.post(
        "/admin/django_polls/poll/add/",
        add_form(
            created_by=admin_user.pk,
            expires_at_0=past.strftime("%Y-%m-%d"),
            expires_at_1=past.strftime("%H:%M:%S"),
        ),
    )
    assert response.status_code == 200
    assert "The expiry must be in the future." in page(response)
    assert not Poll.objects.exists()


def test_changing_the_options_of_a_poll_without_votes_replaces_them(
    staff_client: Client, make_poll: Callable[..., Poll]
) -> None:
    poll = make_poll()
    response = staff_client.post(
        f"/admin/django_polls/poll/{poll.pk}/change/",
        change_form(poll, title="Dinner?", option_texts="Curry\nRamen\nTacos"),
    )
    assert response.status_code == 302, page(response)
    poll.refresh_from_db()
    assert poll.title == "Dinner?"
    texts = list(poll.options.order_by("order").values_list("text", flat=True))
    assert texts == ["Curry", "Ramen", "Tacos"]


def test_once_voted_options_and_mode_are_frozen_but_the_title_is_not(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll(title="Lunch?")
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[first_option(poll)])

    change = staff_client.get(f"/admin/django_polls/poll/{poll.pk}/change/")
    assert 'name="option_texts"' in page(change) and "disabled" in page(change)

    response = staff_client.post(
        f"/admin/django_polls/poll/{poll.pk}/change/",
        change_form(
            poll, title="Lunch today?", option_texts="Other\nTexts", allow_multiple_votes="on"
        ),
    )
    assert response.status_code == 302, page(response)
    poll.refresh_from_db()
    assert poll.title == "Lunch today?"
    assert poll.allow_multiple_votes is False
    assert list(poll.options.values_list("text", flat=True)) == ["Pizza", "Soup"]
    assert Vote.objects.filter(poll=poll).count() == 1


def test_the_change_page_shows_options_with_read_only_counts(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll()
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[first_option(poll)])
    change = staff_client.get(f"/admin/django_polls/poll/{poll.pk}/change/")
    listing = staff_client.get("/admin/django_polls/poll/")

    assert change.status_code == 200
    assert listing.status_code == 200 and "Lunch?" in page(listing)
    assert 'name="options-0-votes"' not in page(change)
    assert 'name="options-0-text"' not in page(change)
    assert "Pizza" in page(change) and "Soup" in page(change)


def test_deleting_a_poll_with_votes_deletes_its_votes(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll()
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[first_option(poll)])
    confirm = staff_client.get(f"/admin/django_polls/poll/{poll.pk}/delete/")
    assert confirm.status_code == 200
    assert "permission to delete" not in page(confirm)

    response = staff_client.post(f"/admin/django_polls/poll/{poll.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Poll.objects.exists()
    assert not Vote.objects.exists()


def test_deleting_polls_in_bulk(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    first, second = make_poll(), make_poll()
    services.cast_vote(poll_id=first.pk, voter=bob, option_ids=[first_option(first)])
    response = staff_client.post(
        "/admin/django_polls/poll/",
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Poll.objects.exists()
    assert not Vote.objects.exists()


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


def test_votes_are_listed_but_cannot_be_added_changed_or_deleted_on_their_own(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll()
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[first_option(poll)])
    vote = Vote.objects.get()

    listing = staff_client.get("/admin/django_polls/vote/?q=bob")
    assert listing.status_code == 200
    assert "bob" in page(listing)
    assert "delete_selected" not in page(listing)
    assert staff_client.get("/admin/django_polls/vote/add/").status_code == 403
    delete = staff_client.post(f"/admin/django_polls/vote/{vote.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    change = staff_client.get(f"/admin/django_polls/vote/{vote.pk}/change/")
    assert change.status_code == 200  # a read-only view
    assert 'name="_save"' not in page(change)
    assert Vote.objects.filter(pk=vote.pk).exists()


def history(poll: Poll) -> list[str]:
    """The poll's entries in the admin's history, oldest first: "Added", "Changed" ..."""
    from django.contrib.admin.models import LogEntry

    entries = LogEntry.objects.filter(object_id=str(poll.pk)).order_by("action_time", "pk")
    return [str(entry) for entry in entries]


def test_a_change_that_commits_is_recorded_in_the_history(
    staff_client: Client, make_poll: Callable[..., Poll]
) -> None:
    poll = make_poll()
    response = staff_client.post(
        f"/admin/django_polls/poll/{poll.pk}/change/", change_form(poll, title="Dinner?")
    )
    assert response.status_code == 302, page(response)
    assert len(history(poll)) == 1
    assert history(poll)[0].startswith("Changed “Dinner?”")


def test_a_change_refused_by_the_rules_leaves_no_history_entry(
    staff_client: Client,
    make_poll: Callable[..., Poll],
    bob: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poll = make_poll(title="Lunch?")
    update_poll = services.update_poll

    def vote_lands_first(**kwargs: Any) -> Poll:
        # The form saw no votes and let the options be edited; a ballot commits before the save.
        services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[first_option(poll)])
        return update_poll(**kwargs)

    monkeypatch.setattr(services, "update_poll", vote_lands_first)
    response = staff_client.post(
        f"/admin/django_polls/poll/{poll.pk}/change/",
        change_form(poll, title="Dinner?", option_texts="Curry\nRamen"),
        follow=True,
    )

    assert response.status_code == 200
    assert "This poll has votes: its options and allow_multiple_votes can no longer change." in (
        page(response)
    )
    poll.refresh_from_db()
    assert poll.title == "Lunch?"
    assert list(poll.options.order_by("order").values_list("text", flat=True)) == ["Pizza", "Soup"]
    assert history(poll) == []
    listing = staff_client.get(f"/admin/django_polls/poll/{poll.pk}/history/")
    assert "Changed" not in page(listing)
