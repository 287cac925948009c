"""Gunicorn workers killed with SIGKILL while ballots are in flight: no acknowledged vote is lost,
a client that lost its answer can retry safely, and the counters still match the rows."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.example.conftest import Deployment, Server, create_poll
from tests.faults.conftest import (
    WORKERS,
    Ballot,
    assert_stored_exactly,
    children,
    is_already_voted,
    make_voters,
    stored_voters,
    wait_for_workers,
)

VOTERS = 300
CLIENTS = 24
# A worker is killed each time this many more ballots have been answered (5 kills in all).
KILL_EVERY = 50
KILLS = 5
# Attempts per voter: the first, then retries while the connection keeps failing.
ATTEMPTS = 6


def cast(server: Server, poll_id: int, ballot: Ballot, answered: list[int]) -> None:
    """Vote; while the connection fails without an answer (its worker died), vote again."""
    for _ in range(ATTEMPTS):
        if ballot.cast(server, poll_id).answered:
            break
        time.sleep(0.05)
    answered.append(1)


def kill_workers(server: Server, answered: list[int], done: threading.Event) -> list[int]:
    """SIGKILL the oldest worker (booted, so most likely in the middle of a ballot) each time
    KILL_EVERY more ballots are answered; the number answered at each kill is returned."""
    kills: list[int] = []
    while len(kills) < KILLS and not done.is_set():
        if len(answered) >= KILL_EVERY * (len(kills) + 1):
            workers = children(server.process.pid)
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                kills.append(len(answered))
        time.sleep(0.005)
    return kills


def test_killed_workers_lose_no_acknowledged_vote(
    server: Server, fault_deployment: Deployment
) -> None:
    owner, *voters = make_voters(fault_deployment, VOTERS + 1)
    poll = create_poll(server, owner.token)
    options = [option["id"] for option in poll["options"]]
    ballots = [Ballot(voter, options[n % len(options)]) for n, voter in enumerate(voters)]
    wait_for_workers(server, WORKERS)

    answered: list[int] = []
    done = threading.Event()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS + 1) as pool:
        killer = pool.submit(kill_workers, server, answered, done)
        votes = [pool.submit(cast, server, poll["id"], ballot, answered) for ballot in ballots]
        for vote in votes:
            vote.result(timeout=90)
        done.set()
        kills = killer.result(timeout=10)
    seconds = time.monotonic() - started

    first_failed = [ballot for ballot in ballots if not ballot.attempts[0].answered]
    retried = [ballot for ballot in ballots if ballot.retried]
    acknowledged = {b.voter.id for b in ballots if b.final.status == 201}
    conflicts = {b.voter.id for b in ballots if b.retried and is_already_voted(b.final)}
    rows = stored_voters(fault_deployment.database_url, poll["id"])
    print(
        f"\nworker crash: {VOTERS} votes by {CLIENTS} clients on {WORKERS} workers in "
        f"{seconds:.1f} s; {len(kills)} workers killed (after {kills} answers); "
        f"{len(first_failed)} first attempts got no answer, {len(retried)} voters retried; "
        f"201: {sum(b.attempts[0].status == 201 for b in ballots)} first time, "
        f"{sum(b.retried and b.final.status == 201 for b in ballots)} on retry; "
        f"409 already_voted on retry: {len(conflicts)}; rows stored: {len(rows)}"
    )

    # The faults happened, while ballots were in flight.
    assert len(kills) == KILLS, kills
    assert all(count < VOTERS for count in kills), kills
    assert first_failed, "no request lost its answer: the kills hit no ballot in flight"

    # A client sees no answer (a killed worker) until its ballot is stored or refused as a
    # duplicate of its own lost one: never a server error.
    for ballot in ballots:
        lost = [outcome for outcome in ballot.attempts[:-1] if outcome.answered]
        assert not lost, [outcome.describe() for outcome in lost]
        # Distinct voters: only a retry can clash with an earlier ballot.
        assert not ballot.attempts[0].answered or ballot.attempts[0].status == 201, ballot.attempts[
            0
        ].describe()
        assert ballot.final.status == 201 or (ballot.retried and is_already_voted(ballot.final)), [
            outcome.describe() for outcome in ballot.attempts
        ]

    # Every 201 is in the database, and so is every ballot refused as a duplicate on a retry
    # (an earlier attempt committed, its answer lost); nothing else is. Counters equal rows.
    assert_stored_exactly(
        server, fault_deployment, poll["id"], rows, acknowledged, conflicts, voters=VOTERS
    )

    # Gunicorn replaced every killed worker.
    wait_for_workers(server, WORKERS)
