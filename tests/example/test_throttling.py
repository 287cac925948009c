"""Throttling in the example project: rates from the environment, 429 with Retry-After, one
limit shared by every worker through Redis; when the cache that counts requests is down, no
500: voting goes on, registering and signing in are refused (503)."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from tests.example.conftest import (
    PASSWORD,
    Deployment,
    Server,
    create_poll,
    free_port,
    register,
)

# A database of its own on the local Redis, emptied before use. REQUIRE_REDIS makes a missing
# Redis fail the test instead of skipping it (.ci/run sets it and starts Redis).
REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")


def empty_redis() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=2).flushdb()
    except redis.RedisError as exc:
        if os.environ.get("REQUIRE_REDIS"):
            pytest.fail(f"Redis is required (REQUIRE_REDIS) but {REDIS_TEST_URL} fails: {exc}")
        pytest.skip(f"no Redis at {REDIS_TEST_URL} ({exc}); set REQUIRE_REDIS to fail instead")
    return REDIS_TEST_URL


def account(server: Server) -> dict[str, str]:
    answer = register(server)
    assert answer.status == 201, answer.text
    return {"username": answer.json["username"], "token": answer.json["token"]}


def new_poll(server: Server, token: str) -> tuple[int, int]:
    poll = create_poll(server, token)
    return poll["id"], poll["options"][0]["id"]


def test_rates_come_from_the_environment_and_excess_gets_429(deployment: Deployment) -> None:
    # One worker: its memory cache sees every request (several workers need REDIS_URL).
    with deployment.serve(
        workers=1, THROTTLE="on", THROTTLE_AUTH_RATE="4/min", THROTTLE_VOTE_RATE="2/min"
    ) as server:
        user = account(server)  # the first of 4 auth requests
        credentials = {"username": user["username"], "password": PASSWORD}
        statuses = [
            server.request("POST", "/api/v1/auth/token/", credentials).status for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]

        polls = [new_poll(server, user["token"]) for _ in range(3)]
        votes = [
            server.request(
                "POST", f"/api/v1/polls/{poll}/vote/", {"options": [option]}, token=user["token"]
            )
            for poll, option in polls
        ]
        assert [vote.status for vote in votes] == [201, 201, 429]
        refused = votes[-1]
        assert refused.json["code"] == "throttled"
        assert int(refused.headers["Retry-After"]) > 0
        # The refused ballot was not stored; reads are not throttled.
        results = server.request("GET", f"/api/v1/polls/{polls[-1][0]}/results/")
        assert results.status == 200
        assert results.json["total_votes"] == 0


def silent_redis() -> str:
    """A Redis address on this machine where nothing answers: every cache call fails at once."""
    return f"redis://127.0.0.1:{free_port()}/0"


def test_voting_goes_on_when_the_throttle_cache_is_down(
    deployment: Deployment, server: Server
) -> None:
    # The account and the poll come from a server without throttling, on the same database.
    user = account(server)
    poll, option = new_poll(server, user["token"])
    with deployment.serve(workers=2, THROTTLE="on", REDIS_URL=silent_redis()) as cacheless:
        voted = cacheless.request(
            "POST", f"/api/v1/polls/{poll}/vote/", {"options": [option]}, token=user["token"]
        )
        assert voted.status == 201, voted.text
        again = cacheless.request(
            "POST", f"/api/v1/polls/{poll}/vote/", {"options": [option]}, token=user["token"]
        )
        assert again.status == 409  # the rules still hold; only the counting of requests is off


def test_registering_and_signing_in_are_refused_while_the_throttle_cache_is_down(
    deployment: Deployment, server: Server
) -> None:
    user = account(server)
    credentials = {"username": user["username"], "password": PASSWORD}
    newcomer = {"username": "newcomer-while-down", "password": PASSWORD}
    with deployment.serve(workers=1, THROTTLE="on", REDIS_URL=silent_redis()) as cacheless:
        # Unlimited sign-ins would let anyone guess passwords at full speed: closed, not open.
        signed_in = cacheless.request("POST", "/api/v1/auth/token/", credentials)
        registered = cacheless.request("POST", "/api/v1/auth/register/", newcomer)
        for refused in (signed_in, registered):
            assert refused.status == 503, refused.text
            assert refused.json["code"] == "service_unavailable"
            assert int(refused.headers["Retry-After"]) > 0
    # Nothing was made while refused: the name is still free once the cache is back.
    assert server.request("POST", "/api/v1/auth/register/", newcomer).status == 201


def test_a_forged_forwarded_for_header_does_not_escape_the_limit(deployment: Deployment) -> None:
    with deployment.serve(workers=1, THROTTLE="on", THROTTLE_AUTH_RATE="3/min") as server:
        credentials = {"username": "nobody", "password": "guess"}
        statuses = [
            server.request(
                "POST",
                "/api/v1/auth/token/",
                credentials,
                headers={"X-Forwarded-For": f"10.0.0.{attempt}"},
            ).status
            for attempt in range(5)
        ]
        assert statuses == [400, 400, 400, 429, 429]


def test_four_workers_share_one_limit_through_redis(deployment: Deployment) -> None:
    """100 ballots one after another against 20/min: exactly 20 stored, whichever of the four
    workers answers each (with a memory cache per worker, up to 80 would be)."""
    with deployment.serve(
        workers=4,
        THROTTLE="on",
        THROTTLE_VOTE_RATE="20/min",
        THROTTLE_CREATE_RATE="100/min",
        REDIS_URL=empty_redis(),
    ) as server:
        user = account(server)
        ballots = []
        for index in range(5):
            poll = create_poll(
                server,
                user["token"],
                title=f"Poll {index}",
                allow_multiple_votes=True,
                options=[{"text": f"Option {n}"} for n in range(20)],
            )
            ballots += [(poll["id"], option["id"]) for option in poll["options"]]
        answers = [
            server.request(
                "POST", f"/api/v1/polls/{poll}/vote/", {"options": [option]}, token=user["token"]
            )
            for poll, option in ballots
        ]
        stored = sum(
            server.request("GET", f"/api/v1/polls/{poll}/results/").json["total_votes"]
            for poll in dict(ballots)
        )

    assert len(answers) == 100
    assert Counter(answer.status for answer in answers) == {201: 20, 429: 80}
    assert [answer.status for answer in answers[:20]] == [201] * 20
    refused = [answer for answer in answers if answer.status == 429]
    assert all(answer.json["code"] == "throttled" for answer in refused)
    assert all(int(answer.headers["Retry-After"]) > 0 for answer in refused)
    assert stored == 20
