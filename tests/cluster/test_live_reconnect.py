"""A live results subscriber whose app host dies: it reconnects through the balancer as a
browser's EventSource does (after the stream's `retry`, sending `Last-Event-ID`) to another host,
while ballots keep arriving, and ends with the same results as the database.

The server does not look at Last-Event-ID: every event carries the whole results, so the first
event of a stream, the current state, is all a client needs after a gap; when its id equals
Last-Event-ID nothing changed while the client was away."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

from tests.cluster.conftest import (
    Cluster,
    Voting,
    ballots_for,
    host_up,
    kill_host,
    new_poll,
)

#: Seconds a read waits for an event (heartbeats come every 15 s); never a bound on speed.
PATIENCE = 30


class EventSource:
    """A results stream read through the balancer as EventSource reads one."""

    def __init__(self, cluster: Cluster, poll: int) -> None:
        self.port = cluster.balancer.port
        self.path = f"/api/v1/polls/{poll}/results/stream/"
        self.retry = 3.0  # EventSource's usual default, until the stream says otherwise
        self.last_id: str | None = None
        self.host = ""
        self.latest: dict[str, Any] = {}
        self.connection: http.client.HTTPConnection | None = None
        self.response: http.client.HTTPResponse | None = None

    def connect(self) -> None:
        headers = {"Accept": "text/event-stream"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=PATIENCE)
        self.connection.request("GET", self.path, headers=headers)
        self.response = self.connection.getresponse()
        assert self.response.status == 200, self.response.read()
        self.host = self.response.headers["X-App-Host"]

    def next(self) -> dict[str, Any] | None:
        """The next results event's fields, or None when the stream ended or broke."""
        assert self.response is not None
        fields: dict[str, Any] = {}
        while True:
            try:
                line = self.response.readline()
            except (OSError, http.client.HTTPException):
                line = b""
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if text == "":
                if fields.get("event") == "results":
                    self.latest = fields["data"]
                    return fields
                fields = {}
                continue
            name, _, value = text.partition(":")
            value = value.removeprefix(" ")
            if name == "retry":
                self.retry = int(value) / 1000
            elif name == "id":
                self.last_id = fields["id"] = value
            elif name == "data":
                fields["data"] = json.loads(value)
            elif name:
                fields[name] = value

    def until(self, total: int) -> None:
        deadline = time.monotonic() + PATIENCE
        while self.latest.get("total_votes", -1) < total:
            assert time.monotonic() < deadline, f"no results with {total} votes"
            assert self.next() is not None, "the stream ended"

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def test_a_subscriber_whose_host_dies_reconnects_and_ends_with_the_final_results(
    cluster: Cluster,
) -> None:
    poll, options = new_poll(cluster, "Live through a crash?")
    ballots = ballots_for(cluster, options, 1000)
    source = EventSource(cluster, poll)
    source.connect()
    assert source.next() is not None and source.latest["total_votes"] == 0
    assert source.retry == 2.0
    first_host = source.host
    number = int(first_host.removeprefix("app"))
    try:
        with Voting(cluster, poll, ballots, clients=2, pace=0.05) as voting:
            source.until(20)
            killed = time.monotonic()
            assert kill_host(cluster, number) > 0
            while source.next() is not None:
                pass
            ended = time.monotonic()
            seen_before = source.latest["total_votes"]
            last_id = source.last_id
            source.close()
            time.sleep(source.retry)
            source.connect()
            assert source.next() is not None
            reconnected = time.monotonic()
            resumed_at = source.latest["total_votes"]
            unchanged = source.last_id == last_id
            source.until(resumed_at + 20)
        final = cluster.balancer.request("GET", f"/api/v1/polls/{poll}/results/")
        assert final.status == 200
        total = final.json["total_votes"]
        source.until(total)
        acknowledged, conflicts = voting.check()
    finally:
        source.close()
        host_up(cluster, number)

    print(
        f"\nlive reconnect: stream on {first_host}, killed at {seen_before} votes; the stream "
        f"ended {ended - killed:.2f} s after the kill, reconnected to {source.host} "
        f"{reconnected - ended:.2f} s later (retry {source.retry:.0f} s) at {resumed_at} votes "
        f"(first event {'equal to' if unchanged else 'newer than'} Last-Event-ID); final "
        f"results {total} votes, {len(acknowledged | conflicts)} ballots stored, the stream's "
        "last event the same"
    )
    assert source.host != first_host
    assert source.latest == final.json
