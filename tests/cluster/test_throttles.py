"""Throttle limits hold across the app hosts: they count in the one Redis they share, so a client
whose requests the balancer spreads round robin over three hosts gets exactly the limit, then
429 with Retry-After. The hosts run with low rates for this test, then with the cluster's
settings again (throttles off)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.cluster.conftest import Cluster, host_up, new_poll, token_of

RATE = 4
#: Requests of each kind: the limit and then some, more than one round over the hosts.
SENT = 9


def restart_hosts(cluster: Cluster, **settings: str) -> None:
    """Every host stopped, then started with the cluster's settings and these (all at once:
    this is a test, not a rolling restart)."""

    def host_down(number: int) -> None:
        stopped = cluster.script("host-down", str(number))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr

    with ThreadPoolExecutor(cluster.layout.hosts) as hosts:
        list(hosts.map(host_down, cluster.layout.numbers))
        list(hosts.map(lambda n: host_up(cluster, n, **settings), cluster.layout.numbers))


def test_throttle_limits_hold_across_the_hosts(cluster: Cluster) -> None:
    import redis

    balancer = cluster.balancer
    owner = token_of(balancer)
    polls = [new_poll(cluster, f"Throttled {n}?", owner) for n in range(SENT)]
    voter = token_of(balancer)
    # The counts of earlier runs (this address's sign-ins) are forgotten.
    redis.Redis.from_url(f"redis://{cluster.layout.redis}", socket_timeout=2).flushdb()
    rates = {"THROTTLE_VOTE_RATE": f"{RATE}/min", "THROTTLE_AUTH_RATE": f"{RATE}/min"}
    restart_hosts(cluster, THROTTLE="on", **rates)
    try:
        votes = [
            balancer.request("POST", f"/api/v1/polls/{poll}/vote/", {"options": [options[0]]},
                             token=voter)
            for poll, options in polls
        ]  # fmt: skip
        wrong = {"username": "nobody-here", "password": "not-the-password"}
        sign_ins = [balancer.request("POST", "/api/v1/auth/token/", wrong) for _ in range(SENT)]
    finally:
        restart_hosts(cluster)
    hosts = {answer.headers["X-App-Host"] for answer in votes + sign_ins}
    print(
        f"\nthrottles: rate {RATE}/min on {len(hosts)} hosts; ballots "
        f"{[a.status for a in votes]}, sign-ins {[a.status for a in sign_ins]}"
    )
    assert hosts == {f"app{n}" for n in cluster.layout.numbers}
    assert [a.status for a in votes] == [201] * RATE + [429] * (SENT - RATE)
    assert [a.status for a in sign_ins] == [400] * RATE + [429] * (SENT - RATE)
    for answer in votes[RATE:] + sign_ins[RATE:]:
        assert answer.headers["Retry-After"].isdigit(), answer.headers
        assert answer.json["code"] == "throttled", answer.text
