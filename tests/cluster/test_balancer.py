"""The API as a client meets it through the balancer: sign up, sign in, a poll, a ballot, the
results; answered by every app host in turn."""

from __future__ import annotations

from tests.cluster.conftest import PASSWORD, Cluster, token_of


def test_the_api_works_through_the_balancer(cluster: Cluster) -> None:
    balancer = cluster.balancer
    health = balancer.request("GET", "/api/health/")
    assert health.status == 200 and health.json == {"status": "ok", "database": "ok"}
    owner = token_of(balancer, "alice")
    signed_in = balancer.request(
        "POST", "/api/v1/auth/token/", {"username": "alice", "password": PASSWORD}
    )
    assert signed_in.status == 200 and signed_in.json["token"] == owner
    body = {"title": "Lunch?", "options": [{"text": "Pizza"}, {"text": "Soup"}]}
    created = balancer.request("POST", "/api/v1/polls/", body, token=owner)
    assert created.status == 201, created.text
    poll = created.json
    soup = poll["options"][1]["id"]
    voter = token_of(balancer)
    vote = f"/api/v1/polls/{poll['id']}/vote/"
    cast = balancer.request("POST", vote, {"options": [soup]}, token=voter)
    assert cast.status == 201, cast.text
    again = balancer.request("POST", vote, {"options": [soup]}, token=voter)
    assert again.status == 409 and again.json["code"] == "already_voted"
    ballot = balancer.request("GET", vote, token=voter)
    assert ballot.status == 200 and ballot.json["voted"] and ballot.json["options"] == [soup]
    results = balancer.request("GET", f"/api/v1/polls/{poll['id']}/results/")
    assert results.status == 200
    assert [option["votes"] for option in results.json["options"]] == [0, 1]
    # Round robin: every host answered some of these.
    hosts = {balancer.request("GET", "/api/health/").headers["X-App-Host"] for _ in range(9)}
    assert hosts == {"app1", "app2", "app3"}


def test_make_cluster_again_finds_it_up(cluster: Cluster) -> None:
    again = cluster.script("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "up already" in again.stdout
    assert f"balancer: http://127.0.0.1:{cluster.balancer.port}/" in again.stdout
