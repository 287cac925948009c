"""The raw PostgreSQL limit: the ballots' own statement sent straight through psycopg.

    python -m benchmarks.rawpg JOB CONCURRENCY

JOB is a pickle of ``{"dsn", "sql", "params": [...]}``; CONCURRENCY connections in autocommit
each send the next ballot as soon as the previous one has committed. Prints the same JSON object
as :mod:`benchmarks.client`, "statuses" counting ballots stored ("201") and refused.
"""

from __future__ import annotations

import asyncio
import collections
import json
import pickle
import resource
import sys
import time
from typing import Any

import psycopg

from benchmarks.client import summary

#: Where the ballot statement's row holds ``counted`` (see services.ballots._ballot_outcome).
COUNTED = 11


async def connection(
    conn: psycopg.AsyncConnection[Any],
    sql: str,
    queue: collections.deque[dict[str, Any]],
    done: list[tuple[str, float]],
) -> None:
    async with conn:
        while queue:
            params = queue.popleft()
            started = time.perf_counter()
            row = await (await conn.execute(sql, params)).fetchone()
            # The statement's row: what the rules saw, then how many counters it moved
            # (``counted``, the twelfth column), then how many webhook events it wrote.
            stored = row is not None and row[COUNTED] == len(params["options"])
            done.append(("201" if stored else "refused", time.perf_counter() - started))


async def run(job: dict[str, Any], concurrency: int) -> dict[str, object]:
    queue = collections.deque(job["params"])
    done: list[tuple[str, float]] = []
    # Connected before the clock starts: the HTTP designs' workers are connected too.
    connections = [
        await psycopg.AsyncConnection.connect(job["dsn"], autocommit=True)
        for _ in range(concurrency)
    ]
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(*(connection(conn, job["sql"], queue, done) for conn in connections))
    seconds = time.perf_counter() - started
    used = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "requests": len(done),
        "seconds": seconds,
        "per_second": len(done) / seconds,
        "statuses": dict(collections.Counter(status for status, _ in done)),
        **summary([latency for _, latency in done]),
        "client_cpu_us": 1e6
        * (used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime)
        / max(1, len(done)),
    }


def main() -> None:
    path, concurrency = sys.argv[1:3]
    with open(path, "rb") as file:
        job = pickle.load(file)
    print(json.dumps(asyncio.run(run(job, int(concurrency)))))


if __name__ == "__main__":
    main()
