"""The ASGI handler of ``django_polls.asgi``, driven in-process through the ASGI interface.

On PostgreSQL (psycopg 3) a ballot and the results are served on the event loop by their async
variants, through the loop's own pool of connections; every answer must be the one the
synchronous views give (the Django test client below), errors and headers included. A request
the async path does not handle (a session, a site's voter policy, a malformed ballot) is answered
by the synchronous view in a thread, and correctly. On the other databases every request takes
the thread, and the same answers hold.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client, override_settings
from django.utils.deprecation import MiddlewareMixin
from rest_framework.authtoken.models import Token

from django_polls import authentication, services, signals
from django_polls.asgi import Handler
from django_polls.models import (
    Ballot,
    Option,
    Participation,
    Poll,
    ResultsVisibility,
    Tally,
    WebhookDelivery,
    counted_votes,
)
from django_polls.services import aio
from tests.conftest import expire, option_ids

pytestmark = pytest.mark.django_db(transaction=True)

ON_LOOP = connection.vendor == "postgresql"

#: Headers that differ between two answers for reasons of transport, not of the API.
TRANSPORT = {"date", "server", "content-length"}


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def shape(self) -> tuple[int, Any, dict[str, str]]:
        """Status, body and API headers: what must match the synchronous view's answer."""
        headers = {k: v for k, v in self.headers.items() if k not in TRANSPORT}
        return self.status, self.json() if self.body else None, headers


class Site:
    """The handler, run on one event loop for the whole test (so its pool serves every
    request), and how many statements that pool ran."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.handler = Handler()
        # The same handler that takes every request to a thread: the synchronous views.
        self.threaded = Handler()
        self.threaded.inline = None

    def request(
        self, method: str, path: str, *, body: Any = None, token: str | None = None, **headers: str
    ) -> Answer:
        return self.loop.run_until_complete(self.arequest(method, path, body, token, headers))

    def synchronous(
        self, method: str, path: str, *, body: Any = None, token: str | None = None, **headers: str
    ) -> Answer:
        """The same request answered by the synchronous views."""
        return self.loop.run_until_complete(
            self.arequest(method, path, body, token, headers, handler=self.threaded)
        )

    def gather(self, *requests: tuple[str, str, Any, str | None]) -> list[Answer]:
        async def all_at_once() -> list[Answer]:
            return await asyncio.gather(*(self.arequest(*req, {}) for req in requests))

        return self.loop.run_until_complete(all_at_once())

    async def arequest(
        self,
        method: str,
        path: str,
        body: Any,
        token: str | None,
        headers: dict[str, str],
        handler: Handler | None = None,
    ) -> Answer:
        raw = b"" if body is None else json.dumps(body).encode()
        sent = [(b"host", b"testserver")]
        if body is not None:
            sent.append((b"content-type", b"application/json"))
            sent.append((b"content-length", str(len(raw)).encode()))
        if token:
            sent.append((b"authorization", f"Token {token}".encode()))
        sent += [
            (name.replace("_", "-").lower().encode(), v.encode()) for name, v in headers.items()
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": sent,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await asyncio.Event().wait()  # the client stays connected
            raise AssertionError("unreachable")

        messages: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await (handler or self.handler)(scope, receive, send)
        start = messages[0]
        assert start["type"] == "http.response.start"
        found = {name.decode().lower(): value.decode() for name, value in start["headers"]}
        body_out = b"".join(m.get("body", b"") for m in messages[1:])
        return Answer(start["status"], found, body_out)

    def connections_taken(self) -> int:
        """How many times the loop's pool handed out a connection (0: nothing ran there)."""
        pool = aio._pools.get(self.loop)
        return 0 if pool is None else int(pool.get_stats().get("requests_num", 0))

    def close(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(aio.close())
        executors = [self.handler.threads, self.threaded.threads]
        default = getattr(self.loop, "_default_executor", None)  # sync_to_async's threads
        executors += [default] if default is not None else []
        for executor in executors:
            close_connections_of_threads(executor)
            executor.shutdown()
        self.loop.close()


def close_connections_of_threads(executor: ThreadPoolExecutor) -> None:
    """Close the database connection of every thread of ``executor``. Django leaves an
    in-memory SQLite database's connections open (closing one would drop the database for that
    thread), so the threads' own would be left for the garbage collector, which warns."""
    if connection.vendor != "sqlite":
        return
    threads = len(getattr(executor, "_threads", ()))
    if not threads:
        return
    everyone = threading.Barrier(threads)

    def close() -> None:
        everyone.wait(timeout=30)  # one task per thread
        raw = connections["default"].connection
        if raw is not None:
            raw.close()

    for done in [executor.submit(close) for _ in range(threads)]:
        done.result(timeout=30)


@pytest.fixture
def site() -> Iterator[Site]:
    authentication.forget_all()
    running = Site()
    yield running
    running.close()
    authentication.forget_all()


@pytest.fixture
def token_of() -> Callable[[Any], str]:
    def key(user: Any) -> str:
        return str(Token.objects.get_or_create(user=user)[0].key)

    return key


def vote_path(poll: Poll) -> str:
    return f"/api/v1/polls/{poll.pk}/vote/"


def results_path(poll: Poll) -> str:
    return f"/api/v1/polls/{poll.pk}/results/"


def test_a_ballot_is_stored_and_answered_as_the_synchronous_view_answers(
    site: Site, make_poll: Callable[..., Poll], make_user: Callable[..., Any], token_of: Any
) -> None:
    poll = make_poll()
    first, second = option_ids(poll)
    voter, other = make_user(), make_user()
    before = site.connections_taken()

    answer = site.request("POST", vote_path(poll), body={"options": [first]}, token=token_of(voter))

    assert answer.status == 201, answer.body
    assert answer.json()["poll"] == poll.pk and answer.json()["options"] == [first]
    assert Option.objects.counted().get(pk=first).votes == 1
    assert poll.votes.filter(voter=voter).count() == 1
    if ON_LOOP:
        # The token read and the ballot statement, on one connection of the loop's pool.
        assert site.connections_taken() - before == 1
    expected = site.synchronous(
        "POST", vote_path(poll), body={"options": [second]}, token=token_of(other)
    )
    assert expected.status == 201
    status, body, headers = answer.shape()
    sync_status, sync_body, sync_headers = expected.shape()
    assert (status, set(body), headers) == (sync_status, set(sync_body), sync_headers)


@pytest.mark.parametrize(
    "case",
    [
        "twice",
        "closed",
        "scheduled",
        "not_a_member",
        "unknown_option",
        "two_on_single",
        "no_poll",
        "huge_id",
        "bad_token",
        "anonymous",
        "malformed",
        "empty",
        "nul_header",
    ],
)
def test_refusals_are_those_of_the_synchronous_view(
    case: str,
    site: Site,
    make_poll: Callable[..., Poll],
    make_user: Callable[..., Any],
    token_of: Any,
) -> None:
    from datetime import timedelta

    from django.contrib.auth.models import Group
    from django.utils import timezone

    voter = make_user()
    token: str | None = token_of(voter)
    poll = make_poll()
    chosen: Any = {"options": [option_ids(poll)[0]]}
    path = vote_path(poll)
    headers: dict[str, str] = {}
    if case == "twice":
        assert site.request("POST", path, body=chosen, token=token).status == 201
    elif case == "closed":
        expire(poll)
    elif case == "scheduled":
        poll = make_poll(opens_at=timezone.now() + timedelta(days=1))
        path, chosen = vote_path(poll), {"options": [option_ids(poll)[0]]}
    elif case == "not_a_member":
        poll = make_poll(voter_group=Group.objects.create(name="members"))
        path, chosen = vote_path(poll), {"options": [option_ids(poll)[0]]}
    elif case == "unknown_option":
        chosen = {"options": [option_ids(make_poll())[0]]}
    elif case == "two_on_single":
        chosen = {"options": option_ids(poll)}
    elif case == "no_poll":
        path = "/api/v1/polls/999999/vote/"
    elif case == "huge_id":
        path = f"/api/v1/polls/{10**18 * 9}/vote/"
    elif case == "bad_token":
        token = "0" * 40
    elif case == "anonymous":
        token = None
    elif case == "malformed":
        chosen = {"options": "first"}
    elif case == "empty":
        chosen = {"options": []}
    elif case == "nul_header":
        headers = {"x_note": "a\x00b"}

    answer = site.request("POST", path, body=chosen, token=token, **headers)
    if case == "nul_header":
        assert answer.status == 400
        return
    expected = site.synchronous("POST", path, body=chosen, token=token)

    assert answer.shape() == expected.shape()
    assert 400 <= answer.status < 500
    stored = 1 if case == "twice" else 0
    assert (
        sum(
            Option.objects.filter(poll=poll)
            .annotate(counted=counted_votes())
            .values_list("counted", flat=True)
        )
        == stored
    )


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite in memory refuses concurrent writers (503 database table is locked); "
    "tests/test_sqlite_file.py covers SQLite under concurrency",
)
def test_fifty_simultaneous_ballots_of_one_voter_store_one(
    site: Site, make_poll: Callable[..., Poll], make_user: Callable[..., Any], token_of: Any
) -> None:
    poll = make_poll()
    first = option_ids(poll)[0]
    token = token_of(make_user())

    answers = site.gather(*[("POST", vote_path(poll), {"options": [first]}, token)] * 50)

    statuses = sorted(answer.status for answer in answers)
    assert statuses == [201] + [409] * 49
    assert {answer.json()["code"] for answer in answers if answer.status == 409} == {
        "already_voted"
    }
    assert Option.objects.counted().get(pk=first).votes == 1
    assert poll.votes.count() == 1


def test_results_their_etag_and_refusals_match_the_synchronous_view(
    site: Site, make_poll: Callable[..., Poll], make_user: Callable[..., Any], token_of: Any
) -> None:
    owner, voter, stranger = make_user(), make_user(), make_user()
    poll = make_poll(created_by=owner)
    hidden = make_poll(created_by=owner, results_visibility=ResultsVisibility.OWNER)
    site.request(
        "POST", vote_path(poll), body={"options": [option_ids(poll)[1]]}, token=token_of(voter)
    )
    before = site.connections_taken()

    answer = site.request("GET", results_path(poll))
    assert answer.status == 200
    assert [option["votes"] for option in answer.json()["options"]] == [0, 1]
    assert answer.shape() == site.synchronous("GET", results_path(poll)).shape()
    if ON_LOOP:
        assert site.connections_taken() - before == 1

    unchanged = site.request("GET", results_path(poll), if_none_match=answer.headers["etag"])
    assert unchanged.status == 304 and unchanged.body == b""

    refused = site.request("GET", results_path(hidden), token=token_of(stranger))
    assert refused.status == 403 and refused.json()["code"] == "results_hidden"
    assert (
        refused.shape()
        == site.synchronous("GET", results_path(hidden), token=token_of(stranger)).shape()
    )
    shown = site.request("GET", results_path(hidden), token=token_of(owner))
    assert shown.status == 200

    missing = site.request("GET", "/api/v1/polls/999999/results/")
    assert missing.shape() == site.synchronous("GET", "/api/v1/polls/999999/results/").shape()
    assert missing.status == 404


def test_a_token_deleted_in_this_process_stops_working_at_once(
    site: Site, make_poll: Callable[..., Poll], make_user: Callable[..., Any], token_of: Any
) -> None:
    poll = make_poll()
    voter = make_user()
    key = token_of(voter)
    assert site.request("GET", results_path(poll), token=key).status == 200  # remembered

    Token.objects.filter(key=key).get().delete()

    refused = site.request(
        "POST", vote_path(poll), body={"options": [option_ids(poll)[0]]}, token=key
    )
    assert refused.status == 401 and refused.json()["code"] == "authentication_failed"
    assert Option.objects.filter(poll=poll, votes__gt=0).count() == 0


def test_an_inactive_user_is_refused(
    site: Site, make_poll: Callable[..., Poll], make_user: Callable[..., Any], token_of: Any
) -> None:
    poll = make_poll()
    voter = make_user()
    key = token_of(voter)
    type(voter).objects.filter(pk=voter.pk).update(is_active=False)

    refused = site.request(
        "POST", vote_path(poll), body={"options": [option_ids(poll)[0]]}, token=key
    )

    assert refused.status == 401
    assert (
        refused.shape()
        == site.synchronous(
            "POST", vote_path(poll), body={"options": [option_ids(poll)[0]]}, token=key
        ).shape()
    )


def test_a_session_is_served_by_the_synchronous_view(
    site: Site, make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    voter = make_user()
    poll = make_poll(results_visibility=ResultsVisibility.AFTER_VOTE)
    browser = Client()
    browser.force_login(voter)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    before = site.connections_taken()

    # Without a CSRF token, a session's ballot is refused, as by DRF.
    refused = site.request(
        "POST", vote_path(poll), body={"options": [option_ids(poll)[0]]}, cookie=cookie
    )
    assert refused.status == 403
    assert Option.objects.filter(poll=poll, votes__gt=0).count() == 0
    # The session's user is the caller: results of an after_vote poll stay hidden to them.
    hidden = site.request("GET", results_path(poll), cookie=cookie)
    assert hidden.status == 403 and hidden.json()["code"] == "results_hidden"
    assert site.connections_taken() == before


def test_a_keyed_ballot_is_stored_once_and_answered_again(
    site: Site, make_poll: Callable[..., Poll], make_user: Callable[..., Any], token_of: Any
) -> None:
    poll = make_poll()
    token = token_of(make_user())
    ballot = {"options": [option_ids(poll)[0]]}

    first = site.request("POST", vote_path(poll), body=ballot, token=token, idempotency_key="k")
    again = site.request("POST", vote_path(poll), body=ballot, token=token, idempotency_key="k")

    assert (first.status, again.status) == (201, 201)
    assert again.body == first.body
    assert again.headers.get("idempotent-replayed") == "true"
    assert (
        sum(
            Option.objects.filter(poll=poll)
            .annotate(counted=counted_votes())
            .values_list("counted", flat=True)
        )
        == 1
    )


def test_a_voter_policy_and_signal_receivers_still_apply(
    site: Site, make_poll: Callable[..., Poll], make_user: Callable[..., Any], token_of: Any
) -> None:
    poll = make_poll()
    voter = make_user()
    heard: list[Any] = []

    def receiver(sender: Any, poll: Poll, voter: Any, option_ids: Any, **kwargs: Any) -> None:
        heard.append((poll.pk, voter.pk, option_ids))

    with override_settings(DJANGO_POLLS={"VOTER_POLICY": "tests.test_async_views.nobody"}):
        refused = site.request(
            "POST", vote_path(poll), body={"options": [option_ids(poll)[0]]}, token=token_of(voter)
        )
    assert refused.status == 403 and refused.json()["code"] == "not_eligible"

    signals.vote_cast.connect(receiver)
    try:
        answer = site.request(
            "POST", vote_path(poll), body={"options": [option_ids(poll)[0]]}, token=token_of(voter)
        )
    finally:
        signals.vote_cast.disconnect(receiver)
    assert answer.status == 201
    assert heard == [(poll.pk, voter.pk, [option_ids(poll)[0]])]


def nobody(user: Any, poll: Poll) -> bool:
    """A site's voter policy that lets nobody vote."""
    return False


class Stamp(MiddlewareMixin):
    """A site's own middleware, which the handler cannot know to be safe on the loop."""

    def process_response(self, request: Any, response: Any) -> Any:
        response["X-Stamp"] = "stamped"
        return response


def test_a_site_with_middleware_unknown_to_the_handler_is_served_in_threads(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any], token_of: Any
) -> None:
    from django.conf import settings

    poll = make_poll()
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, "tests.test_async_views.Stamp"]):
        running = Site()
        try:
            assert running.handler.inline is None
            answer = running.request(
                "POST",
                vote_path(poll),
                body={"options": [option_ids(poll)[0]]},
                token=token_of(make_user()),
            )
            assert running.connections_taken() == 0
        finally:
            running.close()
    assert answer.status == 201
    assert answer.headers["x-stamp"] == "stamped"
    assert Option.objects.counted().get(pk=option_ids(poll)[0]).votes == 1


# ---------------------------------------------------------------------------------------------
# Voting methods: ranked and score polls through the ASGI handler


def test_ranked_and_score_ballots_and_results_answer_as_the_synchronous_views(
    site: Site, make_poll: Callable[..., Poll], make_user: Callable[..., Any], token_of: Any
) -> None:
    ranked = make_poll(method="ranked")
    scored = make_poll(method="score")
    first, second = option_ids(ranked)
    voter = make_user()

    # An options ballot on a ranked poll: the ballot statement refuses it, on the loop too.
    wrong = site.request(
        "POST", vote_path(ranked), body={"options": [first]}, token=token_of(voter)
    )
    assert wrong.status == 400, wrong.body
    assert list(wrong.json()) == ["options"]
    ranking = site.request(
        "POST", vote_path(ranked), body={"ranking": [second, first]}, token=token_of(voter)
    )
    assert ranking.status == 201, ranking.body
    assert ranking.json()["ranking"] == [second, first]
    one = option_ids(scored)[0]
    body = {"scores": [{"option": one, "score": 4}]}
    assert site.request("POST", vote_path(scored), body=body, token=token_of(voter)).status == 201

    for poll in (ranked, scored):
        answer = site.request("GET", results_path(poll))
        assert answer.shape() == site.synchronous("GET", results_path(poll)).shape()
    assert site.request("GET", results_path(ranked)).json()["winner"] == second
    assert site.request("GET", results_path(scored)).json()["options"][0]["average"] == 4.0


def test_a_ranked_ballot_is_cast_on_the_loop(
    site: Site, make_poll: Callable[..., Poll], make_user: Callable[..., Any], token_of: Any
) -> None:
    ranked = make_poll(method="ranked", options=("Ann", "Ben", "Cat"))
    a, b, c = option_ids(ranked)
    voter, other = make_user(), make_user()
    before = site.connections_taken()

    answer = site.request(
        "POST", vote_path(ranked), body={"ranking": [c, a]}, token=token_of(voter)
    )

    assert answer.status == 201, answer.body
    if ON_LOOP:
        # The token read, the poll as the method judges it, the ballot statement: on one
        # connection of the loop's pool.
        assert site.connections_taken() - before == 1
    expected = site.synchronous(
        "POST", vote_path(ranked), body={"ranking": [b, a]}, token=token_of(other)
    )
    status, body, headers = answer.shape()
    sync_status, sync_body, sync_headers = expected.shape()
    assert (status, set(body), headers) == (sync_status, set(sync_body), sync_headers)
    assert list(
        Option.objects.filter(poll=ranked)
        .order_by("order")
        .annotate(counted=counted_votes())
        .values_list("counted")
    ) == [
        (2,),
        (1,),
        (1,),
    ]


@pytest.mark.parametrize(
    "case",
    [
        "twice",
        "closed",
        "scheduled",
        "not_a_member",
        "unknown_option",
        "too_many",
        "score_too_high",
        "not_a_member_and_score_too_high",
        "no_poll",
        "malformed",
        "options_field_beside",
    ],
)
def test_refusals_of_ranked_and_score_ballots_are_those_of_the_synchronous_view(
    case: str,
    site: Site,
    make_poll: Callable[..., Poll],
    make_user: Callable[..., Any],
    token_of: Any,
) -> None:
    from datetime import timedelta

    from django.contrib.auth.models import Group
    from django.utils import timezone

    fields: dict[str, Any] = {"method": "score" if "score" in case else "ranked"}
    if case == "scheduled":
        fields["opens_at"] = timezone.now() + timedelta(days=1)
    if "not_a_member" in case:
        fields["voter_group"] = Group.objects.create(name="members")
    if case == "too_many":
        fields["max_choices"] = 2
    poll = make_poll(options=("Ann", "Ben", "Cat"), **fields)
    ids = option_ids(poll)
    token = token_of(make_user())
    path = vote_path(poll)
    body: Any = (
        {"scores": [{"option": ids[0], "score": 9}]} if "score" in case else {"ranking": ids[:2]}
    )
    if case == "twice":
        assert site.request("POST", path, body=body, token=token).status == 201
    elif case == "closed":
        expire(poll)
    elif case == "unknown_option":
        body = {"ranking": option_ids(make_poll(method="ranked"))[:1]}
    elif case == "too_many":
        body = {"ranking": ids}
    elif case == "no_poll":
        path = "/api/v1/polls/999999/vote/"
    elif case == "malformed":
        body = {"ranking": [ids[0], ids[0]]}
    elif case == "options_field_beside":
        body = {"ranking": ids[:1], "options": ids[:1]}

    answer = site.request("POST", path, body=body, token=token)
    expected = site.synchronous("POST", path, body=body, token=token)

    assert answer.shape() == expected.shape()
    assert 400 <= answer.status < 500
    stored = 1 if case == "twice" else 0
    assert Participation.objects.filter(poll=poll).count() == stored


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite in memory refuses concurrent writers (503 database table is locked); "
    "tests/test_sqlite_file.py covers SQLite under concurrency",
)
def test_fifty_simultaneous_rankings_of_one_voter_store_one(
    site: Site, make_poll: Callable[..., Poll], make_user: Callable[..., Any], token_of: Any
) -> None:
    poll = make_poll(method="ranked", options=("Ann", "Ben", "Cat"))
    a, b, c = option_ids(poll)
    token = token_of(make_user())
    rankings = [[a, b], [b, c, a], [c]] * 17

    answers = site.gather(
        *[("POST", vote_path(poll), {"ranking": ranking}, token) for ranking in rankings[:50]]
    )

    statuses = sorted(answer.status for answer in answers)
    assert statuses == [201] + [409] * 49
    assert {answer.json()["code"] for answer in answers if answer.status == 409} == {
        "already_voted"
    }
    assert Participation.objects.filter(poll=poll).count() == 1
    (choice,) = Ballot.objects.filter(poll=poll).values_list("choice", flat=True)
    votes = dict(
        Option.objects.filter(poll=poll)
        .annotate(counted=counted_votes())
        .values_list("pk", "counted")
    )
    assert votes == {option_id: int(option_id in choice) for option_id in (a, b, c)}
    counted = Tally.objects.filter(poll=poll, ballots__gt=0).exclude(key__startswith="#")
    assert dict(counted.values_list("key", "ballots")) == {",".join(map(str, choice)): 1}


@pytest.mark.parametrize("method", ["single", "ranked"])
def test_ballots_on_the_loop_write_their_webhook_events(
    site: Site,
    make_poll: Callable[..., Poll],
    make_user: Callable[..., Any],
    token_of: Any,
    settings: Any,
    method: str,
) -> None:
    settings.DJANGO_POLLS = {
        **getattr(settings, "DJANGO_POLLS", {}),
        "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.1/32"],
    }
    owner = make_user()
    services.create_subscription(
        created_by=owner, url="http://127.0.0.1:9/hook", secret="s" * 16, events=["vote.cast"]
    )
    poll = make_poll(created_by=owner, method=method, anonymity="public", options=("A", "B"))
    a, b = option_ids(poll)
    voter = make_user()
    before = site.connections_taken()
    body = {"options": [b]} if method == "single" else {"ranking": [b, a]}

    answer = site.request("POST", vote_path(poll), body=body, token=token_of(voter))

    assert answer.status == 201, answer.body
    if ON_LOOP:
        assert site.connections_taken() > before  # cast on the loop, events and all
    (event,) = WebhookDelivery.objects.filter(poll_id=poll.pk)
    assert event.event == "vote.cast"
    assert event.data == {"poll": poll.pk, "voter": str(voter.pk), "ballot": body}
