"""The load generator: HTTP/1.1 requests from a process of its own.

    python -m benchmarks.client REQUESTS HOST PORT CONCURRENCY [asgi|wsgi]

REQUESTS is a pickle of ready-made requests, ``(label, bytes)`` pairs. CONCURRENCY clients each
send the next request as soon as their previous answer has arrived. The last argument says which
kind of Gunicorn worker answers (default: the ``ASGI`` variable, as the example reads it). Prints
one JSON object: the number of requests, the seconds from first to last, answers per status,
latency percentiles (ms) overall and per label, every latency (s) per label, and the client's own
CPU time per request.

Plain asyncio streams instead of an HTTP library, or wrk (not on PyPI): a request costs the
client a few tens of microseconds of CPU, which matters on a 2-core machine shared with the
server; every request can carry its own token (one voter each); and every latency is recorded,
not sampled.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import pickle
import resource
import sys
import time

#: The example serves under ASGI unless ASGI=false (example_project/gunicorn.conf.py).
UNDER_ASGI = os.environ.get("ASGI", "true").lower() not in {"false", "off", "0", "no"}


async def connection(
    host: str,
    port: int,
    queue: collections.deque[tuple[str, bytes]],
    done: list[tuple[str, int, float]],
    asgi: bool,
) -> None:
    """Send requests one after another, one connection each, as a reverse proxy talks to
    Gunicorn's sync workers. The client's half of the connection closes as soon as the request is
    sent, so a worker never waits for the client to hang up (Gunicorn drains a connection until
    the peer closes it). Uvicorn (the example's ASGI workers, ``ASGI`` unset or true) takes a
    half-closed connection for a client that left, so there the request says
    ``Connection: close`` and the connection stays open until the answer is read. Connecting
    counts in the latency."""
    while queue:
        label, request = queue.popleft()
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            if not asgi:
                writer.write_eof()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
        finally:
            writer.close()
        done.append((label, status, time.perf_counter() - started))


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "count": len(ordered),
        "p50_ms": 1000 * percentile(ordered, 0.50),
        "p99_ms": 1000 * percentile(ordered, 0.99),
    }


async def run(
    requests: list[tuple[str, bytes]],
    host: str,
    port: int,
    concurrency: int,
    asgi: bool = UNDER_ASGI,
) -> dict[str, object]:
    queue = collections.deque(requests)
    done: list[tuple[str, int, float]] = []
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(*(connection(host, port, queue, done, asgi) for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    used = resource.getrusage(resource.RUSAGE_SELF)
    by_label: dict[str, list[float]] = collections.defaultdict(list)
    for label, _, latency in done:
        by_label[label].append(latency)
    return {
        "requests": len(done),
        "seconds": seconds,
        "per_second": len(done) / seconds,
        "statuses": dict(collections.Counter(str(status) for _, status, _ in done)),
        **summary([latency for _, _, latency in done]),
        "labels": {label: summary(latencies) for label, latencies in by_label.items()},
        "latencies": by_label,
        "client_cpu_us": 1e6
        * (used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime)
        / max(1, len(done)),
    }


def main() -> None:
    path, host, port, concurrency = sys.argv[1:5]
    asgi = sys.argv[5] == "asgi" if len(sys.argv) > 5 else UNDER_ASGI
    with open(path, "rb") as file:
        requests = pickle.load(file)
    print(json.dumps(asyncio.run(run(requests, host, int(port), int(concurrency), asgi))))


if __name__ == "__main__":
    main()
