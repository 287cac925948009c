"""PgBouncer restarted, and the PostgreSQL primary restarted (stopped hard, as in a crash), while
ballots arrive through the balancer: while either is down a ballot is answered 503 with
Retry-After in a few seconds (by the app, or by the balancer once every host fails its health
check: the same JSON), never a 500 and never a hang; ballots succeed again within seconds of its
return; no acknowledged ballot is lost and the counts are exact."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.cluster.conftest import Cluster, Voting, ballots_for, load_script, new_poll
from tests.faults.conftest import is_service_unavailable

VOTERS = 1500
#: How long the database stays down.
OUTAGE = 4.0
#: A ballot is answered within this long, outage or not (PgBouncer's query_wait_timeout is 3 s).
ANSWERED_WITHIN = 5.0
#: A ballot succeeds this long after the database is back at the latest (the hosts pass two
#: health checks a second apart before the balancer sends them ballots again).
RECOVERY = 6.0


def stop_pgbouncer(cluster: Cluster) -> Callable[[], None]:
    script = load_script()
    script.pgbouncer_down(cluster.layout)
    return lambda: script.pgbouncer_up(cluster.layout)


def stop_primary(cluster: Cluster) -> Callable[[], None]:
    import psycopg

    script = load_script()
    # A checkpoint first keeps crash recovery, and so the restart, short and steady.
    with psycopg.connect(cluster.conninfo(cluster.layout.primary_port), autocommit=True) as db:
        db.execute("CHECKPOINT")
    script.database_stop(cluster.layout, "primary", "immediate")
    return lambda: script.database_start(cluster.layout, "primary")


@pytest.mark.parametrize("stop", [stop_pgbouncer, stop_primary], ids=["pgbouncer", "primary"])
def test_ballots_get_503_while_the_database_is_away_and_none_is_lost(
    cluster: Cluster, stop: Callable[[Cluster], Callable[[], None]]
) -> None:
    poll, options = new_poll(cluster, "Restarted?")
    ballots = ballots_for(cluster, options, VOTERS)
    with Voting(cluster, poll, ballots, timeout=10, pause=0.2) as voting:
        voting.wait_for(100)
        went_down = time.monotonic()
        start = stop(cluster)
        down = time.monotonic()
        time.sleep(OUTAGE)
        start()
        back = time.monotonic()
        recovered = voting.wait_for(50, since=back)

    attempts = voting.attempts
    refused = [o for o in attempts if o.status not in (201, 409)]
    wrong = [o.describe() for o in refused if not is_service_unavailable(o)]
    # HAProxy's own 503 (every host failing its health check) says so; the app's names the
    # database.
    by_balancer = sum(
        o.status == 503 and o.json()["detail"].startswith("No app host") for o in refused
    )
    slowest = max(o.received - o.sent for o in attempts)
    during = [o for o in attempts if down <= o.sent < back]
    acknowledged, conflicts = voting.check()
    print(
        f"\n{stop.__name__.removeprefix('stop_')} restart: down {back - down:.1f} s (stopping "
        f"took {down - went_down:.2f} s) under {len(voting.sent)} ballots; {len(during)} requests "
        f"sent while down, {len(refused)} refused 503 in all ({by_balancer} of them by the "
        f"balancer), {len(wrong)} otherwise; slowest "
        f"answer {slowest:.2f} s; first ballot stored {recovered - back:.2f} s after the "
        f"database was back; {len(acknowledged)} stored, {len(conflicts)} of them stored before "
        "their answer was lost"
    )
    assert not wrong, wrong[:5]
    assert refused, "no ballot was refused: the outage went unnoticed"
    assert slowest < ANSWERED_WITHIN, f"a ballot waited {slowest:.2f} s for its answer"
    assert recovered - back < RECOVERY
