"""Reads that may lag go to the replica; a caller's own writes are read from the primary.

The replica alias of the test settings is a second connection to the test database: the
routing shows in which connection each query runs, not in what it finds (the cluster's tests,
tests/cluster, show a lagging replica through the example project).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.test import AsyncClient, override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from django_polls import routers
from django_polls.checks import check_settings
from django_polls.models import Poll

ROUTER = "django_polls.routers.ReplicaRouter"
MIDDLEWARE = "django_polls.routers.ReadYourWritesMiddleware"

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


@pytest.fixture
def with_replica() -> Iterator[None]:
    with override_settings(
        DATABASE_ROUTERS=[ROUTER],
        MIDDLEWARE=[*settings.MIDDLEWARE, MIDDLEWARE],
        DJANGO_POLLS={"REPLICA_DATABASE": "replica", "READ_YOUR_WRITES_SECONDS": 7},
    ):
        yield


class Queries:
    """The aliases that ran at least one query while the block ran (read at its end: the next
    request forgets the queries of the last)."""

    def __init__(self) -> None:
        self.captured = {
            alias: CaptureQueriesContext(connections[alias])
            for alias in (DEFAULT_DB_ALIAS, "replica")
        }
        self.on: set[str] = set()

    def __enter__(self) -> Queries:
        for captured in self.captured.values():
            captured.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for captured in self.captured.values():
            captured.__exit__(*exc)
        self.on = {alias for alias, captured in self.captured.items() if len(captured)}


def test_an_anonymous_reader_lists_and_reads_polls_from_the_replica(
    with_replica: None, make_poll: Callable[..., Poll], anon: APIClient
) -> None:
    poll = make_poll()
    with Queries() as listed:
        answer = anon.get("/api/v1/polls/")
    assert answer.status_code == 200 and answer.json()["count"] == 1
    assert listed.on == {"replica"}
    with Queries() as read:
        answer = anon.get(f"/api/v1/polls/{poll.pk}/")
    assert answer.status_code == 200 and answer.json()["id"] == poll.pk
    assert read.on == {"replica"}
    # The answer depended on the cookie: a shared cache keeps it apart from a pinned client's.
    assert "Cookie" in answer["Vary"]
    assert routers.PIN_COOKIE not in answer.cookies


def test_results_and_a_signed_in_caller_read_the_primary(
    with_replica: None,
    make_poll: Callable[..., Poll],
    make_user: Callable[..., Any],
    client_for: Callable[[Any], APIClient],
    anon: APIClient,
) -> None:
    owner = make_user()
    poll = make_poll(created_by=owner)
    with Queries() as results:
        assert anon.get(f"/api/v1/polls/{poll.pk}/results/").status_code == 200
    assert results.on == {"default"}
    client = client_for(owner)
    for path in ("/api/v1/polls/", f"/api/v1/polls/{poll.pk}/", f"/api/v1/polls/{poll.pk}/vote/"):
        with Queries() as read:
            assert client.get(path).status_code == 200, path
        assert read.on == {"default"}, path


def test_a_write_pins_its_client_to_the_primary_for_a_while(
    with_replica: None,
    make_poll: Callable[..., Poll],
    make_user: Callable[..., Any],
    client_for: Callable[[Any], APIClient],
) -> None:
    poll = make_poll()
    voter = client_for(make_user())
    with Queries() as wrote:
        answer = voter.post(f"/api/v1/polls/{poll.pk}/vote/", {"options": []}, format="json")
    assert answer.status_code == 400  # refused or not, an unsafe request pins its client
    assert wrote.on == {"default"}
    cookie = answer.cookies[routers.PIN_COOKIE]
    assert cookie["max-age"] == 7 and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert int(cookie.value) == pytest.approx(time.time() + 7, abs=2)
    # The same client, its token dropped (an anonymous reader with the cookie): still the primary.
    voter.credentials()
    with Queries() as listed:
        assert voter.get("/api/v1/polls/").status_code == 200
    assert listed.on == {"default"}


@pytest.mark.parametrize(
    ("value", "replica"), [(str(int(time.time()) - 1), True), ("not-a-time", False)]
)
def test_an_expired_pin_reads_the_replica_and_a_strange_one_the_primary(
    with_replica: None, make_poll: Callable[..., Poll], value: str, replica: bool
) -> None:
    make_poll()
    client = APIClient()
    client.cookies[routers.PIN_COOKIE] = value
    with Queries() as listed:
        assert client.get("/api/v1/polls/").status_code == 200
    assert listed.on == ({"replica"} if replica else {"default"})


def test_without_a_replica_everything_reads_the_primary_and_no_cookie_is_set(
    make_poll: Callable[..., Poll],
    make_user: Callable[..., Any],
    client_for: Callable[[Any], APIClient],
    anon: APIClient,
) -> None:
    poll = make_poll()
    with override_settings(
        DATABASE_ROUTERS=[ROUTER], MIDDLEWARE=[*settings.MIDDLEWARE, MIDDLEWARE]
    ):
        with Queries() as listed:
            assert anon.get("/api/v1/polls/").status_code == 200
        answer = client_for(make_user()).post(
            f"/api/v1/polls/{poll.pk}/vote/", {"options": []}, format="json"
        )
    assert listed.on == {"default"}
    assert routers.PIN_COOKIE not in answer.cookies


def test_without_the_middleware_the_router_reads_the_primary(
    make_poll: Callable[..., Poll], anon: APIClient
) -> None:
    make_poll()
    only_router = {"DATABASE_ROUTERS": [ROUTER], "DJANGO_POLLS": {"REPLICA_DATABASE": "replica"}}
    with override_settings(**only_router), Queries() as listed:
        assert anon.get("/api/v1/polls/").status_code == 200
    assert listed.on == {"default"}


def test_a_request_that_wrote_reads_the_primary_from_then_on(
    with_replica: None, make_poll: Callable[..., Poll]
) -> None:
    poll = make_poll()
    router = routers.ReplicaRouter()
    reads = routers.Reads(pinned=False)
    token = routers._reads.set(reads)
    try:
        routers.allow_replica_reads(None)
        assert router.db_for_read(Poll) == "replica"
        # An object read from the replica is written to the primary.
        from_replica = Poll.objects.using("replica").get(pk=poll.pk)
        assert router.db_for_write(Poll, instance=from_replica) == DEFAULT_DB_ALIAS
        assert reads.wrote
        assert router.db_for_read(Poll) is None  # Django's choice: the default database
    finally:
        routers._reads.reset(token)


def test_the_replica_is_not_migrated_and_its_rows_relate_to_the_primarys(
    with_replica: None, make_poll: Callable[..., Poll]
) -> None:
    router = routers.ReplicaRouter()
    assert router.allow_migrate("replica", "django_polls") is False
    assert router.allow_migrate("default", "django_polls") is None
    poll = make_poll()
    from_replica = Poll.objects.using("replica").get(pk=poll.pk)
    assert router.allow_relation(poll, from_replica) is True
    elsewhere = Poll(pk=poll.pk)
    elsewhere._state.db = "archive"
    assert router.allow_relation(poll, elsewhere) is None


def ids(**overrides: Any) -> list[str]:
    with override_settings(**overrides):
        return [message.id for message in check_settings()]


@pytest.mark.parametrize("value", ["default", "nowhere", 3, ""])
def test_e019_when_the_replica_is_not_another_alias(value: object) -> None:
    assert ids(DJANGO_POLLS={"REPLICA_DATABASE": value}) == ["django_polls.E019"]


@pytest.mark.parametrize("value", [0, -5, "10", 2.5])
def test_e003_when_the_pin_is_not_a_positive_number_of_seconds(value: object) -> None:
    assert ids(DJANGO_POLLS={"READ_YOUR_WRITES_SECONDS": value}) == ["django_polls.E003"]


def test_w004_until_both_the_router_and_the_middleware_are_installed() -> None:
    polls = {"REPLICA_DATABASE": "replica"}
    middleware = [*settings.MIDDLEWARE, MIDDLEWARE]
    assert ids(DJANGO_POLLS=polls) == ["django_polls.W004"]
    assert ids(DJANGO_POLLS=polls, DATABASE_ROUTERS=[ROUTER]) == ["django_polls.W004"]
    assert ids(DJANGO_POLLS=polls, MIDDLEWARE=middleware) == ["django_polls.W004"]
    assert ids(DJANGO_POLLS=polls, MIDDLEWARE=middleware, DATABASE_ROUTERS=[ROUTER]) == []
    instance = routers.ReplicaRouter()
    assert ids(DJANGO_POLLS=polls, MIDDLEWARE=middleware, DATABASE_ROUTERS=[instance]) == []


def test_the_middleware_marks_requests_under_asgi_too(
    with_replica: None, make_poll: Callable[..., Poll]
) -> None:
    # Django's async handler takes the middleware's asynchronous path.
    make_poll()

    async def requests() -> tuple[Any, Any]:
        client = AsyncClient()
        listed = await client.get("/api/v1/polls/")
        wrote = await client.post("/api/v1/polls/", {}, content_type="application/json")
        # The connections of the thread that ran the views, so the test database can go.
        await sync_to_async(connections.close_all)()
        return listed, wrote

    listed, wrote = asyncio.run(requests())
    assert listed.status_code == 200 and "Cookie" in listed["Vary"]
    assert wrote.status_code == 401 and routers.PIN_COOKIE in wrote.cookies


class Clock:
    """A clock for :class:`routers.ReplicaHealth` that the test moves on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A fresh view of the replica (nothing failed yet), on a clock of the test's."""
    clock = Clock()
    monkeypatch.setattr(routers, "health", routers.ReplicaHealth(clock))
    return clock


class Refusing:
    """A connection's first query refused as by a PostgreSQL that is down (or a PgBouncer whose
    server is): Django's error, psycopg's as its cause, whatever the tests' database."""

    def __init__(self, message: str = "connection failed: Connection refused") -> None:
        self.message = message
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        import psycopg

        self.calls += 1
        try:
            raise psycopg.OperationalError(self.message)
        except psycopg.OperationalError as exc:
            raise OperationalError(str(exc)) from exc


def test_reads_go_to_the_primary_while_the_replica_cannot_be_reached(
    with_replica: None,
    clock: Clock,
    make_poll: Callable[..., Poll],
    anon: APIClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    poll = make_poll()
    refusing = Refusing()
    # Connected first: MySQL's connection set-up runs queries of its own.
    connections["replica"].ensure_connection()
    monkeypatch.setattr(connections["replica"], "create_cursor", refusing)
    with Queries() as listed, caplog.at_level(logging.WARNING, logger="django_polls"):
        answer = anon.get("/api/v1/polls/")
    assert answer.status_code == 200 and answer.json()["count"] == 1
    assert listed.on == {"default"} and refusing.calls == 1
    assert [r.getMessage() for r in caplog.records] == [
        "The replica database 'replica' cannot be reached (connection failed: Connection "
        "refused): its reads go to the primary, and the replica is tried again every 5 s."
    ]
    caplog.clear()

    # For the next few seconds the process does not try it: no wait, no error, no second log.
    clock.now += routers.REPLICA_DOWN_SECONDS - 1
    with Queries() as read:
        answer = anon.get(f"/api/v1/polls/{poll.pk}/")
    assert answer.status_code == 200 and answer.json()["id"] == poll.pk
    assert read.on == {"default"} and refusing.calls == 1

    # Then it tries again: still down, still answered, logged once all the same.
    clock.now += 2
    assert anon.get(f"/api/v1/polls/{poll.pk}/").status_code == 200
    assert refusing.calls == 2 and not caplog.records

    # The replica is back: once the mark runs out its reads go there again, and that is logged.
    health = routers.health  # on the test's clock
    monkeypatch.undo()
    monkeypatch.setattr(routers, "health", health)
    clock.now += routers.REPLICA_DOWN_SECONDS + 1
    with Queries() as listed, caplog.at_level(logging.WARNING, logger="django_polls"):
        assert anon.get("/api/v1/polls/").status_code == 200
    assert listed.on == {"replica"}
    assert [r.getMessage() for r in caplog.records] == [
        "The replica database 'replica' answers again: reads that may lag go to it."
    ]
    assert not routers.health.down


def test_a_replica_that_answers_costs_no_check(
    with_replica: None, clock: Clock, make_poll: Callable[..., Poll], anon: APIClient
) -> None:
    make_poll()
    # One query for the count and one for the page, both on the replica: nothing before them.
    with CaptureQueriesContext(connections["replica"]) as replica, Queries() as listed:
        assert anon.get("/api/v1/polls/").status_code == 200
    assert listed.on == {"replica"}
    assert not any("SELECT 1" in query["sql"] for query in replica.captured_queries)
    assert not routers.health.down


def test_an_error_that_is_no_outage_is_not_hidden(
    with_replica: None,
    clock: Clock,
    make_poll: Callable[..., Poll],
    anon: APIClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_poll()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("no such table: django_polls_poll")

    connections["replica"].ensure_connection()
    monkeypatch.setattr(connections["replica"], "create_cursor", broken)
    with pytest.raises(OperationalError, match="no such table"):
        anon.get("/api/v1/polls/")
    assert not routers.health.down


def test_the_primary_down_is_no_replica_outage(
    clock: Clock, make_poll: Callable[..., Poll], anon: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a replica (or for a caller who reads the primary) the error is the API's 503.
    make_poll()
    monkeypatch.setattr(connections[DEFAULT_DB_ALIAS], "create_cursor", Refusing())
    answer = anon.get("/api/v1/polls/")
    assert answer.status_code == 503 and answer["Retry-After"]
    assert not routers.health.down
