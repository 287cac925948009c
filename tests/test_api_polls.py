"""Polls over HTTP: list, create, read, update, delete and close ``polls/`` and ``polls/{id}/``.

Paths are spelled out as the contract spells them (``/api/v1/polls/...``) rather than reversed,
so a change of URL shape shows up here as the break in the contract that it is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db.models import Max
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_polls import services
from django_polls.models import Option, Poll, Vote
from tests.conftest import assert_error, database_folds_alike, db_state, expire, option_ids

POLLS = "/api/v1/polls/"
POLL_FIELDS = {
    "id",
    "title",
    "description",
    "created_at",
    "expires_at",
    "allow_multiple_votes",
    "is_active",
    "created_by",
    "options",
    "total_votes",
    # v1.1
    "method",
    "min_choices",
    "max_choices",
    "opens_at",
    "status",
    "results_visibility",
    "anonymity",
    "allow_vote_change",
    "voter_group",
    # voting methods
    "max_score",
}


def poll_url(poll_id: int) -> str:
    return f"{POLLS}{poll_id}/"


def close_url(poll_id: int) -> str:
    return f"{POLLS}{poll_id}/close/"


def missing_poll_id() -> int:
    """An id no poll has."""
    return (Poll.objects.aggregate(top=Max("pk"))["top"] or 0) + 1000


def option_texts(poll: Poll) -> list[str]:
    return list(Option.objects.filter(poll=poll).order_by("order").values_list("text", flat=True))


def vote_for(poll: Poll, voter: Any, *texts: str) -> None:
    chosen = list(Option.objects.filter(poll=poll, text__in=texts).values_list("pk", flat=True))
    services.cast_vote(poll_id=poll.pk, voter=voter, option_ids=chosen)


def set_created_at(poll: Poll, when: datetime) -> None:
    Poll.objects.filter(pk=poll.pk).update(created_at=when)


def listed_ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [poll["id"] for poll in response.json()["results"]]


def assert_field_error(response: Any, field: str) -> None:
    """A 400 that blames exactly ``field`` (the messages' shape is test_api_errors' business)."""
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == [field]
    assert body[field]


def option_payload(*texts: str) -> list[dict[str, str]]:
    return [{"text": text} for text in texts]


@pytest.fixture
def staff(make_user: Callable[..., Any]) -> Any:
    return make_user("staff", is_staff=True)


# ---------------------------------------------------------------------------------------------
# Listing


def test_anyone_lists_the_polls_as_a_page_of_full_poll_bodies(make_poll, alice, anon):
    poll = make_poll(created_by=alice, title="Lunch?", description="Friday")

    response = anon.get(POLLS)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 1
    assert body["next"] is None
    assert body["previous"] is None
    [listed] = body["results"]
    assert set(listed) == POLL_FIELDS
    pizza, soup = option_ids(poll)
    assert listed["id"] == poll.pk
    assert listed["title"] == "Lunch?"
    assert listed["description"] == "Friday"
    assert listed["created_by"] == "alice"
    assert listed["is_active"] is True
    assert listed["options"] == [{"id": pizza, "text": "Pizza"}, {"id": soup, "text": "Soup"}]
    assert listed["total_votes"] == 0


def test_the_newest_poll_comes_first(make_poll, anon):
    now = timezone.now()
    old, newest, middle = make_poll(), make_poll(), make_poll()
    set_created_at(old, now - timedelta(days=3))
    set_created_at(newest, now - timedelta(days=1))
    set_created_at(middle, now - timedelta(days=2))

    assert listed_ids(anon.get(POLLS)) == [newest.pk, middle.pk, old.pk]


def test_polls_created_at_the_same_moment_list_the_higher_id_first(make_poll, anon):
    same_moment = timezone.now() - timedelta(hours=1)
    first, second, third = make_poll(), make_poll(), make_poll()
    for poll in (first, second, third):
        set_created_at(poll, same_moment)

    assert listed_ids(anon.get(POLLS)) == [third.pk, second.pk, first.pk]


def test_a_page_holds_20_polls_by_default_and_links_to_the_next(make_poll, anon):
    polls = [make_poll() for _ in range(21)]
    newest_first = [poll.pk for poll in reversed(polls)]

    first = anon.get(POLLS)
    second = anon.get(POLLS, {"page": 2})

    assert listed_ids(first) == newest_first[:20]
    assert first.json()["count"] == 21
    assert "page=2" in first.json()["next"]
    assert first.json()["previous"] is None
    assert listed_ids(second) == newest_first[20:]
    assert second.json()["next"] is None
    assert second.json()["previous"] is not None


def test_page_size_sets_how_many_polls_a_page_holds(make_poll, anon):
    polls = [make_poll() for _ in range(5)]

    response = anon.get(POLLS, {"page_size": 2, "page": 2})

    assert listed_ids(response) == [polls[2].pk, polls[1].pk]
    assert response.json()["count"] == 5


def test_a_page_size_above_100_is_clamped_to_100(make_poll, anon):
    for _ in range(101):
        make_poll()

    response = anon.get(POLLS, {"page_size": 1000})

    assert len(listed_ids(response)) == 100
    assert response.json()["count"] == 101
    assert response.json()["next"] is not None


@pytest.mark.parametrize("page", [3, 1000])
def test_a_page_past_the_end_is_not_found(make_poll, anon, page):
    for _ in range(3):
        make_poll()

    response = anon.get(POLLS, {"page_size": 2, "page": page})

    assert_error(response, 404, "not_found")


def test_is_active_filters_open_polls_from_closed_and_expired_ones(make_poll, anon):
    open_poll = make_poll(title="Open")
    later = make_poll(title="Expires later", expires_at=timezone.now() + timedelta(days=1))
    closed = make_poll(title="Closed")
    services.close_poll(poll=closed)
    expired = make_poll(title="Expired", expires_at=timezone.now() + timedelta(days=1))
    expire(expired)

    active = anon.get(POLLS, {"is_active": "true"})
    finished = anon.get(POLLS, {"is_active": "false"})

    assert listed_ids(active) == [later.pk, open_poll.pk]
    assert all(poll["is_active"] for poll in active.json()["results"])
    assert listed_ids(finished) == [expired.pk, closed.pk]
    assert not any(poll["is_active"] for poll in finished.json()["results"])


@pytest.mark.parametrize(
    "value",
    ["", "yes", "1", "0", "maybe", "null", "TRUE", "True", "FALSE", "False", " true", "false "],
)
def test_an_is_active_value_other_than_true_or_false_is_rejected(make_poll, anon, value):
    # Only the exact lowercase words: "TRUE" or "True" is as unknown to the contract as "yes".
    make_poll()

    response = anon.get(POLLS, {"is_active": value})

    assert_field_error(response, "is_active")


@pytest.mark.parametrize("search", ["lunch", "LUNCH", "LuNcH", "unc"])
def test_search_finds_polls_by_title_or_description_ignoring_case(make_poll, anon, search):
    by_title = make_poll(title="Lunch on Friday?")
    by_description = make_poll(title="Team outing", description="Bring your own LUNCH.")
    make_poll(title="Dinner?", description="Evening plans")

    response = anon.get(POLLS, {"search": search})

    assert listed_ids(response) == [by_description.pk, by_title.pk]
    assert response.json()["count"] == 2


def test_a_search_that_matches_nothing_is_an_empty_page(make_poll, anon):
    make_poll(title="Lunch?")

    response = anon.get(POLLS, {"search": "breakfast"})

    assert response.status_code == 200, response.content
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_a_search_of_200_characters_is_accepted(make_poll, anon):
    longest = make_poll(title="x" * 200)
    make_poll(title="Lunch?")

    response = anon.get(POLLS, {"search": "x" * 200})

    assert listed_ids(response) == [longest.pk]


def test_a_search_longer_than_200_characters_is_rejected(make_poll, anon):
    make_poll(title="x" * 200)

    response = anon.get(POLLS, {"search": "x" * 201})

    assert_field_error(response, "search")


@pytest.mark.parametrize("search", [" ", "     "])
def test_a_search_of_only_spaces_is_ignored(make_poll, anon, search):
    polls = [make_poll(title="Lunch?"), make_poll(title="Dinner?", description="Evening plans")]

    response = anon.get(POLLS, {"search": search})

    assert listed_ids(response) == [poll.pk for poll in reversed(polls)]
    assert response.json()["count"] == 2


@pytest.fixture
def created_days_apart(make_poll) -> list[Poll]:
    """Three polls created a day apart, oldest first."""
    now = timezone.now()
    polls = [make_poll(title=f"Poll {n}") for n in range(3)]
    for age, poll in zip((3, 2, 1), polls, strict=True):
        set_created_at(poll, now - timedelta(days=age))
    return polls


def test_ordering_by_created_at_lists_the_oldest_first(created_days_apart, anon):
    oldest, middle, newest = created_days_apart

    response = anon.get(POLLS, {"ordering": "created_at"})

    assert listed_ids(response) == [oldest.pk, middle.pk, newest.pk]


def test_ordering_by_minus_created_at_lists_the_newest_first(created_days_apart, anon):
    oldest, middle, newest = created_days_apart

    response = anon.get(POLLS, {"ordering": "-created_at"})

    assert listed_ids(response) == [newest.pk, middle.pk, oldest.pk]


@pytest.fixture
def with_and_without_expiry(make_poll) -> dict[str, Poll]:
    now = timezone.now()
    return {
        "no expiry": make_poll(title="Forever"),
        "in 2 days": make_poll(title="Soon", expires_at=now + timedelta(days=2)),
        "in 1 day": make_poll(title="Sooner", expires_at=now + timedelta(days=1)),
        "also no expiry": make_poll(title="Also forever"),
        "in 3 days": make_poll(title="Later", expires_at=now + timedelta(days=3)),
    }


def test_ordering_by_expires_at_lists_the_soonest_first_and_no_expiry_last(
    with_and_without_expiry, anon
):
    polls = with_and_without_expiry

    ids = listed_ids(anon.get(POLLS, {"ordering": "expires_at"}))

    assert ids[:3] == [polls["in 1 day"].pk, polls["in 2 days"].pk, polls["in 3 days"].pk]
    assert set(ids[3:]) == {polls["no expiry"].pk, polls["also no expiry"].pk}


def test_ordering_by_minus_expires_at_lists_the_latest_first_and_no_expiry_last(
    with_and_without_expiry, anon
):
    polls = with_and_without_expiry

    ids = listed_ids(anon.get(POLLS, {"ordering": "-expires_at"}))

    assert ids[:3] == [polls["in 3 days"].pk, polls["in 2 days"].pk, polls["in 1 day"].pk]
    assert set(ids[3:]) == {polls["no expiry"].pk, polls["also no expiry"].pk}


@pytest.mark.parametrize("ordering", ["", "title", "-id", "expires", "created_at,title", "?"])
def test_an_unknown_ordering_is_ignored(created_days_apart, anon, ordering):
    oldest, middle, newest = created_days_apart

    response = anon.get(POLLS, {"ordering": ordering})

    assert listed_ids(response) == [newest.pk, middle.pk, oldest.pk]


# ---------------------------------------------------------------------------------------------
# Creating


def test_a_signed_in_user_creates_a_poll(alice, client_for):
    expires_at = (timezone.now() + timedelta(days=7)).replace(microsecond=0)
    before = timezone.now()

    response = client_for(alice).post(
        POLLS,
        {
            "title": "Lunch?",
            "description": "Friday, the team lunch.",
            "expires_at": expires_at,
            "allow_multiple_votes": True,
            "options": option_payload("Pizza", "Soup"),
        },
        format="json",
    )

    after = timezone.now()
    assert response.status_code == 201, response.content
    body = response.json()
    poll = Poll.objects.get()
    pizza, soup = option_ids(poll)
    assert body == {
        "id": poll.pk,
        "title": "Lunch?",
        "description": "Friday, the team lunch.",
        "created_at": body["created_at"],
        "expires_at": body["expires_at"],
        "allow_multiple_votes": True,
        "is_active": True,
        "created_by": "alice",
        "options": [{"id": pizza, "text": "Pizza"}, {"id": soup, "text": "Soup"}],
        "total_votes": 0,
        # v1.1: what allow_multiple_votes implies, and v1's behaviour for the rest.
        "method": "multiple",
        "min_choices": 1,
        "max_choices": 2,
        "opens_at": None,
        "status": "open",
        "results_visibility": "always",
        "anonymity": "anonymous",
        "allow_vote_change": True,
        "voter_group": None,
        "max_score": None,
    }
    assert body["created_at"].endswith("Z")
    assert parse_datetime(body["created_at"]) == poll.created_at
    assert before <= poll.created_at <= after
    assert parse_datetime(body["expires_at"]) == expires_at == poll.expires_at
    assert poll.created_by == alice
    assert poll.title == "Lunch?"
    assert poll.description == "Friday, the team lunch."
    assert poll.allow_multiple_votes is True
    assert poll.closed_at is None
    assert option_texts(poll) == ["Pizza", "Soup"]


def test_a_poll_created_with_title_and_options_only_gets_the_defaults(alice, client_for):
    response = client_for(alice).post(
        POLLS, {"title": "Lunch?", "options": option_payload("Pizza", "Soup")}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["description"] == ""
    assert body["expires_at"] is None
    assert body["allow_multiple_votes"] is False
    assert body["is_active"] is True
    poll = Poll.objects.get()
    assert (poll.description, poll.expires_at, poll.allow_multiple_votes) == ("", None, False)


def test_the_title_and_option_texts_are_trimmed(alice, client_for):
    response = client_for(alice).post(
        POLLS,
        {"title": "  Lunch?\n", "options": option_payload("  Pizza ", "\tSoup  ")},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["title"] == "Lunch?"
    assert [option["text"] for option in body["options"]] == ["Pizza", "Soup"]
    poll = Poll.objects.get()
    assert poll.title == "Lunch?"
    assert option_texts(poll) == ["Pizza", "Soup"]


def test_the_largest_poll_the_limits_allow_is_created(alice, client_for):
    title = "T" * 200
    texts = [f"{n:02d}" + "x" * 198 for n in range(20)]

    response = client_for(alice).post(
        POLLS, {"title": f"  {title}  ", "options": option_payload(*texts)}, format="json"
    )

    assert response.status_code == 201, response.content
    poll = Poll.objects.get()
    assert poll.title == title
    assert option_texts(poll) == texts


def test_an_anonymous_visitor_cannot_create_a_poll(db, anon):
    response = anon.post(
        POLLS, {"title": "Lunch?", "options": option_payload("Pizza", "Soup")}, format="json"
    )

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert not Poll.objects.exists()
    assert not Option.objects.exists()


VALID_POLL = {"title": "Lunch?", "options": option_payload("Pizza", "Soup")}
BAD_POLLS = {
    "a blank title": ("title", {"title": ""}),
    "a whitespace title": ("title", {"title": "   \t"}),
    "a 201-character title": ("title", {"title": "x" * 201}),
    "no title": ("title", {"title": None}),
    "a title that is not text": ("title", {"title": {"text": "Lunch?"}}),
    "no options": ("options", {"options": None}),
    "an empty option list": ("options", {"options": []}),
    "a single option": ("options", {"options": option_payload("Pizza")}),
    "21 options": ("options", {"options": option_payload(*(f"Option {n}" for n in range(21)))}),
    "a blank option": ("options", {"options": option_payload("Pizza", "")}),
    "a whitespace option": ("options", {"options": option_payload("Pizza", "   ")}),
    "a 201-character option": ("options", {"options": option_payload("Pizza", "x" * 201)}),
    "options differing in case only": ("options", {"options": option_payload("Pizza", "PIZZA")}),
    "options equal once trimmed": ("options", {"options": option_payload("Pizza", " pizza ")}),
    "options as a string": ("options", {"options": "Pizza, Soup"}),
    "options as an object": ("options", {"options": {"text": "Pizza"}}),
    "options as plain strings": ("options", {"options": ["Pizza", "Soup"]}),
    "options as numbers": ("options", {"options": [1, 2]}),
    "an option without text": ("options", {"options": [{"text": "Pizza"}, {"label": "Soup"}]}),
    "an expiry in the past": ("expires_at", {"expires_at": "2000-01-01T00:00:00Z"}),
    "an expiry that is not a date": ("expires_at", {"expires_at": "next Friday"}),
    "a vote mode that is not a boolean": ("allow_multiple_votes", {"allow_multiple_votes": "?"}),
}


@pytest.mark.parametrize(("field", "change"), BAD_POLLS.values(), ids=BAD_POLLS.keys())
def test_a_poll_with_bad_input_is_rejected_and_nothing_is_stored(
    make_poll, alice, client_for, field, change
):
    make_poll(created_by=alice)
    before = db_state()
    payload = {**VALID_POLL, **change}
    payload = {key: value for key, value in payload.items() if value is not None}

    response = client_for(alice).post(POLLS, payload, format="json")

    assert_field_error(response, field)
    assert db_state() == before


# Python's casefold() keeps "İ" (capital I with dot) apart from "i"; PostgreSQL's lower() (in a
# UTF-8 locale) folds it to "i", so only the database's unique index on lower(text) sees a
# duplicate. SQLite's lower() folds ASCII only. Either way: a clear answer, never a 500.
FOLDED_ALIKE_ONLY_BY_POSTGRESQL = {
    "dotted capital I and i": ("İ", "i"),
    "Istanbul with a dotted capital I and istanbul": ("İstanbul", "istanbul"),
}
DUPLICATE_OPTIONS = {"options": ["Option texts must be unique within a poll."]}


@pytest.mark.parametrize(
    "texts", FOLDED_ALIKE_ONLY_BY_POSTGRESQL.values(), ids=FOLDED_ALIKE_ONLY_BY_POSTGRESQL.keys()
)
def test_options_the_database_folds_alike_are_duplicates_never_a_server_error(
    make_poll, alice, client_for, texts
):
    make_poll(created_by=alice)
    before = db_state()

    response = client_for(alice).post(
        POLLS, {"title": "Where?", "options": option_payload(*texts)}, format="json"
    )

    if database_folds_alike(*texts):
        assert response.status_code == 400, response.content
        assert response.json() == DUPLICATE_OPTIONS
        assert db_state() == before
    else:
        assert response.status_code == 201, response.content
        assert [option["text"] for option in response.json()["options"]] == list(texts)
        assert option_texts(Poll.objects.get(pk=response.json()["id"])) == list(texts)


def test_an_expiry_a_moment_ago_is_rejected(alice, client_for):
    response = client_for(alice).post(
        POLLS,
        {**VALID_POLL, "expires_at": timezone.now() - timedelta(seconds=1)},
        format="json",
    )

    assert_field_error(response, "expires_at")
    assert not Poll.objects.exists()


def test_read_only_fields_sent_on_create_change_nothing(bob, alice, client_for):
    unused_id = missing_poll_id() + 500
    long_ago = timezone.now() - timedelta(days=365)

    response = client_for(alice).post(
        POLLS,
        {
            "id": unused_id,
            "title": "Lunch?",
            "created_at": long_ago,
            "created_by": "bob",
            "is_active": False,
            "total_votes": 42,
            "options": [{"id": 777_777, "text": "Pizza"}, {"id": 777_778, "text": "Soup"}],
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    poll = Poll.objects.get()
    assert body["id"] == poll.pk != unused_id
    assert parse_datetime(body["created_at"]) == poll.created_at > long_ago + timedelta(days=1)
    assert body["created_by"] == "alice"
    assert poll.created_by == alice
    assert body["is_active"] is True
    assert poll.closed_at is None
    assert body["total_votes"] == 0
    assert not Vote.objects.exists()
    stored_ids = option_ids(poll)
    assert [option["id"] for option in body["options"]] == stored_ids
    assert not set(stored_ids) & {777_777, 777_778}


# ---------------------------------------------------------------------------------------------
# Reading one poll


def test_anyone_reads_a_poll_with_its_vote_count(make_poll, alice, bob, make_user, anon):
    expires_at = timezone.now() + timedelta(days=1)
    poll = make_poll(
        created_by=alice,
        title="Toppings?",
        description="Pick any.",
        options=("Ham", "Olives", "Basil"),
        allow_multiple_votes=True,
        expires_at=expires_at,
    )
    vote_for(poll, bob, "Ham", "Basil")
    vote_for(poll, make_user(), "Olives")

    response = anon.get(poll_url(poll.pk))

    assert response.status_code == 200, response.content
    body = response.json()
    ham, olives, basil = option_ids(poll)
    assert body == {
        "id": poll.pk,
        "title": "Toppings?",
        "description": "Pick any.",
        "created_at": body["created_at"],
        "expires_at": body["expires_at"],
        "allow_multiple_votes": True,
        "is_active": True,
        "created_by": "alice",
        "options": [
            {"id": ham, "text": "Ham"},
            {"id": olives, "text": "Olives"},
            {"id": basil, "text": "Basil"},
        ],
        "total_votes": 3,
        "method": "multiple",
        "min_choices": 1,
        "max_choices": 3,
        "opens_at": None,
        "status": "open",
        "results_visibility": "always",
        "anonymity": "anonymous",
        "allow_vote_change": True,
        "voter_group": None,
        "max_score": None,
    }
    assert parse_datetime(body["created_at"]) == poll.created_at
    assert parse_datetime(body["expires_at"]) == expires_at


def test_reading_a_poll_that_does_not_exist_is_not_found(make_poll, anon):
    make_poll()

    assert_error(anon.get(poll_url(missing_poll_id())), 404, "not_found")


def test_a_poll_is_no_longer_active_once_its_expiry_has_passed(make_poll, anon):
    poll = make_poll(expires_at=timezone.now() + timedelta(days=1))
    assert anon.get(poll_url(poll.pk)).json()["is_active"] is True

    expire(poll)

    response = anon.get(poll_url(poll.pk))
    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is False
    assert listed_ids(anon.get(POLLS, {"is_active": "false"})) == [poll.pk]
    assert listed_ids(anon.get(POLLS, {"is_active": "true"})) == []


# ---------------------------------------------------------------------------------------------
# Updating


@pytest.mark.parametrize("editor", ["owner", "staff"])
def test_the_owner_or_staff_change_the_title_and_nothing_else(
    make_poll, alice, staff, client_for, editor
):
    poll = make_poll(created_by=alice, description="Friday")
    ids = option_ids(poll)
    user = alice if editor == "owner" else staff

    response = client_for(user).patch(poll_url(poll.pk), {"title": "Dinner?"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["title"] == "Dinner?"
    assert body["description"] == "Friday"
    assert body["created_by"] == "alice"
    assert [option["id"] for option in body["options"]] == ids
    stored = Poll.objects.get(pk=poll.pk)
    assert stored.title == "Dinner?"
    assert stored.description == "Friday"
    assert stored.created_by == alice
    assert option_ids(poll) == ids


def test_patch_changes_each_editable_field_it_sends(make_poll, alice, client_for):
    poll = make_poll(created_by=alice)
    expires_at = timezone.now() + timedelta(days=3)

    response = client_for(alice).patch(
        poll_url(poll.pk),
        {
            "title": "  Dinner?  ",
            "description": "Evening.",
            "expires_at": expires_at,
            "allow_multiple_votes": True,
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["title"] == "Dinner?"
    assert body["description"] == "Evening."
    assert parse_datetime(body["expires_at"]) == expires_at
    assert body["allow_multiple_votes"] is True
    stored = Poll.objects.get(pk=poll.pk)
    assert (stored.title, stored.description) == ("Dinner?", "Evening.")
    assert stored.expires_at == expires_at
    assert stored.allow_multiple_votes is True


@pytest.mark.parametrize("method", ["patch", "put"])
def test_another_user_may_not_change_a_poll(make_poll, alice, bob, client_for, method):
    poll = make_poll(created_by=alice)
    before = db_state()

    response = getattr(client_for(bob), method)(
        poll_url(poll.pk), {"title": "Mine now", "options": option_payload("A", "B")}, format="json"
    )

    assert_error(response, 403, "permission_denied")
    assert db_state() == before


@pytest.mark.parametrize("method", ["patch", "put"])
def test_an_anonymous_visitor_may_not_change_a_poll(make_poll, alice, anon, method):
    poll = make_poll(created_by=alice)
    before = db_state()

    response = getattr(anon, method)(
        poll_url(poll.pk), {"title": "Mine now", "options": option_payload("A", "B")}, format="json"
    )

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert db_state() == before


@pytest.mark.parametrize("method", ["patch", "put"])
def test_changing_a_poll_that_does_not_exist_is_not_found(
    make_poll, alice, staff, client_for, method
):
    make_poll(created_by=alice)
    before = db_state()

    response = getattr(client_for(staff), method)(
        poll_url(missing_poll_id()),
        {"title": "Dinner?", "options": option_payload("A", "B")},
        format="json",
    )

    assert_error(response, 404, "not_found")
    assert db_state() == before


@pytest.mark.parametrize("missing", ["title", "options"])
def test_put_needs_the_title_and_the_options(make_poll, alice, client_for, missing):
    poll = make_poll(created_by=alice)
    payload = {"title": "Dinner?", "options": option_payload("Pasta", "Salad")}
    del payload[missing]
    before = db_state()

    response = client_for(alice).put(poll_url(poll.pk), payload, format="json")

    assert_field_error(response, missing)
    assert db_state() == before


def test_put_leaves_the_fields_it_does_not_send_as_they_are(make_poll, alice, client_for):
    expires_at = timezone.now() + timedelta(days=2)
    poll = make_poll(
        created_by=alice, description="Friday", expires_at=expires_at, allow_multiple_votes=True
    )

    response = client_for(alice).put(
        poll_url(poll.pk),
        {"title": "Dinner?", "options": option_payload("Pasta", "Salad")},
        format="json",
    )

    assert response.status_code == 200, response.content
    stored = Poll.objects.get(pk=poll.pk)
    assert stored.title == "Dinner?"
    assert option_texts(poll) == ["Pasta", "Salad"]
    assert stored.description == "Friday"
    assert stored.expires_at == expires_at
    assert stored.allow_multiple_votes is True
    body = response.json()
    assert body["description"] == "Friday"
    assert parse_datetime(body["expires_at"]) == expires_at
    assert body["allow_multiple_votes"] is True


def test_put_keeps_multiple_votes_on_a_poll_with_votes_when_it_does_not_send_the_mode(
    make_poll, alice, bob, client_for
):
    poll = make_poll(created_by=alice, allow_multiple_votes=True)
    vote_for(poll, bob, "Pizza", "Soup")
    votes = list(Vote.objects.values())

    response = client_for(alice).put(
        poll_url(poll.pk),
        {"title": "Dinner?", "options": option_payload("Pizza", "Soup")},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["allow_multiple_votes"] is True
    stored = Poll.objects.get(pk=poll.pk)
    assert stored.title == "Dinner?"
    assert stored.allow_multiple_votes is True
    assert list(Vote.objects.values()) == votes


def test_sending_options_replaces_the_list_with_new_options(make_poll, alice, client_for):
    poll = make_poll(created_by=alice)
    old_ids = option_ids(poll)

    response = client_for(alice).patch(
        poll_url(poll.pk), {"options": option_payload("Tacos", " Sushi ", "Curry")}, format="json"
    )

    assert response.status_code == 200, response.content
    new_ids = option_ids(poll)
    assert response.json()["options"] == [
        {"id": new_id, "text": text}
        for new_id, text in zip(new_ids, ["Tacos", "Sushi", "Curry"], strict=True)
    ]
    assert option_texts(poll) == ["Tacos", "Sushi", "Curry"]
    assert not set(new_ids) & set(old_ids)
    assert not Option.objects.filter(pk__in=old_ids).exists()


def test_options_in_an_update_replace_the_list_even_when_the_texts_are_the_same(
    make_poll, alice, client_for
):
    # The contract: "options in an update replaces the list (new ids)".
    poll = make_poll(created_by=alice)
    ids = option_ids(poll)

    response = client_for(alice).patch(
        poll_url(poll.pk), {"options": option_payload("Pizza", "Soup")}, format="json"
    )

    assert response.status_code == 200, response.content
    assert [option["text"] for option in response.json()["options"]] == ["Pizza", "Soup"]
    new_ids = [option["id"] for option in response.json()["options"]]
    assert set(new_ids).isdisjoint(ids)
    assert option_ids(poll) == new_ids


def test_unchanged_options_on_a_poll_with_votes_keep_their_ids_and_votes(
    make_poll, alice, bob, client_for
):
    poll = make_poll(created_by=alice)
    ids = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[ids[0]])

    response = client_for(alice).patch(
        poll_url(poll.pk), {"options": option_payload("Pizza", "Soup")}, format="json"
    )

    assert response.status_code == 200, response.content
    assert [option["id"] for option in response.json()["options"]] == ids
    assert response.json()["total_votes"] == 1


@pytest.mark.parametrize(
    "texts", FOLDED_ALIKE_ONLY_BY_POSTGRESQL.values(), ids=FOLDED_ALIKE_ONLY_BY_POSTGRESQL.keys()
)
@pytest.mark.parametrize("method", ["patch", "put"])
def test_new_options_the_database_folds_alike_are_duplicates_never_a_server_error(
    make_poll, alice, client_for, method, texts
):
    poll = make_poll(created_by=alice)
    before = db_state()

    response = getattr(client_for(alice), method)(
        poll_url(poll.pk), {"title": "Where?", "options": option_payload(*texts)}, format="json"
    )

    if database_folds_alike(*texts):
        assert response.status_code == 400, response.content
        assert response.json() == DUPLICATE_OPTIONS
        # The old options are kept, ids and all: the refused update changed nothing.
        assert db_state() == before
    else:
        assert response.status_code == 200, response.content
        assert [option["text"] for option in response.json()["options"]] == list(texts)
        assert option_texts(poll) == list(texts)
        assert Poll.objects.get(pk=poll.pk).title == "Where?"


BAD_UPDATES = {
    "a blank title": ("title", {"title": "  "}),
    "a 201-character title": ("title", {"title": "x" * 201}),
    "a single option": ("options", {"options": option_payload("Pizza")}),
    "21 options": ("options", {"options": option_payload(*(f"Option {n}" for n in range(21)))}),
    "a blank option": ("options", {"options": option_payload("Pizza", " ")}),
    "a 201-character option": ("options", {"options": option_payload("Pizza", "x" * 201)}),
    "duplicate options": ("options", {"options": option_payload("Pizza", "pizza")}),
    "options as plain strings": ("options", {"options": ["Pizza", "Soup"]}),
    "options as a string": ("options", {"options": "Pizza"}),
    "an expiry in the past": ("expires_at", {"expires_at": "2000-01-01T00:00:00Z"}),
}


@pytest.mark.parametrize(("field", "change"), BAD_UPDATES.values(), ids=BAD_UPDATES.keys())
def test_an_update_with_bad_input_is_rejected_and_changes_nothing(
    make_poll, alice, client_for, field, change
):
    poll = make_poll(created_by=alice)
    before = db_state()

    response = client_for(alice).patch(
        poll_url(poll.pk), {"description": "Changed", **change}, format="json"
    )

    assert_field_error(response, field)
    assert db_state() == before


def test_read_only_fields_sent_on_update_change_nothing(make_poll, alice, bob, client_for):
    poll = make_poll(created_by=alice)
    vote_for(poll, bob, "Soup")
    pizza, soup = option_ids(poll)
    before = db_state()

    response = client_for(alice).patch(
        poll_url(poll.pk),
        {
            "id": missing_poll_id(),
            "created_at": timezone.now() - timedelta(days=365),
            "created_by": "bob",
            "is_active": False,
            "total_votes": 42,
            "options": [{"id": soup, "text": "Pizza"}, {"id": pizza + 1000, "text": "Soup"}],
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == poll.pk
    assert body["created_by"] == "alice"
    assert body["is_active"] is True
    assert body["total_votes"] == 1
    assert body["options"] == [{"id": pizza, "text": "Pizza"}, {"id": soup, "text": "Soup"}]
    assert db_state() == before


@pytest.fixture
def voted_poll(make_poll, alice, bob) -> Poll:
    """Alice's single-vote poll "Lunch?" (Pizza, Soup, Salad), on which Bob voted for Soup."""
    poll = make_poll(created_by=alice, description="Friday", options=("Pizza", "Soup", "Salad"))
    vote_for(poll, bob, "Soup")
    return poll


LUNCH_OPTIONS = option_payload("Pizza", "Soup", "Salad")
FROZEN_CHANGES = {
    "a renamed option": {"options": option_payload("Pizza", "Soup", "Tea")},
    "an option in another case": {"options": option_payload("Pizza", "soup", "Salad")},
    "options in another order": {"options": option_payload("Soup", "Pizza", "Salad")},
    "an added option": {"options": option_payload("Pizza", "Soup", "Salad", "Tea")},
    "a removed option": {"options": option_payload("Pizza", "Soup")},
    "another vote mode": {"allow_multiple_votes": True},
    "another title with a renamed option": {
        "title": "Dinner?",
        "options": option_payload("Pizza", "Soup", "Tea"),
    },
}


@pytest.mark.parametrize("change", FROZEN_CHANGES.values(), ids=FROZEN_CHANGES.keys())
@pytest.mark.parametrize("method", ["patch", "put"])
def test_the_options_and_vote_mode_of_a_poll_with_votes_cannot_change(
    voted_poll, alice, client_for, method, change
):
    before = db_state()
    payload = {"title": "Lunch?", "options": LUNCH_OPTIONS, **change}

    response = getattr(client_for(alice), method)(poll_url(voted_poll.pk), payload, format="json")

    assert_error(response, 409, "poll_has_votes")
    assert db_state() == before


def test_a_poll_with_votes_accepts_its_options_and_vote_mode_sent_unchanged(
    voted_poll, alice, client_for
):
    ids = option_ids(voted_poll)
    votes = list(Vote.objects.values_list("pk", "option_id"))

    response = client_for(alice).put(
        poll_url(voted_poll.pk),
        {
            "title": "Lunch on Friday?",
            "options": option_payload("Pizza", " Soup ", "Salad"),
            "allow_multiple_votes": False,
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["title"] == "Lunch on Friday?"
    assert [option["id"] for option in body["options"]] == ids
    assert body["total_votes"] == 1
    assert Poll.objects.get(pk=voted_poll.pk).title == "Lunch on Friday?"
    assert option_ids(voted_poll) == ids
    assert list(Vote.objects.values_list("pk", "option_id")) == votes


def test_the_other_fields_of_a_poll_with_votes_stay_editable(voted_poll, alice, client_for):
    expires_at = timezone.now() + timedelta(days=5)

    response = client_for(alice).patch(
        poll_url(voted_poll.pk),
        {"title": "Dinner?", "description": "Evening.", "expires_at": expires_at},
        format="json",
    )

    assert response.status_code == 200, response.content
    stored = Poll.objects.get(pk=voted_poll.pk)
    assert (stored.title, stored.description, stored.expires_at) == (
        "Dinner?",
        "Evening.",
        expires_at,
    )
    assert Vote.objects.count() == 1


def test_the_expiry_moves_to_a_later_time(make_poll, alice, client_for):
    poll = make_poll(created_by=alice, expires_at=timezone.now() + timedelta(days=1))
    later = timezone.now() + timedelta(days=10)

    response = client_for(alice).patch(poll_url(poll.pk), {"expires_at": later}, format="json")

    assert response.status_code == 200, response.content
    assert parse_datetime(response.json()["expires_at"]) == later
    assert Poll.objects.get(pk=poll.pk).expires_at == later


def test_the_expiry_is_removed_with_null(make_poll, alice, client_for):
    poll = make_poll(created_by=alice, expires_at=timezone.now() + timedelta(days=1))

    response = client_for(alice).patch(poll_url(poll.pk), {"expires_at": None}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["expires_at"] is None
    assert Poll.objects.get(pk=poll.pk).expires_at is None


def test_an_expiry_that_has_passed_is_accepted_when_sent_back_unchanged(
    make_poll, alice, client_for, anon
):
    poll = make_poll(created_by=alice, expires_at=timezone.now() + timedelta(days=1))
    past = expire(poll)
    as_read = anon.get(poll_url(poll.pk)).json()

    response = client_for(alice).put(
        poll_url(poll.pk),
        {
            "title": "Lunch, last week?",
            "options": as_read["options"],
            "expires_at": as_read["expires_at"],
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is False
    stored = Poll.objects.get(pk=poll.pk)
    assert stored.title == "Lunch, last week?"
    assert stored.expires_at == past


@pytest.mark.parametrize("already_expired", [False, True], ids=["open poll", "expired poll"])
def test_a_new_expiry_in_the_past_is_rejected(make_poll, alice, client_for, already_expired):
    poll = make_poll(created_by=alice, expires_at=timezone.now() + timedelta(days=1))
    if already_expired:
        expire(poll)
    before = db_state()

    response = client_for(alice).patch(
        poll_url(poll.pk),
        {"title": "Dinner?", "expires_at": timezone.now() - timedelta(days=2)},
        format="json",
    )

    assert_field_error(response, "expires_at")
    assert db_state() == before


# ---------------------------------------------------------------------------------------------
# Deleting


@pytest.mark.parametrize("remover", ["owner", "staff"])
def test_the_owner_or_staff_delete_a_poll_with_its_options_and_votes(
    make_poll, alice, bob, staff, client_for, remover
):
    poll = make_poll(created_by=alice)
    vote_for(poll, bob, "Pizza")
    other = make_poll(created_by=bob, title="Dinner?")
    vote_for(other, alice, "Soup")
    others_before = (
        list(Option.objects.filter(poll=other).values()),
        list(Vote.objects.filter(poll=other).values()),
    )
    user = alice if remover == "owner" else staff

    response = client_for(user).delete(poll_url(poll.pk))

    assert response.status_code == 204, response.content
    assert response.content == b""
    assert not Poll.objects.filter(pk=poll.pk).exists()
    assert not Option.objects.filter(poll_id=poll.pk).exists()
    assert not Vote.objects.filter(poll_id=poll.pk).exists()
    assert Poll.objects.filter(pk=other.pk).exists()
    assert others_before == (
        list(Option.objects.filter(poll=other).values()),
        list(Vote.objects.filter(poll=other).values()),
    )
    assert_error(client_for(user).get(poll_url(poll.pk)), 404, "not_found")


def test_an_anonymous_visitor_may_not_delete_a_poll(voted_poll, anon):
    before = db_state()

    response = anon.delete(poll_url(voted_poll.pk))

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert db_state() == before


def test_another_user_may_not_delete_a_poll(voted_poll, bob, client_for):
    before = db_state()

    response = client_for(bob).delete(poll_url(voted_poll.pk))

    assert_error(response, 403, "permission_denied")
    assert db_state() == before


def test_deleting_a_poll_that_does_not_exist_is_not_found(voted_poll, staff, client_for):
    before = db_state()

    response = client_for(staff).delete(poll_url(missing_poll_id()))

    assert_error(response, 404, "not_found")
    assert db_state() == before


# ---------------------------------------------------------------------------------------------
# Closing


@pytest.mark.parametrize("closer", ["owner", "staff"])
def test_the_owner_or_staff_close_a_poll(make_poll, alice, staff, client_for, closer):
    poll = make_poll(created_by=alice)
    user = alice if closer == "owner" else staff
    before = timezone.now()

    response = client_for(user).post(close_url(poll.pk))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == POLL_FIELDS
    assert body["id"] == poll.pk
    assert body["is_active"] is False
    closed_at = Poll.objects.get(pk=poll.pk).closed_at
    assert closed_at is not None
    assert before <= closed_at <= timezone.now()
    assert client_for(user).get(poll_url(poll.pk)).json()["is_active"] is False


def test_closing_a_closed_poll_changes_nothing(make_poll, alice, client_for):
    poll = make_poll(created_by=alice)
    first = client_for(alice).post(close_url(poll.pk))
    assert first.status_code == 200, first.content
    before = db_state()

    again = client_for(alice).post(close_url(poll.pk))

    assert again.status_code == 200, again.content
    assert again.json() == first.json()
    assert again.json()["is_active"] is False
    assert db_state() == before


def test_an_anonymous_visitor_may_not_close_a_poll(make_poll, alice, anon):
    poll = make_poll(created_by=alice)
    before = db_state()

    response = anon.post(close_url(poll.pk))

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert db_state() == before


def test_another_user_may_not_close_a_poll(make_poll, alice, bob, client_for):
    poll = make_poll(created_by=alice)
    before = db_state()

    response = client_for(bob).post(close_url(poll.pk))

    assert_error(response, 403, "permission_denied")
    assert db_state() == before


def test_closing_a_poll_that_does_not_exist_is_not_found(make_poll, staff, client_for):
    make_poll()
    before = db_state()

    response = client_for(staff).post(close_url(missing_poll_id()))

    assert_error(response, 404, "not_found")
    assert db_state() == before


def test_a_closed_poll_stays_closed_when_its_expiry_moves_to_the_future(
    make_poll, alice, client_for, anon
):
    poll = make_poll(created_by=alice, expires_at=timezone.now() + timedelta(hours=1))
    client_for(alice).post(close_url(poll.pk))
    later = timezone.now() + timedelta(days=30)

    response = client_for(alice).patch(poll_url(poll.pk), {"expires_at": later}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is False
    stored = Poll.objects.get(pk=poll.pk)
    assert stored.expires_at == later
    assert stored.closed_at is not None
    assert anon.get(poll_url(poll.pk)).json()["is_active"] is False
    assert listed_ids(anon.get(POLLS, {"is_active": "true"})) == []
    assert listed_ids(anon.get(POLLS, {"is_active": "false"})) == [poll.pk]
