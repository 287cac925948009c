"""PostgreSQL stopped hard (`pg_ctl stop -m immediate`, as in a crash) and started again while
ballots keep coming: no acknowledged vote is lost, every answer during the outage is the API's
503 with Retry-After, and ballots succeed again soon after the database accepts connections."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from tests.example.conftest import Deployment, Server, create_poll
from tests.faults.conftest import (
    WORKERS,
    Ballot,
    Outcome,
    PrivatePostgres,
    assert_stored_exactly,
    is_already_voted,
    is_service_unavailable,
    make_voters,
    send,
    stored_voters,
    wait_for_workers,
)

VOTERS = 600
CLIENTS = 8
# Ballots acknowledged before the database goes down, and how long it stays down: as long as a
# restart of a busy or managed server, and long enough for every worker to lose its connection
# and fail to reconnect several times.
BEFORE = 100
OUTAGE = 8.0
# How soon after the database accepts connections again a ballot must succeed.
RECOVERY = 2.0
# A client waits this long between attempts (not Retry-After's second: the recovery is timed).
PAUSE = 0.05
ATTEMPTS = 400
DEADLINE = 90.0


def vote_until_answered(
    server: Server, poll_id: int, queue: Iterator[Ballot], lock: threading.Lock, stop_at: float
) -> None:
    """Take ballots one after another; retry each until it is stored or refused as a duplicate."""
    while True:
        with lock:
            ballot = next(queue, None)
        if ballot is None:
            return
        for _ in range(ATTEMPTS):
            outcome = ballot.cast(server, poll_id)
            if outcome.status in (201, 409) or time.monotonic() > stop_at:
                break
            time.sleep(PAUSE)


def read_results(server: Server, poll_id: int, done: threading.Event) -> list[Outcome]:
    """Anonymous reads of the results all along: they must fail the same way as ballots."""
    outcomes = []
    while not done.is_set():
        outcomes.append(send(server, "GET", f"/api/v1/polls/{poll_id}/results/"))
        time.sleep(PAUSE)
    return outcomes


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        time.sleep(0.01)


def test_a_database_restart_loses_no_acknowledged_vote(
    server: Server, fault_deployment: Deployment, private_postgres: PrivatePostgres
) -> None:
    owner, *voters = make_voters(fault_deployment, VOTERS + 1)
    poll = create_poll(server, owner.token)
    options = [option["id"] for option in poll["options"]]
    ballots = [Ballot(voter, options[n % len(options)]) for n, voter in enumerate(voters)]
    wait_for_workers(server, WORKERS)

    queue = iter(ballots)
    lock = threading.Lock()
    done = threading.Event()
    stop_at = time.monotonic() + DEADLINE
    with ThreadPoolExecutor(max_workers=CLIENTS + 1) as pool:
        reader = pool.submit(read_results, server, poll["id"], done)
        clients = [
            pool.submit(vote_until_answered, server, poll["id"], queue, lock, stop_at)
            for _ in range(CLIENTS)
        ]
        try:
            wait_until(
                lambda: sum(bool(b.attempts) and b.final.status == 201 for b in ballots) >= BEFORE,
                30,
                f"{BEFORE} acknowledged ballots",
            )
            # A checkpoint first keeps crash recovery, and so the restart, short and steady.
            private_postgres.checkpoint()
            went_down = time.monotonic()
            private_postgres.stop("immediate")
            down = time.monotonic()
            time.sleep(OUTAGE)
            starting = private_postgres.start(wait=False)
            assert starting is not None
            try:
                wait_until(private_postgres.accepts, 60, "PostgreSQL accepting connections")
                back = time.monotonic()
            finally:
                starting.wait(timeout=60)
            for client in clients:
                client.result(timeout=DEADLINE)
        finally:
            done.set()
        reads = reader.result(timeout=30)

    votes = [outcome for ballot in ballots for outcome in ballot.attempts]
    answers = [outcome for outcome in votes + reads if outcome.answered]
    # Answered while PostgreSQL was down: a 201 there was committed before it went down.
    in_outage = [
        o for o in answers if down <= o.received <= back and not (o.sent < went_down and o.ok)
    ]
    unavailable = [o for o in answers if o.status == 503]
    recovered = min((o.received for o in votes if o.status == 201 and o.received > back), default=0)
    last_503 = max((o.received for o in unavailable if o.received > back), default=back)
    acknowledged = {b.voter.id for b in ballots if any(o.status == 201 for o in b.attempts)}
    conflicts = {b.voter.id for b in ballots if is_already_voted(b.final)}
    rows = stored_voters(fault_deployment.database_url, poll["id"])
    before = sum(o.status == 201 and o.received <= went_down for o in votes)
    print(
        f"\ndatabase restart: {VOTERS} voters, {CLIENTS} clients, {WORKERS} workers; "
        f"PostgreSQL stopped after {before} acknowledged ballots (the stop took "
        f"{down - went_down:.2f} s), accepting again {back - down:.2f} s after; "
        f"{len(votes)} vote requests, {len(reads)} reads; 201: {len(acknowledged)}; "
        f"409 already_voted after a failed attempt: "
        f"{len(conflicts)}; 503s: {len(unavailable)} ({len(in_outage)} answers during the "
        f"outage), the last {last_503 - back:.2f} s after PostgreSQL was back; no answer: "
        f"{sum(not o.answered for o in votes + reads)}; rows stored: {len(rows)}; "
        f"first 201 {recovered - back:.3f} s after PostgreSQL accepted a connection"
    )

    # A read is the results or the API's 503. A ballot is refused with the API's 503 until it is
    # stored, or refused as a duplicate of an earlier attempt that committed: never a 500, never
    # an HTML page, never a dropped connection.
    for outcome in reads:
        assert outcome.status == 200 or is_service_unavailable(outcome), outcome.describe()
    for ballot in ballots:
        refused = [o for o in ballot.attempts[:-1] if not is_service_unavailable(o)]
        assert not refused, [o.describe() for o in refused]
        assert ballot.final.status == 201 or (ballot.retried and is_already_voted(ballot.final)), (
            ballot.final.describe()
        )
    # Clients saw the outage as 503s, and every answer during it was one.
    assert unavailable, "no request was answered 503: the outage went unnoticed"
    assert all(is_service_unavailable(o) for o in in_outage), [o.describe() for o in in_outage]

    # Every 201 is in the database, and so is every ballot refused as a duplicate on a retry
    # (an earlier attempt committed, its answer lost); nothing else is. Counters equal rows.
    assert_stored_exactly(
        server, fault_deployment, poll["id"], rows, acknowledged, conflicts, voters=VOTERS
    )

    # Ballots succeed again soon after the database is back.
    assert recovered, "no ballot succeeded after PostgreSQL was back"
    assert recovered - back < RECOVERY, (
        f"the first 201 came {recovered - back:.2f} s after PostgreSQL accepted connections"
    )
