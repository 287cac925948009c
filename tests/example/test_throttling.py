"""Throttling in the example project: rates from the environment, 429 with Retry-After, and
no 500 when the cache that counts requests is down."""

from __future__ import annotations

from tests.example.conftest import PASSWORD, Deployment, Server, create_poll, register


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


def test_voting_goes_on_when_the_throttle_cache_is_down(deployment: Deployment) -> None:
    # Nothing listens on port 9: every cache call fails at once.
    with deployment.serve(workers=2, THROTTLE="on", REDIS_URL="redis://127.0.0.1:9/0") as server:
        user = account(server)
        credentials = {"username": user["username"], "password": PASSWORD}
        assert server.request("POST", "/api/v1/auth/token/", credentials).status == 200
        poll, option = new_poll(server, user["token"])
        voted = server.request(
            "POST", f"/api/v1/polls/{poll}/vote/", {"options": [option]}, token=user["token"]
        )
        assert voted.status == 201, voted.text
        again = server.request(
            "POST", f"/api/v1/polls/{poll}/vote/", {"options": [option]}, token=user["token"]
        )
        assert again.status == 409  # the rules still hold; only the counting of requests is off


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
