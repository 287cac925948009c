"""The read replica stopped: anonymous poll lists, which read it, still answer 200 through the
balancer (each process sends them to the primary for a few seconds at a time and tries the
replica again), and once it is back they read it again."""

from __future__ import annotations

import time

from tests.cluster.conftest import Cluster, load_script, new_poll

#: Anonymous lists read while the replica is down.
READS = 30
#: Lists in a row from the replica that show its reads have resumed (every host, most workers).
IN_A_ROW = 6


def anonymous_list(cluster: Cluster) -> tuple[int, list[int], float]:
    started = time.monotonic()
    answer = cluster.balancer.request("GET", "/api/v1/polls/?page_size=100")
    took = time.monotonic() - started
    ids = [poll["id"] for poll in answer.json["results"]] if answer.status == 200 else []
    return answer.status, ids, took


def test_reads_go_to_the_primary_while_the_replica_is_down(cluster: Cluster) -> None:
    script = load_script()
    new_poll(cluster, "Read while the replica is down?")
    assert anonymous_list(cluster)[0] == 200
    script.database_stop(cluster.layout, "replica")
    try:
        answers = []
        for _ in range(READS):
            answers.append(anonymous_list(cluster))
            time.sleep(0.1)
    finally:
        script.database_start(cluster.layout, "replica")
    back = time.monotonic()
    statuses = [status for status, _, _ in answers]
    slowest = max(took for _, _, took in answers)
    slow = sum(took > 1 for _, _, took in answers)

    # Back: with replay paused, a new poll is on the primary alone; lists that lack it came
    # from the replica.
    with cluster.replay_paused():
        poll, _ = new_poll(cluster, "Only on the primary")
        in_a_row = 0
        deadline = time.monotonic() + 30
        while in_a_row < IN_A_ROW:
            assert time.monotonic() < deadline, "replica reads did not resume within 30 s"
            status, ids, _ = anonymous_list(cluster)
            assert status == 200
            in_a_row = in_a_row + 1 if poll not in ids else 0
            time.sleep(0.1)
        resumed = time.monotonic() - back
    print(
        f"\nreplica down: {READS} anonymous lists while it was stopped, answered "
        f"{sorted(set(statuses))}; {slow} slower than 1 s (finding it down), the slowest "
        f"{slowest:.2f} s; replica reads resumed {resumed:.1f} s after it was started again"
    )
    assert statuses == [200] * READS
    assert slowest < 5
