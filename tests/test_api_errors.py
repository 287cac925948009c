"""Error bodies: every error is JSON with a stable code, no request gets a 5xx, checks run in order.

Paths are spelled out as the contract spells them: several of them (``polls/abc/``,
``polls/-1/``) cannot be reversed at all.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db.models import Max
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from django_polls import services
from django_polls.models import Option, Poll, Vote
from tests.conftest import assert_error, db_state, option_ids

API = "/api/v1/"
POLLS = f"{API}polls/"
HUGE_ID = "99999999999999999999999"
# One past the largest BIGINT: the first id that no database column can hold.
JUST_TOO_BIG_ID = str(2**63)
# Ids no poll can have, as a path may spell them. Past 4300 digits Python's int() refuses the text
# itself (ValueError), so an id that long must be turned away before anything converts it.
HUGE_POLL_IDS = {
    "the largest BIGINT": str(2**63 - 1),
    "one past the largest BIGINT": JUST_TOO_BIG_ID,
    "20 nines": "9" * 20,
    "23 nines": HUGE_ID,
    "5000 digits": "1" * 5000,
}


def missing_poll_id() -> int:
    return (Poll.objects.aggregate(top=Max("pk"))["top"] or 0) + 1000


def is_json(response: Any) -> bool:
    return response["Content-Type"].split(";")[0].strip() == "application/json"


def assert_validation_error(response: Any, *fields: str) -> dict[str, Any]:
    """A validation error: ``{"field": ["message", ...]}`` for exactly ``fields``."""
    assert response.status_code == 400, response.content
    assert is_json(response), response["Content-Type"]
    body = response.json()
    assert set(body) == set(fields), body
    for messages in body.values():
        assert isinstance(messages, list), body
        assert messages, body
        assert all(isinstance(message, str) and message for message in messages), body
    return body


@pytest.fixture
def poll(make_poll, alice) -> Poll:
    """Alice's open single-vote poll "Lunch?" with the options Pizza and Soup."""
    return make_poll(created_by=alice)


@pytest.fixture
def closed_poll(make_poll, alice) -> Poll:
    poll = make_poll(created_by=alice, title="Closed lunch?")
    services.close_poll(poll=poll)
    return poll


# ---------------------------------------------------------------------------------------------
# Each stable code


def test_an_anonymous_write_is_not_authenticated(db, anon):
    response = anon.post(
        POLLS, {"title": "Lunch?", "options": [{"text": "A"}, {"text": "B"}]}, format="json"
    )

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert not Poll.objects.exists()


def test_an_anonymous_vote_is_not_authenticated(poll, anon):
    before = db_state()

    response = anon.post(f"{POLLS}{poll.pk}/vote/", {"options": option_ids(poll)[:1]})

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert db_state() == before


BAD_AUTHORIZATIONS = {
    "an unknown token": "Token 0123456789abcdef0123456789abcdef01234567",
    "a token keyword without a key": "Token",
    "a token with spaces": "Token abc def",
}


@pytest.mark.parametrize(
    "authorization", BAD_AUTHORIZATIONS.values(), ids=BAD_AUTHORIZATIONS.keys()
)
@pytest.mark.parametrize(
    ("method", "path"), [("get", "polls/"), ("post", "polls/")], ids=["read", "write"]
)
def test_a_bad_token_fails_authentication_even_where_anyone_may_read(
    poll, method, path, authorization
):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=authorization)
    before = db_state()

    response = getattr(client, method)(
        f"{API}{path}", {"title": "X", "options": [{"text": "A"}, {"text": "B"}]}, format="json"
    )

    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"
    assert db_state() == before


def test_a_revoked_token_fails_authentication(poll, bob, client_for):
    client = client_for(bob)
    Token.objects.filter(user=bob).delete()
    before = db_state()

    response = client.post(f"{POLLS}{poll.pk}/vote/", {"options": option_ids(poll)[:1]})

    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"
    assert db_state() == before


def test_the_token_of_a_deactivated_user_fails_authentication(poll, bob, client_for):
    client = client_for(bob)
    type(bob).objects.filter(pk=bob.pk).update(is_active=False)
    before = db_state()

    response = client.post(f"{POLLS}{poll.pk}/vote/", {"options": option_ids(poll)[:1]})

    assert_error(response, 401, "authentication_failed")
    assert db_state() == before


@pytest.mark.parametrize(
    ("method", "suffix"), [("patch", ""), ("put", ""), ("delete", ""), ("post", "close/")]
)
def test_a_change_by_someone_else_is_permission_denied(poll, bob, client_for, method, suffix):
    before = db_state()

    response = getattr(client_for(bob), method)(
        f"{POLLS}{poll.pk}/{suffix}",
        {"title": "Mine", "options": [{"text": "A"}, {"text": "B"}]},
        format="json",
    )

    assert_error(response, 403, "permission_denied")
    assert db_state() == before


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("patch", ""),
        ("put", ""),
        ("delete", ""),
        ("post", "close/"),
        ("get", "results/"),
        ("get", "vote/"),
        ("post", "vote/"),
        ("delete", "vote/"),
    ],
)
def test_anything_on_a_missing_poll_is_not_found(poll, alice, client_for, method, suffix):
    before = db_state()

    response = getattr(client_for(alice), method)(
        f"{POLLS}{missing_poll_id()}/{suffix}",
        {"title": "Lunch?", "options": [{"text": "A"}, {"text": "B"}]},
        format="json",
    )

    assert_error(response, 404, "not_found")
    assert db_state() == before


def test_a_vote_on_a_closed_poll_is_refused_as_poll_closed(closed_poll, bob, client_for):
    before = db_state()

    response = client_for(bob).post(
        f"{POLLS}{closed_poll.pk}/vote/", {"options": option_ids(closed_poll)[:1]}, format="json"
    )

    assert_error(response, 409, "poll_closed")
    assert db_state() == before


def test_a_second_vote_on_a_single_vote_poll_is_refused_as_already_voted(poll, bob, client_for):
    pizza, soup = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[pizza])
    before = db_state()

    response = client_for(bob).post(f"{POLLS}{poll.pk}/vote/", {"options": [soup]}, format="json")

    assert_error(response, 409, "already_voted")
    assert db_state() == before


def test_changing_the_options_of_a_poll_with_votes_is_refused_as_poll_has_votes(
    poll, alice, bob, client_for
):
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=option_ids(poll)[:1])
    before = db_state()

    response = client_for(alice).patch(
        f"{POLLS}{poll.pk}/", {"options": [{"text": "Pizza"}, {"text": "Salad"}]}, format="json"
    )

    assert_error(response, 409, "poll_has_votes")
    assert db_state() == before


def test_withdrawing_a_vote_never_cast_is_not_voted(poll, bob, client_for):
    before = db_state()

    response = client_for(bob).delete(f"{POLLS}{poll.pk}/vote/")

    assert_error(response, 404, "not_voted")
    assert db_state() == before


def test_truncated_json_is_a_parse_error(poll, alice, client_for):
    before = db_state()

    response = client_for(alice).post(
        POLLS, '{"title": "Lunch?", "options": [{"text": "Pi', content_type="application/json"
    )

    assert_error(response, 400, "parse_error")
    assert db_state() == before


def test_a_method_the_endpoint_does_not_take_is_a_json_error(poll, alice, client_for):
    before = db_state()

    response = client_for(alice).put(POLLS, {"title": "Lunch?"}, format="json")

    assert_error(response, 405, "method_not_allowed")
    assert db_state() == before


# ---------------------------------------------------------------------------------------------
# Validation errors


def test_a_validation_error_lists_messages_per_field(alice, client_for):
    response = client_for(alice).post(
        POLLS,
        {
            "title": None,
            "options": [{"text": "A"}, {"text": "B"}],
            "expires_at": "soon",
            "allow_multiple_votes": "perhaps",
        },
        format="json",
    )

    assert_validation_error(response, "title", "expires_at", "allow_multiple_votes")
    assert not Poll.objects.exists()


def test_a_bad_filter_value_is_a_validation_error(poll, anon):
    assert_validation_error(anon.get(POLLS, {"is_active": "maybe"}), "is_active")


BADLY_SHAPED_OPTIONS = {
    "options as a string": "Pizza, Soup",
    "options as an object": {"text": "Pizza"},
    "options as plain strings": ["Pizza", "Soup"],
    "an option without text": [{"text": "Pizza"}, {"label": "Soup"}],
    "an option text that is not text": [{"text": "Pizza"}, {"text": ["Soup"]}],
}


@pytest.mark.parametrize("options", BADLY_SHAPED_OPTIONS.values(), ids=BADLY_SHAPED_OPTIONS.keys())
def test_badly_shaped_options_are_reported_as_messages_under_options(alice, client_for, options):
    response = client_for(alice).post(POLLS, {"title": "Lunch?", "options": options}, format="json")

    assert_validation_error(response, "options")
    assert not Poll.objects.exists()


# ---------------------------------------------------------------------------------------------
# Ids in paths


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "polls/abc/"),
        ("get", "polls/1.5/"),
        ("get", "polls/-1/"),
        ("get", "polls/1e3/"),
        ("get", "polls/%20/"),
        ("patch", "polls/abc/"),
        ("put", "polls/1.5/"),
        ("delete", "polls/-1/"),
        ("post", "polls/abc/close/"),
        ("get", "polls/abc/results/"),
        ("get", "polls/abc/vote/"),
        ("post", "polls/abc/vote/"),
        ("delete", "polls/abc/vote/"),
        ("post", "polls/-1/vote/"),
        ("get", "polls/1/unknown/"),
    ],
)
def test_a_path_without_a_poll_id_is_a_json_not_found(poll, alice, client_for, method, path):
    before = db_state()

    response = getattr(client_for(alice), method)(
        f"{API}{path}", {"options": option_ids(poll)[:1]}, format="json"
    )

    assert_error(response, 404, "not_found")
    assert db_state() == before


@pytest.mark.parametrize("path", ["polls/abc/vote/", "polls/-1/", "polls/1/unknown/"])
def test_a_real_client_writing_to_a_path_without_a_poll_id_gets_a_json_not_found(poll, alice, path):
    """Browsers and API clients send no CSRF token with token auth; the answer is still JSON."""
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    before = db_state()

    response = client.post(f"{API}{path}", {"options": option_ids(poll)[:1]}, format="json")

    assert_error(response, 404, "not_found")
    assert db_state() == before


@pytest.mark.parametrize("poll_id", HUGE_POLL_IDS.values(), ids=HUGE_POLL_IDS.keys())
@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("patch", ""),
        ("put", ""),
        ("delete", ""),
        ("get", "results/"),
        ("post", "close/"),
        ("get", "vote/"),
        ("post", "vote/"),
        ("delete", "vote/"),
    ],
)
def test_a_huge_poll_id_is_not_found_never_a_server_error(
    poll, alice, client_for, method, suffix, poll_id
):
    before = db_state()
    # Answer a server error as a visitor sees it (a 500), rather than re-raising it here.
    client = client_for(alice)
    client.raise_request_exception = False

    response = getattr(client, method)(
        f"{POLLS}{poll_id}/{suffix}",
        {"title": "Lunch?", "options": option_ids(poll)[:1]},
        format="json",
    )

    assert_error(response, 404, "not_found")
    assert db_state() == before


@pytest.mark.parametrize("option_id", [2**63, 0])
def test_an_option_id_no_database_can_hold_is_a_validation_error(poll, bob, client_for, option_id):
    before = db_state()

    response = client_for(bob).post(
        f"{POLLS}{poll.pk}/vote/", {"options": [option_id]}, format="json"
    )

    assert_validation_error(response, "options")
    assert db_state() == before


@pytest.fixture
def twenty_option_poll(make_poll, alice) -> Poll:
    """Alice's multiple-vote poll with as many options as a poll may have (MAX_OPTIONS, 20)."""
    return make_poll(
        created_by=alice,
        title="Pick any",
        options=[f"Option {n}" for n in range(1, 21)],
        allow_multiple_votes=True,
    )


OVERLONG_BALLOTS = {
    "every option and one more": lambda ids: [*ids, max(ids) + 1],
    "every option and a repeat": lambda ids: [*ids, ids[0]],
    "10000 ids": lambda ids: list(range(1, 10_001)),
}


@pytest.mark.parametrize("ballot", OVERLONG_BALLOTS.values(), ids=OVERLONG_BALLOTS.keys())
def test_a_ballot_naming_more_options_than_a_poll_may_have_is_a_validation_error(
    twenty_option_poll, bob, client_for, ballot
):
    before = db_state()

    response = client_for(bob).post(
        f"{POLLS}{twenty_option_poll.pk}/vote/",
        {"options": ballot(option_ids(twenty_option_poll))},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert response.json() == {"options": ["A ballot names at most 20 options."]}
    assert db_state() == before


def test_a_ballot_naming_every_one_of_20_options_is_stored(twenty_option_poll, bob, client_for):
    every_option = sorted(option_ids(twenty_option_poll))

    response = client_for(bob).post(
        f"{POLLS}{twenty_option_poll.pk}/vote/", {"options": every_option}, format="json"
    )

    assert response.status_code == 201, response.content
    assert sorted(response.json()["options"]) == every_option
    assert (
        sorted(Vote.objects.filter(voter=bob).values_list("option_id", flat=True)) == every_option
    )


# ---------------------------------------------------------------------------------------------
# Malformed bodies


def send(client: APIClient, method: str, path: str, body: bytes, content_type: str) -> Any:
    """Send ``body`` byte for byte, whatever it holds."""
    return client.generic(method.upper(), path, body, content_type=content_type)


def body_target(poll: Poll, target: str) -> str:
    return {
        "create": POLLS,
        "update": f"{POLLS}{poll.pk}/",
        "vote": f"{POLLS}{poll.pk}/vote/",
    }[target]


WRITES = pytest.mark.parametrize(
    ("method", "target"),
    [("post", "create"), ("patch", "update"), ("put", "update"), ("post", "vote")],
)
DEEP = 100_000
UNPARSABLE_BODIES = {
    "deeply nested lists": b"[" * DEEP,
    "deeply nested closed lists": b"[" * DEEP + b"]" * DEEP,
    "deeply nested objects": b'{"a":' * DEEP,
    "deeply nested options": b'{"title": "Lunch?", "options": ' + b"[" * DEEP,
    "invalid UTF-8": b'{"title": "Lunch \xff\xfe?", "options": [{"text": "\xc3\x28"}]}',
    "a lone UTF-8 continuation byte": b'{"options": [\x80]}',
    "truncated JSON": b'{"title": "Lunch?", "options": [{"text": "Pi',
    "a NaN": b'{"options": [NaN]}',
}


@pytest.mark.parametrize("body", UNPARSABLE_BODIES.values(), ids=UNPARSABLE_BODIES.keys())
@WRITES
def test_an_unparsable_json_body_is_a_parse_error(poll, alice, client_for, method, target, body):
    before = db_state()

    response = send(client_for(alice), method, body_target(poll, target), body, "application/json")

    assert_error(response, 400, "parse_error")
    assert db_state() == before


REQUIRED_FIELDS = {
    "create": ("title", "options"),
    "update": ("title", "options"),
    "vote": ("options",),
}


@pytest.mark.parametrize(
    ("method", "target"), [("post", "create"), ("put", "update"), ("post", "vote")]
)
def test_an_empty_body_lacks_the_required_fields(poll, alice, client_for, method, target):
    before = db_state()

    response = send(client_for(alice), method, body_target(poll, target), b"", "application/json")

    body = assert_validation_error(response, *REQUIRED_FIELDS[target])
    assert all(messages == ["This field is required."] for messages in body.values()), body
    assert db_state() == before


NOT_AN_OBJECT = {
    "a JSON string": b'"Lunch?"',
    "a JSON number": b"42",
    "a JSON list": b'[{"title": "Lunch?"}]',
    "JSON null": b"null",
    "JSON true": b"true",
}


@pytest.mark.parametrize("body", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
@WRITES
def test_a_json_body_that_is_not_an_object_is_rejected(
    poll, alice, client_for, method, target, body
):
    before = db_state()

    response = send(client_for(alice), method, body_target(poll, target), body, "application/json")

    assert_validation_error(response, "non_field_errors")
    assert db_state() == before


NOT_JSON = {
    "plain text": ("text/plain", b"title=Lunch?"),
    "XML": ("application/xml", b"<poll><title>Lunch?</title></poll>"),
    "no content type": ("", b'{"title": "Lunch?"}'),
    "a made-up type": ("application/x-polls", b'{"title": "Lunch?"}'),
}


@pytest.mark.parametrize(("content_type", "body"), NOT_JSON.values(), ids=NOT_JSON.keys())
@WRITES
def test_a_body_that_is_not_json_is_an_unsupported_media_type(
    poll, alice, client_for, method, target, content_type, body
):
    before = db_state()

    response = send(client_for(alice), method, body_target(poll, target), body, content_type)

    assert_error(response, 415, "unsupported_media_type")
    assert db_state() == before


def test_a_form_that_lacks_the_options_is_a_validation_error(poll, alice, client_for):
    before = db_state()

    response = client_for(alice).post(POLLS, {"title": "Lunch?", "options": "Pizza"})

    # A form cannot carry the list of option objects: the field is missing, not malformed.
    assert assert_validation_error(response, "options") == {"options": ["This field is required."]}
    assert db_state() == before


STORAGE_HOSTILE_TEXT = {
    "a lone surrogate in the title": ("title", {"title": "Lunch\ud800?"}),
    "a NUL in the title": ("title", {"title": "Lunch\x00?"}),
    "a lone surrogate in the description": ("description", {"description": "Friday\ud83d"}),
    "a NUL in the description": ("description", {"description": "Friday\x00"}),
    "a lone surrogate in an option": (
        "options",
        {"options": [{"text": "Pizza\udfff"}, {"text": "Soup"}]},
    ),
    "a NUL in an option": ("options", {"options": [{"text": "Pizza\x00"}, {"text": "Soup"}]}),
}


@pytest.mark.parametrize(
    ("field", "payload"), STORAGE_HOSTILE_TEXT.values(), ids=STORAGE_HOSTILE_TEXT.keys()
)
def test_text_no_database_can_store_is_a_validation_error(poll, alice, client_for, field, payload):
    """JSON escapes (``\\ud800``, ``\\u0000``) smuggle in text that is not UTF-8 or SQL."""
    before = db_state()
    full = {"title": "Lunch?", "options": [{"text": "Pizza"}, {"text": "Soup"}], **payload}
    client = client_for(alice)

    # json.dumps escapes the lone surrogates, exactly as a JavaScript client would send them.
    created = send(client, "post", POLLS, json.dumps(full).encode(), "application/json")
    updated = send(
        client, "patch", f"{POLLS}{poll.pk}/", json.dumps(payload).encode(), "application/json"
    )

    for response in (created, updated):
        assert_validation_error(response, field)
    assert db_state() == before


def visitor_get(params: dict[str, str]) -> Any:
    # A server error answers as a visitor sees it (a 500), rather than being re-raised here.
    return APIClient(raise_request_exception=False).get(POLLS, params)


IGNORED_QUERY_PARAMETERS = {
    "a NUL ordering": {"ordering": "\x00"},
    "a huge page size": {"page_size": HUGE_ID},
    "a negative page size": {"page_size": "-1"},
}


@pytest.mark.parametrize(
    "params", IGNORED_QUERY_PARAMETERS.values(), ids=IGNORED_QUERY_PARAMETERS.keys()
)
def test_an_odd_ordering_or_page_size_still_lists_the_polls(poll, params):
    response = visitor_get(params)

    assert response.status_code == 200, response.content
    assert [listed["id"] for listed in response.json()["results"]] == [poll.pk]


def test_sql_wildcards_in_the_search_match_only_themselves(poll):
    response = visitor_get({"search": "%_\\"})

    assert response.status_code == 200, response.content
    assert response.json()["count"] == 0


def test_a_nul_in_the_search_is_a_validation_error(poll):
    response = visitor_get({"search": "\x00"})

    assert assert_validation_error(response, "search") == {
        "search": ["Null characters are not allowed."]
    }


@pytest.mark.parametrize("page", ["\x00", HUGE_ID], ids=["a NUL page", "a huge page"])
def test_a_page_that_is_no_page_number_is_not_found(poll, page):
    assert_error(visitor_get({"page": page}), 404, "not_found")


def test_query_bytes_that_are_not_utf8_never_cause_a_server_error(poll, anon):
    response = anon.get(f"{POLLS}?search=%ED%A0%80%FF%FE&is_active=%C3%28")

    assert_validation_error(response, "is_active")


# ---------------------------------------------------------------------------------------------
# Order of checks: 401 -> 403 -> 404 -> 400 -> 409


def test_an_anonymous_change_to_a_missing_poll_is_401_not_404(db, anon):
    for method, suffix in [("patch", ""), ("delete", ""), ("post", "close/"), ("post", "vote/")]:
        response = getattr(anon, method)(f"{POLLS}{missing_poll_id()}/{suffix}", {"x": 1})
        assert_error(response, 401, "not_authenticated")
    assert not Poll.objects.exists()


def test_an_anonymous_change_with_a_bad_body_is_401_not_400(poll, anon):
    before = db_state()

    patched = anon.patch(f"{POLLS}{poll.pk}/", {"title": ""}, format="json")
    voted = anon.post(f"{POLLS}{poll.pk}/vote/", {"options": "all"}, format="json")
    created = anon.post(POLLS, b"{", content_type="application/json")

    assert_error(patched, 401, "not_authenticated")
    assert_error(voted, 401, "not_authenticated")
    assert_error(created, 401, "not_authenticated")
    assert db_state() == before


def test_someone_else_changing_with_a_bad_body_is_403_not_400(poll, bob, client_for):
    before = db_state()

    response = client_for(bob).patch(
        f"{POLLS}{poll.pk}/", {"title": "", "options": "none"}, format="json"
    )

    assert_error(response, 403, "permission_denied")
    assert db_state() == before


def test_someone_else_changing_a_poll_with_votes_is_403_not_409(poll, bob, client_for):
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=option_ids(poll)[:1])
    before = db_state()

    response = client_for(bob).patch(
        f"{POLLS}{poll.pk}/", {"options": [{"text": "X"}, {"text": "Y"}]}, format="json"
    )

    assert_error(response, 403, "permission_denied")
    assert db_state() == before


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("patch", "", {"title": "", "options": "none"}),
        ("put", "", {}),
        ("post", "vote/", {"options": "all"}),
        ("post", "vote/", {"options": []}),
        ("post", "vote/", "not an object"),
        ("post", "vote/", b"{"),
        ("patch", "", b"{"),
    ],
    ids=[
        "update with bad fields",
        "put without the required fields",
        "vote with options not a list",
        "vote with no options",
        "vote that is not an object",
        "vote that is not JSON",
        "update that is not JSON",
    ],
)
def test_a_bad_body_on_a_missing_poll_is_404_not_400(poll, alice, client_for, method, suffix, body):
    before = db_state()
    url = f"{POLLS}{missing_poll_id()}/{suffix}"

    if isinstance(body, bytes):
        response = getattr(client_for(alice), method)(url, body, content_type="application/json")
    else:
        response = getattr(client_for(alice), method)(url, body, format="json")

    assert_error(response, 404, "not_found")
    assert db_state() == before


@pytest.mark.parametrize(
    "choice",
    ["unknown option", "option of another poll", "two options on a single-vote poll", "repeat"],
)
@pytest.mark.parametrize("state", ["closed", "already voted"])
def test_a_bad_ballot_is_400_even_when_the_vote_would_conflict(
    make_poll, alice, bob, client_for, closed_poll, poll, choice, state
):
    target = closed_poll if state == "closed" else poll
    if state == "already voted":
        services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=option_ids(poll)[:1])
    other = make_poll(created_by=alice, title="Dinner?")
    first, second = option_ids(target)
    options = {
        "unknown option": [max(Option.objects.values_list("pk", flat=True)) + 1000],
        "option of another poll": [option_ids(other)[0]],
        "two options on a single-vote poll": [first, second],
        "repeat": [second, second],
    }[choice]
    before = db_state()

    response = client_for(bob).post(
        f"{POLLS}{target.pk}/vote/", {"options": options}, format="json"
    )

    assert_validation_error(response, "options")
    assert db_state() == before


def test_a_bad_update_of_a_poll_with_votes_is_400_not_409(poll, alice, bob, client_for):
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=option_ids(poll)[:1])
    before = db_state()

    one_option = client_for(alice).patch(
        f"{POLLS}{poll.pk}/", {"options": [{"text": "Salad"}]}, format="json"
    )
    blank_title = client_for(alice).patch(
        f"{POLLS}{poll.pk}/",
        {"title": " ", "options": [{"text": "Salad"}, {"text": "Tea"}]},
        format="json",
    )
    past_expiry = client_for(alice).patch(
        f"{POLLS}{poll.pk}/",
        {"expires_at": "2000-01-01T00:00:00Z", "allow_multiple_votes": True},
        format="json",
    )

    assert_validation_error(one_option, "options")
    assert_validation_error(blank_title, "title")
    assert_validation_error(past_expiry, "expires_at")
    assert db_state() == before


def test_withdrawing_from_a_closed_poll_without_votes_is_poll_closed_not_not_voted(
    closed_poll, bob, client_for
):
    before = db_state()

    response = client_for(bob).delete(f"{POLLS}{closed_poll.pk}/vote/")

    assert_error(response, 409, "poll_closed")
    assert db_state() == before


def test_a_staff_user_on_a_missing_poll_gets_404(poll, make_user, client_for):
    staff = make_user("staff", is_staff=True)
    before = db_state()

    response = client_for(staff).delete(f"{POLLS}{missing_poll_id()}/")

    assert_error(response, 404, "not_found")
    assert db_state() == before


def test_someone_else_on_a_missing_poll_gets_404_not_403(poll, bob, client_for):
    before = db_state()

    response = client_for(bob).patch(
        f"{POLLS}{missing_poll_id()}/", {"title": "Mine"}, format="json"
    )

    assert_error(response, 404, "not_found")
    assert db_state() == before


# ---------------------------------------------------------------------------------------------
# Requests that break Django's or the database's limits still get JSON, never a 5xx


def test_an_option_without_its_text_in_a_patch_is_a_field_error(poll, alice, client_for):
    before = db_state()

    response = client_for(alice).patch(
        f"{POLLS}{poll.pk}/", {"options": [{"text": "Pizza"}, {}]}, format="json"
    )

    assert response.status_code == 400, response.content
    assert response.json() == {"options": ["Item 2: text: This field is required."]}
    assert db_state() == before


def test_an_overlong_options_list_is_refused_with_one_message(alice, client_for):
    response = client_for(alice).post(
        POLLS, {"title": "Pick", "options": [{"text": str(n)} for n in range(5000)]}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"options": ["A poll needs between 2 and 20 options."]}
    assert not Poll.objects.exists()


def test_a_path_with_a_newline_is_a_json_not_found(poll, anon):
    for path in (f"{POLLS}%0A", f"{POLLS}{poll.pk}%0A/", f"{POLLS}{poll.pk}/vote/%0A"):
        assert_error(anon.get(path), 404, "not_found")


def test_too_many_query_parameters_is_a_json_bad_request(poll, anon):
    query = "&".join(f"p{n}=1" for n in range(1500))

    assert_error(anon.get(f"{POLLS}?{query}"), 400, "parse_error")


def test_a_body_over_the_upload_limit_is_refused_as_json(poll, alice, client_for, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = db_state()

    response = client_for(alice).post(
        POLLS, {"title": "x" * 5000, "options": [{"text": "A"}, {"text": "B"}]}, format="json"
    )

    # The view reads the body through Django, which holds it to the limit before any parser
    # sees it, so the title's own limit (a 400) is never reached, whatever DRF's version.
    assert_error(response, 413, "request_too_large")
    assert db_state() == before


def test_a_nul_in_a_token_is_refused_never_a_server_error(poll, anon):
    response = anon.get(POLLS, HTTP_AUTHORIZATION="Token abc\x00def")

    # HTTP forbids a NUL in a header (and PostgreSQL could not even compare one): malformed.
    assert_error(response, 400, "parse_error")


def test_a_nul_in_the_session_cookie_is_refused_never_a_server_error(poll, anon):
    anon.cookies["sessionid"] = "abcdefgh\x00ijklmnop"

    response = anon.get(POLLS)

    assert_error(response, 400, "parse_error")


def test_the_error_wrapper_still_imports_from_its_former_home_with_a_warning():
    from django_polls import exceptions, views

    with pytest.warns(DeprecationWarning, match="django_polls.exceptions.with_error_codes"):
        moved = views.with_error_codes

    assert moved is exceptions.with_error_codes
    assert views.DatabaseUnavailable is exceptions.DatabaseUnavailable
    with pytest.raises(AttributeError):
        views.no_such_name  # noqa: B018
