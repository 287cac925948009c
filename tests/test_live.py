"""Live results: GET polls/{id}/results/stream/ (server-sent events) and the results' ETag.

The streams run in-process under Django's ASGI test client. Each test is a coroutine run with
``async_to_sync``, so the database work it hands to ``sync_to_async`` (its own and the app's)
runs in the test's thread, on the test's connection. Changes are committed (``transactional_db``):
streams hear of a change only once it commits.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.test import AsyncClient, override_settings
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.throttling import ScopedRateThrottle

from django_polls import live, services
from django_polls.models import Poll
from tests.conftest import on_postgresql, option_ids
from tests.taking_part import cast, with_policy

pytestmark = pytest.mark.django_db(transaction=True)

#: Seconds a test waits for an event before it fails (never a bound on speed).
PATIENCE = 10


def run(scenario: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run a test coroutine to its end, then stop the broker of its event loop."""

    @functools.wraps(scenario)
    def test(*args: Any, **kwargs: Any) -> None:
        async def whole() -> None:
            try:
                await scenario(*args, **kwargs)
            finally:
                await live.broker().stop()

        async_to_sync(whole)()

    return test


class Stream:
    """An open stream, read event by event."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.chunks = response.streaming_content
        self.buffer = b""

    async def next(self, timeout: float = PATIENCE) -> dict[str, Any]:
        """The next event or comment: ``{"event", "id", "data"}`` or ``{"comment"}``."""
        while b"\n\n" not in self.buffer:
            self.buffer += await asyncio.wait_for(anext(self.chunks), timeout)
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        fields: dict[str, Any] = {}
        for line in block.decode().splitlines():
            name, _, value = line.partition(":")
            if name == "":
                fields["comment"] = value.strip()
            else:
                fields[name] = value.removeprefix(" ")
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
        return fields

    async def next_event(self) -> dict[str, Any]:
        """The next event, skipping heartbeat comments."""
        while "comment" in (found := await self.next()):
            pass
        return found

    async def until(self, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Events until one whose results pass ``check``."""
        while True:
            found = await self.next_event()
            if found.get("event") == "results" and check(found["data"]):
                return found

    async def ended(self) -> bool:
        try:
            await asyncio.wait_for(anext(self.chunks), PATIENCE)
        except StopAsyncIteration:
            return True
        return False

    async def close(self) -> None:
        """Leave, as a server does when its client goes: stop iterating, close the response."""
        await self.chunks.aclose()
        self.response.close()


def stream_url(poll: Poll | int) -> str:
    return reverse("django_polls:poll-results-stream", args=[getattr(poll, "pk", poll)])


def results_url(poll: Poll | int) -> str:
    return reverse("django_polls:poll-results", args=[getattr(poll, "pk", poll)])


async def open_stream(poll: Poll | int, headers: dict[str, str] | None = None) -> Any:
    return await AsyncClient().get(stream_url(poll), headers=headers)


async def opened(poll: Poll | int, headers: dict[str, str] | None = None) -> Stream:
    response = await open_stream(poll, headers)
    assert response.status_code == 200, response.content
    return Stream(response)


def vote(poll: Poll, user: Any, *chosen: int) -> Awaitable[services.Receipt]:
    return sync_to_async(services.cast_vote)(poll_id=poll.pk, voter=user, option_ids=list(chosen))


def results_body(poll: Poll) -> Any:
    from rest_framework.test import APIClient

    return APIClient().get(results_url(poll)).json()


# ---------------------------------------------------------------------------------------------
# The stream


@run
async def test_a_stream_starts_with_the_results_then_sends_each_vote(make_poll, alice, bob):
    poll = await sync_to_async(make_poll)()
    pizza, soup = await sync_to_async(option_ids)(poll)
    stream = await opened(poll)
    assert stream.response["Content-Type"] == "text/event-stream"
    assert stream.response["Cache-Control"] == "no-cache"
    assert stream.response["X-Accel-Buffering"] == "no"

    first = await stream.next()
    assert first["event"] == "results"
    assert first["data"] == await sync_to_async(results_body)(poll)
    assert first["retry"] == "2000"

    await vote(poll, alice, pizza)
    after_one = await stream.next_event()
    assert after_one["event"] == "results"
    assert after_one["data"]["total_votes"] == 1
    assert after_one["data"]["options"][0] == {
        "id": pizza,
        "text": "Pizza",
        "votes": 1,
        "percentage": 100.0,
    }
    assert after_one["id"] != first["id"]

    await vote(poll, bob, soup)
    after_two = await stream.until(lambda results: results["total_votes"] == 2)
    assert [option["percentage"] for option in after_two["data"]["options"]] == [50.0, 50.0]
    await stream.close()


@run
async def test_a_ranked_polls_stream_sends_its_rounds_after_each_ballot(make_poll, alice, bob):
    poll = await sync_to_async(make_poll)(method="ranked")
    pizza, soup = await sync_to_async(option_ids)(poll)
    stream = await opened(poll)
    first = await stream.next()
    assert (first["data"]["rounds"], first["data"]["winner"]) == ([], None)

    rank = sync_to_async(services.cast_ballot)
    await rank(poll_id=poll.pk, voter=alice, data={"ranking": [soup, pizza]})
    after = await stream.until(lambda results: results["ballots"] == 1)
    assert after["data"]["winner"] == soup
    assert after["data"] == await sync_to_async(results_body)(poll)
    await rank(poll_id=poll.pk, voter=bob, data={"ranking": [pizza]})
    tied = await stream.until(lambda results: results["ballots"] == 2)
    assert (tied["data"]["winner"], tied["data"]["tied"]) == (None, [pizza, soup])
    await stream.close()


@run
async def test_a_stream_opens_for_what_eventsource_sends(make_poll):
    poll = await sync_to_async(make_poll)()
    sent = {"Accept": "text/event-stream", "Cache-Control": "no-cache", "If-None-Match": "*"}
    stream = await opened(poll, sent)
    assert (await stream.next())["event"] == "results"
    await stream.close()


@run
async def test_the_event_id_is_the_results_etag(make_poll, alice):
    poll = await sync_to_async(make_poll)()
    await vote(poll, alice, (await sync_to_async(option_ids)(poll))[0])
    stream = await opened(poll)
    first = await stream.next()
    answer = await AsyncClient().get(results_url(poll))
    assert answer["ETag"] == f'W/"{first["id"]}"'
    await stream.close()


@run
async def test_retraction_edit_and_close_each_send_the_new_state(make_poll, alice):
    poll = await sync_to_async(make_poll)(created_by=alice, allow_multiple_votes=True)
    pizza, soup = await sync_to_async(option_ids)(poll)
    stream = await opened(poll)
    await stream.next()

    await vote(poll, alice, pizza, soup)
    await stream.until(lambda results: results["total_votes"] == 2)
    await sync_to_async(services.retract_votes)(poll_id=poll.pk, voter=alice)
    await stream.until(lambda results: results["total_votes"] == 0)
    await sync_to_async(services.update_poll)(poll=poll, options=["Tacos", "Soup", "Salad"])
    edited = await stream.until(lambda results: len(results["options"]) == 3)
    assert [option["text"] for option in edited["data"]["options"]] == ["Tacos", "Soup", "Salad"]
    await sync_to_async(services.close_poll)(poll=poll)
    closed = await stream.until(lambda results: not results["is_active"])
    assert closed["data"]["total_votes"] == 0
    await stream.close()


@run
async def test_a_burst_of_votes_is_read_once_and_the_last_state_is_sent(
    make_poll, make_user, monkeypatch
):
    poll = await sync_to_async(make_poll)()
    pizza, _ = await sync_to_async(option_ids)(poll)
    voters = [await sync_to_async(make_user)() for _ in range(30)]
    reads: list[int] = []
    real_read = live.read_results

    def counted_read(poll_id: int) -> Any:
        reads.append(poll_id)
        return real_read(poll_id)

    monkeypatch.setattr(live, "read_results", counted_read)

    def burst() -> None:
        # The streams' reads wait for this thread, so the whole burst is one change to them.
        for voter in voters:
            services.cast_vote(poll_id=poll.pk, voter=voter, option_ids=[pizza])

    with override_settings(DJANGO_POLLS={"STREAM_HEARTBEAT": 1}):
        streams = [await opened(poll) for _ in range(3)]
        for stream in streams:
            await stream.next()
        await sync_to_async(burst)()
        for stream in streams:
            event = await stream.next()
            assert event["event"] == "results"
            assert event["data"]["total_votes"] == 30
            # Nothing more to say: the next thing on the wire is a heartbeat.
            assert await stream.next() == {"comment": "heartbeat"}
    # One read for all three subscribers, and (the burst noticed while it was read) one more
    # to be sure the last state was sent: never one per subscriber or per vote.
    assert 1 <= len(reads) <= 2, reads
    for stream in streams:
        await stream.close()


@run
async def test_heartbeats_keep_a_quiet_stream_open(make_poll):
    poll = await sync_to_async(make_poll)()
    with override_settings(DJANGO_POLLS={"STREAM_HEARTBEAT": 1}):
        stream = await opened(poll)
        await stream.next()
        assert await stream.next() == {"comment": "heartbeat"}
        assert await stream.next() == {"comment": "heartbeat"}
    await stream.close()


@run
async def test_a_client_that_reconnects_gets_the_current_state_at_once(make_poll, alice):
    poll = await sync_to_async(make_poll)()
    stream = await opened(poll)
    seen = await stream.next()
    await stream.close()
    await vote(poll, alice, (await sync_to_async(option_ids)(poll))[1])

    again = await opened(poll, {"Last-Event-ID": seen["id"]})
    current = await again.next()
    assert current["event"] == "results"
    assert current["data"]["total_votes"] == 1
    assert current["id"] != seen["id"]
    await again.close()

    # Already up to date: the current state all the same, so a client need not remember.
    third = await opened(poll, {"Last-Event-ID": current["id"]})
    assert (await third.next())["id"] == current["id"]
    await third.close()


@run
async def test_deleting_the_poll_ends_the_stream(make_poll):
    poll = await sync_to_async(make_poll)()
    stream = await opened(poll)
    await stream.next()
    await sync_to_async(services.delete_poll)(poll=poll)
    gone = await stream.next()
    assert gone == {"event": "deleted", "data": {"poll": poll.pk}}
    assert await stream.ended()
    assert live.open_streams() == 0
    assert (await open_stream(poll)).status_code == 404


@run
async def test_leaving_frees_the_slot_and_the_subscription(make_poll):
    poll = await sync_to_async(make_poll)()
    with override_settings(DJANGO_POLLS={"MAX_STREAMS": 1}):
        stream = await opened(poll)
        await stream.next()
        assert live.open_streams() == 1
        assert poll.pk in live.broker().feeds

        refused = await open_stream(poll)
        assert refused.status_code == 503
        assert refused.json() == {
            "detail": "This server serves as many live results streams as it may; retry shortly.",
            "code": "too_many_streams",
        }
        assert refused["Retry-After"] == "5"

        await stream.close()
        await asyncio.sleep(0)  # the unsubscription runs on the loop
        assert live.open_streams() == 0
        assert live.broker().feeds == {}
        again = await opened(poll)
        await again.next()
        await again.close()


@run
async def test_a_stream_never_iterated_frees_its_slot_when_closed(make_poll):
    poll = await sync_to_async(make_poll)()
    response = await open_stream(poll)
    assert live.open_streams() == 1
    response.close()
    await asyncio.sleep(0)
    assert live.open_streams() == 0
    assert live.broker().feeds == {}


# ---------------------------------------------------------------------------------------------
# Who may open a stream: as for the results


@run
async def test_a_missing_poll_is_a_json_404_and_takes_no_slot(make_poll):
    for pk in (987654, 9_999_999_999_999_999_999):
        answer = await open_stream(pk)
        assert answer.status_code == 404
        assert answer.json() == {"detail": "Not found.", "code": "not_found"}
    assert live.open_streams() == 0
    assert live.broker().feeds == {}


@run
async def test_the_results_permissions_apply(make_poll, alice):
    poll = await sync_to_async(make_poll)()
    token = await sync_to_async(lambda: Token.objects.create(user=alice).key)()
    private = {"POLL_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"]}
    with override_settings(DJANGO_POLLS=private):
        anonymous = await open_stream(poll)
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "not_authenticated"
        assert anonymous["WWW-Authenticate"] == "Token"
        bad = await open_stream(poll, {"Authorization": "Token nope"})
        assert bad.status_code == 401
        signed_in = await opened(poll, {"Authorization": f"Token {token}"})
        assert (await signed_in.next())["event"] == "results"
        await signed_in.close()
    assert live.open_streams() == 0


@run
async def test_only_get(make_poll):
    poll = await sync_to_async(make_poll)()
    # CSRF checks on, as in a browser: a write method is refused as a method, not as a CSRF.
    answer = await AsyncClient(enforce_csrf_checks=True).post(stream_url(poll))
    assert answer.status_code == 405
    assert answer.json()["code"] == "method_not_allowed"
    assert answer["Allow"] == "GET"


def test_under_wsgi_a_stream_is_refused(make_poll, client):
    poll = make_poll()
    answer = client.get(stream_url(poll))
    assert answer.status_code == 503
    assert answer.json() == {
        "detail": "Live results need an ASGI server.",
        "code": "streams_need_asgi",
    }
    assert live.open_streams() == 0


# ---------------------------------------------------------------------------------------------
# Changes are announced on commit


@pytest.mark.django_db
def test_a_change_is_announced_on_commit_only(make_poll, alice, django_capture_on_commit_callbacks):
    poll = make_poll(created_by=alice)
    pizza, _ = option_ids(poll)
    if connection.vendor == "postgresql":
        pytest.skip("on PostgreSQL the announcement is a NOTIFY (see the next test)")

    class Rollback(Exception):
        pass

    with (
        django_capture_on_commit_callbacks() as rolled_back,
        pytest.raises(Rollback),
        transaction.atomic(),
    ):
        services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza])
        raise Rollback
    assert rolled_back == []
    with django_capture_on_commit_callbacks() as committed:
        services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza])
    assert [(c.func, c.args) for c in committed] == [(live.publish_in_process, (poll.pk,))]


@on_postgresql
def test_on_postgresql_a_committed_change_is_one_notify(make_poll, alice, bob):
    import psycopg

    poll = make_poll(created_by=alice, allow_multiple_votes=True)
    pizza, soup = option_ids(poll)
    params = live._connection_params()
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {live.CHANNEL}")

        class Rollback(Exception):
            pass

        with pytest.raises(Rollback), transaction.atomic():
            services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza, soup])
            raise Rollback
        services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza, soup])
        with pytest.raises(services.AlreadyVoted):
            services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza])
        with transaction.atomic():
            services.retract_votes(poll_id=poll.pk, voter=alice)
            services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[soup])
        services.close_poll(poll=poll)
        services.close_poll(poll=poll)  # closed already: nothing changes

        heard = [n.payload for n in listener.notifies(timeout=1)]
    # The committed ballot (two options, one notification), the transaction of a retraction and
    # a ballot (merged) and the close; nothing for the rollback, the refusal, the second close.
    assert heard == [str(poll.pk)] * 3


@on_postgresql
@run
async def test_on_postgresql_a_lost_listen_connection_is_restored_with_the_current_state(
    make_poll, alice
):
    poll = await sync_to_async(make_poll)()
    pizza, _ = await sync_to_async(option_ids)(poll)
    stream = await opened(poll)
    await stream.next()
    broker = live.broker()
    assert broker.connects == 1

    def terminate_listener() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname = current_database()",
                [live.LISTENER_NAME],
            )

    await sync_to_async(terminate_listener)()
    # A vote while nobody listens: its notification is lost, the state is not.
    await vote(poll, alice, pizza)
    restored = await stream.until(lambda results: results["total_votes"] == 1)
    assert restored["event"] == "results"
    assert broker.connects >= 2
    await stream.close()


# ---------------------------------------------------------------------------------------------
# The results' ETag: cheap polling


def test_results_answer_304_while_nothing_changed(make_poll, alice, anon):
    poll = make_poll()
    pizza, _ = option_ids(poll)
    first = anon.get(results_url(poll))
    etag = first["ETag"]
    assert etag.startswith('W/"')
    assert first["Cache-Control"] == "no-cache"

    same = anon.get(results_url(poll), HTTP_IF_NONE_MATCH=etag)
    assert same.status_code == 304
    assert same.content == b""
    assert same["ETag"] == etag
    assert anon.get(results_url(poll), HTTP_IF_NONE_MATCH="*").status_code == 304
    # The strong form of the same tag and a list that holds it match too (weak comparison).
    assert anon.get(results_url(poll), HTTP_IF_NONE_MATCH=etag[2:]).status_code == 304
    listed = f'"other", {etag}'
    assert anon.get(results_url(poll), HTTP_IF_NONE_MATCH=listed).status_code == 304
    assert anon.get(results_url(poll), HTTP_IF_NONE_MATCH='"other"').status_code == 200

    services.cast_vote(poll_id=poll.pk, voter=alice, option_ids=[pizza])
    changed = anon.get(results_url(poll), HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed.json()["total_votes"] == 1
    assert changed["ETag"] != etag

    services.retract_votes(poll_id=poll.pk, voter=alice)
    # The same results as at first: the same tag.
    assert anon.get(results_url(poll), HTTP_IF_NONE_MATCH=etag).status_code == 304
    services.close_poll(poll=poll)
    assert anon.get(results_url(poll), HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_an_etag_does_not_pass_the_permission_checks(make_poll, anon):
    poll = make_poll()
    etag = anon.get(results_url(poll))["ETag"]
    private = {"POLL_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"]}
    with override_settings(DJANGO_POLLS=private):
        assert anon.get(results_url(poll), HTTP_IF_NONE_MATCH=etag).status_code == 401
    assert anon.get(results_url(987654), HTTP_IF_NONE_MATCH="*").status_code == 404


# ---------------------------------------------------------------------------------------------
# The listener survives whatever goes wrong


def terminate_listener() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            [live.LISTENER_NAME],
        )


async def until(condition: Callable[[], bool]) -> None:
    """Wait (at most PATIENCE seconds) until ``condition`` holds."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"not within {PATIENCE} s"
        await asyncio.sleep(0.01)


def logged(caplog: Any, level: int, error: type[BaseException]) -> list[Any]:
    """The listener's records at ``level`` that carry a traceback of ``error``."""
    return [
        record
        for record in caplog.records
        if record.name == "django_polls.live"
        and record.levelno == level
        and record.exc_info is not None
        and isinstance(record.exc_info[1], error)
    ]


@on_postgresql
@run
async def test_on_postgresql_a_failing_listener_says_so_answers_503_and_recovers(
    make_poll, alice, caplog
):
    import psycopg
    from django.core.exceptions import ImproperlyConfigured

    poll = await sync_to_async(make_poll)()
    pizza, _ = await sync_to_async(option_ids)(poll)
    stream = await opened(poll)
    await stream.next()
    broker = live.broker()
    assert broker.listening.is_set()

    # A setting the listener cannot connect with (a name longer than PostgreSQL allows: Django
    # raises ImproperlyConfigured, no database error), then its connection lost.
    settings_dict = connection.settings_dict
    name = settings_dict["NAME"]
    await sync_to_async(terminate_listener)()
    settings_dict["NAME"] = "x" * 64
    try:
        await until(lambda: bool(logged(caplog, logging.ERROR, ImproperlyConfigured)))
        assert not broker.listening.is_set()
        assert logged(caplog, logging.WARNING, psycopg.OperationalError)
        # A new stream is told at once that it would hear nothing, not left waiting.
        started = time.monotonic()
        refused = await open_stream(poll)
        assert time.monotonic() - started < live.LISTEN_TIMEOUT / 2
        assert refused.status_code == 503
        assert refused.json()["code"] == "service_unavailable"
        assert refused["Retry-After"] == "1"
        assert live.open_streams() == 1
    finally:
        settings_dict["NAME"] = name

    await asyncio.wait_for(broker.listening.wait(), PATIENCE)
    await vote(poll, alice, pizza)
    assert (await stream.until(lambda results: results["total_votes"] == 1))["event"] == "results"
    again = await opened(poll)
    assert (await again.next())["data"]["total_votes"] == 1
    await again.close()
    await stream.close()


@on_postgresql
@run
async def test_on_postgresql_a_bug_in_a_handler_is_logged_and_the_listener_recovers(
    make_poll, alice, caplog
):
    poll = await sync_to_async(make_poll)()
    pizza, _ = await sync_to_async(option_ids)(poll)
    stream = await opened(poll)
    await stream.next()
    broker = live.broker()

    def broken(payload: str) -> None:
        del broker._on_notify  # once: the class's handler is back for the next connection
        raise RuntimeError("a bug in a handler")

    broker._on_notify = broken  # type: ignore[method-assign]
    await vote(poll, alice, pizza)
    # The notification was lost to the bug; the state is not: the reconnection reads it.
    assert (await stream.until(lambda results: results["total_votes"] == 1))["event"] == "results"
    (record,) = logged(caplog, logging.ERROR, RuntimeError)
    assert "a bug in a handler" in record.getMessage()
    assert broker.connects == 2
    assert broker.listening.is_set()
    await stream.close()


# ---------------------------------------------------------------------------------------------
# One client cannot take every stream of a process


@run
async def test_one_client_holds_at_most_max_streams_per_client(make_poll, alice):
    poll = await sync_to_async(make_poll)()
    token = await sync_to_async(lambda: Token.objects.create(user=alice).key)()
    with override_settings(DJANGO_POLLS={"MAX_STREAMS_PER_CLIENT": 2}):
        first, second = await opened(poll), await opened(poll)
        refused = await open_stream(poll)
        assert refused.status_code == 429
        assert refused.json() == {
            "detail": "This client holds as many live results streams as it may; close one first.",
            "code": "too_many_client_streams",
        }
        assert refused["Retry-After"] == "5"
        assert live.open_streams() == 2

        # Another address (DRF's throttles take X-Forwarded-For as it comes when NUM_PROXIES
        # is unset), and a signed-in user at the same address, are other clients.
        elsewhere = await open_stream(poll, {"X-Forwarded-For": "192.0.2.7"})
        assert elsewhere.status_code == 200
        signed_in = [await opened(poll, {"Authorization": f"Token {token}"}) for _ in range(2)]
        over = await open_stream(poll, {"Authorization": f"Token {token}"})
        assert over.status_code == 429

        await first.close()
        await asyncio.sleep(0)
        third = await opened(poll)
        for stream in (second, third, *signed_in, Stream(elsewhere)):
            await stream.close()
    assert live.open_streams() == 0


@run
async def test_behind_proxies_clients_are_told_apart_as_drf_throttles_do(make_poll):
    poll = await sync_to_async(make_poll)()
    limits = {"DJANGO_POLLS": {"MAX_STREAMS_PER_CLIENT": 1}}
    proxied = {"NUM_PROXIES": 1, **settings.REST_FRAMEWORK}
    with override_settings(**limits, REST_FRAMEWORK=proxied):
        one = await opened(poll, {"X-Forwarded-For": "198.51.100.1"})
        other = await opened(poll, {"X-Forwarded-For": "198.51.100.2"})
        again = await open_stream(poll, {"X-Forwarded-For": "198.51.100.1"})
        assert again.status_code == 429
        await one.close()
        await other.close()


# ---------------------------------------------------------------------------------------------
# Throttle scopes of results/ and results/stream/


class VoteAndCreateRated(ScopedRateThrottle):
    # DRF binds THROTTLE_RATES when it is imported, so a test sets the rates on a subclass.
    THROTTLE_RATES = {"django_polls.vote": "1/min", "django_polls.create": "1/min"}


class ResultsAndStreamsRated(ScopedRateThrottle):
    THROTTLE_RATES = {
        "django_polls.vote": None,
        "django_polls.create": None,
        "django_polls.results": "2/min",
        "django_polls.stream": "1/min",
    }


def throttled(throttle: type[ScopedRateThrottle]) -> Any:
    cache.clear()
    return override_settings(DJANGO_POLLS={"THROTTLE_CLASSES": [f"{__name__}.{throttle.__name__}"]})


@run
async def test_results_and_streams_are_unthrottled_where_the_site_rates_only_vote_and_create(
    make_poll,
):
    poll = await sync_to_async(make_poll)()
    with throttled(VoteAndCreateRated):
        for _ in range(3):
            assert (await AsyncClient().get(results_url(poll))).status_code == 200
        streams = [await opened(poll) for _ in range(3)]
    for stream in streams:
        await stream.close()


@run
async def test_results_and_streams_have_scopes_of_their_own(make_poll):
    poll = await sync_to_async(make_poll)()
    with throttled(ResultsAndStreamsRated):
        stream = await opened(poll)
        refused = await open_stream(poll)
        assert refused.status_code == 429
        assert refused.json()["code"] == "throttled"
        assert int(refused["Retry-After"]) > 0
        # The stream did not count against results/, which has its own rate.
        assert (await AsyncClient().get(results_url(poll))).status_code == 200
        assert (await AsyncClient().get(results_url(poll))).status_code == 200
        assert (await AsyncClient().get(results_url(poll))).status_code == 429
    await stream.close()
    assert live.open_streams() == 0


# ---------------------------------------------------------------------------------------------
# Who may see the stream: as for the results, while it is open too


def token_of(user: Any) -> dict[str, str]:
    key = Token.objects.get_or_create(user=user)[0].key
    return {"Authorization": f"Token {key}"}


@run
async def test_a_stream_of_hidden_results_is_refused_before_it_opens(make_poll, alice, bob):
    poll = await sync_to_async(make_poll)(created_by=alice)
    await sync_to_async(with_policy)(poll, results_visibility="owner")

    for headers in (None, await sync_to_async(token_of)(bob)):
        refused = await open_stream(poll, headers)
        assert refused.status_code == 403
        assert refused.json()["code"] == "results_hidden"
        assert not refused.has_header("ETag")
    assert live.open_streams() == 0
    assert live.broker().feeds == {}
    owners = await opened(poll, await sync_to_async(token_of)(alice))
    assert (await owners.next())["event"] == "results"
    await owners.close()


async def tighten(poll: Poll, visibility: str) -> None:
    """The owner makes the results stricter (as an edit of the poll does, announced)."""

    def edit() -> None:
        with transaction.atomic():
            with_policy(poll, results_visibility=visibility)
            services.announce_change(poll_id=poll.pk)

    await sync_to_async(edit)()


@run
async def test_a_stream_whose_viewer_may_no_longer_see_ends_with_hidden(make_poll, alice, bob):
    poll = await sync_to_async(make_poll)(created_by=alice)
    pizza, _ = await sync_to_async(option_ids)(poll)
    anonymous = await opened(poll)
    owners = await opened(poll, await sync_to_async(token_of)(alice))
    await anonymous.next()
    await owners.next()

    await tighten(poll, "owner")
    await sync_to_async(cast)(poll, bob, [pizza])

    assert await anonymous.next_event() == {
        "event": "hidden",
        "data": {"poll": poll.pk, "code": "results_hidden"},
    }
    assert await anonymous.ended()
    # The owner's stream goes on, with the ballot cast after the change.
    await owners.until(lambda results: results["total_votes"] == 1)
    await owners.close()
    await asyncio.sleep(0)
    assert live.open_streams() == 0


@run
async def test_a_voter_keeps_an_after_vote_stream_until_withdrawing(make_poll, alice, bob):
    poll = await sync_to_async(make_poll)()
    pizza, soup = await sync_to_async(option_ids)(poll)
    await sync_to_async(cast)(poll, alice, [pizza])
    stream = await opened(poll, await sync_to_async(token_of)(alice))
    await stream.next()

    await tighten(poll, "after_vote")
    await sync_to_async(cast)(poll, bob, [soup])
    await stream.until(lambda results: results["total_votes"] == 2)

    await sync_to_async(services.retract_votes)(poll_id=poll.pk, voter=alice)
    while (event := await stream.next_event())["event"] == "results":
        assert event["data"]["total_votes"] == 2  # never the state after the withdrawal
    assert event["event"] == "hidden"
    assert await stream.ended()


@run
async def test_the_owners_after_close_stream_goes_on_when_the_poll_closes(make_poll, alice, bob):
    poll = await sync_to_async(make_poll)(created_by=alice)
    await sync_to_async(with_policy)(poll, results_visibility="after_close")
    assert (await open_stream(poll, await sync_to_async(token_of)(bob))).status_code == 403
    owners = await opened(poll, await sync_to_async(token_of)(alice))
    await owners.next()

    await sync_to_async(services.close_poll)(poll=poll)

    closed = await owners.until(lambda results: not results["is_active"])
    assert closed["event"] == "results"
    # Closed, the results are anyone's: a stream opens for bob now.
    others = await opened(poll, await sync_to_async(token_of)(bob))
    assert (await others.next())["data"]["is_active"] is False
    for stream in (owners, others):
        await stream.close()


@run
async def test_staff_streams_are_never_hidden(make_poll, make_user, bob):
    poll = await sync_to_async(make_poll)()
    pizza, _ = await sync_to_async(option_ids)(poll)
    staff = await sync_to_async(make_user)(is_staff=True)
    stream = await opened(poll, await sync_to_async(token_of)(staff))
    await stream.next()

    await tighten(poll, "owner")
    await sync_to_async(cast)(poll, bob, [pizza])

    event = await stream.next_event()
    assert (event["event"], event["data"]["total_votes"]) == ("results", 1)
    await stream.close()


@run
async def test_no_state_reaches_a_stream_before_a_gate_judged_it(make_poll):
    poll = await sync_to_async(make_poll)()
    broker = live.broker()
    waiting = await broker.subscribe(poll.pk)
    broker.changed(poll.pk)  # a change read while the stream's first state is being judged
    await until(lambda: waiting.missed)
    assert waiting.pending is None

    asked: list[list[Any]] = []

    def gate(read: Poll, viewers: list[Any]) -> list[bool]:
        asked.append(viewers)
        assert read.pk == poll.pk
        return [viewer == "allowed" for viewer in viewers]

    refused = await broker.subscribe(poll.pk)
    broker.admit(refused, viewer="refused", gate=gate)
    broker.admit(waiting, viewer="allowed", gate=gate)  # the state it missed is read again

    await until(lambda: waiting.pending is not None and refused.hidden)
    # One call for all the streams of the gate.
    assert [sorted(viewers) for viewers in asked] == [["allowed", "refused"]]
    assert refused.pending is None
    broker.unsubscribe(waiting)
    broker.unsubscribe(refused)
