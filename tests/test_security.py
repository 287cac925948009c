"""The OWASP API Security Top 10 (2023), in process: one section per item that applies.

Much of the list is proven where the behaviour itself is tested (test_api_polls, test_api_votes,
test_api_errors, test_concurrency, tests/example/); the tests here fill in what those leave out.
API7 (server-side request forgery) and API10 (unsafe consumption of APIs) do not apply: the app
fetches no URL and consumes no other API.
"""

from __future__ import annotations

import base64
import bz2
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from django_polls import services
from django_polls.models import Option, Poll, Vote, counted_votes
from tests.conftest import assert_error, db_state, login_of, option_ids, username_field

POLLS = "/api/v1/polls/"
REPO = Path(__file__).resolve().parents[1]


def poll_url(poll_id: int, suffix: str = "") -> str:
    return f"{POLLS}{poll_id}/{suffix}"


def vote_url(poll_id: int) -> str:
    return poll_url(poll_id, "vote/")


def counters(poll: Poll) -> dict[str, int]:
    return dict(
        Option.objects.filter(poll=poll)
        .annotate(counted=counted_votes())
        .values_list("text", "counted")
    )


@pytest.fixture
def staff(make_user: Callable[..., Any]) -> Any:
    return make_user("staff", is_staff=True)


# =============================================================================================
# API1:2023 Broken object level authorization
#
# Covered elsewhere:
# test_api_errors.py:
#   test_a_change_by_someone_else_is_permission_denied
# test_api_polls.py:
#   test_another_user_may_not_change_a_poll
#   test_another_user_may_not_delete_a_poll
#   test_another_user_may_not_close_a_poll
# test_api_votes.py:
#   test_a_voter_withdraws_their_vote
#   test_withdrawing_removes_every_vote_of_the_caller_on_a_multiple_vote_poll
#   test_a_voter_who_has_not_voted_sees_no_options
#   test_a_voter_sees_the_option_they_chose


def test_naming_another_voter_neither_reads_nor_withdraws_their_ballot(
    make_poll: Callable[..., Poll], alice: Any, bob: Any, client_for: Callable[[Any], APIClient]
) -> None:
    poll = make_poll(created_by=alice, allow_multiple_votes=True)
    pizza, soup = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza, soup])
    before = db_state()
    # Every way a client might try to point the request at Alice's ballot.
    name = alice.get_username()
    pointers = {"voter": alice.pk, "voter_id": alice.pk, "user": name, "user_id": alice.pk}
    bob_client = client_for(bob)

    read = bob_client.get(vote_url(poll.pk), pointers)
    withdrawn = bob_client.generic(
        "DELETE",
        f"{vote_url(poll.pk)}?voter={alice.pk}&user={name}",
        json.dumps(pointers, default=str),  # a key that is not a number (UUID) as a string
        content_type="application/json",
    )

    assert read.status_code == 200, read.content
    assert read.json() == {"voted": False, "options": []}
    assert_error(withdrawn, 404, "not_voted")
    assert db_state() == before
    assert client_for(alice).get(vote_url(poll.pk)).json() == {
        "voted": True,
        "options": [pizza, soup],
    }


def test_withdrawing_leaves_the_other_voters_ballots_and_counts(
    make_poll: Callable[..., Poll],
    alice: Any,
    bob: Any,
    make_user: Callable[..., Any],
    client_for: Callable[[Any], APIClient],
    anon: APIClient,
) -> None:
    poll = make_poll(created_by=alice, options=("Pizza", "Soup", "Salad"))
    pizza, soup, _ = option_ids(poll)
    carol = make_user("carol")
    services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza])
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[soup])
    services.cast_vote(poll_id=poll.pk, voter=carol, option_ids=[soup])

    # Bob withdraws twice: the second attempt finds nothing of his and removes nothing else.
    first = client_for(bob).delete(vote_url(poll.pk))
    second = client_for(bob).delete(vote_url(poll.pk))

    assert first.status_code == 204, first.content
    assert_error(second, 404, "not_voted")
    assert counters(poll) == {"Pizza": 1, "Soup": 1, "Salad": 0}
    assert sorted(Vote.objects.values_list(f"voter__{username_field()}", "option_id")) == [
        (login_of("alice"), pizza),
        (login_of("carol"), soup),
    ]
    assert anon.get(poll_url(poll.pk, "results/")).json()["total_votes"] == 2


def test_staff_replace_anyones_poll_with_put_and_it_stays_the_creators(
    make_poll: Callable[..., Poll], alice: Any, staff: Any, client_for: Callable[[Any], APIClient]
) -> None:
    poll = make_poll(created_by=alice)

    response = client_for(staff).put(
        poll_url(poll.pk),
        {"title": "Dinner?", "options": [{"text": "Curry"}, {"text": "Pasta"}]},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["created_by"] == "alice"
    stored = Poll.objects.get(pk=poll.pk)
    assert (stored.title, stored.created_by) == ("Dinner?", alice)
    assert list(
        Option.objects.filter(poll=poll).order_by("order").values_list("text", flat=True)
    ) == [
        "Curry",
        "Pasta",
    ]


# =============================================================================================
# API2:2023 Broken authentication
#
# Covered elsewhere:
# test_api_errors.py:
#   test_a_bad_token_fails_authentication_even_where_anyone_may_read
#   test_a_revoked_token_fails_authentication
#   test_the_token_of_a_deactivated_user_fails_authentication
#   test_a_nul_in_a_token_is_refused_never_a_server_error
# tests/example/test_end_to_end.py:
#   test_a_request_without_valid_credentials_gets_401_with_www_authenticate
#   test_token_refuses_bad_credentials

REVOKED = "revoked"
# Authorization headers, as a WSGI server hands them over (bytes decoded as Latin-1).
BAD_CREDENTIALS: dict[str, tuple[str | None, str]] = {
    "no credentials": (None, "not_authenticated"),
    "the keyword alone": ("Token", "authentication_failed"),
    "two keys": ("Token a b", "authentication_failed"),
    "a bearer token": ("Bearer 0123456789abcdef", "not_authenticated"),
    "the user's password over basic auth": (
        "Basic " + base64.b64encode(b"bob:correct horse battery staple").decode(),
        "not_authenticated",
    ),
    "a non-ASCII key": ("Token " + "ключ-🔑".encode().decode("latin-1"), "authentication_failed"),
    "a 10000-character key": ("Token " + "a" * 10_000, "authentication_failed"),
    "an unknown key": ("Token " + "f" * 40, "authentication_failed"),
    "a revoked key": (REVOKED, "authentication_failed"),
}
# Every endpoint that needs a signed-in caller.
SIGNED_IN_ENDPOINTS = {
    "create": ("post", ""),
    "update": ("patch", "{id}"),
    "replace": ("put", "{id}"),
    "delete": ("delete", "{id}"),
    "close": ("post", "{id}/close"),
    "vote": ("post", "{id}/vote"),
    "read own vote": ("get", "{id}/vote"),
    "withdraw": ("delete", "{id}/vote"),
}


@pytest.mark.parametrize(
    ("method", "target"), SIGNED_IN_ENDPOINTS.values(), ids=SIGNED_IN_ENDPOINTS.keys()
)
@pytest.mark.parametrize(
    ("authorization", "code"), BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys()
)
def test_bad_credentials_get_401_with_a_challenge_and_write_nothing(
    make_poll: Callable[..., Poll],
    bob: Any,
    client_for: Callable[[Any], APIClient],
    method: str,
    target: str,
    authorization: str | None,
    code: str,
) -> None:
    # Bob's own poll, with his vote: with valid credentials each request would succeed.
    poll = make_poll(created_by=bob)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=option_ids(poll)[:1])
    client = APIClient()
    if authorization == REVOKED:
        client = client_for(bob)
        Token.objects.filter(user=bob).delete()
    elif authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    path = POLLS + (target.format(id=poll.pk) + "/" if target else "")
    before = db_state()

    response = getattr(client, method)(
        path,
        {"title": "Dinner?", "options": [{"text": "Curry"}, {"text": "Pasta"}]}
        if target in {"", "{id}"}
        else {"options": option_ids(poll)[1:]},
        format="json",
    )

    assert_error(response, 401, code)
    assert response["WWW-Authenticate"] == "Token"
    assert db_state() == before


def test_a_key_in_the_query_string_is_not_a_credential(
    alice: Any, client_for: Callable[[Any], APIClient], anon: APIClient
) -> None:
    # A key in a URL ends up in access logs and browser histories: only the header counts.
    key = Token.objects.create(user=alice).key

    response = anon.post(
        f"{POLLS}?token={key}&auth_token={key}&key={key}",
        {"title": "Lunch?", "options": [{"text": "A"}, {"text": "B"}]},
        format="json",
    )

    assert_error(response, 401, "not_authenticated")
    assert not Poll.objects.exists()


def test_a_session_without_its_csrf_token_cannot_write(
    make_poll: Callable[..., Poll], alice: Any
) -> None:
    poll = make_poll(created_by=alice)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    before = db_state()

    attempts = [
        browser.post(POLLS, {"title": "X", "options": []}, content_type="application/json"),
        browser.patch(poll_url(poll.pk), {"title": "X"}, content_type="application/json"),
        browser.delete(poll_url(poll.pk)),
        browser.post(poll_url(poll.pk, "close/")),
        browser.post(vote_url(poll.pk), {"options": option_ids(poll)[:1]}, "application/json"),
    ]

    for response in attempts:
        body = assert_error(response, 403, "permission_denied")
        assert "CSRF" in body["detail"]
    assert db_state() == before
    # The session itself is good: reads work.
    assert browser.get(vote_url(poll.pk)).json() == {"voted": False, "options": []}


# =============================================================================================
# API3:2023 Broken object property level authorization
#
# Covered elsewhere:
# test_api_polls.py (id, created_at, created_by, is_active, total_votes, option ids):
#   test_read_only_fields_sent_on_create_change_nothing
#   test_read_only_fields_sent_on_update_change_nothing
# test_schema.py:
#   test_the_poll_schema_marks_server_fields_read_only


def test_model_fields_the_api_does_not_show_cannot_be_set_on_create(
    bob: Any, alice: Any, client_for: Callable[[Any], APIClient]
) -> None:
    response = client_for(alice).post(
        POLLS,
        {
            "title": "Lunch?",
            "closed_at": "2000-01-01T00:00:00Z",
            "created_by": {"id": bob.pk, "username": "bob"},
            "created_by_id": bob.pk,
            "options": [
                {"text": "Pizza", "votes": 1000, "order": 7, "poll": 1},
                {"text": "Soup", "votes": 5, "order": 0, "poll_id": 1},
            ],
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    poll = Poll.objects.get()
    assert poll.created_by == alice
    assert poll.closed_at is None
    assert response.json()["is_active"] is True
    assert list(Option.objects.order_by("order").values_list("text", "order", "votes")) == [
        ("Pizza", 0, 0),
        ("Soup", 1, 0),
    ]
    assert not Vote.objects.exists()


@pytest.mark.parametrize(
    "change",
    [
        {"closed_at": None},
        {"is_active": True},
        {"closed_at": None, "is_active": True, "title": "Open again?"},
    ],
    ids=["closed_at null", "is_active true", "both with a title"],
)
def test_a_closed_poll_cannot_be_reopened_through_its_properties(
    make_poll: Callable[..., Poll],
    alice: Any,
    client_for: Callable[[Any], APIClient],
    change: dict[str, Any],
) -> None:
    poll = make_poll(created_by=alice)
    services.close_poll(poll=poll)
    closed_at = Poll.objects.get(pk=poll.pk).closed_at

    response = client_for(alice).patch(poll_url(poll.pk), change, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is False
    assert Poll.objects.get(pk=poll.pk).closed_at == closed_at


def test_an_open_poll_is_not_closed_or_recounted_through_its_properties(
    make_poll: Callable[..., Poll], alice: Any, bob: Any, client_for: Callable[[Any], APIClient]
) -> None:
    poll = make_poll(created_by=alice)
    pizza, soup = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[soup])
    before = db_state()

    response = client_for(alice).patch(
        poll_url(poll.pk),
        {
            "closed_at": "2000-01-01T00:00:00Z",
            "created_by_id": bob.pk,
            # The same texts in the same order are "unchanged"; the counts must not ride along.
            "options": [
                {"id": pizza, "text": "Pizza", "votes": 500},
                {"id": soup, "text": "Soup", "votes": 0},
            ],
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is True
    assert response.json()["total_votes"] == 1
    assert db_state() == before


def test_a_ballot_is_always_the_callers_on_the_polls_in_the_path(
    make_poll: Callable[..., Poll], alice: Any, bob: Any, client_for: Callable[[Any], APIClient]
) -> None:
    poll = make_poll(created_by=alice)
    other = make_poll(created_by=alice, title="Dinner?")
    pizza, _ = option_ids(poll)

    response = client_for(bob).post(
        vote_url(poll.pk),
        {
            "options": [pizza],
            "voter": alice.pk,
            "voter_id": alice.pk,
            "user": "alice",
            "poll": other.pk,
            "poll_id": other.pk,
            "created_at": "2000-01-01T00:00:00Z",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["poll"] == poll.pk
    vote = Vote.objects.get()
    assert (vote.voter, vote.poll_id, vote.option_id) == (bob, poll.pk, pizza)
    assert vote.created_at.year > 2000
    assert not Vote.objects.filter(poll=other).exists()


def test_no_response_shows_passwords_emails_tokens_or_who_voted(
    make_poll: Callable[..., Poll],
    make_user: Callable[..., Any],
    client_for: Callable[[Any], APIClient],
    anon: APIClient,
) -> None:
    owner = make_user("owner_qx", email="owner.qx@private.example")
    voter = make_user("voter_zq", email="voter.zq@private.example")
    poll = make_poll(created_by=owner, allow_multiple_votes=True)
    pizza, soup = option_ids(poll)
    owners, voters = client_for(owner), client_for(voter)

    responses = [
        voters.post(vote_url(poll.pk), {"options": [pizza]}, format="json"),
        voters.post(vote_url(poll.pk), {"options": [pizza]}, format="json"),  # 409
        voters.post(vote_url(poll.pk), {"options": ["x"]}, format="json"),  # 400
        voters.get(vote_url(poll.pk)),
        voters.patch(poll_url(poll.pk), {"title": "Mine"}, format="json"),  # 403
        anon.get(POLLS),
        anon.get(POLLS, {"search": "voter_zq"}),
        anon.get(poll_url(poll.pk)),
        anon.get(poll_url(poll.pk, "results/")),
        owners.get(poll_url(poll.pk)),
        owners.get(poll_url(poll.pk, "results/")),
        owners.patch(poll_url(poll.pk), {"options": [{"text": "A"}, {"text": "B"}]}, format="json"),
        owners.post(poll_url(poll.pk, "close/")),
        voters.post(vote_url(poll.pk), {"options": [soup]}, format="json"),  # closed: 409
        owners.delete(vote_url(poll.pk)),  # closed: 409
    ]

    secrets_shown = [
        "private.example",
        "voter_zq",  # who voted is nobody's business, not even the poll owner's
        owner.password,
        voter.password,
        Token.objects.get(user=owner).key,
        Token.objects.get(user=voter).key,
    ]
    for response in responses:
        text = response.content.decode()
        assert not any(secret in text for secret in secrets_shown), text
        assert not re.search(r'"(email|password|token|voter|last_login)"', text), text
    assert {r.status_code for r in responses} == {200, 201, 400, 403, 409}


# =============================================================================================
# API4:2023 Unrestricted resource consumption
#
# Covered elsewhere:
# test_api_polls.py:
#   test_a_page_size_above_100_is_clamped_to_100
#   test_a_page_past_the_end_is_not_found
#   test_a_search_longer_than_200_characters_is_rejected
# test_api_errors.py:
#   test_an_unparsable_json_body_is_a_parse_error (100000-deep nesting)
#   test_an_overlong_options_list_is_refused_with_one_message (5000 options)
#   test_a_ballot_naming_more_options_than_a_poll_may_have_is_a_validation_error (10000 ids)
#   test_a_huge_poll_id_is_not_found_never_a_server_error
#   test_too_many_query_parameters_is_a_json_bad_request
#   test_odd_query_parameters_never_cause_a_server_error
#   test_a_body_over_the_upload_limit_is_refused_as_json
# tests/example/test_throttling.py (429 with Retry-After):
#   test_rates_come_from_the_environment_and_excess_gets_429
#   test_four_workers_share_one_limit_through_redis


def body_of_size(size: int) -> bytes:
    """A well-formed poll of exactly ``size`` bytes, padded in its description."""
    empty = {"title": "Lunch?", "description": "", "options": [{"text": "A"}, {"text": "B"}]}
    padding = size - len(json.dumps(empty).encode())
    return json.dumps({**empty, "description": "d" * padding}).encode()


WRITES = {
    "create": ("POST", ""),
    "update": ("PATCH", "{id}/"),
    "replace": ("PUT", "{id}/"),
    "vote": ("POST", "{id}/vote/"),
}


@pytest.mark.parametrize(("method", "target"), WRITES.values(), ids=WRITES.keys())
def test_a_body_one_byte_over_djangos_limit_is_413_and_stores_nothing(
    make_poll: Callable[..., Poll],
    alice: Any,
    client_for: Callable[[Any], APIClient],
    method: str,
    target: str,
) -> None:
    poll = make_poll(created_by=alice)
    limit = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # Django's default: 2.5 MiB
    client = client_for(alice)
    path = POLLS + target.format(id=poll.pk)
    before = db_state()

    too_big = client.generic(method, path, body_of_size(limit + 1), "application/json")
    at_limit = client.generic(method, path, body_of_size(limit), "application/json")

    assert_error(too_big, 413, "request_too_large")
    # At the limit the body is read, and refused by the rules (description, ballot shape).
    assert at_limit.status_code == 400, at_limit.content[:300]
    assert db_state() == before


def test_a_bz2_charset_cannot_turn_a_small_body_into_a_huge_one(
    make_poll: Callable[..., Poll], alice: Any, client_for: Callable[[Any], APIClient]
) -> None:
    poll = make_poll(created_by=alice)
    # 10 MB of JSON in a few hundred bytes: Django's limit only ever sees the compressed size.
    bomb = bz2.compress(b'{"options": [' + b" " * 10_000_000 + b"1]}")
    before = db_state()

    response = client_for(alice).generic(
        "POST", vote_url(poll.pk), bomb, content_type="application/json; charset=bz2_codec"
    )

    assert len(bomb) < 1000
    assert_error(response, 400, "parse_error")
    assert db_state() == before


def test_a_huge_page_size_is_clamped_to_max_page_size(
    make_poll: Callable[..., Poll], anon: APIClient, settings: Any
) -> None:
    settings.DJANGO_POLLS = {"MAX_PAGE_SIZE": 2}
    for _ in range(3):
        make_poll()

    response = anon.get(POLLS, {"page_size": str(10**30)})

    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 2
    assert response.json()["count"] == 3


@pytest.mark.parametrize("page", [str(10**30), "9" * 5000, "0", "-1", "last_but_one"])
def test_a_page_no_list_has_is_a_json_404(
    make_poll: Callable[..., Poll], anon: APIClient, page: str
) -> None:
    make_poll()

    assert_error(anon.get(POLLS, {"page": page}), 404, "not_found")


def test_thousands_of_options_in_an_update_are_refused_and_change_nothing(
    make_poll: Callable[..., Poll], alice: Any, client_for: Callable[[Any], APIClient]
) -> None:
    poll = make_poll(created_by=alice)
    before = db_state()

    response = client_for(alice).patch(
        poll_url(poll.pk), {"options": [{"text": str(n)} for n in range(5000)]}, format="json"
    )

    assert response.status_code == 400, response.content[:300]
    assert response.json() == {"options": ["A poll needs between 2 and 20 options."]}
    assert db_state() == before


HOSTILE_BALLOTS = {
    "an id of 5000 digits": b'{"options": [' + b"9" * 5000 + b"]}",
    "an id past any float": b'{"options": [1e400]}',
    "100000 ids": b'{"options": [' + b",".join(b"%d" % n for n in range(1, 100_001)) + b"]}",
    "an id of a million characters": b'{"options": ["' + b"1" * 1_000_000 + b'"]}',
}


@pytest.mark.parametrize("body", HOSTILE_BALLOTS.values(), ids=HOSTILE_BALLOTS.keys())
def test_a_hostile_ballot_is_a_json_400_and_stores_nothing(
    make_poll: Callable[..., Poll], alice: Any, client_for: Callable[[Any], APIClient], body: bytes
) -> None:
    poll = make_poll(created_by=alice)
    client = client_for(alice)
    client.raise_request_exception = False  # a server error as a visitor sees it
    before = db_state()

    response = client.generic("POST", vote_url(poll.pk), body, content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert isinstance(response.json(), dict)
    assert db_state() == before


# =============================================================================================
# API5:2023 Broken function level authorization
#
# Covered elsewhere (staff's functions work):
# test_api_polls.py:
#   test_the_owner_or_staff_change_the_title_and_nothing_else
#   test_the_owner_or_staff_delete_a_poll_with_its_options_and_votes
#   test_the_owner_or_staff_close_a_poll
# test_admin.py (what staff do in the admin)


def test_model_permissions_do_not_make_an_ordinary_user_a_poll_manager(
    make_poll: Callable[..., Poll],
    alice: Any,
    bob: Any,
    client_for: Callable[[Any], APIClient],
) -> None:
    # The admin's permissions are for the admin; the API's rule is "the creator or staff".
    bob.user_permissions.set(Permission.objects.filter(content_type__app_label="django_polls"))
    poll = make_poll(created_by=alice)
    client = client_for(bob)
    before = db_state()

    answers = [
        client.patch(poll_url(poll.pk), {"title": "Mine"}, format="json"),
        client.delete(poll_url(poll.pk)),
        client.post(poll_url(poll.pk, "close/")),
    ]

    for response in answers:
        assert_error(response, 403, "permission_denied")
    assert db_state() == before


@pytest.fixture
def voted_poll(make_poll: Callable[..., Poll], alice: Any, bob: Any) -> Poll:
    poll = make_poll(created_by=alice)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=option_ids(poll)[:1])
    return poll


def admin_attempts(client: Client, poll: Poll) -> list[Any]:
    """Read the poll list, delete the poll, close it with the bulk action, delete a vote."""
    vote = Vote.objects.get(poll=poll)
    users = get_user_model()._meta
    return [
        client.get("/admin/"),
        client.get("/admin/django_polls/poll/"),
        client.get(f"/admin/django_polls/poll/{poll.pk}/change/"),
        client.post(f"/admin/django_polls/poll/{poll.pk}/delete/", {"post": "yes"}),
        client.post(
            "/admin/django_polls/poll/",
            {"action": "close_polls", "_selected_action": [poll.pk]},
        ),
        client.post(f"/admin/django_polls/vote/{vote.pk}/delete/", {"post": "yes"}),
        client.get(f"/admin/{users.app_label}/{users.model_name}/"),
    ]


def test_the_admin_sends_an_ordinary_user_to_its_login_page(voted_poll: Poll, bob: Any) -> None:
    client = Client()
    client.force_login(bob)
    before = db_state()

    for response in admin_attempts(client, voted_poll):
        assert response.status_code == 302, response.request
        assert response["Location"].startswith("/admin/login/")
    assert db_state() == before


def test_an_api_token_does_not_open_the_admin(
    voted_poll: Poll, make_user: Callable[..., Any]
) -> None:
    superuser = make_user("root", is_staff=True, is_superuser=True)
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=superuser).key}")
    before = db_state()

    for response in admin_attempts(client, voted_poll):
        assert response.status_code == 302, response.request
        assert response["Location"].startswith("/admin/login/")
    assert db_state() == before


def test_staff_without_permissions_cannot_change_polls_in_the_admin(
    voted_poll: Poll, staff: Any
) -> None:
    client = Client()
    client.force_login(staff)
    before = db_state()

    index, *others = admin_attempts(client, voted_poll)

    assert index.status_code == 200
    assert [response.status_code for response in others] == [403] * len(others)
    assert db_state() == before


# =============================================================================================
# API6:2023 Unrestricted access to sensitive business flows (the vote)
#
# Covered elsewhere:
# test_api_errors.py:
#   test_a_second_vote_on_a_single_vote_poll_is_refused_as_already_voted
#   test_a_vote_on_a_closed_poll_is_refused_as_poll_closed
#   test_a_bad_ballot_is_400_even_when_the_vote_would_conflict (another poll's option, repeats)
# test_api_votes.py:
#   test_a_multiple_vote_poll_never_counts_one_option_twice_for_a_voter
#   test_a_ballot_that_repeats_an_earlier_choice_stores_none_of_its_options
#   test_a_finished_poll_refuses_ballots
#   test_a_voter_can_vote_again_after_withdrawing
#   test_votes_on_a_finished_poll_cannot_be_withdrawn
# test_api_polls.py:
#   test_the_options_and_vote_mode_of_a_poll_with_votes_cannot_change
#   test_a_closed_poll_stays_closed_when_its_expiry_moves_to_the_future
# test_concurrency.py (PostgreSQL):
#   test_simultaneous_identical_ballots_via_api_get_one_201_and_409s
#   test_simultaneous_ballots_naming_options_in_opposite_orders_store_one_ballot_each
#   test_close_racing_votes_accepts_no_vote_after_the_close
# tests/example/test_end_to_end.py:
#   test_one_voter_sending_the_same_ballot_at_once_is_counted_once


def test_withdrawing_and_voting_again_never_holds_more_than_one_ballot(
    make_poll: Callable[..., Poll], alice: Any, bob: Any, client_for: Callable[[Any], APIClient]
) -> None:
    poll = make_poll(created_by=alice)
    pizza, soup = option_ids(poll)
    client = client_for(bob)

    for _ in range(3):
        assert (
            client.post(vote_url(poll.pk), {"options": [pizza]}, format="json").status_code == 201
        )
        assert_error(
            client.post(vote_url(poll.pk), {"options": [soup]}, format="json"), 409, "already_voted"
        )
        assert client.delete(vote_url(poll.pk)).status_code == 204
    assert client.post(vote_url(poll.pk), {"options": [soup]}, format="json").status_code == 201

    assert counters(poll) == {"Pizza": 0, "Soup": 1}
    assert Vote.objects.filter(voter=bob).count() == 1


def test_a_multiple_vote_poll_holds_at_most_one_vote_per_option_whatever_the_order(
    make_poll: Callable[..., Poll], alice: Any, bob: Any, client_for: Callable[[Any], APIClient]
) -> None:
    poll = make_poll(created_by=alice, options=("A", "B", "C"), allow_multiple_votes=True)
    a, b, c = option_ids(poll)
    client = client_for(bob)

    def ballot(*ids: int) -> Any:
        return client.post(vote_url(poll.pk), {"options": list(ids)}, format="json")

    assert ballot(a, b, c).status_code == 201
    assert client.delete(vote_url(poll.pk)).status_code == 204
    assert ballot(a).status_code == 201
    assert_error(ballot(b, a), 409, "already_voted")  # no partial ballot: B is not stored
    assert ballot(c, b).status_code == 201
    for again in ([a], [b], [c], [c, a]):
        assert_error(ballot(*again), 409, "already_voted")

    assert counters(poll) == {"A": 1, "B": 1, "C": 1}
    assert Vote.objects.filter(voter=bob).count() == 3


def test_a_form_repeating_the_options_field_is_not_a_second_ballot(
    make_poll: Callable[..., Poll], alice: Any, bob: Any, client_for: Callable[[Any], APIClient]
) -> None:
    poll = make_poll(created_by=alice)
    pizza, soup = option_ids(poll)
    before = db_state()

    response = client_for(bob).post(vote_url(poll.pk), {"options": [pizza, soup]})

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["options"]
    assert db_state() == before


# =============================================================================================
# API8:2023 Security misconfiguration: nothing secret is tracked by git
#
# The example project's production posture (check --deploy, headers over HTTPS, CORS, DEBUG off):
# tests/example/test_settings.py and tests/example/test_security.py.

# The one key the repository may hold: the example's, used only with DEBUG=true (its settings
# refuse to start without SECRET_KEY otherwise, as test_settings.py shows in
# test_production_refuses_to_start_without_a_secret_key). Test-only keys say so in their value.
DEVELOPMENT_KEY = "django-insecure-development-key-for-debug-only"
NOT_A_SECRET = re.compile(r"not-(?:a-)?secret")
# SECRET_KEY = "value", "SECRET_KEY": "value", SECRET_KEY=value (shell, .env, tox.ini).
# Placeholders (<...>) and shell substitutions ($...) are not values.
SECRET_KEY_VALUE = re.compile(
    r"""SECRET_KEY["']?\s*[:=]\s*"""
    r"""(?:"([^"\s<$][^"\s]{19,})"|'([^'\s<$][^'\s]{19,})'|([^"'\s<$][^"'\s]{19,})(?=\s|$))"""
)
CREDENTIALS = {
    "a private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    "a Django password hash": re.compile(
        r"\b(?:pbkdf2_sha256|pbkdf2_sha1|argon2|bcrypt_sha256|scrypt)\$[^\s\"']{20,}"
    ),
    "an AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "a GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "a Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
}


def tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an sdist, say): nothing is tracked")
    paths = [REPO / name for name in listed.decode().split("\0") if name]
    return [path for path in paths if path.is_file()]


def test_no_secret_is_tracked_by_git() -> None:
    found: list[str] = []
    for path in tracked_files():
        name = path.relative_to(REPO).as_posix()
        if path.name == ".env" or (path.name.startswith(".env.") and path.suffix != ".example"):
            found.append(f"{name}: an environment file")
        if "/fixtures/" in f"/{name}" and re.search(r"authtoken|password", path.read_text()):
            found.append(f"{name}: a fixture with accounts or tokens")
        text = path.read_bytes().decode("utf-8", errors="replace")
        for match in SECRET_KEY_VALUE.finditer(text):
            value = next(group for group in match.groups() if group)
            if value != DEVELOPMENT_KEY and not NOT_A_SECRET.search(value):
                found.append(f"{name}: SECRET_KEY {value[:12]}...")
        for what, pattern in CREDENTIALS.items():
            if pattern.search(text):
                found.append(f"{name}: {what}")
    assert found == []


def test_the_scan_finds_what_it_looks_for() -> None:
    # Spelled in two pieces, so that this file does not hold what it describes.
    name = "SECRET" + "_KEY"
    key = "k8#f0a9(s8df70a9s8d7f0a9s8d7f$-x"
    for written in (f'{name} = "{key}"', f"{name}={key}\n", f"'{name}': '{key}'"):
        assert SECRET_KEY_VALUE.search(written), written
    for written in (
        f'{name} = config("{name}", default="")',
        f"{name}='<50+ random characters>'",
        f'{name}="$(cat .demo/secret-key)"',
        f"{name}=",
    ):
        assert not SECRET_KEY_VALUE.search(written), written
    header = "-----BEGIN " + "OPENSSH PRIVATE KEY-----"
    assert CREDENTIALS["a private key"].search(header)
    assert CREDENTIALS["a Django password hash"].search("pbkdf2_sha256$870000$" + "a" * 22)


def test_a_local_env_file_is_ignored_by_git() -> None:
    tracked_files()  # skips outside a git checkout
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "example_project/.env"], cwd=REPO, timeout=60
    )
    assert ignored.returncode == 0
