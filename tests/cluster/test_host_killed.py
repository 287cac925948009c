"""An app host killed (SIGKILL, every process of its namespace) while ballots arrive through the
balancer: every acknowledged ballot is stored exactly once, a retry of an unanswered one is
stored or refused as a duplicate, and the counts are exact (polls_recount)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.cluster.conftest import Cluster, token_of
from tests.faults.conftest import (
    Ballot,
    assert_stored_exactly,
    is_already_voted,
    make_voters,
    stored_voters,
)

BALLOTS = 500
#: Ballots sent before the host is killed.
KILL_AFTER = 150
CLIENTS = 8


def kill_host(cluster: Cluster, number: int) -> int:
    """SIGKILL every process in the host's namespace (Gunicorn's master and workers); how many."""
    listed = subprocess.run(
        ["ip", "netns", "pids", cluster.layout.namespace(number)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for pid in listed:
        os.kill(int(pid), signal.SIGKILL)
    return len(listed)


def test_every_acknowledged_ballot_is_stored_once_when_a_host_is_killed(
    cluster: Cluster,
) -> None:
    balancer = cluster.balancer
    owner = token_of(balancer)
    body = {"title": "Killed?", "options": [{"text": "Yes"}, {"text": "No"}]}
    created = balancer.request("POST", "/api/v1/polls/", body, token=owner)
    assert created.status == 201, created.text
    poll = created.json["id"]
    options = [option["id"] for option in created.json["options"]]
    voters = make_voters(cluster.deployment, BALLOTS)
    ballots = [Ballot(voter, options[n % 2]) for n, voter in enumerate(voters)]
    counter = itertools.count()
    killed = threading.Event()

    def cast(ballot: Ballot) -> None:
        if next(counter) == KILL_AFTER:
            assert kill_host(cluster, 2) > 0
            killed.set()
        ballot.cast(balancer, poll)

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(CLIENTS) as clients:
            list(clients.map(cast, ballots))
        elapsed = time.monotonic() - started
        assert killed.is_set()
        unanswered = [ballot for ballot in ballots if not ballot.final.ok]
        # A client retries what got no acknowledgement: stored now, or refused as stored before.
        for ballot in unanswered:
            ballot.cast(balancer, poll)
        wrong = [
            b.final.describe() for b in ballots if not (b.final.ok or is_already_voted(b.final))
        ]
        assert not wrong, wrong[:5]
        acknowledged = {b.voter.id for b in ballots if any(a.ok for a in b.attempts)}
        conflicts = {b.voter.id for b in ballots if is_already_voted(b.final)}
        rows = stored_voters(cluster.deployment.database_url, poll)
        assert_stored_exactly(
            balancer, cluster.deployment, poll, rows, acknowledged, conflicts, voters=BALLOTS
        )
        print(
            f"{BALLOTS} ballots from {CLIENTS} clients in {elapsed:.1f} s, host 2 killed after "
            f"{KILL_AFTER}: {len(unanswered)} unanswered at first, "
            f"{len(conflicts)} of them stored before their answer was lost"
        )
    finally:
        restarted = cluster.script("host-up", "2")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
