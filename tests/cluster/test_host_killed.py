"""An app host killed (SIGKILL, every process of its namespace) while ballots arrive through the
balancer: every acknowledged ballot is stored exactly once, a retry of an unanswered one is
stored or refused as a duplicate, and the counts are exact (polls_recount)."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.cluster.conftest import Cluster, ballots_for, host_up, kill_host, new_poll
from tests.faults.conftest import Ballot, assert_stored_exactly, is_already_voted, stored_voters

BALLOTS = 2000
#: Ballots sent before the host is killed.
KILL_AFTER = 600
CLIENTS = 12


def test_every_acknowledged_ballot_is_stored_once_when_a_host_is_killed(
    cluster: Cluster,
) -> None:
    balancer = cluster.balancer
    poll, options = new_poll(cluster, "Killed?")
    ballots = ballots_for(cluster, options, BALLOTS)
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
        # A client retries what got no acknowledgement: stored now, or refused as stored before
        # (a moment later if the balancer has no host for it yet: 503 with Retry-After).
        for ballot in unanswered:
            for _ in range(20):
                if ballot.cast(balancer, poll).status != 503:
                    break
                time.sleep(0.5)
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
            f"\nhost killed: {BALLOTS} ballots from {CLIENTS} clients in {elapsed:.1f} s, host 2 "
            f"killed after {KILL_AFTER}: {len(unanswered)} unanswered at first, "
            f"{len(conflicts)} of them stored before their answer was lost"
        )
    finally:
        host_up(cluster, 2)
