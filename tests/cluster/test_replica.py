"""Read-your-writes through the balancer while the replica lags (its replay paused): a client
sees its own poll, edit, ballot and results at once, whichever host answers, while an anonymous
reader's poll list comes from the replica and lacks the new poll until replay resumes."""

from __future__ import annotations

import http.cookies
import secrets
import time

from tests.cluster.conftest import PASSWORD, Cluster, token_of


def listed(cluster: Cluster, cookie: str = "") -> list[int]:
    """The ids of the first page of polls, as an anonymous client (with `cookie`) sees them."""
    headers = {"Cookie": cookie} if cookie else {}
    answer = cluster.balancer.request("GET", "/api/v1/polls/?page_size=100", headers=headers)
    assert answer.status == 200, answer.text
    return [poll["id"] for poll in answer.json["results"]]


def test_a_client_reads_its_own_writes_while_the_replica_lags(cluster: Cluster) -> None:
    balancer = cluster.balancer
    with cluster.replay_paused():
        owner = token_of(balancer)
        body = {"title": "Before", "options": [{"text": "Yes"}, {"text": "No"}]}
        created = balancer.request("POST", "/api/v1/polls/", body, token=owner)
        assert created.status == 201, created.text
        poll = created.json["id"]
        detail = f"/api/v1/polls/{poll}/"
        yes = created.json["options"][0]["id"]

        # An anonymous reader is served by the replica, which has not replayed the poll yet.
        assert poll not in listed(cluster)
        assert balancer.request("GET", detail).status == 404

        # Its owner reads it, and its edit, from the primary, on every host.
        seen = set()
        for _ in range(3):
            read = balancer.request("GET", detail, token=owner)
            assert read.status == 200 and read.json["title"] == "Before", read.text
            seen.add(read.headers["X-App-Host"])
        assert len(seen) > 1
        edited = balancer.request("PATCH", detail, {"title": "After"}, token=owner)
        assert edited.status == 200, edited.text
        assert balancer.request("GET", detail, token=owner).json["title"] == "After"

        # A voter's ballot and the results include the ballot at once.
        voter = token_of(balancer)
        cast = balancer.request("POST", f"{detail}vote/", {"options": [yes]}, token=voter)
        assert cast.status == 201, cast.text
        # The ballot, an async view under the package's ASGI handler, carries the cookie too.
        assert "django_polls_primary=" in cast.headers["Set-Cookie"]
        ballot = balancer.request("GET", f"{detail}vote/", token=voter)
        assert ballot.json["voted"] and ballot.json["options"] == [yes]
        results = balancer.request("GET", f"{detail}results/")
        assert results.status == 200 and results.json["total_votes"] == 1

        # An anonymous client right after a write of its own (signing up) holds the cookie that
        # reads the primary: it sees the poll.
        signed_up = balancer.request(
            "POST",
            "/api/v1/auth/register/",
            {"username": f"user-{secrets.token_hex(4)}", "password": PASSWORD},
        )
        assert signed_up.status == 201
        jar = http.cookies.SimpleCookie(signed_up.headers["Set-Cookie"])
        pin = f"django_polls_primary={jar['django_polls_primary'].value}"
        assert poll in listed(cluster, cookie=pin)
        # Without it: still the lagging replica.
        assert poll not in listed(cluster)

    # Replay resumes: the replica catches up.
    deadline = time.monotonic() + 20
    while poll not in listed(cluster):
        assert time.monotonic() < deadline, "the replica did not catch up within 20 s"
        time.sleep(0.2)
    assert balancer.request("GET", detail).json["title"] == "After"
