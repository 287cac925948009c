"""SQL statements per request on the hot endpoints, pinned.

Inside a test transaction Django's atomic blocks become SAVEPOINT / RELEASE SAVEPOINT, and those
are counted. PostgreSQL and SQLite differ in how they lock: on PostgreSQL, shared or exclusive
locks on the poll and ``FOR NO KEY UPDATE`` on option rows; on SQLite, one extra statement that
takes the write lock first. On PostgreSQL a ballot is a single statement; the last tests count
what really crosses the wire there, outside any test transaction.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from django_polls import services
from tests.conftest import on_postgresql, option_ids

# Token authentication: one SELECT of the token joined to its user.
AUTH = 1
# COUNT(*) for the paginator, the page of polls joined to their creators, their options.
LIST = 3
# The poll joined to its creator, its options.
DETAIL = 2
# On SQLite a ballot's first statement takes the database's write lock (an UPDATE of the poll
# row), so that it waits for other writers instead of failing with "database is locked".
SQLITE_WRITE_LOCK = 1 if connection.vendor == "sqlite" else 0
# PostgreSQL: SAVEPOINT, the whole ballot in one statement, RELEASE SAVEPOINT (outside a
# transaction, the statement alone). Elsewhere: SAVEPOINT, the poll, the ballot's options (locked
# in id order), the voter's participation (locked), its INSERT, the count of voters (an upsert),
# one INSERT of every vote, one UPDATE of every counter, the webhook subscriptions that hear of
# it, RELEASE SAVEPOINT; on a multiple-vote poll without a maximum, the count of its options (the
# most a ballot may hold).
VOTE = AUTH + (3 if connection.vendor == "postgresql" else 10 + SQLITE_WRITE_LOCK)
VOTE_MULTIPLE = VOTE + (0 if connection.vendor == "postgresql" else 1)
# The poll's options joined to the poll.
RESULTS = 1
# The poll (404 without one) with whether the caller voted; when they did, their options.
MY_VOTE = AUTH + 2
MY_VOTE_NONE = AUTH + 1
# SAVEPOINT, the poll (shared locks), the caller's options, those options locked in id order, the
# caller's participation (locked), their vote rows on those options, one DELETE, one UPDATE of the
# counters, the participation's DELETE, the count of voters, the history's INSERT, the webhook
# subscriptions that hear of it, RELEASE SAVEPOINT; on PostgreSQL the NOTIFY for live results
# streams (elsewhere they hear of it on commit).
LIVE_NOTIFY = 1 if connection.vendor == "postgresql" else 0
RETRACT = AUTH + 13 + SQLITE_WRITE_LOCK + LIVE_NOTIFY


def texts(count: int) -> list[str]:
    return [f"Option {index}" for index in range(count)]


@pytest.mark.parametrize(
    ("polls", "options_per_poll"), [(1, 2), (20, 20)], ids=["1 poll of 2", "20 polls of 20"]
)
@pytest.mark.parametrize(
    ("signed_in", "expected"), [(False, LIST), (True, AUTH + LIST)], ids=["anonymous", "token"]
)
def test_the_poll_list_takes_the_same_queries_however_full_the_page(
    make_poll,
    make_user,
    alice,
    client_for,
    django_assert_num_queries,
    polls,
    options_per_poll,
    signed_in,
    expected,
):
    for _ in range(polls):
        poll = make_poll(options=texts(options_per_poll))
        services.cast_vote(poll_id=poll.pk, voter=make_user(), option_ids=option_ids(poll)[:1])
    client = client_for(alice if signed_in else None)

    with django_assert_num_queries(expected):
        response = client.get(reverse("django_polls:poll-list"))

    assert response.status_code == 200
    body = response.json()
    assert len(body["results"]) == polls
    assert all(len(poll["options"]) == options_per_poll for poll in body["results"])
    assert all(poll["total_votes"] == 1 for poll in body["results"])


@pytest.mark.parametrize("status", [None, "open", "scheduled"], ids=["all", "open", "scheduled"])
def test_the_poll_list_of_polls_with_every_policy_takes_the_same_queries(
    make_poll, make_user, anon, django_assert_num_queries, status
):
    # Each poll its own voter group (shown by name) and policies, opening in the past or later.
    for index in range(20):
        make_poll(
            options=texts(4),
            method="multiple",
            min_choices=2,
            max_choices=3,
            opens_at=timezone.now() + timedelta(days=1 if index % 2 else -1),
            results_visibility="after_close",
            anonymity="public",
            allow_vote_change=False,
            voter_group=Group.objects.create(name=f"Group {index}"),
        )
    params = {} if status is None else {"status": status}

    with django_assert_num_queries(LIST):
        response = anon.get(reverse("django_polls:poll-list"), params)

    assert response.status_code == 200
    polls = response.json()["results"]
    assert len(polls) == (20 if status is None else 10)
    assert all(poll["voter_group"].startswith("Group ") for poll in polls)
    assert all((poll["min_choices"], poll["max_choices"]) == (2, 3) for poll in polls)


def test_a_poll_is_read_in_two_queries(make_poll, anon, django_assert_num_queries):
    poll = make_poll(options=texts(20))

    with django_assert_num_queries(DETAIL):
        response = anon.get(reverse("django_polls:poll-detail", args=[poll.pk]))

    assert response.status_code == 200
    assert len(response.json()["options"]) == 20


@pytest.mark.parametrize(
    ("allow_multiple_votes", "chosen", "expected"),
    [(False, 1, VOTE), (True, 5, VOTE_MULTIPLE)],
    ids=["one option", "five options"],
)
def test_a_ballot_is_stored_in_a_fixed_number_of_queries(
    make_poll, alice, client_for, django_assert_num_queries, allow_multiple_votes, chosen, expected
):
    poll = make_poll(options=texts(6), allow_multiple_votes=allow_multiple_votes)
    ballot = option_ids(poll)[:chosen]
    client = client_for(alice)

    with django_assert_num_queries(expected):
        response = client.post(
            reverse("django_polls:poll-vote", args=[poll.pk]), {"options": ballot}, format="json"
        )

    assert response.status_code == 201, response.content
    assert response.json()["options"] == ballot


def test_results_are_read_in_one_query(make_poll, make_user, anon, django_assert_num_queries):
    poll = make_poll(options=texts(20))
    for option_id in option_ids(poll)[:3]:
        services.cast_vote(poll_id=poll.pk, voter=make_user(), option_ids=[option_id])

    with django_assert_num_queries(RESULTS):
        response = anon.get(reverse("django_polls:poll-results", args=[poll.pk]))

    assert response.status_code == 200
    assert response.json()["total_votes"] == 3


@pytest.mark.parametrize(
    ("voted", "expected"), [(True, MY_VOTE), (False, MY_VOTE_NONE)], ids=["voted", "not voted"]
)
def test_ones_own_vote_is_read_in_a_fixed_number_of_queries(
    make_poll, alice, client_for, django_assert_num_queries, voted, expected
):
    poll = make_poll(options=texts(6), allow_multiple_votes=True)
    chosen = option_ids(poll)[:3] if voted else []
    if voted:
        services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=chosen)
    client = client_for(alice)

    with django_assert_num_queries(expected):
        response = client.get(reverse("django_polls:poll-vote", args=[poll.pk]))

    assert response.status_code == 200
    assert response.json() == {"voted": voted, "options": chosen}


@pytest.mark.parametrize("votes", [1, 5], ids=["one vote", "five votes"])
def test_withdrawing_takes_a_fixed_number_of_queries(
    make_poll, alice, client_for, django_assert_num_queries, votes
):
    poll = make_poll(options=texts(6), allow_multiple_votes=True)
    services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=option_ids(poll)[:votes])
    client = client_for(alice)

    with django_assert_num_queries(RETRACT):
        response = client.delete(reverse("django_polls:poll-vote", args=[poll.pk]))

    assert response.status_code == 204
    assert poll.votes.count() == 0


@contextlib.contextmanager
def on_the_wire() -> Iterator[list[str]]:
    """The statements the client sends PostgreSQL (libpq's protocol trace), BEGIN and COMMIT
    included, filled in when the block ends: the text of each simple query, 'PARSE "<name>"
    "<text>"' when a statement is prepared and "EXECUTE" for each run of a prepared or bound
    statement."""
    sent: list[str] = []
    connection.ensure_connection()
    pgconn = connection.connection.pgconn  # type: ignore[union-attr]
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(trace.fileno())
        try:
            yield sent
        finally:
            pgconn.untrace()
        trace.seek(0)
        for line in trace.read().decode().splitlines():  # statements may span lines
            fields = line.split("\t")
            if len(fields) > 4 and fields[1] == "F":
                if fields[3] == "Query":
                    sent.append(fields[4].strip())
                elif fields[3] == "Parse":
                    sent.append(f"PARSE {fields[4].strip()}")
                elif fields[3] == "Execute":
                    sent.append("EXECUTE")


def statements(wire: list[str]) -> list[str]:
    """What ran: the simple queries and the executions, not the preparations."""
    return [message for message in wire if not message.startswith("PARSE ")]


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("chosen", [1, 5], ids=["one option", "five options"])
def test_on_postgresql_a_ballot_is_two_statements_on_the_wire(make_poll, alice, client_for, chosen):
    poll = make_poll(options=texts(6), allow_multiple_votes=True)
    ballot = option_ids(poll)[:chosen]
    client = client_for(alice)

    with on_the_wire() as wire:
        response = client.post(
            reverse("django_polls:poll-vote", args=[poll.pk]), {"options": ballot}, format="json"
        )

    assert response.status_code == 201, response.content
    # The token joined to its user, then the ballot; no BEGIN, no COMMIT: it commits on its own.
    ran = statements(wire)
    assert len(ran) == 2, wire
    assert "authtoken_token" in ran[0]
    if connection.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        assert ran[1].startswith('"WITH poll AS'), wire  # sent as text each time
    else:
        assert ran[1] == "EXECUTE", wire  # the statement psycopg prepared on its first run
    assert poll.votes.count() == chosen


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_where_prepared_statements_are_allowed_the_ballot_is_prepared_once(
    make_poll, make_user, client_for
):
    polls = [make_poll(options=texts(3)) for _ in range(3)]
    clients = [client_for(make_user()) for _ in polls]
    connection.ensure_connection()
    raw = connection.connection
    saved = raw.prepare_threshold  # type: ignore[union-attr]
    raw.prepare_threshold = 0  # type: ignore[union-attr]  # as OPTIONS["prepare_threshold"]
    try:
        traces = []
        for poll, client in zip(polls, clients, strict=True):
            ballot = {"options": option_ids(poll)[1:2]}
            with on_the_wire() as wire:
                response = client.post(
                    reverse("django_polls:poll-vote", args=[poll.pk]), ballot, format="json"
                )
            assert response.status_code == 201, response.content
            traces.append(wire)
    finally:
        raw.prepare_threshold = saved  # type: ignore[union-attr]

    parsed = [[m for m in wire if m.startswith("PARSE ")] for wire in traces]
    # Prepared on first use (unless an earlier ballot on this connection was), then only run.
    assert len(parsed[0]) <= 1
    assert all('"WITH poll AS' in m for m in parsed[0])
    assert parsed[1:] == [[], []]
    assert all(statements(wire)[1:] == ["EXECUTE"] for wire in traces)
    assert [poll.options.counted().order_by("order")[1].votes for poll in polls] == [1, 1, 1]


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_results_are_one_statement_on_the_wire(make_poll, make_user, anon):
    poll = make_poll(options=texts(4))
    services.cast_vote(poll_id=poll.pk, voter=make_user(), option_ids=option_ids(poll)[:1])

    with on_the_wire() as wire:
        response = anon.get(reverse("django_polls:poll-results", args=[poll.pk]))

    assert response.status_code == 200
    assert response.json()["total_votes"] == 1
    # Django's health check (CONN_HEALTH_CHECKS) would add a SELECT 1; the tests have none.
    assert len(statements(wire)) == RESULTS, wire
