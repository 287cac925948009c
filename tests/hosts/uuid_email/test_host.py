"""What is particular to a site whose users have UUID keys and sign in by e-mail.

The app's whole suite runs under this host too (tox: host-uuid, host-uuid-pg); these tests add
the ballots of such users through every way the database may bind them, and the names that
poll bodies show for them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from rest_framework.test import APIClient

from django_polls.models import Poll, Vote
from tests.conftest import option_ids

pytestmark = pytest.mark.django_db

# On PostgreSQL the ballot is one statement, bound by the client (Django's default) or, where the
# site allows prepared statements, on the server and prepared once per connection.
BINDINGS = ["client", "server"] if connection.vendor == "postgresql" else ["orm"]


@pytest.fixture(params=BINDINGS)
def binding(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "orm":
        yield request.param
        return
    connection.ensure_connection()
    raw = connection.connection
    before = raw.prepare_threshold
    # What DATABASES["default"]["OPTIONS"]["prepare_threshold"] sets, for this connection only.
    raw.prepare_threshold = 0 if request.param == "server" else None
    try:
        yield request.param
    finally:
        raw.prepare_threshold = before


def prepared_ballots() -> int:
    """How many ballot statements this connection has prepared on the server."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements"
            " WHERE statement LIKE %s AND statement LIKE %s",
            ["%pg_advisory_xact_lock_shared%", "%INSERT INTO%"],
        )
        return int(cursor.fetchone()[0])


def test_users_of_this_site_have_uuid_keys_and_sign_in_by_email(alice: Any) -> None:
    assert isinstance(alice.pk, uuid.UUID)
    assert alice.get_username() == "alice@example.com"
    assert not hasattr(alice, "username")


def test_users_with_uuid_keys_vote_see_and_withdraw_their_ballots_over_http(
    binding: str,
    make_poll: Callable[..., Poll],
    alice: Any,
    bob: Any,
    client_for: Callable[[Any], APIClient],
) -> None:
    poll = make_poll(allow_multiple_votes=True, options=("Pizza", "Soup", "Salad"))
    pizza, soup, salad = option_ids(poll)
    url = f"/api/v1/polls/{poll.pk}/vote/"

    voted = [
        client_for(alice).post(url, {"options": [pizza, soup]}, format="json"),
        client_for(bob).post(url, {"options": [soup]}, format="json"),
    ]

    assert [response.status_code for response in voted] == [201, 201], voted[0].content
    if binding != "orm":
        # Server-side: both voters' ballots ran through one statement, prepared once. (Checked
        # now: psycopg forgets its prepared statements when a refused ballot rolls back.)
        assert prepared_ballots() == (1 if binding == "server" else 0)
    assert sorted(Vote.objects.values_list("voter_id", "option_id")) == sorted(
        [(alice.pk, pizza), (alice.pk, soup), (bob.pk, soup)]
    )
    assert client_for(alice).get(url).json() == {"voted": True, "options": [pizza, soup]}
    results = client_for(None).get(f"/api/v1/polls/{poll.pk}/results/").json()
    assert [option["votes"] for option in results["options"]] == [1, 2, 0]
    # A repeated choice is refused by the unique index on (poll, voter, option), UUID and all.
    again = client_for(bob).post(url, {"options": [soup, salad]}, format="json")
    assert again.status_code == 409, again.content
    assert again.json()["code"] == "already_voted"
    assert client_for(bob).delete(url).status_code == 204
    assert list(Vote.objects.filter(voter=bob)) == []


def test_a_poll_body_shows_the_public_name_not_the_email_address(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any], anon: APIClient
) -> None:
    owner = make_user(email="dana.lee@private.example")
    poll = make_poll(created_by=owner)

    body = anon.get(f"/api/v1/polls/{poll.pk}/").content.decode()
    with override_settings(DJANGO_POLLS={}):
        by_default = anon.get(f"/api/v1/polls/{poll.pk}/").json()["created_by"]

    assert '"created_by":"dana.lee"' in body
    assert "private.example" not in body
    # Without USER_DISPLAY a poll shows the username, which on this site is the address.
    assert by_default == "dana.lee@private.example"


def test_staff_find_votes_by_the_voters_email_in_the_admin(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any], alice: Any, bob: Any
) -> None:
    poll = make_poll()
    pizza, soup = option_ids(poll)
    for voter, option in ((alice, pizza), (bob, soup)):
        Vote.objects.create(poll=poll, option_id=option, voter=voter, poll_allows_multiple=False)
    admin = Client()
    admin.force_login(make_user("root", is_staff=True, is_superuser=True))

    found = admin.get("/admin/django_polls/vote/", {"q": "bob@example.com"})

    assert found.status_code == 200
    assert list(found.context["cl"].result_list) == list(Vote.objects.filter(voter=bob))
