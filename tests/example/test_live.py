"""Live results over real HTTP: the example project under Gunicorn's uvicorn workers serves the
API and the results streams together; on PostgreSQL a change made through one server reaches a
stream on another."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.example.conftest import DATABASE, Deployment, Server, create_poll, new_token

#: Seconds a test waits for an event before it fails (never a bound on speed).
PATIENCE = 20


class EventStream:
    """A results stream read over HTTP, event by event."""

    def __init__(self, server: Server, poll_id: int, headers: dict[str, str] | None = None):
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=PATIENCE)
        self.connection.request(
            "GET", f"/api/v1/polls/{poll_id}/results/stream/", headers=headers or {}
        )
        self.response = self.connection.getresponse()

    def next(self) -> dict[str, Any]:
        """The next event (comments skipped): its fields, ``data`` parsed; {} at the end."""
        fields: dict[str, Any] = {}
        while True:
            line = self.response.readline()
            if not line:
                return fields
            text = line.decode().rstrip("\n")
            if text == "":
                if "event" in fields:
                    return fields
                continue
            name, _, value = text.partition(":")
            if name:
                fields[name] = json.loads(value) if name == "data" else value.strip()

    def until(self, total: int) -> dict[str, Any]:
        deadline = time.monotonic() + PATIENCE  # heartbeats keep a read from timing out
        while time.monotonic() < deadline:
            event = self.next()
            assert event, "the stream ended"
            if event["event"] == "results" and event["data"]["total_votes"] == total:
                return event
        raise AssertionError(f"no results with {total} votes within {PATIENCE} s")

    def close(self) -> None:
        self.connection.close()


@pytest.fixture(scope="module")
def server(deployment: Deployment) -> Iterator[Server]:
    """The example serving API and streams together: on PostgreSQL two workers (a vote on one
    reaches a stream on the other); on SQLite one, since there a stream hears only of the
    changes made by its own process."""
    with deployment.serve(workers=2 if DATABASE == "postgresql" else 1) as running:
        yield running


@contextmanager
def stream(server: Server, poll_id: int) -> Iterator[EventStream]:
    opened = EventStream(server, poll_id)
    try:
        yield opened
    finally:
        opened.close()


def vote(server: Server, poll: dict[str, Any], index: int = 0) -> None:
    token = new_token(server)
    option = poll["options"][index]["id"]
    answer = server.request(
        "POST", f"/api/v1/polls/{poll['id']}/vote/", {"options": [option]}, token=token
    )
    assert answer.status == 201, answer.text


def test_a_stream_over_http_sends_the_results_then_each_vote(server: Server) -> None:
    owner = new_token(server)
    poll = create_poll(server, owner)
    with stream(server, poll["id"]) as events:
        assert events.response.status == 200
        assert events.response.headers["Content-Type"] == "text/event-stream"
        assert events.response.headers["Cache-Control"] == "no-cache"
        first = events.next()
        assert first["event"] == "results"
        assert first["data"] == server.request("GET", f"/api/v1/polls/{poll['id']}/results/").json

        vote(server, poll, 1)
        after = events.until(total=1)
        assert [option["votes"] for option in after["data"]["options"]] == [0, 1]
        assert after["id"] != first["id"]

        # The results' ETag is the id of the last event: polling gets 304.
        etag = f'W/"{after["id"]}"'
        unchanged = server.request(
            "GET", f"/api/v1/polls/{poll['id']}/results/", headers={"If-None-Match": etag}
        )
        assert unchanged.status == 304

        deleted = server.request("DELETE", f"/api/v1/polls/{poll['id']}/", token=owner)
        assert deleted.status == 204
        assert events.next() == {"event": "deleted", "data": {"poll": poll["id"]}}
        assert events.next() == {}  # the server ended the response


def test_a_missing_poll_is_a_json_404(server: Server) -> None:
    with stream(server, 987654321) as events:
        assert events.response.status == 404
        assert json.loads(events.response.read())["code"] == "not_found"


def test_a_client_that_leaves_frees_its_slot(deployment: Deployment) -> None:
    with deployment.serve(workers=1, MAX_STREAMS="1") as server:
        poll = create_poll(server, new_token(server))
        first = EventStream(server, poll["id"])
        assert first.next()["event"] == "results"

        with stream(server, poll["id"]) as refused:
            assert refused.response.status == 503
            assert json.loads(refused.response.read())["code"] == "too_many_streams"

        first.close()  # the client goes away; the server notices and frees the slot
        deadline = time.monotonic() + PATIENCE
        while True:
            with stream(server, poll["id"]) as again:
                if again.response.status == 200:
                    assert again.next()["event"] == "results"
                    break
            assert time.monotonic() < deadline, "the slot was never freed"
            time.sleep(0.2)


@pytest.mark.skipif(DATABASE != "postgresql", reason="across processes needs PostgreSQL")
def test_a_vote_on_one_server_reaches_a_stream_on_another(deployment: Deployment) -> None:
    with deployment.serve(workers=1) as first, deployment.serve(workers=1) as second:
        poll = create_poll(first, new_token(first))
        with stream(second, poll["id"]) as events:
            assert events.next()["data"]["total_votes"] == 0
            vote(first, poll)
            assert events.until(total=1)["data"]["options"][0]["votes"] == 1


def test_the_live_results_page_is_served(server: Server) -> None:
    poll = create_poll(server, new_token(server))
    page = server.request("GET", f"/polls/{poll['id']}/live/")
    assert page.status == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert f'data-poll="{poll["id"]}"' in page.text
    script = server.request("GET", "/static/demo/live.js")
    assert script.status == 200
    assert "EventSource" in script.text


def test_under_wsgi_the_api_works_and_streams_are_refused(deployment: Deployment) -> None:
    with deployment.serve(workers=1, ASGI="false") as server:
        poll = create_poll(server, new_token(server))
        with stream(server, poll["id"]) as events:
            assert events.response.status == 503
            assert json.loads(events.response.read())["code"] == "streams_need_asgi"
